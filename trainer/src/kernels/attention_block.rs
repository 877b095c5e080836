//! Tiled flash-style attention on one (batch, head) slab.
//!
//! This is the kernel the context-parallel strategies call once per
//! sub-block (docs/cp-attention.md §3): queries `q [m, d]` attend to keys
//! `k [n, d]` and values `v [n, d]` (row-major, contiguous) under a [`Mask`].
//!
//! * The forward returns the output normalised within this key set and the
//!   per-row natural log-sum-exp of the *scaled* scores, so partial results
//!   over disjoint key sets merge exactly ([`merge_partial`](super::merge_partial)).
//! * The backward takes the FINAL output and lse (after any merge) and
//!   accumulates this key set's share of `dq`, `dk`, `dv`; the shares of
//!   disjoint key sets add up to the full gradient.
//!
//! Queries are processed `ROW_TILE` rows at a time against `KEY_TILE` keys
//! with an online softmax, so no `m × n` score matrix is ever formed; a
//! `ROW_TILE × KEY_TILE` score tile (32 KiB, L1-resident) lives in per-thread
//! scratch.
//! The products inside a tile are the register-blocked loops of
//! [`attention_tile`](super::attention_tile). The forward computes each
//! score tile transposed (keys × query rows) against a packed `Qᵀ` of the
//! row tile, so its online softmax reduces down the keys with a vector lane
//! per query row; the backward transposes K and V once per call. Every
//! other operand is read in place, and the masked part of each tile (keys
//! a block of rows cannot see yet, query rows above a key block's first
//! viewer) is skipped in whole vectors. Each call is compiled for AVX-512,
//! AVX2+FMA and the baseline and picks one at run time.
//! A row that sees no key gets `lse = −inf` and output 0.

use std::cell::RefCell;

use super::attention_tile::{Bounds, Lhs, MIN_W, Out, Rhs, block_rows, pack_transposed_tiles};
use super::fast_math::exp as fast_exp;
use super::lanes::Lanes;
#[cfg(target_arch = "x86_64")]
use super::lanes::{Avx2, Avx512};
use super::rowops::{dot, scale_in_place, softmax_grad_row, vectors_exp_scaled_sum};
use super::simd::{MulAdd, Unfused};

/// Query rows per tile; a caller splitting rows keeps to multiples of it.
pub(super) const ROW_TILE: usize = 64;
const KEY_TILE: usize = 128;

/// One thread's working memory, reused from call to call: packed
/// transposed operands (the forward's `Qᵀ` tile, the backward's Kᵀ and Vᵀ
/// tiles) and two `ROW_TILE × KEY_TILE` score tiles (transposed in the
/// forward).
struct Scratch {
    transposed_a: Vec<f32>,
    transposed_b: Vec<f32>,
    tile_a: Vec<f32>,
    tile_b: Vec<f32>,
}

impl Scratch {
    const fn new() -> Self {
        Scratch {
            transposed_a: Vec::new(),
            transposed_b: Vec::new(),
            tile_a: Vec::new(),
            tile_b: Vec::new(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// A score tile from `buf`, allocated on a thread's first call only.
fn tile(buf: &mut Vec<f32>) -> &mut [f32] {
    buf.resize(ROW_TILE * KEY_TILE, 0.0);
    buf
}

/// Which keys each query row sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mask {
    /// Every row sees every key.
    None,
    /// Top-left causal: row `i` sees keys `0..=i`. Needs `m == n`.
    Causal,
    /// Bottom-right causal: row `i` sees keys `0..=i + (n − m)` (none when
    /// that is negative). Equals [`Mask::Causal`] when `m == n`.
    CausalBottomRight,
}

impl Mask {
    /// Number of leading keys row `row` of `m` query rows sees among `n` keys.
    #[inline(always)]
    pub fn visible_keys(self, row: usize, m: usize, n: usize) -> usize {
        match self {
            Mask::None => n,
            Mask::Causal => (row + 1).min(n),
            Mask::CausalBottomRight => (row + 1 + n).saturating_sub(m).min(n),
        }
    }
}

/// Sizes of one block call, derived from the buffers.
#[derive(Clone, Copy, Debug)]
struct Dims {
    m: usize,
    n: usize,
    d: usize,
}

fn dims(q: &[f32], k: &[f32], v: &[f32], d: usize, mask: Mask) -> Dims {
    assert!(d > 0, "head_dim must be positive");
    assert_eq!(q.len() % d, 0, "q is not [m, head_dim]");
    assert_eq!(k.len() % d, 0, "k is not [n, head_dim]");
    assert_eq!(k.len(), v.len(), "k and v differ in size");
    let (m, n) = (q.len() / d, k.len() / d);
    assert!(
        mask != Mask::Causal || m == n,
        "top-left causal mask needs as many queries as keys (m = {m}, n = {n}); \
         use Mask::CausalBottomRight"
    );
    Dims { m, n, d }
}

/// First query row (of `m`) that sees key `key` (of `n`): rows at or after
/// it see the key, rows before it do not ([`Mask::visible_keys`] grows with
/// the row).
#[inline(always)]
fn first_viewer(mask: Mask, key: usize, m: usize, n: usize) -> usize {
    match mask {
        Mask::None => 0,
        Mask::Causal => key,
        Mask::CausalBottomRight => (key + m).saturating_sub(n),
    }
}

/// One slab's inputs with its sizes.
#[derive(Clone, Copy)]
struct Slab<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    dims: Dims,
    scale: f32,
    mask: Mask,
}

impl Slab<'_> {
    /// Keys of the tile `j0..j0 + bc` that query row `row` sees.
    // Every helper the per-ISA kernels call in their loops is inlined: one
    // left as a call (rustc's choice varies with how the crate is split into
    // codegen units) keeps those loops from vectorizing, measured 3× slower.
    #[inline(always)]
    fn tile_keys(&self, row: usize, j0: usize, bc: usize) -> usize {
        let Dims { m, n, .. } = self.dims;
        self.mask.visible_keys(row, m, n).saturating_sub(j0).min(bc)
    }

    /// Rows of the row tile `i0..i0 + br` above the first that sees key `key`.
    #[inline(always)]
    fn rows_before_viewer(&self, key: usize, i0: usize, br: usize) -> usize {
        let Dims { m, n, .. } = self.dims;
        first_viewer(self.mask, key, m, n)
            .saturating_sub(i0)
            .min(br)
    }
}

/// Prepares a score row of which the first `visible` of `bc` keys count:
/// sets the masked scores up to the next whole vector to `−inf` (so they
/// drop out of the max and their probability is 0) and zeroes the rest of
/// the `bc` columns. Returns that vector-rounded length.
#[inline(always)]
fn pad_masked(row: &mut [f32], visible: usize, bc: usize) -> usize {
    let padded = visible.next_multiple_of(MIN_W);
    row[visible..padded].fill(f32::NEG_INFINITY);
    if padded < bc {
        row[padded..bc].fill(0.0);
    }
    padded
}

/// Score tile `scores[r][j] = q_blk[r] · k[j0 + j]` for the columns each
/// block of rows can see (rounded up to a vector), from the packed Kᵀ tile.
#[inline(always)]
fn score_tile<M: Lanes, const W: usize>(
    s: &Slab,
    lhs: &[f32],
    kt_tile: &[f32],
    (i0, br): (usize, usize),
    (j0, bc): (usize, usize),
    scores: &mut [f32],
) {
    let d = s.dims.d;
    block_rows::<M, W>(
        Lhs {
            data: lhs,
            row_stride: d,
            k_stride: 1,
        },
        Rhs {
            data: kt_tile,
            row_stride: KEY_TILE,
        },
        Out {
            data: scores,
            row_stride: KEY_TILE,
            accumulate: false,
        },
        Bounds {
            rows: br,
            k_max: d,
            cols_max: bc.next_multiple_of(MIN_W),
        },
        |_, last| {
            let visible = s.tile_keys(i0 + last, j0, bc);
            (0..d, 0..visible.next_multiple_of(MIN_W))
        },
    );
}

/// `out[r] (+)= Σ_j tile(r, j) · rhs[j]` for the query rows `i0..i0 + br`
/// and the `bc` keys of `rhs` (`[bc, d]`); `tile` is the score tile as an
/// [`Lhs`] view, row-major (`[br, KEY_TILE]`, the backward) or transposed
/// (`[bc, ROW_TILE]`, the forward). Each block of query rows sums over the
/// keys its last row sees.
#[inline(always)]
fn tile_times<M: Lanes, const W: usize>(
    s: &Slab,
    tile: Lhs,
    rhs: &[f32],
    (i0, br): (usize, usize),
    (j0, bc): (usize, usize),
    out: &mut [f32],
) {
    let d = s.dims.d;
    block_rows::<M, W>(
        tile,
        Rhs {
            data: rhs,
            row_stride: d,
        },
        Out {
            data: out,
            row_stride: d,
            accumulate: true,
        },
        Bounds {
            rows: br,
            k_max: bc,
            cols_max: d,
        },
        |_, last| (0..s.tile_keys(i0 + last, j0, bc), 0..d),
    );
}

/// `out (+)= tileᵀ · rhs` (`rhs` is `[br, d]`, `out` is `[bc, d]`): each
/// block of keys sums over the query rows that see its first key.
#[inline(always)]
fn tile_t_times<M: Lanes, const W: usize>(
    s: &Slab,
    tile: &[f32],
    rhs: &[f32],
    (i0, br): (usize, usize),
    (j0, bc): (usize, usize),
    out: &mut [f32],
) {
    let d = s.dims.d;
    block_rows::<M, W>(
        Lhs {
            data: tile,
            row_stride: 1,
            k_stride: KEY_TILE,
        },
        Rhs {
            data: rhs,
            row_stride: d,
        },
        Out {
            data: out,
            row_stride: d,
            accumulate: true,
        },
        Bounds {
            rows: bc,
            k_max: br,
            cols_max: d,
        },
        |first, _| (s.rows_before_viewer(j0 + first, i0, br)..br, 0..d),
    );
}

/// The forward of one slab.
///
/// Each score tile is computed transposed, `Sᵀ[key][row] = k · q` against a
/// packed `Qᵀ` of the row tile, so the online softmax runs down the keys
/// with one vector lane per query row: the running max, the exponentials
/// and the row sums need no horizontal reduction. `P·V` then reads `Pᵀ`
/// through its strides.
#[inline(always)]
fn forward_slab<M: Lanes, const W: usize>(
    s: Slab,
    scratch: &mut Scratch,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let Dims { m, d, .. } = s.dims;
    let qt = &mut scratch.transposed_a;
    let scores = tile(&mut scratch.tile_a);
    let mut run_max = [0.0f32; ROW_TILE];
    let mut row_sum = [0.0f32; ROW_TILE];
    for i0 in (0..m).step_by(ROW_TILE) {
        let br = ROW_TILE.min(m - i0);
        pack_transposed_tiles(&s.q[i0 * d..(i0 + br) * d], d, ROW_TILE, qt);
        let out_blk = &mut out[i0 * d..(i0 + br) * d];
        out_blk.fill(0.0);
        run_max.fill(f32::NEG_INFINITY);
        row_sum.fill(0.0);
        let kv_end = s.tile_keys(i0 + br - 1, 0, usize::MAX);
        for j0 in (0..kv_end).step_by(KEY_TILE) {
            let bc = KEY_TILE.min(kv_end - j0);
            let keys = &s.k[j0 * d..(j0 + bc) * d];
            let hidden = |j| s.rows_before_viewer(j0 + j, i0, br);
            keys_times_rows::<M, W>(d, keys, qt, bc, scores, hidden);
            let correction = online_softmax_down_keys::<M>(
                &s,
                (i0, br),
                (j0, bc),
                scores,
                &mut run_max,
                &mut row_sum,
            );
            for (r, &c) in correction[..br].iter().enumerate() {
                if c != 1.0 {
                    scale_in_place(&mut out_blk[r * d..(r + 1) * d], c);
                }
            }
            let v_tile = &s.v[j0 * d..(j0 + bc) * d];
            let probs_t = Lhs {
                data: scores,
                row_stride: 1,
                k_stride: ROW_TILE,
            };
            tile_times::<M, W>(&s, probs_t, v_tile, (i0, br), (j0, bc), out_blk);
        }
        for r in 0..br {
            let o = &mut out_blk[r * d..(r + 1) * d];
            if row_sum[r] > 0.0 {
                scale_in_place(o, 1.0 / row_sum[r]);
                lse[i0 + r] = run_max[r] + row_sum[r].ln();
            } else {
                o.fill(0.0);
                lse[i0 + r] = f32::NEG_INFINITY;
            }
        }
    }
}

/// `tile[j][r] = keys[j] · rows[r]` for the `bc` rows of `keys` (`[bc, d]`,
/// row-major) and the [`ROW_TILE`] columns of `rows_t`, a packed `[d,
/// ROW_TILE]` transpose of a row tile (columns past its rows are zero).
/// `hidden(j)` is how many leading columns key `j` is masked from (growing
/// with `j`); whole vectors of those are skipped and hold stale values.
#[inline(always)]
fn keys_times_rows<M: Lanes, const W: usize>(
    d: usize,
    keys: &[f32],
    rows_t: &[f32],
    bc: usize,
    tile: &mut [f32],
    hidden: impl Fn(usize) -> usize,
) {
    block_rows::<M, W>(
        Lhs {
            data: keys,
            row_stride: d,
            k_stride: 1,
        },
        Rhs {
            data: rows_t,
            row_stride: ROW_TILE,
        },
        Out {
            data: tile,
            row_stride: ROW_TILE,
            accumulate: false,
        },
        Bounds {
            rows: bc,
            k_max: d,
            cols_max: ROW_TILE,
        },
        |first, _| {
            let skipped = hidden(first) / MIN_W * MIN_W;
            (0..d, skipped..ROW_TILE)
        },
    );
}

/// One key tile of the online softmax on the transposed scores: masks what
/// each query row may not see, folds the tile's max into `run_max`, turns
/// the scores into `exp(scale·s − max)` in place and adds them to
/// `row_sum`. Returns the factor each row's earlier output must be scaled
/// by (`exp(old max − new max)`).
#[inline(always)]
fn online_softmax_down_keys<M: MulAdd>(
    s: &Slab,
    (i0, br): (usize, usize),
    (j0, bc): (usize, usize),
    scores: &mut [f32],
    run_max: &mut [f32; ROW_TILE],
    row_sum: &mut [f32; ROW_TILE],
) -> [f32; ROW_TILE] {
    let scale = s.scale;
    let rows = scores[..bc * ROW_TILE].chunks_exact_mut(ROW_TILE);
    let mut tile_max = [f32::NEG_INFINITY; ROW_TILE];
    for (j, row) in rows.enumerate() {
        // Key j0 + j is hidden from the rows above its first viewer.
        let hidden = s.rows_before_viewer(j0 + j, i0, br);
        row[..hidden].fill(f32::NEG_INFINITY);
        let row: &[f32; ROW_TILE] = (&*row).try_into().expect("a whole tile row");
        for (mx, &x) in tile_max.iter_mut().zip(row) {
            *mx = mx.max(x);
        }
    }
    let mut shift = [0.0f32; ROW_TILE];
    let mut correction = [0.0f32; ROW_TILE];
    for r in 0..ROW_TILE {
        // scale > 0, so the max of the scaled scores is the scaled max.
        let new_max = run_max[r].max(scale * tile_max[r]);
        // A row that has seen no key yet keeps −inf; shifting it by 0 makes
        // its exponentials 0 instead of NaN.
        shift[r] = if new_max == f32::NEG_INFINITY {
            0.0
        } else {
            new_max
        };
        correction[r] = fast_exp::<M>(run_max[r] - shift[r]);
        run_max[r] = new_max;
    }
    let mut sums = [0.0f32; ROW_TILE];
    for row in scores[..bc * ROW_TILE].chunks_exact_mut(ROW_TILE) {
        let row: &mut [f32; ROW_TILE] = row.try_into().expect("a whole tile row");
        for ((x, &sh), sum) in row.iter_mut().zip(&shift).zip(&mut sums) {
            *x = fast_exp::<M>(M::mul_add(*x, scale, -sh));
            *sum += *x;
        }
    }
    for ((total, &c), &sum) in row_sum.iter_mut().zip(&correction).zip(&sums) {
        *total = M::mul_add(*total, c, sum);
    }
    correction
}

/// The backward's extra inputs and its outputs for one slab.
struct Grads<'a> {
    out: &'a [f32],
    lse: &'a [f32],
    dout: &'a [f32],
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
}

/// The backward of one slab.
#[inline(always)]
fn backward_slab<M: Lanes, const W: usize>(s: Slab, g: Grads, scratch: &mut Scratch) {
    let Dims { m, d, .. } = s.dims;
    let Scratch {
        transposed_a: kt,
        transposed_b: vt,
        tile_a,
        tile_b,
    } = scratch;
    pack_transposed_tiles(s.k, d, KEY_TILE, kt);
    pack_transposed_tiles(s.v, d, KEY_TILE, vt);
    let (probs, dscores) = (tile(tile_a), tile(tile_b));
    let mut row_dot = [0.0f32; ROW_TILE];
    for i0 in (0..m).step_by(ROW_TILE) {
        let br = ROW_TILE.min(m - i0);
        let rows = i0 * d..(i0 + br) * d;
        let q_blk = &s.q[rows.clone()];
        let dout_blk = &g.dout[rows.clone()];
        for (r, dot_r) in row_dot[..br].iter_mut().enumerate() {
            let row = (i0 + r) * d..(i0 + r + 1) * d;
            *dot_r = dot::<M>(&g.out[row.clone()], &g.dout[row]);
        }
        let kv_end = s.tile_keys(i0 + br - 1, 0, usize::MAX);
        for j0 in (0..kv_end).step_by(KEY_TILE) {
            let bc = KEY_TILE.min(kv_end - j0);
            let keys = j0 * d..(j0 + bc) * d;
            let packed = j0 * d..(j0 + KEY_TILE) * d;
            score_tile::<M, W>(&s, q_blk, &kt[packed.clone()], (i0, br), (j0, bc), probs);
            score_tile::<M, W>(&s, dout_blk, &vt[packed], (i0, br), (j0, bc), dscores);
            for (r, &dot_r) in row_dot[..br].iter().enumerate() {
                let visible = s.tile_keys(i0 + r, j0, bc);
                let row_lse = g.lse[i0 + r];
                let tile_row = r * KEY_TILE..(r + 1) * KEY_TILE;
                let p_row = &mut probs[tile_row.clone()];
                let ds_row = &mut dscores[tile_row];
                if visible == 0 || row_lse == f32::NEG_INFINITY {
                    p_row[..bc].fill(0.0);
                    ds_row[..bc].fill(0.0);
                    continue;
                }
                let padded = pad_masked(p_row, visible, bc);
                vectors_exp_scaled_sum::<M>(&mut p_row[..padded], s.scale, row_lse);
                // Zero probabilities zero the padding's gradient too.
                softmax_grad_row(&mut ds_row[..padded], &p_row[..padded], s.scale, dot_r);
                ds_row[padded.min(bc)..bc].fill(0.0);
            }
            let (tile_rows, tile_keys) = ((i0, br), (j0, bc));
            tile_t_times::<M, W>(
                &s,
                probs,
                dout_blk,
                tile_rows,
                tile_keys,
                &mut g.dv[keys.clone()],
            );
            let dscores_rows = Lhs {
                data: dscores,
                row_stride: KEY_TILE,
                k_stride: 1,
            };
            tile_times::<M, W>(
                &s,
                dscores_rows,
                &s.k[keys.clone()],
                tile_rows,
                tile_keys,
                &mut g.dq[rows.clone()],
            );
            tile_t_times::<M, W>(&s, dscores, q_blk, tile_rows, tile_keys, &mut g.dk[keys]);
        }
    }
}

/// Runs `$body` (a generic call over `M: Lanes` and `const W`) compiled for
/// AVX-512 (`W` = 32), AVX2 + FMA (`W` = 16) or the baseline, whichever is
/// the widest the CPU has.
macro_rules! per_isa {
    (|$($arg:ident: $ty:ty),*| $f:ident) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
            fn avx512($($arg: $ty),*) {
                $f::<Avx512, 32>($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                $f::<Avx2, 16>($($arg),*)
            }
            if super::simd::has_avx512() {
                // SAFETY: the CPU supports every feature `avx512` enables.
                return unsafe { avx512($($arg),*) };
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA.
                return unsafe { avx2($($arg),*) };
            }
        }
        $f::<Unfused, 16>($($arg),*)
    }};
}

fn forward_per_isa(s: Slab, scratch: &mut Scratch, out: &mut [f32], lse: &mut [f32]) {
    per_isa!(|s: Slab, scratch: &mut Scratch, out: &mut [f32], lse: &mut [f32]| forward_slab)
}

fn backward_per_isa(s: Slab, g: Grads, scratch: &mut Scratch) {
    per_isa!(|s: Slab, g: Grads, scratch: &mut Scratch| backward_slab)
}

/// Forward on one slab: writes `out [m, d]` and `lse [m]`.
#[allow(clippy::too_many_arguments)]
pub fn attention_block_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    head_dim: usize,
    scale: f32,
    mask: Mask,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let dims = dims(q, k, v, head_dim, mask);
    assert_eq!(out.len(), dims.m * dims.d, "out is not [m, head_dim]");
    assert_eq!(lse.len(), dims.m, "lse is not [m]");
    let slab = Slab {
        q,
        k,
        v,
        dims,
        scale,
        mask,
    };
    SCRATCH.with(|scratch| forward_per_isa(slab, &mut scratch.borrow_mut(), out, lse));
}

/// Backward on one slab. `out`, `lse` are the FINAL (merged) forward
/// results of these query rows and `dout` their gradient; ACCUMULATES this
/// key set's contribution into `dq [m, d]`, `dk [n, d]` and `dv [n, d]`.
#[allow(clippy::too_many_arguments)]
pub fn attention_block_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    head_dim: usize,
    scale: f32,
    mask: Mask,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let dims = dims(q, k, v, head_dim, mask);
    let Dims { m, n, d } = dims;
    assert_eq!(out.len(), m * d, "out is not [m, head_dim]");
    assert_eq!(dout.len(), m * d, "dout is not [m, head_dim]");
    assert_eq!(lse.len(), m, "lse is not [m]");
    assert_eq!(dq.len(), m * d, "dq is not [m, head_dim]");
    assert_eq!(dk.len(), n * d, "dk is not [n, head_dim]");
    assert_eq!(dv.len(), n * d, "dv is not [n, head_dim]");
    let slab = Slab {
        q,
        k,
        v,
        dims,
        scale,
        mask,
    };
    let grads = Grads {
        out,
        lse,
        dout,
        dq,
        dk,
        dv,
    };
    SCRATCH.with(|scratch| backward_per_isa(slab, grads, &mut scratch.borrow_mut()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::{assert_close, uniform, wide};

    /// Runs one instantiation of the slab kernels: `(out, lse, dq, dk, dv)`.
    fn run<M: Lanes, const W: usize>(s: Slab, dout: &[f32]) -> [Vec<f32>; 5] {
        let Dims { m, n, d } = s.dims;
        let mut scratch = Scratch::new();
        let (mut out, mut lse) = (vec![0.0; m * d], vec![0.0; m]);
        forward_slab::<M, W>(s, &mut scratch, &mut out, &mut lse);
        let (mut dq, mut dk, mut dv) = (vec![0.0; m * d], vec![0.0; n * d], vec![0.0; n * d]);
        let grads = Grads {
            out: &out,
            lse: &lse,
            dout,
            dq: &mut dq,
            dk: &mut dk,
            dv: &mut dv,
        };
        backward_slab::<M, W>(s, grads, &mut scratch);
        [out, lse, dq, dk, dv]
    }

    /// The AVX-512 (`W` = 32), AVX2 (`W` = 16) and narrow baseline
    /// instantiations agree with the wide baseline one (scalar, `W` = 32)
    /// to f32 rounding (1e-5 of the largest value: only the summation
    /// blocking and FMA rounding differ). Each ISA's runs where the test
    /// machine has it (AVX-512 and AVX2 here); a skipped one is printed.
    #[test]
    fn every_isa_instantiation_gives_the_same_results() {
        for (m, n, d, mask) in [
            (150, 150, 48, Mask::Causal),
            (70, 200, 16, Mask::CausalBottomRight),
            (90, 40, 40, Mask::CausalBottomRight),
        ] {
            let (q, k, v, dout) = (
                uniform(90, m * d),
                uniform(91, n * d),
                uniform(92, n * d),
                uniform(93, m * d),
            );
            let s = Slab {
                q: &q,
                k: &k,
                v: &v,
                dims: Dims { m, n, d },
                scale: 0.3,
                mask,
            };
            let reference = run::<Unfused, 32>(s, &dout);
            let mut others = vec![run::<Unfused, 16>(s, &dout)];
            #[cfg(target_arch = "x86_64")]
            {
                if super::super::simd::has_avx512() {
                    others.push(run::<Avx512, 32>(s, &dout));
                } else {
                    eprintln!("skipped: the AVX-512 instantiation (this CPU lacks AVX-512)");
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    others.push(run::<Avx2, 16>(s, &dout));
                } else {
                    eprintln!("skipped: the AVX2 instantiation (this CPU lacks AVX2 or FMA)");
                }
            }
            for other in others {
                for (name, (got, want)) in ["out", "lse", "dq", "dk", "dv"]
                    .iter()
                    .zip(other.iter().zip(&reference))
                {
                    let want: Vec<f64> = wide(want)
                        .into_iter()
                        .map(|x| if x.is_finite() { x } else { 0.0 })
                        .collect();
                    let got: Vec<f32> = got
                        .iter()
                        .map(|&x| if x.is_finite() { x } else { 0.0 })
                        .collect();
                    assert_close(&format!("{name} {m}x{n}x{d} {mask:?}"), &got, &want, 1e-5);
                }
            }
        }
    }
}

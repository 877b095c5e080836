//! Tiled flash-style attention on one (batch, head) slab.
//!
//! This is the kernel the context-parallel strategies call once per
//! sub-block (docs/cp-attention.md §3-§4): queries `q [m, d]` attend to keys
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
//! `ROW_TILE × KEY_TILE` score tile lives on the stack (32 KiB, L1-resident;
//! 64×128 measured ~15 % faster than 64×64 on the tiny model: half the
//! small GEMM calls).
//! A row that sees no key gets `lse = −inf` and output 0.

use super::gemm::{MatRef, gemm_serial};
use super::rowops::{dot, exp_scaled_sum, row_max, scale_in_place, softmax_grad_row};

const ROW_TILE: usize = 64;
const KEY_TILE: usize = 128;

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
    let Dims { m, n, d } = dims(q, k, v, head_dim, mask);
    assert_eq!(out.len(), m * d, "out is not [m, head_dim]");
    assert_eq!(lse.len(), m, "lse is not [m]");
    let mut scores = [0.0f32; ROW_TILE * KEY_TILE];
    let mut run_max = [0.0f32; ROW_TILE];
    let mut row_sum = [0.0f32; ROW_TILE];
    for i0 in (0..m).step_by(ROW_TILE) {
        let br = ROW_TILE.min(m - i0);
        let q_blk = MatRef::new(&q[i0 * d..(i0 + br) * d], br, d);
        let out_blk = &mut out[i0 * d..(i0 + br) * d];
        out_blk.fill(0.0);
        run_max[..br].fill(f32::NEG_INFINITY);
        row_sum[..br].fill(0.0);
        let kv_end = mask.visible_keys(i0 + br - 1, m, n);
        for j0 in (0..kv_end).step_by(KEY_TILE) {
            let bc = KEY_TILE.min(kv_end - j0);
            let s = &mut scores[..br * bc];
            let k_tile = MatRef::new(&k[j0 * d..(j0 + bc) * d], bc, d);
            gemm_serial(q_blk, k_tile.t(), 0.0, s);
            for r in 0..br {
                let visible = mask.visible_keys(i0 + r, m, n).saturating_sub(j0).min(bc);
                let s_row = &mut s[r * bc..(r + 1) * bc];
                if visible == 0 {
                    s_row.fill(0.0);
                    continue;
                }
                // scale > 0, so the max of the scaled row is the scaled max.
                let tile_max = scale * row_max(&s_row[..visible]);
                let new_max = run_max[r].max(tile_max);
                let correction = (run_max[r] - new_max).exp();
                let sum = exp_scaled_sum(&mut s_row[..visible], scale, new_max);
                s_row[visible..].fill(0.0);
                row_sum[r] = row_sum[r] * correction + sum;
                run_max[r] = new_max;
                if correction != 1.0 {
                    scale_in_place(&mut out_blk[r * d..(r + 1) * d], correction);
                }
            }
            let v_tile = MatRef::new(&v[j0 * d..(j0 + bc) * d], bc, d);
            gemm_serial(MatRef::new(s, br, bc), v_tile, 1.0, out_blk);
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
    let Dims { m, n, d } = dims(q, k, v, head_dim, mask);
    assert_eq!(out.len(), m * d, "out is not [m, head_dim]");
    assert_eq!(dout.len(), m * d, "dout is not [m, head_dim]");
    assert_eq!(lse.len(), m, "lse is not [m]");
    assert_eq!(dq.len(), m * d, "dq is not [m, head_dim]");
    assert_eq!(dk.len(), n * d, "dk is not [n, head_dim]");
    assert_eq!(dv.len(), n * d, "dv is not [n, head_dim]");
    let mut probs = [0.0f32; ROW_TILE * KEY_TILE];
    let mut dscores = [0.0f32; ROW_TILE * KEY_TILE];
    let mut row_dot = [0.0f32; ROW_TILE];
    for i0 in (0..m).step_by(ROW_TILE) {
        let br = ROW_TILE.min(m - i0);
        let rows = i0 * d..(i0 + br) * d;
        let q_blk = MatRef::new(&q[rows.clone()], br, d);
        let dout_blk = MatRef::new(&dout[rows.clone()], br, d);
        for r in 0..br {
            let o = &out[(i0 + r) * d..(i0 + r + 1) * d];
            let g = &dout[(i0 + r) * d..(i0 + r + 1) * d];
            row_dot[r] = dot(o, g);
        }
        let kv_end = mask.visible_keys(i0 + br - 1, m, n);
        for j0 in (0..kv_end).step_by(KEY_TILE) {
            let bc = KEY_TILE.min(kv_end - j0);
            let keys = j0 * d..(j0 + bc) * d;
            let k_tile = MatRef::new(&k[keys.clone()], bc, d);
            let v_tile = MatRef::new(&v[keys.clone()], bc, d);
            let p = &mut probs[..br * bc];
            gemm_serial(q_blk, k_tile.t(), 0.0, p);
            for r in 0..br {
                let visible = mask.visible_keys(i0 + r, m, n).saturating_sub(j0).min(bc);
                let row_lse = lse[i0 + r];
                let p_row = &mut p[r * bc..(r + 1) * bc];
                if visible == 0 || row_lse == f32::NEG_INFINITY {
                    p_row.fill(0.0);
                    continue;
                }
                exp_scaled_sum(&mut p_row[..visible], scale, row_lse);
                p_row[visible..].fill(0.0);
            }
            let p_mat = MatRef::new(p, br, bc);
            gemm_serial(p_mat.t(), dout_blk, 1.0, &mut dv[keys.clone()]);
            let ds = &mut dscores[..br * bc];
            gemm_serial(dout_blk, v_tile.t(), 0.0, ds);
            for (r, &dot_r) in row_dot[..br].iter().enumerate() {
                let rows = r * bc..(r + 1) * bc;
                softmax_grad_row(&mut ds[rows.clone()], &p[rows], scale, dot_r);
            }
            let ds_mat = MatRef::new(ds, br, bc);
            gemm_serial(ds_mat, k_tile, 1.0, &mut dq[rows.clone()]);
            gemm_serial(ds_mat.t(), q_blk, 1.0, &mut dk[keys]);
        }
    }
}

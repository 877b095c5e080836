//! Causal self-attention read straight from the token-major output of the
//! qkv projection, on one rank that holds whole sequences.
//!
//! `qkv` is `[batch, len, 3·C]` with `C = n_head·head_dim`: the queries of
//! head `h` are columns `h·hd ..` of each row, its keys `C + h·hd ..`, its
//! values `2C + h·hd ..`. Each (sequence, head) slab is gathered into
//! per-thread scratch right before the block kernel runs on it and the output
//! is scattered back token-major, so the heads never make a round trip
//! through memory-sized head-major buffers. (Reading the column blocks in
//! place through row strides was measured slower: rows 1.5 KiB apart fall
//! into few L1 sets and evict each other.)

use std::cell::RefCell;

use super::Threads;
use super::attention_block::{Mask, ROW_TILE, attention_block_backward, attention_block_forward};
use super::disjoint::DisjointWrites;
use super::heads::{gather_rows, gather_rows_plus, scatter_rows};

/// The qkv projection as packed attention reads it: `data` is `[batch, len,
/// 3C]` WITHOUT the projection's bias, and `bias` (`3C`) is added to each
/// row as the slabs are gathered. (Writing the bias into every row before
/// the GEMM cost a quarter of the qkv projection's time on small models.)
#[derive(Clone, Copy, Debug)]
pub struct PackedQkv<'a> {
    /// The unbiased projection `[batch, len, 3C]`.
    pub data: &'a [f32],
    /// Its bias `[3C]`.
    pub bias: &'a [f32],
}

/// One causal self-attention call over packed `qkv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackedAttention {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub len: usize,
    /// Heads.
    pub n_head: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Score scale, usually `1/sqrt(head_dim)`.
    pub scale: f32,
}

/// One thread's gathered slab: q, k, v, out, dout `[rows, head_dim]` and
/// lse, and in backward the slab's dq, dk, dv before they are scattered.
#[derive(Default)]
struct Gathered {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    out: Vec<f32>,
    dout: Vec<f32>,
    lse: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

thread_local! {
    static GATHERED: RefCell<Gathered> = RefCell::default();
}

/// Gathers `rows` rows of `width` values, `stride` apart in `src`, into
/// `dst` (resized, reusing its capacity).
fn gather(src: &[f32], rows: usize, width: usize, stride: usize, dst: &mut Vec<f32>) {
    dst.resize(rows * width, 0.0);
    gather_rows(src, width, stride, dst);
}

/// [`gather`] of the `width` columns of `qkv` at `col` of each of `rows`
/// rows, plus their bias.
fn gather_qkv(
    qkv: PackedQkv,
    first_row: usize,
    rows: usize,
    col: usize,
    width: usize,
    dst: &mut Vec<f32>,
) {
    let stride = qkv.bias.len();
    dst.resize(rows * width, 0.0);
    gather_rows_plus(
        &qkv.data[first_row * stride + col..],
        width,
        stride,
        &qkv.bias[col..col + width],
        dst,
    );
}

impl PackedAttention {
    /// `C = n_head·head_dim`, the width of `out` and of each third of `qkv`.
    fn width(&self) -> usize {
        self.n_head * self.head_dim
    }

    fn check(&self, qkv: PackedQkv, out: &[f32], lse: &[f32]) {
        let tokens = self.batch * self.len;
        assert_eq!(
            qkv.data.len(),
            tokens * 3 * self.width(),
            "qkv is not [batch, len, 3C]"
        );
        assert_eq!(qkv.bias.len(), 3 * self.width(), "qkv bias is not [3C]");
        assert_eq!(
            out.len(),
            tokens * self.width(),
            "out is not [batch, len, C]"
        );
        assert_eq!(
            lse.len(),
            tokens * self.n_head,
            "lse is not [batch, len, n_head]"
        );
    }

    /// Query rows per parallel part: whole sequences when there are enough
    /// of them to keep every thread busy, else equal blocks of a sequence
    /// whose size is a multiple of the kernel's row tile. A part never spans
    /// two sequences, and the kernel sees the same tiles whatever the split,
    /// so results do not depend on the thread count.
    fn rows_per_part(&self, threads: usize) -> usize {
        let wanted = (2 * threads).div_ceil(self.batch.max(1));
        (2..=wanted)
            .rev()
            .filter(|&parts| self.len.is_multiple_of(parts))
            .map(|parts| self.len / parts)
            .find(|rows| rows.is_multiple_of(ROW_TILE))
            .unwrap_or(self.len)
    }

    /// Writes `out [batch, len, C]` (token-major) and `lse [batch, len,
    /// n_head]`, in parallel over blocks of query rows.
    pub fn forward(&self, threads: &Threads, qkv: PackedQkv, out: &mut [f32], lse: &mut [f32]) {
        self.check(qkv, out, lse);
        let (c, d, len, heads) = (self.width(), self.head_dim, self.len, self.n_head);
        if out.is_empty() {
            return;
        }
        let rows = self.rows_per_part(threads.count());
        threads.for_each_chunk2(out, rows * c, lse, rows * heads, |i, out, lse| {
            let (b, first) = (i * rows / len, i * rows % len);
            let seq = b * len;
            // Rows first..first + rows see keys 0..first + rows: the
            // bottom-right causal mask of that block.
            let keys = first + rows;
            GATHERED.with_borrow_mut(|g| {
                for h in 0..heads {
                    let col = h * d;
                    gather_qkv(qkv, seq + first, rows, col, d, &mut g.q);
                    gather_qkv(qkv, seq, keys, c + col, d, &mut g.k);
                    gather_qkv(qkv, seq, keys, 2 * c + col, d, &mut g.v);
                    g.out.resize(rows * d, 0.0);
                    g.lse.resize(rows, 0.0);
                    attention_block_forward(
                        &g.q,
                        &g.k,
                        &g.v,
                        d,
                        self.scale,
                        Mask::CausalBottomRight,
                        &mut g.out,
                        &mut g.lse,
                    );
                    scatter_rows(&g.out, d, c, &mut out[col..]);
                    scatter_rows(&g.lse, 1, heads, &mut lse[h..]);
                }
            });
        });
    }

    /// Given the forward's `out` and `lse` and the gradient `dout [batch,
    /// len, C]`, OVERWRITES `dqkv [batch, len, 3C]`, the gradient of the
    /// (biased) projection in its packed layout, in parallel over
    /// (sequence, head) slabs.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        threads: &Threads,
        qkv: PackedQkv,
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dqkv: &mut [f32],
    ) {
        self.check(qkv, out, lse);
        assert_eq!(dout.len(), out.len(), "dout is not [batch, len, C]");
        assert_eq!(dqkv.len(), qkv.data.len(), "dqkv is not [batch, len, 3C]");
        let (c, d, len, heads) = (self.width(), self.head_dim, self.len, self.n_head);
        if len * d == 0 {
            return;
        }
        let dqkv = DisjointWrites::new(dqkv);
        threads.for_each_index(self.batch * heads, |s| {
            let (b, h) = (s / heads, s % heads);
            let (tokens, col) = (b * len * c, h * d);
            GATHERED.with_borrow_mut(|g| {
                gather_qkv(qkv, b * len, len, col, d, &mut g.q);
                gather_qkv(qkv, b * len, len, c + col, d, &mut g.k);
                gather_qkv(qkv, b * len, len, 2 * c + col, d, &mut g.v);
                gather(&out[tokens + col..], len, d, c, &mut g.out);
                gather(&dout[tokens + col..], len, d, c, &mut g.dout);
                gather(&lse[b * len * heads + h..], len, 1, heads, &mut g.lse);
                for grad in [&mut g.dq, &mut g.dk, &mut g.dv] {
                    grad.clear();
                    grad.resize(len * d, 0.0);
                }
                attention_block_backward(
                    &g.q,
                    &g.k,
                    &g.v,
                    &g.out,
                    &g.lse,
                    &g.dout,
                    d,
                    self.scale,
                    Mask::Causal,
                    &mut g.dq,
                    &mut g.dk,
                    &mut g.dv,
                );
                let first = 3 * tokens;
                for (third, grad) in [&g.dq, &g.dk, &g.dv].into_iter().enumerate() {
                    // SAFETY: slab (b, h) alone writes columns `third·C +
                    // h·hd ..` of the rows of sequence b.
                    unsafe { dqkv.scatter_rows(first + third * c + col, grad, d, 3 * c) };
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::uniform;
    use crate::kernels::{BatchedAttention, HeadLayout, Rows, heads};

    /// The packed path, adding the bias as it reads, equals the head-major
    /// one (bias added, split, batched causal call, merge) exactly: the same
    /// block kernel sums in the same order, only the addressing differs.
    /// Row blocks split one sequence when the batch is smaller than the
    /// thread count.
    #[test]
    fn packed_attention_equals_the_head_major_call() {
        for (batch, len, n_head, head_dim, threads) in
            [(2, 70, 3, 5, 1), (1, 256, 2, 32, 2), (3, 128, 4, 16, 3)]
        {
            let c = n_head * head_dim;
            let n = batch * len;
            let raw = uniform(11, n * 3 * c);
            let bias = uniform(13, 3 * c);
            let qkv = PackedQkv {
                data: &raw,
                bias: &bias,
            };
            let biased: Vec<f32> = raw
                .chunks_exact(3 * c)
                .flat_map(|row| row.iter().zip(&bias).map(|(x, b)| x + b))
                .collect();
            let dout = uniform(12, n * c);
            let threads = Threads::new(threads).unwrap();
            let call = PackedAttention {
                batch,
                len,
                n_head,
                head_dim,
                scale: 0.4,
            };
            let (mut out, mut lse) = (vec![0.0; n * c], vec![0.0; n * n_head]);
            call.forward(&threads, qkv, &mut out, &mut lse);
            let mut dqkv = vec![9.0; n * 3 * c];
            call.backward(&threads, qkv, &out, &lse, &dout, &mut dqkv);

            let layout = HeadLayout {
                batch,
                len,
                n_head,
                head_dim,
            };
            let split = |src: &[f32], width, col0| {
                let mut dst = vec![0.0; n * c];
                heads::split_heads(&layout, src, width, col0, 0, &mut dst);
                dst
            };
            let (q, k, v) = (
                split(&biased, 3 * c, 0),
                split(&biased, 3 * c, c),
                split(&biased, 3 * c, 2 * c),
            );
            let reference = BatchedAttention {
                slabs: batch * n_head,
                head_dim,
                q_rows: Rows::all(len),
                kv_rows: Rows::all(len),
                scale: 0.4,
                mask: Mask::Causal,
            };
            let (mut ctx, mut lse_hm) = (vec![0.0; n * c], vec![0.0; n * n_head]);
            reference.forward(&threads, &q, &k, &v, &mut ctx, &mut lse_hm);
            assert_eq!(split(&out, c, 0), ctx, "out");
            for (bh, row) in lse_hm.chunks_exact(len).enumerate() {
                let (b, h) = (bh / n_head, bh % n_head);
                for (t, &l) in row.iter().enumerate() {
                    assert_eq!(lse[(b * len + t) * n_head + h], l, "lse");
                }
            }
            let mut want = [vec![0.0; n * c], vec![0.0; n * c], vec![0.0; n * c]];
            let [wq, wk, wv] = &mut want;
            let d_ctx = split(&dout, c, 0);
            reference.backward(&threads, &q, &k, &v, &ctx, &lse_hm, &d_ctx, wq, wk, wv);
            let grads = [
                split(&dqkv, 3 * c, 0),
                split(&dqkv, 3 * c, c),
                split(&dqkv, 3 * c, 2 * c),
            ];
            assert_eq!(grads, want, "dq, dk, dv");
        }
    }
}

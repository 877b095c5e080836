//! The kernel set as one replaceable component.

use std::sync::Mutex;

use super::{
    BatchedAttention, HeadLayout, LossSum, PackedAttention, PackedQkv, TargetOutOfRange, Threads,
    check_targets, cross_entropy, gelu, gemm, heads, layernorm, residual,
};

/// Every numeric kernel the model and the attention strategies call.
///
/// Object-safe, so a context can hold `Arc<dyn Kernels>` and a plugin can
/// swap the CPU set for another device's. Argument conventions follow the
/// free functions of the same names in [`crate::kernels`]: parameter
/// gradients accumulate (`+=`), activation gradients are overwritten unless a
/// method says otherwise.
#[allow(clippy::too_many_arguments)]
pub trait Kernels: Send + Sync {
    /// Short name for reports (`cpu`, ...).
    fn name(&self) -> &str;

    /// Worker threads one call may use.
    fn threads(&self) -> usize;

    /// `out = x·w + bias` with `w` in Conv1D layout `[d_in, d_out]`.
    fn linear_forward(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        d_in: usize,
        d_out: usize,
    );

    /// `dx = dy·wᵀ`; `dw += xᵀ·dy`; `db += colsum(dy)`.
    fn linear_backward(
        &self,
        dy: &[f32],
        x: &[f32],
        w: &[f32],
        dx: &mut [f32],
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        d_in: usize,
        d_out: usize,
    );

    /// `logits = x·wteᵀ` (tied output head).
    fn tied_head_forward(&self, x: &[f32], wte: &[f32], logits: &mut [f32], c: usize);

    /// `dx = dlogits·wte`; `dwte += dlogitsᵀ·x`.
    fn tied_head_backward(
        &self,
        dlogits: &[f32],
        x: &[f32],
        wte: &[f32],
        dx: &mut [f32],
        dwte: &mut [f32],
        c: usize,
    );

    /// LayerNorm rows of `x`, saving `mean` and `rstd`.
    fn layernorm_forward(
        &self,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
    );

    /// LayerNorm backward; ACCUMULATES into `dx`, `dw`, `db`.
    fn layernorm_backward(
        &self,
        dout: &[f32],
        x: &[f32],
        w: &[f32],
        mean: &[f32],
        rstd: &[f32],
        dx: &mut [f32],
        dw: &mut [f32],
        db: &mut [f32],
    );

    /// With `x = pre + bias` per row: `out = gelu(x)` (tanh approximation),
    /// and `pre` is overwritten with the slope `gelu′(x)` for the backward.
    fn bias_gelu_forward(&self, bias: &[f32], pre: &mut [f32], out: &mut [f32]);

    /// `grad ← grad · slope` in place, with the slope that
    /// [`Kernels::bias_gelu_forward`] left.
    fn gelu_backward(&self, slope: &[f32], grad: &mut [f32]);

    /// `out = a + (b + bias)`, `bias` added to every row.
    fn residual_add(&self, a: &[f32], b: &[f32], bias: &[f32], out: &mut [f32]);

    /// Head-major `dst` = the heads at column `col0` of the `width`-wide
    /// token-major `src` (see [`HeadLayout`]).
    fn split_heads(
        &self,
        layout: &HeadLayout,
        src: &[f32],
        width: usize,
        col0: usize,
        dst: &mut [f32],
    );

    /// The inverse of [`Kernels::split_heads`]: writes the head-major `src`
    /// into columns `col0..` of the token-major `dst`, leaving the others.
    fn merge_heads(
        &self,
        layout: &HeadLayout,
        src: &[f32],
        dst: &mut [f32],
        width: usize,
        col0: usize,
    );

    /// Per-row log-sum-exp into `lse`; the summed loss of counted targets.
    fn cross_entropy_forward(
        &self,
        logits: &[f32],
        targets: &[u32],
        lse: &mut [f32],
    ) -> Result<LossSum, TargetOutOfRange>;

    /// Logits become `scale·(softmax − onehot)` in place.
    fn cross_entropy_backward(&self, logits: &mut [f32], targets: &[u32], lse: &[f32], scale: f32);

    /// Batched attention block forward (see [`BatchedAttention::forward`]).
    fn attention_forward(
        &self,
        call: &BatchedAttention,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        lse: &mut [f32],
    );

    /// Causal attention read from packed `qkv` (see
    /// [`PackedAttention::forward`]).
    fn attention_forward_packed(
        &self,
        call: &PackedAttention,
        qkv: PackedQkv,
        out: &mut [f32],
        lse: &mut [f32],
    );

    /// Its backward, overwriting the packed `dqkv` (see
    /// [`PackedAttention::backward`]).
    fn attention_backward_packed(
        &self,
        call: &PackedAttention,
        qkv: PackedQkv,
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dqkv: &mut [f32],
    );

    /// Batched attention block backward, accumulating (see
    /// [`BatchedAttention::backward`]).
    fn attention_backward(
        &self,
        call: &BatchedAttention,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    );
}

/// The CPU kernels on one rank's threads.
#[derive(Debug, Default)]
pub struct CpuKernels {
    threads: Threads,
    /// One slot of partial sums per part of a row-split reduction
    /// (LayerNorm's weight gradients), grown once and reused so a step
    /// allocates nothing.
    partials: Mutex<Vec<f32>>,
}

impl Clone for CpuKernels {
    /// The same threads with scratch of its own, so clones used by
    /// different ranks never wait on each other.
    fn clone(&self) -> Self {
        CpuKernels::new(self.threads.clone())
    }
}

impl CpuKernels {
    /// CPU kernels running on `threads`.
    pub fn new(threads: Threads) -> Self {
        CpuKernels {
            threads,
            partials: Mutex::default(),
        }
    }

    /// The rank's worker threads.
    pub fn thread_pool(&self) -> &Threads {
        &self.threads
    }

    /// Rows per thread for a row-wise kernel over `rows` rows of `width`.
    fn rows_per_part(&self, rows: usize, width: usize) -> usize {
        let parts = (rows * width / ELEMENTWISE_MIN_PER_THREAD).clamp(1, self.threads.count());
        rows.div_ceil(parts).max(1)
    }

    /// Runs `f(offset, part)` over contiguous parts of `out`, one per
    /// thread, or on the caller's thread when `out` is too small to share.
    fn split(&self, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
        let parts = (out.len() / ELEMENTWISE_MIN_PER_THREAD).clamp(1, self.threads.count());
        if parts == 1 {
            f(0, out);
            return;
        }
        // Round parts to whole cache lines so threads never share one.
        let chunk = out.len().div_ceil(parts).next_multiple_of(16);
        self.threads
            .for_each_chunk(out, chunk, |i, part| f(i * chunk, part));
    }
}

/// Elementwise kernels split their work only above this many elements per
/// thread: below it a hand-off costs more than it saves.
const ELEMENTWISE_MIN_PER_THREAD: usize = 1 << 15;

/// `f32`s in one 64-byte cache line.
const CACHE_LINE_FLOATS: usize = 16;

impl Kernels for CpuKernels {
    fn name(&self) -> &str {
        "cpu"
    }

    fn threads(&self) -> usize {
        self.threads.count()
    }

    fn linear_forward(
        &self,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        d_in: usize,
        d_out: usize,
    ) {
        gemm::linear_forward(&self.threads, x, w, bias, out, d_in, d_out);
    }

    fn linear_backward(
        &self,
        dy: &[f32],
        x: &[f32],
        w: &[f32],
        dx: &mut [f32],
        dw: &mut [f32],
        db: Option<&mut [f32]>,
        d_in: usize,
        d_out: usize,
    ) {
        gemm::linear_backward(&self.threads, dy, x, w, dx, dw, db, d_in, d_out);
    }

    fn tied_head_forward(&self, x: &[f32], wte: &[f32], logits: &mut [f32], c: usize) {
        gemm::tied_head_forward(&self.threads, x, wte, logits, c);
    }

    fn tied_head_backward(
        &self,
        dlogits: &[f32],
        x: &[f32],
        wte: &[f32],
        dx: &mut [f32],
        dwte: &mut [f32],
        c: usize,
    ) {
        gemm::tied_head_backward(&self.threads, dlogits, x, wte, dx, dwte, c);
    }

    fn layernorm_forward(
        &self,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
    ) {
        let c = w.len();
        assert_eq!(x.len(), out.len());
        assert_eq!(x.len(), mean.len() * c);
        let rows_per_part = self.rows_per_part(mean.len(), c);
        let chunk = rows_per_part * c;
        self.threads.for_each_chunk3(
            out,
            chunk,
            mean,
            rows_per_part,
            rstd,
            rows_per_part,
            |i, out, mean, rstd| {
                let x = &x[i * chunk..i * chunk + out.len()];
                layernorm::layernorm_forward(x, w, b, out, mean, rstd);
            },
        );
    }

    fn layernorm_backward(
        &self,
        dout: &[f32],
        x: &[f32],
        w: &[f32],
        mean: &[f32],
        rstd: &[f32],
        dx: &mut [f32],
        dw: &mut [f32],
        db: &mut [f32],
    ) {
        let (c, rows) = (w.len(), mean.len());
        let rows_per_part = self.rows_per_part(rows, c);
        if rows_per_part >= rows {
            layernorm::layernorm_backward(dout, x, w, mean, rstd, dx, dw, db);
            return;
        }
        assert_eq!(dx.len(), rows * c);
        assert_eq!(dw.len(), c);
        assert_eq!(db.len(), c);
        // Each part sums its rows' weight gradients into its own slot; the
        // slots are then added in part order, so results do not depend on
        // thread timing. Every row updates its whole slot, so slots start on
        // cache lines of their own: two threads writing one line (a slot's
        // end and the next one's start) made two threads slower than one.
        let parts = rows.div_ceil(rows_per_part);
        let slot_len = (2 * c).next_multiple_of(CACHE_LINE_FLOATS);
        let mut partials = self.partials.lock().unwrap_or_else(|e| e.into_inner());
        partials.clear();
        partials.resize(parts * slot_len + CACHE_LINE_FLOATS, 0.0);
        let start = partials.as_ptr().align_offset(64).min(CACHE_LINE_FLOATS);
        let slots = &mut partials[start..start + parts * slot_len];
        let chunk = rows_per_part * c;
        self.threads
            .for_each_chunk2(dx, chunk, slots, slot_len, |i, dx, slot| {
                let (pw, pb) = slot[..2 * c].split_at_mut(c);
                let r = i * rows_per_part..i * rows_per_part + dx.len() / c;
                let span = r.start * c..r.end * c;
                layernorm::layernorm_backward(
                    &dout[span.clone()],
                    &x[span],
                    w,
                    &mean[r.clone()],
                    &rstd[r],
                    dx,
                    pw,
                    pb,
                );
            });
        for slot in slots.chunks_exact(slot_len) {
            let (pw, pb) = slot[..2 * c].split_at(c);
            residual::add_assign(dw, pw);
            residual::add_assign(db, pb);
        }
    }

    fn bias_gelu_forward(&self, bias: &[f32], pre: &mut [f32], out: &mut [f32]) {
        let width = bias.len();
        assert_eq!(pre.len(), out.len());
        let rows = self.rows_per_part(pre.len() / width.max(1), width);
        self.threads
            .for_each_chunk2(pre, rows * width, out, rows * width, |_, pre, out| {
                gelu::bias_gelu_forward(bias, pre, out)
            });
    }

    fn gelu_backward(&self, slope: &[f32], grad: &mut [f32]) {
        assert_eq!(slope.len(), grad.len());
        self.split(grad, |start, grad| {
            gelu::gelu_backward_from_slope(&slope[start..start + grad.len()], grad)
        });
    }

    fn residual_add(&self, a: &[f32], b: &[f32], bias: &[f32], out: &mut [f32]) {
        let width = bias.len();
        assert_eq!(a.len(), out.len());
        assert_eq!(b.len(), out.len());
        let rows = self.rows_per_part(out.len() / width.max(1), width);
        self.threads.for_each_chunk(out, rows * width, |i, out| {
            let span = i * rows * width..i * rows * width + out.len();
            residual::residual_add(&a[span.clone()], &b[span], bias, out)
        });
    }

    fn split_heads(
        &self,
        layout: &HeadLayout,
        src: &[f32],
        width: usize,
        col0: usize,
        dst: &mut [f32],
    ) {
        layout.check(src, width, col0, dst);
        let block = layout.head_block();
        let per_part = self.rows_per_part(layout.batch * layout.n_head, block);
        self.threads
            .for_each_chunk(dst, per_part * block, |i, part| {
                heads::split_heads(layout, src, width, col0, i * per_part, part)
            });
    }

    fn merge_heads(
        &self,
        layout: &HeadLayout,
        src: &[f32],
        dst: &mut [f32],
        width: usize,
        col0: usize,
    ) {
        layout.check(dst, width, col0, src);
        let seq = layout.len * width;
        let per_part = self.rows_per_part(layout.batch, seq);
        self.threads.for_each_chunk(dst, per_part * seq, |i, part| {
            heads::merge_heads(layout, src, part, width, col0, i * per_part)
        });
    }

    fn cross_entropy_forward(
        &self,
        logits: &[f32],
        targets: &[u32],
        lse: &mut [f32],
    ) -> Result<LossSum, TargetOutOfRange> {
        let rows = targets.len();
        assert_eq!(lse.len(), rows);
        assert!(rows == 0 || logits.len().is_multiple_of(rows));
        let vocab = logits.len().checked_div(rows).unwrap_or(0);
        check_targets(targets, vocab)?;
        let rows_per_part = self.rows_per_part(rows, vocab);
        self.threads.for_each_chunk(lse, rows_per_part, |i, lse| {
            let start = i * rows_per_part * vocab;
            cross_entropy::row_lse(&logits[start..start + lse.len() * vocab], lse);
        });
        Ok(cross_entropy::loss_from_lse(logits, targets, lse))
    }

    fn cross_entropy_backward(&self, logits: &mut [f32], targets: &[u32], lse: &[f32], scale: f32) {
        let rows = targets.len();
        let vocab = logits.len().checked_div(rows).unwrap_or(0);
        if vocab == 0 {
            return;
        }
        let rows_per_part = self.rows_per_part(rows, vocab);
        self.threads
            .for_each_chunk(logits, rows_per_part * vocab, |i, part| {
                let r = i * rows_per_part..i * rows_per_part + part.len() / vocab;
                cross_entropy::cross_entropy_backward(part, &targets[r.clone()], &lse[r], scale);
            });
    }

    fn attention_forward(
        &self,
        call: &BatchedAttention,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        call.forward(&self.threads, q, k, v, out, lse);
    }

    fn attention_backward(
        &self,
        call: &BatchedAttention,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        call.backward(&self.threads, q, k, v, out, lse, dout, dq, dk, dv);
    }

    fn attention_forward_packed(
        &self,
        call: &PackedAttention,
        qkv: PackedQkv,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        call.forward(&self.threads, qkv, out, lse);
    }

    fn attention_backward_packed(
        &self,
        call: &PackedAttention,
        qkv: PackedQkv,
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dqkv: &mut [f32],
    ) {
        call.backward(&self.threads, qkv, out, lse, dout, dqkv);
    }
}

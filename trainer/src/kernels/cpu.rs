//! [`CpuKernels`]: the host as a device, the reference and fast CPU path.
//!
//! With `kernels.precision = "bf16"` the model's matrix products (linear
//! layers and the tied output head, forward and backward) round their
//! operands to bf16 and accumulate in f32 ([`Product::Bf16`]); every other
//! kernel, attention's own products included, stays f32, and so do the
//! buffers: parameters, gradients, activations and optimizer state.

use std::ops::Range;
use std::sync::Mutex;

use super::{
    BatchedAttention, Bf16Unsupported, HeadLayout, Kernels, LossSum, PackedAttention, PackedQkv,
    Precision, Product, QkvProjection, Runs, TargetOutOfRange, Threads, bf16_storage,
    check_targets, cross_entropy, embedding, fill_columns, gelu, gemm, heads, layernorm,
    merge_partial, residual,
};
use crate::device::{Bf16Slice, Bf16SliceMut, Buffer, DeviceError, Slice, SliceMut};
use crate::optim::{self, AdamWUpdate};

/// The CPU kernels on one rank's threads.
#[derive(Debug, Default)]
pub struct CpuKernels {
    threads: Threads,
    /// The kernel the model's matrix products run on.
    product: Product,
    /// One slot of partial sums per part of a row-split reduction
    /// (LayerNorm's weight gradients), grown once and reused so a step
    /// allocates nothing.
    partials: Mutex<Vec<f32>>,
}

impl Clone for CpuKernels {
    /// The same threads with scratch of its own, so clones used by
    /// different ranks never wait on each other.
    fn clone(&self) -> Self {
        CpuKernels {
            threads: self.threads.clone(),
            product: self.product,
            partials: Mutex::default(),
        }
    }
}

impl CpuKernels {
    /// f32 CPU kernels running on `threads`.
    pub fn new(threads: Threads) -> Self {
        CpuKernels {
            threads,
            product: Product::F32,
            partials: Mutex::default(),
        }
    }

    /// CPU kernels running on `threads` whose model products use
    /// `precision`; bf16 needs a CPU with AVX512-BF16.
    pub fn with_precision(threads: Threads, precision: Precision) -> Result<Self, Bf16Unsupported> {
        Ok(CpuKernels {
            product: precision.cpu_product()?,
            ..CpuKernels::new(threads)
        })
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
    /// Parts start at multiples of 16 elements.
    fn split<T: Send>(&self, out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
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

    fn alloc(&self, len: usize) -> Result<Buffer, DeviceError> {
        Ok(Buffer::from(vec![0.0; len]))
    }

    fn upload(&self, values: &[f32]) -> Result<Buffer, DeviceError> {
        Ok(Buffer::from(values.to_vec()))
    }

    fn upload_vec(&self, values: Vec<f32>) -> Result<Buffer, DeviceError> {
        Ok(Buffer::from(values))
    }

    fn product_precision(&self) -> Precision {
        match self.product {
            Product::F32 => Precision::F32,
            Product::Bf16(_) => Precision::Bf16,
        }
    }

    fn round_to_bf16(&self, x: Slice<'_>, out: Bf16SliceMut<'_>) {
        let x = x.expect_host();
        assert_eq!(
            x.len(),
            out.len,
            "round_to_bf16 into a view of another length"
        );
        let words: &mut [u32] = bytemuck::cast_slice_mut(out.words.expect_host());
        let product = self.product;
        self.split(words, |first, part| {
            let x = &x[2 * first..x.len().min(2 * (first + part.len()))];
            match product {
                Product::Bf16(gemm) => gemm.round(x, part),
                Product::F32 => bf16_storage::round_to_bf16(x, part),
            }
        });
    }

    fn widen_bf16(&self, x: Bf16Slice<'_>, out: SliceMut<'_>) {
        let out = out.expect_host();
        assert_eq!(x.len, out.len(), "widen_bf16 into a view of another length");
        let words: &[u32] = bytemuck::cast_slice(x.words.expect_host());
        // Parts start at even values, so each begins a word.
        self.split(out, |first, part| {
            let words = &words[first / 2..(first + part.len()).div_ceil(2)];
            bf16_storage::widen_bf16(words, part);
        });
    }

    fn fill(&self, dst: SliceMut<'_>, value: f32) {
        dst.expect_host().fill(value);
    }

    fn fill_columns(&self, x: SliceMut<'_>, width: usize, columns: Range<usize>, value: f32) {
        fill_columns::fill_columns(x.expect_host(), width, columns, value);
    }

    fn copy(&self, src: Slice<'_>, dst: SliceMut<'_>) {
        dst.expect_host().copy_from_slice(src.expect_host());
    }

    fn copy_runs(&self, src: Slice<'_>, dst: SliceMut<'_>, runs: &Runs) {
        runs.copy(src.expect_host(), dst.expect_host());
    }

    fn add_assign(&self, acc: SliceMut<'_>, x: Slice<'_>) {
        residual::add_assign(acc.expect_host(), x.expect_host());
    }

    fn attention_merge(
        &self,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
        part_out: Slice<'_>,
        part_lse: Slice<'_>,
    ) {
        let (out, lse) = (out.expect_host(), lse.expect_host());
        merge_partial(out, lse, part_out.expect_host(), part_lse.expect_host());
    }

    fn embedding_forward(
        &self,
        tokens: &[u32],
        positions: &[usize],
        wte: Slice<'_>,
        wpe: Option<Slice<'_>>,
        out: SliceMut<'_>,
    ) {
        let (wte, wpe) = (wte.expect_host(), wpe.map(Slice::expect_host));
        embedding::embedding_forward(tokens, positions, wte, wpe, out.expect_host());
    }

    fn embedding_backward(
        &self,
        dout: Slice<'_>,
        tokens: &[u32],
        positions: &[usize],
        dwte: SliceMut<'_>,
        dwpe: SliceMut<'_>,
    ) {
        let (dwte, dwpe) = (dwte.expect_host(), dwpe.expect_host());
        embedding::embedding_backward(dout.expect_host(), tokens, positions, dwte, dwpe);
    }

    fn linear_forward(
        &self,
        x: Slice<'_>,
        w: Slice<'_>,
        bias: Option<Slice<'_>>,
        out: SliceMut<'_>,
        d_in: usize,
        d_out: usize,
    ) {
        let (x, w, out) = (x.expect_host(), w.expect_host(), out.expect_host());
        let bias = bias.map(Slice::expect_host);
        gemm::linear_forward_with(&self.threads, self.product, x, w, bias, out, d_in, d_out);
    }

    fn linear_backward(
        &self,
        dy: Slice<'_>,
        x: Slice<'_>,
        w: Slice<'_>,
        dx: SliceMut<'_>,
        dw: SliceMut<'_>,
        db: Option<SliceMut<'_>>,
        d_in: usize,
        d_out: usize,
    ) {
        let (dy, x, w) = (dy.expect_host(), x.expect_host(), w.expect_host());
        let (dx, dw) = (dx.expect_host(), dw.expect_host());
        let db = db.map(SliceMut::expect_host);
        gemm::linear_backward_with(
            &self.threads,
            self.product,
            dy,
            x,
            w,
            dx,
            dw,
            db,
            d_in,
            d_out,
        );
    }

    fn tied_head_forward(&self, x: Slice<'_>, wte: Slice<'_>, logits: SliceMut<'_>, c: usize) {
        let (x, wte, logits) = (x.expect_host(), wte.expect_host(), logits.expect_host());
        gemm::tied_head_forward_with(&self.threads, self.product, x, wte, logits, c);
    }

    fn tied_head_backward(
        &self,
        dlogits: Slice<'_>,
        x: Slice<'_>,
        wte: Slice<'_>,
        dx: SliceMut<'_>,
        dwte: SliceMut<'_>,
        c: usize,
    ) {
        let (dlogits, x, wte) = (dlogits.expect_host(), x.expect_host(), wte.expect_host());
        let (dx, dwte) = (dx.expect_host(), dwte.expect_host());
        gemm::tied_head_backward_with(&self.threads, self.product, dlogits, x, wte, dx, dwte, c);
    }

    fn layernorm_forward(
        &self,
        x: Slice<'_>,
        w: Slice<'_>,
        b: Slice<'_>,
        out: SliceMut<'_>,
        mean: SliceMut<'_>,
        rstd: SliceMut<'_>,
    ) {
        let (x, w, b) = (x.expect_host(), w.expect_host(), b.expect_host());
        let (out, mean, rstd) = (out.expect_host(), mean.expect_host(), rstd.expect_host());
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
        dout: Slice<'_>,
        x: Slice<'_>,
        w: Slice<'_>,
        mean: Slice<'_>,
        rstd: Slice<'_>,
        dx: SliceMut<'_>,
        dw: SliceMut<'_>,
        db: SliceMut<'_>,
    ) {
        let (dout, x, w) = (dout.expect_host(), x.expect_host(), w.expect_host());
        let (mean, rstd) = (mean.expect_host(), rstd.expect_host());
        let (dx, dw, db) = (dx.expect_host(), dw.expect_host(), db.expect_host());
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

    fn bias_gelu_forward(&self, bias: Slice<'_>, pre: SliceMut<'_>, out: SliceMut<'_>) {
        let (bias, pre, out) = (bias.expect_host(), pre.expect_host(), out.expect_host());
        let width = bias.len();
        assert_eq!(pre.len(), out.len());
        let rows = self.rows_per_part(pre.len() / width.max(1), width);
        self.threads
            .for_each_chunk2(pre, rows * width, out, rows * width, |_, pre, out| {
                gelu::bias_gelu_forward(bias, pre, out)
            });
    }

    fn gelu_backward(&self, slope: Slice<'_>, grad: SliceMut<'_>) {
        let (slope, grad) = (slope.expect_host(), grad.expect_host());
        assert_eq!(slope.len(), grad.len());
        self.split(grad, |start, grad| {
            gelu::gelu_backward_from_slope(&slope[start..start + grad.len()], grad)
        });
    }

    fn residual_add(&self, a: Slice<'_>, b: Slice<'_>, bias: Slice<'_>, out: SliceMut<'_>) {
        let (a, b, bias) = (a.expect_host(), b.expect_host(), bias.expect_host());
        let out = out.expect_host();
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
        src: Slice<'_>,
        width: usize,
        col0: usize,
        dst: SliceMut<'_>,
    ) {
        let (src, dst) = (src.expect_host(), dst.expect_host());
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
        src: Slice<'_>,
        dst: SliceMut<'_>,
        width: usize,
        col0: usize,
    ) {
        let (src, dst) = (src.expect_host(), dst.expect_host());
        layout.check(dst, width, col0, src);
        let seq = layout.len * width;
        let per_part = self.rows_per_part(layout.batch, seq);
        self.threads.for_each_chunk(dst, per_part * seq, |i, part| {
            heads::merge_heads(layout, src, part, width, col0, i * per_part)
        });
    }

    fn cross_entropy_forward(
        &self,
        logits: Slice<'_>,
        targets: &[u32],
        lse: SliceMut<'_>,
    ) -> Result<LossSum, TargetOutOfRange> {
        let (logits, lse) = (logits.expect_host(), lse.expect_host());
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

    fn cross_entropy_backward(
        &self,
        logits: SliceMut<'_>,
        targets: &[u32],
        lse: Slice<'_>,
        scale: f32,
    ) {
        let (logits, lse) = (logits.expect_host(), lse.expect_host());
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
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) {
        let (q, k, v) = (q.expect_host(), k.expect_host(), v.expect_host());
        let (out, lse) = (out.expect_host(), lse.expect_host());
        call.forward(&self.threads, q, k, v, out, lse);
    }

    fn attention_backward(
        &self,
        call: &BatchedAttention,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dq: SliceMut<'_>,
        dk: SliceMut<'_>,
        dv: SliceMut<'_>,
    ) {
        let (q, k, v) = (q.expect_host(), k.expect_host(), v.expect_host());
        let (out, lse, dout) = (out.expect_host(), lse.expect_host(), dout.expect_host());
        let (dq, dk, dv) = (dq.expect_host(), dk.expect_host(), dv.expect_host());
        call.backward(&self.threads, q, k, v, out, lse, dout, dq, dk, dv);
    }

    fn attention_forward_packed(
        &self,
        call: &PackedAttention,
        qkv: QkvProjection<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) {
        let (out, lse) = (out.expect_host(), lse.expect_host());
        call.forward(&self.threads, packed_on_host(qkv), out, lse);
    }

    fn attention_backward_packed(
        &self,
        call: &PackedAttention,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dqkv: SliceMut<'_>,
    ) {
        let (out, lse, dout) = (out.expect_host(), lse.expect_host(), dout.expect_host());
        let dqkv = dqkv.expect_host();
        call.backward(&self.threads, packed_on_host(qkv), out, lse, dout, dqkv);
    }

    fn sum_of_squares(&self, x: Slice<'_>) -> f64 {
        optim::sum_of_squares(x.expect_host())
    }

    fn scale(&self, x: SliceMut<'_>, factor: f32) {
        optim::scale(x.expect_host(), factor);
    }

    fn adamw_update(
        &self,
        update: &AdamWUpdate<'_>,
        params: SliceMut<'_>,
        grads: Slice<'_>,
        m: SliceMut<'_>,
        v: SliceMut<'_>,
    ) {
        let (params, grads) = (params.expect_host(), grads.expect_host());
        let (m, v) = (m.expect_host(), v.expect_host());
        update.apply_on_host(&self.threads, params, grads, m, v);
    }
}

/// The host slices of a packed projection.
fn packed_on_host(qkv: QkvProjection<'_>) -> PackedQkv<'_> {
    PackedQkv {
        data: qkv.data.expect_host(),
        bias: qkv.bias.expect_host(),
    }
}

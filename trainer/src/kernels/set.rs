//! [`Kernels`]: the device a rank computes on, as one replaceable component.

use std::ops::Range;

use super::Precision;
use super::{BatchedAttention, HeadLayout, LossSum, PackedAttention, Runs, TargetOutOfRange};
use crate::device::{Bf16Slice, Bf16SliceMut, Buffer, DeviceError, Slice, SliceMut};
use crate::optim::AdamWUpdate;

/// The output of the qkv projection as packed attention reads it (see
/// [`PackedQkv`](super::PackedQkv)): `data` `[batch, len, 3C]` without its
/// bias, and the bias `[3C]`.
#[derive(Clone, Copy, Debug)]
pub struct QkvProjection<'a> {
    /// The unbiased projection.
    pub data: Slice<'a>,
    /// Its bias.
    pub bias: Slice<'a>,
}

/// The device a rank computes on: its memory and every numeric kernel the
/// model, the optimizer and the attention strategies call.
///
/// Object-safe, so a context can hold `Arc<dyn Kernels>` and a plugin can
/// swap the CPU set ([`CpuKernels`](super::CpuKernels)) for another
/// device's. Every tensor argument is a view of a [`Buffer`] this device
/// allocated ([`Kernels::alloc`]); the host passes only token ids and
/// positions in and takes scalars out. Argument conventions follow the free
/// functions of the same names in [`crate::kernels`]: parameter gradients
/// accumulate (`+=`), activation gradients are overwritten unless a method
/// says otherwise.
#[allow(clippy::too_many_arguments)]
pub trait Kernels: Send + Sync {
    /// Short name for reports (`cpu`, ...).
    fn name(&self) -> &str;

    /// Worker threads one call may use.
    fn threads(&self) -> usize;

    /// The most bytes of device memory this kernel set has held at once so
    /// far; `None` for host memory (the process's peak RSS reports that).
    fn peak_memory_bytes(&self) -> Option<u64> {
        None
    }

    /// Bytes of `f32` buffers this kernel set has copied between the host
    /// and its device so far (uploads, downloads, exchanges staged through
    /// the host); `None` for host memory. The small tables kernels take
    /// (token ids, run starts) and scalar results are not counted.
    fn host_transfer_bytes(&self) -> Option<u64> {
        None
    }

    /// A buffer of `len` zeros in this device's memory.
    fn alloc(&self, len: usize) -> Result<Buffer, DeviceError>;

    /// A buffer of `len` values, contents undefined, in this device's
    /// memory, for a message a backend receives straight into it
    /// ([`ProcessGroup::irecv_for`](crate::parallel::ProcessGroup::irecv_for)):
    /// usable by the backend at once, without waiting for the work queued
    /// on this device (the attention of a ring step). By default
    /// [`Kernels::alloc`].
    fn message_buffer(&self, len: usize) -> Result<Buffer, DeviceError> {
        self.alloc(len)
    }

    /// A buffer in this device's memory holding `values`.
    fn upload(&self, values: &[f32]) -> Result<Buffer, DeviceError>;

    /// [`Kernels::upload`] of values the caller gives up (a received
    /// message): the host keeps them without a copy.
    fn upload_vec(&self, values: Vec<f32>) -> Result<Buffer, DeviceError> {
        self.upload(&values)
    }

    /// Host memory for a message of `len` values bound for this device,
    /// for a backend that receives into host memory
    /// ([`ProcessGroup::irecv_for`](crate::parallel::ProcessGroup::irecv_for)):
    /// the device's staging memory
    /// ([`DeviceMemory::staging`](crate::device::DeviceMemory::staging),
    /// page-locked on a GPU). By default an ordinary vector.
    fn staging(&self, len: usize) -> Result<Buffer, DeviceError> {
        Ok(Buffer::from(vec![0.0; len]))
    }

    /// `buffer` in this device's memory: a host buffer is uploaded
    /// ([`Kernels::upload_vec`]), a buffer of another device's memory (a
    /// message another rank sent) copied device to device.
    ///
    /// A device that can copy from another's memory without waiting for its
    /// own queued work overrides this ([`adopt_by_copy`] is the default).
    fn adopt(&self, buffer: Buffer) -> Result<Buffer, DeviceError> {
        adopt_by_copy(self, buffer)
    }

    /// The precision the matrix products (linear layers, output head) round
    /// their operands to. Activations the backward reads only as such an
    /// operand are kept at it ([`Activations`](crate::model::Activations)).
    fn product_precision(&self) -> Precision {
        Precision::F32
    }

    /// Rounds `x` to bf16 as this device's bf16 products round their
    /// operands, into `out` (as many values).
    fn round_to_bf16(&self, x: Slice<'_>, out: Bf16SliceMut<'_>);

    /// `out` = the values of `x`, exactly (every bf16 value is an f32).
    fn widen_bf16(&self, x: Bf16Slice<'_>, out: SliceMut<'_>);

    /// Sets every value of `dst` to `value`.
    fn fill(&self, dst: SliceMut<'_>, value: f32);

    /// Copies every run of `runs` from `src` to `dst`. By default one
    /// [`Kernels::copy`] per run; a device where a call costs a launch
    /// copies them all in one.
    fn copy_runs(&self, src: Slice<'_>, mut dst: SliceMut<'_>, runs: &Runs) {
        for &(from, to) in &runs.starts {
            let src = src.range(from..from + runs.len);
            self.copy(src, dst.reborrow().range(to..to + runs.len));
        }
    }

    /// Sets columns `columns` of every `width`-wide row of `x` to `value`.
    fn fill_columns(&self, x: SliceMut<'_>, width: usize, columns: Range<usize>, value: f32);

    /// `dst = src` (same length).
    fn copy(&self, src: Slice<'_>, dst: SliceMut<'_>);

    /// `acc += x` elementwise.
    fn add_assign(&self, acc: SliceMut<'_>, x: Slice<'_>);

    /// Row `i` of `out` `[batch·len, C]` = `wte[tokens[i]] + wpe[positions[i % len]]`,
    /// with `len = positions.len()`; a [`NO_TOKEN_ROW`](super::NO_TOKEN_ROW)
    /// token and a missing `wpe` add nothing (the vocabulary-parallel
    /// embedding).
    fn embedding_forward(
        &self,
        tokens: &[u32],
        positions: &[usize],
        wte: Slice<'_>,
        wpe: Option<Slice<'_>>,
        out: SliceMut<'_>,
    );

    /// Its backward: adds row `i` of `dout` to `dwte[tokens[i]]` (skipping
    /// [`NO_TOKEN_ROW`](super::NO_TOKEN_ROW)) and to `dwpe[positions[i % len]]`.
    fn embedding_backward(
        &self,
        dout: Slice<'_>,
        tokens: &[u32],
        positions: &[usize],
        dwte: SliceMut<'_>,
        dwpe: SliceMut<'_>,
    );

    /// `out = x·w + bias` with `w` in Conv1D layout `[d_in, d_out]`.
    fn linear_forward(
        &self,
        x: Slice<'_>,
        w: Slice<'_>,
        bias: Option<Slice<'_>>,
        out: SliceMut<'_>,
        d_in: usize,
        d_out: usize,
    );

    /// `dx = dy·wᵀ`; `dw += xᵀ·dy`; `db += colsum(dy)`.
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
    );

    /// `logits = x·wteᵀ` (tied output head).
    fn tied_head_forward(&self, x: Slice<'_>, wte: Slice<'_>, logits: SliceMut<'_>, c: usize);

    /// `dx = dlogits·wte`; `dwte += dlogitsᵀ·x`.
    fn tied_head_backward(
        &self,
        dlogits: Slice<'_>,
        x: Slice<'_>,
        wte: Slice<'_>,
        dx: SliceMut<'_>,
        dwte: SliceMut<'_>,
        c: usize,
    );

    /// LayerNorm rows of `x`, saving `mean` and `rstd`.
    fn layernorm_forward(
        &self,
        x: Slice<'_>,
        w: Slice<'_>,
        b: Slice<'_>,
        out: SliceMut<'_>,
        mean: SliceMut<'_>,
        rstd: SliceMut<'_>,
    );

    /// LayerNorm backward; ACCUMULATES into `dx`, `dw`, `db`.
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
    );

    /// With `x = pre + bias` per row: `out = gelu(x)` (tanh approximation),
    /// and `pre` is overwritten with the slope `gelu′(x)` for the backward.
    fn bias_gelu_forward(&self, bias: Slice<'_>, pre: SliceMut<'_>, out: SliceMut<'_>);

    /// `grad ← grad · slope` in place, with the slope that
    /// [`Kernels::bias_gelu_forward`] left.
    fn gelu_backward(&self, slope: Slice<'_>, grad: SliceMut<'_>);

    /// `out = a + (b + bias)`, `bias` added to every row.
    fn residual_add(&self, a: Slice<'_>, b: Slice<'_>, bias: Slice<'_>, out: SliceMut<'_>);

    /// Head-major `dst` = the heads at column `col0` of the `width`-wide
    /// token-major `src` (see [`HeadLayout`]).
    fn split_heads(
        &self,
        layout: &HeadLayout,
        src: Slice<'_>,
        width: usize,
        col0: usize,
        dst: SliceMut<'_>,
    );

    /// The inverse of [`Kernels::split_heads`]: writes the head-major `src`
    /// into columns `col0..` of the token-major `dst`, leaving the others.
    fn merge_heads(
        &self,
        layout: &HeadLayout,
        src: Slice<'_>,
        dst: SliceMut<'_>,
        width: usize,
        col0: usize,
    );

    /// Per-row log-sum-exp into `lse`; the summed loss of counted targets.
    fn cross_entropy_forward(
        &self,
        logits: Slice<'_>,
        targets: &[u32],
        lse: SliceMut<'_>,
    ) -> Result<LossSum, TargetOutOfRange>;

    /// Logits become `scale·(softmax − onehot)` in place; zero on ignored
    /// rows; a target at or above the row width (held by another
    /// vocabulary-parallel rank) leaves `scale·softmax`.
    fn cross_entropy_backward(
        &self,
        logits: SliceMut<'_>,
        targets: &[u32],
        lse: Slice<'_>,
        scale: f32,
    );

    /// Batched attention block forward (see [`BatchedAttention::forward`]).
    fn attention_forward(
        &self,
        call: &BatchedAttention,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    );

    /// Batched attention block backward, accumulating (see
    /// [`BatchedAttention::backward`]).
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
    );

    /// Causal attention read from the packed projection (see
    /// [`PackedAttention::forward`]).
    fn attention_forward_packed(
        &self,
        call: &PackedAttention,
        qkv: QkvProjection<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    );

    /// `(out, lse) ← (out, lse) ⊕ (part_out, part_lse)`: the exact merge of
    /// attention results over disjoint keys (see
    /// [`merge_partial`](super::merge_partial)); `out` is `[rows, head_dim]`,
    /// `lse` `[rows]`.
    fn attention_merge(
        &self,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
        part_out: Slice<'_>,
        part_lse: Slice<'_>,
    );

    /// Its backward, overwriting the packed `dqkv` (see
    /// [`PackedAttention::backward`]).
    fn attention_backward_packed(
        &self,
        call: &PackedAttention,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dqkv: SliceMut<'_>,
    );

    /// Σ x², accumulated in f64 (global-norm clipping).
    fn sum_of_squares(&self, x: Slice<'_>) -> f64;

    /// `x ← factor·x`.
    fn scale(&self, x: SliceMut<'_>, factor: f32);

    /// One fused AdamW update of `params` from `grads`, advancing the
    /// moments `m` and `v` (see [`AdamWUpdate`]).
    fn adamw_update(
        &self,
        update: &AdamWUpdate<'_>,
        params: SliceMut<'_>,
        grads: Slice<'_>,
        m: SliceMut<'_>,
        v: SliceMut<'_>,
    );
}

/// [`Kernels::adopt`] by default: a host buffer uploaded, another device's
/// buffer copied into a new buffer of `kernels` after its queued work, and
/// waited for.
pub fn adopt_by_copy<K: Kernels + ?Sized>(
    kernels: &K,
    buffer: Buffer,
) -> Result<Buffer, DeviceError> {
    let buffer = match buffer.into_vec() {
        Ok(values) => return kernels.upload_vec(values),
        Err(buffer) => buffer,
    };
    if let Some(values) = buffer.host() {
        return kernels.upload(values);
    }
    let mut own = kernels.alloc(buffer.len())?;
    own.view_mut().copy_from(buffer.view())?;
    // The sender frees its buffer when it drops here: the copy must be done.
    own.view().synchronize()?;
    Ok(own)
}

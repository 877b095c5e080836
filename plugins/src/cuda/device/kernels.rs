//! [`CudaKernels`]: the `Kernels` of a CUDA device, written once over its
//! [`Launcher`] (the GPU, or cuda-emu).

use std::ops::Range;
use std::sync::Arc;

use cptrain::device::{
    Bf16Slice, Bf16SliceMut, Buffer, DeviceError, DeviceMemory, Slice, SliceMut,
};
use cptrain::kernels::{
    BatchedAttention, HeadLayout, Kernels, LossSum, PackedAttention, Precision, QkvProjection,
    Runs, TargetOutOfRange, adopt_by_copy, check_targets,
};
use cptrain::optim::AdamWUpdate;

use super::memory::CudaMemory;
use crate::cuda::gemm::GemmInputs;
use crate::cuda::launch::AdamWStep;
use crate::cuda::launcher::{Launcher, Span};
use crate::cuda::{CudaError, ops};

/// The kernels of one CUDA device (`kernels.device = "cuda"` or
/// `"cuda-emu"`): buffers in its memory, every operation queued on its
/// stream through the shared orchestration of [`ops`].
///
/// `Kernels` methods return no errors: a failure (a launch, an allocation
/// of scratch, a view of another device's memory) stops the device, is
/// logged, and comes back from the next call that returns a result; the
/// loss and the gradient norm become NaN, which stops training at that step.
pub(crate) struct CudaKernels {
    memory: Arc<CudaMemory>,
    /// The element type of the linear layers' and the head's products.
    inputs: GemmInputs,
}

impl CudaKernels {
    /// The kernels of the device `launcher` drives, called `name`, with
    /// the model's products at `precision`.
    pub(crate) fn new(name: String, launcher: Box<dyn Launcher>, precision: Precision) -> Self {
        CudaKernels {
            memory: Arc::new(CudaMemory::new(name, launcher)),
            inputs: match precision {
                Precision::F32 => GemmInputs::F32,
                Precision::Bf16 => GemmInputs::Bf16,
            },
        }
    }

    /// Whether `memory` is this device's.
    fn owns(&self, memory: &dyn DeviceMemory) -> bool {
        std::ptr::addr_eq(memory as *const dyn DeviceMemory, Arc::as_ptr(&self.memory))
    }

    fn span_of(
        &self,
        device: Option<(&dyn DeviceMemory, u64)>,
        len: usize,
    ) -> Result<Span, CudaError> {
        match device {
            Some((memory, addr)) if self.owns(memory) => Ok(Span { addr, len }),
            // An empty view reads and writes nothing, wherever it is.
            _ if len == 0 => Ok(Span { addr: 0, len }),
            found => Err(CudaError::ForeignMemory {
                device: self.memory.name().to_string(),
                found: match found {
                    Some((memory, _)) => format!("memory of {}", memory.name()),
                    None => "host memory".into(),
                },
            }),
        }
    }

    /// The device span of a view, or an error when it is not this device's.
    fn r(&self, s: Slice<'_>) -> Result<Span, CudaError> {
        self.span_of(s.device(), s.len())
    }

    /// The device span of a writable view.
    fn w(&self, s: &SliceMut<'_>) -> Result<Span, CudaError> {
        self.span_of(s.device(), s.len())
    }

    /// Runs `work` on the device (skipped after a failure).
    fn run(&self, work: impl FnOnce(&dyn Launcher) -> Result<(), CudaError>) {
        self.memory.run(work);
    }
}

/// Positions as the kernels read them (`unsigned`).
fn positions_u32(positions: &[usize]) -> Result<Vec<u32>, CudaError> {
    positions
        .iter()
        .map(|&p| {
            u32::try_from(p).map_err(|_| CudaError::Shape {
                kernel: "embedding",
                problem: format!("position {p} exceeds the kernels' 32-bit ids"),
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
impl Kernels for CudaKernels {
    fn name(&self) -> &str {
        self.memory.name()
    }

    fn threads(&self) -> usize {
        1
    }

    fn peak_memory_bytes(&self) -> Option<u64> {
        Some(self.memory.peak_bytes())
    }

    fn host_transfer_bytes(&self) -> Option<u64> {
        Some(self.memory.host_traffic_bytes())
    }

    fn alloc(&self, len: usize) -> Result<Buffer, DeviceError> {
        let memory: Arc<dyn DeviceMemory> = self.memory.clone();
        if len == 0 {
            // SAFETY: an empty buffer owns nothing; `free` skips it.
            return Ok(unsafe { Buffer::on_device(memory, 0, 0) });
        }
        let bytes = len * size_of::<f32>();
        let addr = self.memory.try_run(|dev| {
            let addr = dev.alloc(bytes)?;
            // SAFETY: just allocated with `bytes` bytes.
            match unsafe { dev.zero(addr, bytes) } {
                Ok(()) => Ok(addr),
                Err(e) => {
                    // SAFETY: allocated above, not handed out.
                    unsafe { dev.free(addr, bytes) };
                    Err(e)
                }
            }
        })?;
        self.memory.note_alloc(bytes);
        // SAFETY: `len` values at `addr` were allocated for this buffer alone.
        Ok(unsafe { Buffer::on_device(memory, addr, len) })
    }

    /// A message already in this device's memory (received there by NCCL)
    /// is kept as it is. One in another CUDA device's memory is fetched
    /// ([`CudaMemory::fetch`]): on a GPU the copy does not wait for the
    /// kernels queued here, so a ring step's next block arrives while its
    /// attention runs.
    fn adopt(&self, buffer: Buffer) -> Result<Buffer, DeviceError> {
        let (len, view) = (buffer.len(), buffer.view());
        let Some((memory, src)) = view.device().filter(|_| len > 0) else {
            return adopt_by_copy(self, buffer);
        };
        if self.owns(memory) {
            return Ok(buffer);
        }
        let Some(peer) = memory.as_any().downcast_ref::<CudaMemory>() else {
            return adopt_by_copy(self, buffer);
        };
        let Some(addr) = self.memory.fetch(peer, src, len)? else {
            return adopt_by_copy(self, buffer);
        };
        let memory: Arc<dyn DeviceMemory> = self.memory.clone();
        // SAFETY: `fetch` allocated `len` values at `addr` for this buffer.
        Ok(unsafe { Buffer::on_device(memory, addr, len) })
    }

    fn staging(&self, len: usize) -> Result<Buffer, DeviceError> {
        self.memory.staging(len)
    }

    /// Allocated beside the queued work ([`CudaMemory::alloc_beside`]).
    fn message_buffer(&self, len: usize) -> Result<Buffer, DeviceError> {
        let addr = match len {
            0 => 0,
            _ => self.memory.alloc_beside(len)?,
        };
        let memory: Arc<dyn DeviceMemory> = self.memory.clone();
        // SAFETY: `len` values at `addr` were allocated for this buffer
        // alone (an empty buffer owns nothing; `free` skips it).
        Ok(unsafe { Buffer::on_device(memory, addr, len) })
    }

    fn upload(&self, values: &[f32]) -> Result<Buffer, DeviceError> {
        let mut buffer = self.alloc(values.len())?;
        buffer.copy_from_host(values)?;
        Ok(buffer)
    }

    fn fill(&self, dst: SliceMut<'_>, value: f32) {
        self.run(|dev| {
            let d = self.w(&dst)?;
            if d.len == 0 {
                return Ok(());
            }
            if value.to_bits() == 0 {
                // SAFETY: the span is this device's memory.
                return unsafe { dev.zero(d.addr, d.len * size_of::<f32>()) };
            }
            ops::fill(dev, d, value)
        });
    }

    fn fill_columns(&self, x: SliceMut<'_>, width: usize, columns: Range<usize>, value: f32) {
        self.run(|dev| ops::fill_columns(dev, self.w(&x)?, width, columns, value));
    }

    fn product_precision(&self) -> Precision {
        match self.inputs {
            GemmInputs::F32 => Precision::F32,
            GemmInputs::Bf16 => Precision::Bf16,
        }
    }

    fn round_to_bf16(&self, x: Slice<'_>, out: Bf16SliceMut<'_>) {
        self.run(|dev| ops::round_to_bf16(dev, self.r(x)?, self.w(&out.words)?, out.len));
    }

    fn widen_bf16(&self, x: Bf16Slice<'_>, out: SliceMut<'_>) {
        self.run(|dev| ops::widen_bf16(dev, self.r(x.words)?, x.len, self.w(&out)?));
    }

    fn copy(&self, src: Slice<'_>, dst: SliceMut<'_>) {
        self.run(|dev| ops::copy(dev, self.r(src)?, self.w(&dst)?));
    }

    fn copy_runs(&self, src: Slice<'_>, dst: SliceMut<'_>, runs: &Runs) {
        self.run(|dev| ops::copy_runs(dev, self.r(src)?, self.w(&dst)?, runs));
    }

    fn add_assign(&self, acc: SliceMut<'_>, x: Slice<'_>) {
        self.run(|dev| ops::add_assign(dev, self.w(&acc)?, self.r(x)?));
    }

    fn attention_merge(
        &self,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
        part_out: Slice<'_>,
        part_lse: Slice<'_>,
    ) {
        self.run(|dev| {
            let (o, l) = (self.w(&out)?, self.w(&lse)?);
            ops::attention_merge(dev, o, l, self.r(part_out)?, self.r(part_lse)?)
        });
    }

    fn embedding_forward(
        &self,
        tokens: &[u32],
        positions: &[usize],
        wte: Slice<'_>,
        wpe: Option<Slice<'_>>,
        out: SliceMut<'_>,
    ) {
        self.run(|dev| {
            let c = out.len().checked_div(tokens.len()).unwrap_or(0);
            let positions = positions_u32(positions)?;
            let wpe = wpe.map(|wpe| self.r(wpe)).transpose()?;
            let (wte, out) = (self.r(wte)?, self.w(&out)?);
            ops::embedding_forward(dev, tokens, &positions, wte, wpe, out, c)
        });
    }

    fn embedding_backward(
        &self,
        dout: Slice<'_>,
        tokens: &[u32],
        positions: &[usize],
        dwte: SliceMut<'_>,
        dwpe: SliceMut<'_>,
    ) {
        self.run(|dev| {
            let c = dout.len().checked_div(tokens.len()).unwrap_or(0);
            let positions = positions_u32(positions)?;
            let (dout, dwte, dwpe) = (self.r(dout)?, self.w(&dwte)?, self.w(&dwpe)?);
            ops::embedding_backward(dev, dout, tokens, &positions, dwte, dwpe, c)
        });
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
        self.run(|dev| {
            let bias = bias.map(|b| self.r(b)).transpose()?;
            ops::linear_forward(
                dev,
                self.inputs,
                self.r(x)?,
                self.r(w)?,
                bias,
                self.w(&out)?,
                d_in,
                d_out,
            )
        });
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
        self.run(|dev| {
            let db = db.as_ref().map(|b| self.w(b)).transpose()?;
            let (dy, x, w) = (self.r(dy)?, self.r(x)?, self.r(w)?);
            let (dx, dw) = (self.w(&dx)?, self.w(&dw)?);
            ops::linear_backward(dev, self.inputs, dy, x, w, dx, dw, db, d_in, d_out)
        });
    }

    fn tied_head_forward(&self, x: Slice<'_>, wte: Slice<'_>, logits: SliceMut<'_>, c: usize) {
        self.run(|dev| {
            let (x, wte, logits) = (self.r(x)?, self.r(wte)?, self.w(&logits)?);
            ops::tied_head_forward(dev, self.inputs, x, wte, logits, c)
        });
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
        self.run(|dev| {
            let (dlogits, x, wte) = (self.r(dlogits)?, self.r(x)?, self.r(wte)?);
            let (dx, dwte) = (self.w(&dx)?, self.w(&dwte)?);
            ops::tied_head_backward(dev, self.inputs, dlogits, x, wte, dx, dwte, c)
        });
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
        self.run(|dev| {
            let (x, w, b) = (self.r(x)?, self.r(w)?, self.r(b)?);
            ops::layernorm_forward(dev, x, w, b, self.w(&out)?, self.w(&mean)?, self.w(&rstd)?)
        });
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
        self.run(|dev| {
            let (dout, x, w) = (self.r(dout)?, self.r(x)?, self.r(w)?);
            let (mean, rstd) = (self.r(mean)?, self.r(rstd)?);
            let (dx, dw, db) = (self.w(&dx)?, self.w(&dw)?, self.w(&db)?);
            ops::layernorm_backward(dev, dout, x, w, mean, rstd, dx, dw, db)
        });
    }

    fn bias_gelu_forward(&self, bias: Slice<'_>, pre: SliceMut<'_>, out: SliceMut<'_>) {
        self.run(|dev| ops::bias_gelu_forward(dev, self.r(bias)?, self.w(&pre)?, self.w(&out)?));
    }

    fn gelu_backward(&self, slope: Slice<'_>, grad: SliceMut<'_>) {
        self.run(|dev| ops::gelu_backward_from_slope(dev, self.r(slope)?, self.w(&grad)?));
    }

    fn residual_add(&self, a: Slice<'_>, b: Slice<'_>, bias: Slice<'_>, out: SliceMut<'_>) {
        self.run(|dev| {
            ops::residual_add(dev, self.r(a)?, self.r(b)?, self.r(bias)?, self.w(&out)?)
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
        self.run(|dev| ops::split_heads(dev, layout, self.r(src)?, width, col0, self.w(&dst)?));
    }

    fn merge_heads(
        &self,
        layout: &HeadLayout,
        src: Slice<'_>,
        dst: SliceMut<'_>,
        width: usize,
        col0: usize,
    ) {
        self.run(|dev| ops::merge_heads(dev, layout, self.r(src)?, self.w(&dst)?, width, col0));
    }

    fn cross_entropy_forward(
        &self,
        logits: Slice<'_>,
        targets: &[u32],
        lse: SliceMut<'_>,
    ) -> Result<LossSum, TargetOutOfRange> {
        // Bad targets are the caller's error, reported as on the CPU.
        check_targets(
            targets,
            logits.len().checked_div(targets.len()).unwrap_or(0),
        )?;
        let sum = self
            .memory
            .run(|dev| ops::cross_entropy_forward(dev, self.r(logits)?, targets, self.w(&lse)?));
        Ok(sum.unwrap_or(LossSum {
            sum: f64::NAN,
            count: targets.len(),
        }))
    }

    fn cross_entropy_backward(
        &self,
        logits: SliceMut<'_>,
        targets: &[u32],
        lse: Slice<'_>,
        scale: f32,
    ) {
        self.run(|dev| {
            ops::cross_entropy_backward(dev, self.w(&logits)?, targets, self.r(lse)?, scale)
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
        self.run(|dev| {
            let (q, k, v) = (self.r(q)?, self.r(k)?, self.r(v)?);
            ops::attention_forward(dev, call, q, k, v, self.w(&out)?, self.w(&lse)?)
        });
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
        self.run(|dev| {
            let (q, k, v) = (self.r(q)?, self.r(k)?, self.r(v)?);
            let (out, lse, dout) = (self.r(out)?, self.r(lse)?, self.r(dout)?);
            let (dq, dk, dv) = (self.w(&dq)?, self.w(&dk)?, self.w(&dv)?);
            ops::attention_backward(dev, call, q, k, v, out, lse, dout, dq, dk, dv)
        });
    }

    fn attention_forward_packed(
        &self,
        call: &PackedAttention,
        qkv: QkvProjection<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) {
        self.run(|dev| {
            let (data, bias) = (self.r(qkv.data)?, self.r(qkv.bias)?);
            ops::packed_attention_forward(dev, call, data, bias, self.w(&out)?, self.w(&lse)?)
        });
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
        self.run(|dev| {
            let (data, bias) = (self.r(qkv.data)?, self.r(qkv.bias)?);
            let (out, lse, dout) = (self.r(out)?, self.r(lse)?, self.r(dout)?);
            ops::packed_attention_backward(dev, call, data, bias, out, lse, dout, self.w(&dqkv)?)
        });
    }

    fn sum_of_squares(&self, x: Slice<'_>) -> f64 {
        self.memory
            .run(|dev| ops::sum_of_squares(dev, self.r(x)?))
            .unwrap_or(f64::NAN)
    }

    fn scale(&self, x: SliceMut<'_>, factor: f32) {
        self.run(|dev| ops::scale(dev, self.w(&x)?, factor));
    }

    fn adamw_update(
        &self,
        update: &AdamWUpdate<'_>,
        params: SliceMut<'_>,
        grads: Slice<'_>,
        m: SliceMut<'_>,
        v: SliceMut<'_>,
    ) {
        self.run(|dev| {
            if update.mask.len() != params.len() {
                return Err(CudaError::Shape {
                    kernel: "adamw_step",
                    problem: format!(
                        "the decay mask covers {} values, the parameters are {}",
                        update.mask.len(),
                        params.len()
                    ),
                });
            }
            let step = AdamWStep {
                beta1: update.beta1,
                beta2: update.beta2,
                eps: update.eps,
                step_size: update.step_size,
                bias_correction2_sqrt: update.bias_correction2_sqrt,
                decay_factor: update.decay_factor,
            };
            let (p, g, m, v) = (self.w(&params)?, self.r(grads)?, self.w(&m)?, self.w(&v)?);
            ops::adamw_step(dev, p, g, m, v, update.mask.decayed_ranges(), step)
        });
    }
}

//! The shared orchestration (`cuda::ops`) run by the
//! [`Emulator`] on host slices: one safe function per operation, for tests
//! that compare single operations with the CPU.

use std::ops::Range;

use cptrain::kernels::{BatchedAttention, HeadLayout, LossSum};

use super::Emulator;
use crate::cuda::launch::AdamWStep;
use crate::cuda::launcher::Span;
use crate::cuda::{CudaError, ops};

const DEV: &Emulator = &Emulator;

fn r(values: &[f32]) -> Span {
    Span::host(values)
}

fn w(values: &mut [f32]) -> Span {
    Span::host_mut(values)
}

/// `Kernels::round_to_bf16`: `x` rounded to bf16, two values to a word.
pub fn round_to_bf16(x: &[f32], words: &mut [u32]) -> Result<(), CudaError> {
    let words = bytemuck::cast_slice_mut(words);
    ops::round_to_bf16(DEV, r(x), w(words), x.len())
}

/// `Kernels::widen_bf16`: the values `words` holds, as f32.
pub fn widen_bf16(words: &[u32], x: &mut [f32]) -> Result<(), CudaError> {
    let len = x.len();
    ops::widen_bf16(DEV, r(bytemuck::cast_slice(words)), len, w(x))
}

/// `cptrain::kernels::layernorm_forward`.
pub fn layernorm_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) -> Result<(), CudaError> {
    ops::layernorm_forward(DEV, r(x), r(weight), r(bias), w(out), w(mean), w(rstd))
}

/// `cptrain::kernels::layernorm_backward` (accumulates).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dout: &[f32],
    x: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
) -> Result<(), CudaError> {
    let ins = [r(dout), r(x), r(weight), r(mean), r(rstd)];
    let [dout, x, weight, mean, rstd] = ins;
    ops::layernorm_backward(
        DEV,
        dout,
        x,
        weight,
        mean,
        rstd,
        w(dx),
        w(dweight),
        w(dbias),
    )
}

/// `cptrain::kernels::bias_gelu_forward`.
pub fn bias_gelu_forward(bias: &[f32], pre: &mut [f32], out: &mut [f32]) -> Result<(), CudaError> {
    ops::bias_gelu_forward(DEV, r(bias), w(pre), w(out))
}

/// `cptrain::kernels::gelu_backward_from_slope`.
pub fn gelu_backward_from_slope(slope: &[f32], grad: &mut [f32]) -> Result<(), CudaError> {
    ops::gelu_backward_from_slope(DEV, r(slope), w(grad))
}

/// `cptrain::kernels::residual_add`.
pub fn residual_add(a: &[f32], b: &[f32], bias: &[f32], out: &mut [f32]) -> Result<(), CudaError> {
    ops::residual_add(DEV, r(a), r(b), r(bias), w(out))
}

/// `cptrain::kernels::cross_entropy_forward`.
pub fn cross_entropy_forward(
    logits: &[f32],
    targets: &[u32],
    lse: &mut [f32],
) -> Result<LossSum, CudaError> {
    ops::cross_entropy_forward(DEV, r(logits), targets, w(lse))
}

/// `cptrain::kernels::cross_entropy_backward`.
pub fn cross_entropy_backward(
    logits: &mut [f32],
    targets: &[u32],
    lse: &[f32],
    scale: f32,
) -> Result<(), CudaError> {
    ops::cross_entropy_backward(DEV, w(logits), targets, r(lse), scale)
}

/// The model's embedding forward, rows `c` wide.
pub fn embedding_forward(
    tokens: &[u32],
    positions: &[u32],
    wte: &[f32],
    wpe: Option<&[f32]>,
    out: &mut [f32],
    c: usize,
) -> Result<(), CudaError> {
    ops::embedding_forward(DEV, tokens, positions, r(wte), wpe.map(r), w(out), c)
}

/// The model's embedding backward (accumulates).
pub fn embedding_backward(
    grad: &[f32],
    tokens: &[u32],
    positions: &[u32],
    dwte: &mut [f32],
    dwpe: &mut [f32],
    c: usize,
) -> Result<(), CudaError> {
    ops::embedding_backward(DEV, r(grad), tokens, positions, w(dwte), w(dwpe), c)
}

/// `split_heads` over the whole batch.
pub fn split_heads(
    l: &HeadLayout,
    src: &[f32],
    width: usize,
    col0: usize,
    dst: &mut [f32],
) -> Result<(), CudaError> {
    ops::split_heads(DEV, l, r(src), width, col0, w(dst))
}

/// `merge_heads` over the whole batch.
pub fn merge_heads(
    l: &HeadLayout,
    src: &[f32],
    dst: &mut [f32],
    width: usize,
    col0: usize,
) -> Result<(), CudaError> {
    ops::merge_heads(DEV, l, r(src), w(dst), width, col0)
}

/// `BatchedAttention::forward`.
pub fn attention_forward(
    a: &BatchedAttention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) -> Result<(), CudaError> {
    ops::attention_forward(DEV, a, r(q), r(k), r(v), w(out), w(lse))
}

/// `BatchedAttention::backward` (accumulates).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    a: &BatchedAttention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) -> Result<(), CudaError> {
    let [q, k, v, out, lse, dout] = [r(q), r(k), r(v), r(out), r(lse), r(dout)];
    ops::attention_backward(DEV, a, q, k, v, out, lse, dout, w(dq), w(dk), w(dv))
}

/// `cptrain::kernels::merge_partial`.
pub fn attention_merge(
    o_acc: &mut [f32],
    lse_acc: &mut [f32],
    o_part: &[f32],
    lse_part: &[f32],
) -> Result<(), CudaError> {
    ops::attention_merge(DEV, w(o_acc), w(lse_acc), r(o_part), r(lse_part))
}

/// `acc += colsum(m)`.
pub fn column_sum_into(m: &[f32], acc: &mut [f32]) -> Result<(), CudaError> {
    ops::column_sum_into(DEV, r(m), w(acc))
}

/// `cptrain::optim::sum_of_squares`.
pub fn sum_of_squares(values: &[f32]) -> Result<f64, CudaError> {
    ops::sum_of_squares(DEV, r(values))
}

/// `cptrain::optim::scale`.
pub fn scale(values: &mut [f32], factor: f32) -> Result<(), CudaError> {
    ops::scale(DEV, w(values), factor)
}

/// One AdamW step with decay on `decayed`.
pub fn adamw_step(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    decayed: &[Range<usize>],
    step: AdamWStep,
) -> Result<(), CudaError> {
    ops::adamw_step(DEV, w(params), r(grads), w(m), w(v), decayed, step)
}

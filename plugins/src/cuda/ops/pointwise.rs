use super::{Launcher, Span, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{elementwise, to_i32, to_i64};
use crate::cuda::launcher::params;

/// `cptrain::kernels::bias_gelu_forward`: `out = gelu(pre + bias)`, and
/// `pre` ← the slope `gelu′(pre + bias)`.
pub fn bias_gelu_forward(
    dev: &dyn Launcher,
    bias: Span,
    pre: Span,
    out: Span,
) -> Result<(), CudaError> {
    const K: &str = "bias_gelu_forward";
    let rows = rows_of(K, "pre", pre.len, bias.len)?;
    ensure_len(K, "out", out.len, rows, bias.len)?;
    let (b, p, o) = (bias.addr, pre.addr, out.addr);
    let (count, width) = (
        to_i64(pre.len, K, "elements")?,
        to_i32(bias.len, K, "width")?,
    );
    // SAFETY: argument types match; sizes checked above.
    unsafe {
        dev.launch(
            K,
            &elementwise(pre.len),
            &mut params![b, p, o, count, width],
        )
    }
}

/// `cptrain::kernels::gelu_backward_from_slope`: `grad *= slope`.
pub fn gelu_backward_from_slope(
    dev: &dyn Launcher,
    slope: Span,
    grad: Span,
) -> Result<(), CudaError> {
    const K: &str = "gelu_backward_from_slope";
    ensure_len(K, "grad", grad.len, slope.len, 1)?;
    let (s, g, count) = (slope.addr, grad.addr, to_i64(slope.len, K, "elements")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &elementwise(slope.len), &mut params![s, g, count]) }
}

/// `cptrain::kernels::residual_add`: `out = a + (b + bias)`, bias per row.
pub fn residual_add(
    dev: &dyn Launcher,
    a: Span,
    b: Span,
    bias: Span,
    out: Span,
) -> Result<(), CudaError> {
    const K: &str = "residual_add";
    let rows = rows_of(K, "a", a.len, bias.len)?;
    ensure_len(K, "b", b.len, rows, bias.len)?;
    ensure_len(K, "out", out.len, rows, bias.len)?;
    let (ap, bp, biasp, o) = (a.addr, b.addr, bias.addr, out.addr);
    let (count, width) = (to_i64(a.len, K, "elements")?, to_i32(bias.len, K, "width")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe {
        dev.launch(
            K,
            &elementwise(a.len),
            &mut params![ap, bp, biasp, o, count, width],
        )
    }
}

/// `out = src + bias` per row, or `out = bias` in every row without `src`
/// (the bias the linear forward's GEMM then adds to).
pub fn bias_add(
    dev: &dyn Launcher,
    src: Option<Span>,
    bias: Span,
    out: Span,
) -> Result<(), CudaError> {
    const K: &str = "bias_add";
    let rows = rows_of(K, "out", out.len, bias.len)?;
    if let Some(src) = src {
        ensure_len(K, "src", src.len, rows, bias.len)?;
    }
    let (s, b, o) = (src.map_or(0, |s| s.addr), bias.addr, out.addr);
    let (count, width) = (
        to_i64(out.len, K, "elements")?,
        to_i32(bias.len, K, "width")?,
    );
    // SAFETY: argument types match (a null `src` is allowed); sizes checked above.
    unsafe {
        dev.launch(
            K,
            &elementwise(out.len),
            &mut params![s, b, o, count, width],
        )
    }
}

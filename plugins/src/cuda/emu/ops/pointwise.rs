use super::super::runtime::{launch, params};
use super::{ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{elementwise, to_i32, to_i64};

/// `cptrain::kernels::bias_gelu_forward`: `out = gelu(pre + bias)`, and
/// `pre` ← the slope `gelu′(pre + bias)`.
pub fn bias_gelu_forward(bias: &[f32], pre: &mut [f32], out: &mut [f32]) -> Result<(), CudaError> {
    const K: &str = "bias_gelu_forward";
    let rows = rows_of(K, "pre", pre.len(), bias.len())?;
    ensure_len(K, "out", out.len(), rows, bias.len())?;
    let n = pre.len();
    let (b, p, o) = (bias.as_ptr(), pre.as_mut_ptr(), out.as_mut_ptr());
    let (count, width) = (to_i64(n, K, "elements")?, to_i32(bias.len(), K, "width")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { launch(K, &elementwise(n), &mut params![b, p, o, count, width]) }
}

/// `cptrain::kernels::gelu_backward_from_slope`: `grad *= slope`.
pub fn gelu_backward_from_slope(slope: &[f32], grad: &mut [f32]) -> Result<(), CudaError> {
    const K: &str = "gelu_backward_from_slope";
    ensure_len(K, "grad", grad.len(), slope.len(), 1)?;
    let (s, g, count) = (
        slope.as_ptr(),
        grad.as_mut_ptr(),
        to_i64(slope.len(), K, "elements")?,
    );
    // SAFETY: argument types match; sizes checked above.
    unsafe { launch(K, &elementwise(slope.len()), &mut params![s, g, count]) }
}

/// `cptrain::kernels::residual_add`: `out = a + (b + bias)`, bias per row.
pub fn residual_add(a: &[f32], b: &[f32], bias: &[f32], out: &mut [f32]) -> Result<(), CudaError> {
    const K: &str = "residual_add";
    let rows = rows_of(K, "a", a.len(), bias.len())?;
    ensure_len(K, "b", b.len(), rows, bias.len())?;
    ensure_len(K, "out", out.len(), rows, bias.len())?;
    let (ap, bp, biasp, o) = (a.as_ptr(), b.as_ptr(), bias.as_ptr(), out.as_mut_ptr());
    let (count, width) = (
        to_i64(a.len(), K, "elements")?,
        to_i32(bias.len(), K, "width")?,
    );
    // SAFETY: argument types match; sizes checked above.
    unsafe {
        launch(
            K,
            &elementwise(a.len()),
            &mut params![ap, bp, biasp, o, count, width],
        )
    }
}

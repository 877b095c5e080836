use cptrain::kernels::HeadLayout;

use super::{Launcher, Span, ensure, ensure_len};
use crate::cuda::CudaError;
use crate::cuda::launch::{elementwise, to_i32};
use crate::cuda::launcher::params;

/// Checks the layout against both buffers; returns the kernel's size arguments.
fn sizes(
    k: &'static str,
    l: &HeadLayout,
    token_major: usize,
    width: usize,
    col0: usize,
    head_major: usize,
) -> Result<[i32; 6], CudaError> {
    ensure(k, col0 + l.n_head * l.head_dim <= width, || {
        format!(
            "head columns {col0}..{} exceed the row width {width}",
            col0 + l.n_head * l.head_dim
        )
    })?;
    ensure_len(k, "token-major buffer", token_major, l.batch * l.len, width)?;
    ensure_len(
        k,
        "head-major buffer",
        head_major,
        l.batch * l.n_head,
        l.len * l.head_dim,
    )?;
    Ok([
        to_i32(l.batch, k, "batch")?,
        to_i32(l.len, k, "len")?,
        to_i32(l.n_head, k, "n_head")?,
        to_i32(l.head_dim, k, "head_dim")?,
        to_i32(width, k, "width")?,
        to_i32(col0, k, "col0")?,
    ])
}

/// `dst[b, h, t, :] = src[b, t, col0 + h·head_dim ..]` for the whole batch
/// (`cptrain`'s `split_heads` with `first_block = 0`).
pub fn split_heads(
    dev: &dyn Launcher,
    l: &HeadLayout,
    src: Span,
    width: usize,
    col0: usize,
    dst: Span,
) -> Result<(), CudaError> {
    const K: &str = "split_heads";
    let [b, t, h, d, w, c0] = sizes(K, l, src.len, width, col0, dst.len)?;
    let (s, o) = (src.addr, dst.addr);
    // SAFETY: argument types match; sizes checked above.
    unsafe {
        dev.launch(
            K,
            &elementwise(dst.len),
            &mut params![s, o, b, t, h, d, w, c0],
        )
    }
}

/// The inverse of [`split_heads`]: `dst[b, t, col0 + h·head_dim ..] =
/// src[b, h, t, :]`, other columns of `dst` untouched.
pub fn merge_heads(
    dev: &dyn Launcher,
    l: &HeadLayout,
    src: Span,
    dst: Span,
    width: usize,
    col0: usize,
) -> Result<(), CudaError> {
    const K: &str = "merge_heads";
    let [b, t, h, d, w, c0] = sizes(K, l, dst.len, width, col0, src.len)?;
    let (s, o) = (src.addr, dst.addr);
    // SAFETY: argument types match; sizes checked above.
    unsafe {
        dev.launch(
            K,
            &elementwise(src.len),
            &mut params![s, o, b, t, h, d, w, c0],
        )
    }
}

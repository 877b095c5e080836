//! bf16 storage of f32 values: `len` values two to a word of a [`Span`] of
//! `len.div_ceil(2)` words.

use super::{Launcher, Span, ensure_len};
use crate::cuda::CudaError;
use crate::cuda::launch::{elementwise, to_i64};
use crate::cuda::launcher::params;

/// `Kernels::round_to_bf16`: the values of `x` rounded to bf16 into the
/// `len` values of `words`.
pub fn round_to_bf16(
    dev: &dyn Launcher,
    x: Span,
    words: Span,
    len: usize,
) -> Result<(), CudaError> {
    const K: &str = "round_to_bf16";
    ensure_len(K, "x", x.len, len, 1)?;
    ensure_len(K, "words", words.len, len.div_ceil(2), 1)?;
    let (p, w, n) = (x.addr, words.addr, to_i64(len, K, "elements")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &elementwise(words.len), &mut params![p, w, n]) }
}

/// `Kernels::widen_bf16`: the `len` values held by `words`, as f32, into `x`.
pub fn widen_bf16(dev: &dyn Launcher, words: Span, len: usize, x: Span) -> Result<(), CudaError> {
    const K: &str = "widen_bf16";
    ensure_len(K, "x", x.len, len, 1)?;
    ensure_len(K, "words", words.len, len.div_ceil(2), 1)?;
    let (w, p, n) = (words.addr, x.addr, to_i64(len, K, "elements")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &elementwise(len), &mut params![w, p, n]) }
}

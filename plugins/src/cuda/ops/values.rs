//! Whole-buffer fills, copies and sums.

use std::ops::Range;

use super::{Launcher, Span, ensure, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{elementwise, to_i32, to_i64};
use crate::cuda::launcher::params;

/// `Kernels::fill`: `x = value` everywhere.
pub fn fill(dev: &dyn Launcher, x: Span, value: f32) -> Result<(), CudaError> {
    const K: &str = "fill_values";
    let (p, n) = (x.addr, to_i64(x.len, K, "elements")?);
    // SAFETY: argument types match.
    unsafe { dev.launch(K, &elementwise(x.len), &mut params![p, n, value]) }
}

/// `Kernels::copy`: `dst = src`.
pub fn copy(dev: &dyn Launcher, src: Span, dst: Span) -> Result<(), CudaError> {
    const K: &str = "copy_values";
    ensure_len(K, "dst", dst.len, src.len, 1)?;
    let (s, d, n) = (src.addr, dst.addr, to_i64(src.len, K, "elements")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &elementwise(src.len), &mut params![s, d, n]) }
}

/// `Kernels::add_assign`: `acc += x`.
pub fn add_assign(dev: &dyn Launcher, acc: Span, x: Span) -> Result<(), CudaError> {
    const K: &str = "add_values";
    ensure_len(K, "x", x.len, acc.len, 1)?;
    let (a, p, n) = (acc.addr, x.addr, to_i64(acc.len, K, "elements")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &elementwise(acc.len), &mut params![a, p, n]) }
}

/// `Kernels::fill_columns`: columns `columns` of every `width`-wide row of
/// `x` = `value`.
pub fn fill_columns(
    dev: &dyn Launcher,
    x: Span,
    width: usize,
    columns: Range<usize>,
    value: f32,
) -> Result<(), CudaError> {
    const K: &str = "fill_columns";
    ensure(K, columns.end <= width, || {
        format!("columns {columns:?} are not inside rows of {width}")
    })?;
    if columns.is_empty() || x.len == 0 {
        return Ok(());
    }
    let rows = rows_of(K, "x", x.len, width)?;
    let elements = rows * columns.len();
    let (p, n) = (x.addr, to_i64(elements, K, "elements")?);
    let w = to_i32(width, K, "width")?;
    let (first, count) = (
        to_i32(columns.start, K, "columns")?,
        to_i32(columns.len(), K, "columns")?,
    );
    // SAFETY: argument types match; the columns lie inside every row.
    unsafe {
        dev.launch(
            K,
            &elementwise(elements),
            &mut params![p, n, w, first, count, value],
        )
    }
}

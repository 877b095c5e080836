//! Whole-buffer fills, copies and sums.

use std::ops::Range;

use super::{Launcher, Span, ensure, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{elementwise, to_i32, to_i64};
use crate::cuda::launcher::{Scratch, params};
use cptrain::kernels::Runs;

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

/// `Kernels::copy_runs`: every run of `runs` from `src` to `dst`, in one
/// launch (the run starts go to the device as a table).
pub fn copy_runs(dev: &dyn Launcher, src: Span, dst: Span, runs: &Runs) -> Result<(), CudaError> {
    const K: &str = "copy_runs";
    let elements = runs.starts.len() * runs.len;
    if elements == 0 {
        return Ok(());
    }
    let inside =
        |start: usize, len: usize| start.checked_add(runs.len).is_some_and(|end| end <= len);
    if let Some(&(from, to)) =
        (runs.starts.iter()).find(|&&(f, t)| !inside(f, src.len) || !inside(t, dst.len))
    {
        return Err(CudaError::Shape {
            kernel: K,
            problem: format!(
                "a run of {} values from {from} to {to} leaves src ({}) or dst ({})",
                runs.len, src.len, dst.len
            ),
        });
    }
    let starts: Vec<i64> = (runs.starts.iter())
        .flat_map(|&(from, to)| [from, to])
        .map(|at| to_i64(at, K, "run start"))
        .collect::<Result<_, _>>()?;
    let table = Scratch::from_host(dev, &starts)?;
    let (s, d, t) = (src.addr, dst.addr, table.addr());
    let (len, n) = (
        to_i64(runs.len, K, "run length")?,
        to_i64(elements, K, "elements")?,
    );
    // SAFETY: argument types match; every run lies inside both buffers.
    unsafe { dev.launch(K, &elementwise(elements), &mut params![s, d, t, len, n]) }
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

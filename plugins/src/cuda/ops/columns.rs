use super::{Launcher, Span, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{column_partials, column_reduce, row_chunks, to_i32};
use crate::cuda::launcher::{Scratch, params};

/// `acc += Σ_rows m[row]` for a row-major `m` with `acc.len` columns (the
/// bias gradient `db += colsum(dy)` of `cptrain::kernels::linear_backward`),
/// deterministic: per-chunk partials, then an ordered sum per column.
pub fn column_sum_into(dev: &dyn Launcher, m: Span, acc: Span) -> Result<(), CudaError> {
    const K: &str = "column_sum_partials";
    let width = acc.len;
    let rows = rows_of(K, "m", m.len, width)?;
    if rows == 0 {
        return Ok(());
    }
    let (per_chunk, chunks) = row_chunks(rows);
    let partials = Scratch::<f32>::zeroed(dev, chunks * width)?;
    let (mp, part, accp) = (m.addr, partials.addr(), acc.addr);
    let (n, c, per, chunks_i) = (
        to_i32(rows, K, "rows")?,
        to_i32(width, K, "C")?,
        per_chunk as i32,
        chunks as i32,
    );
    // SAFETY: argument types match; `partials` holds chunks × width.
    unsafe {
        dev.launch(
            K,
            &column_partials(rows, width),
            &mut params![mp, part, n, c, per],
        )?;
        dev.launch(
            "add_column_partials",
            &column_reduce(width),
            &mut params![part, chunks_i, c, accp],
        )
    }
}

use super::{Launcher, Span, ensure, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{column_partials, column_reduce, row_chunks, to_i32, warp_per_row};
use crate::cuda::launcher::{Scratch, params};

/// `cptrain::kernels::layernorm_forward`: `out`, `mean`, `rstd` from `x`.
pub fn layernorm_forward(
    dev: &dyn Launcher,
    x: Span,
    weight: Span,
    bias: Span,
    out: Span,
    mean: Span,
    rstd: Span,
) -> Result<(), CudaError> {
    const K: &str = "layernorm_forward";
    let c = weight.len;
    let rows = rows_of(K, "x", x.len, c)?;
    ensure_len(K, "bias", bias.len, 1, c)?;
    ensure_len(K, "out", out.len, rows, c)?;
    ensure_len(K, "mean", mean.len, rows, 1)?;
    ensure_len(K, "rstd", rstd.len, rows, 1)?;
    if rows == 0 {
        return Ok(());
    }
    let (x, w, b) = (x.addr, weight.addr, bias.addr);
    let (out, mean, rstd) = (out.addr, mean.addr, rstd.addr);
    let (n, c) = (to_i32(rows, K, "rows")?, to_i32(c, K, "C")?);
    // SAFETY: argument types match the kernel; every buffer was checked above.
    unsafe {
        dev.launch(
            K,
            &warp_per_row(rows),
            &mut params![x, w, b, out, mean, rstd, n, c],
        )
    }
}

/// `cptrain::kernels::layernorm_backward`: ACCUMULATES into `dx`, `dweight`
/// and `dbias`; the weight gradients go through per-chunk partials, summed
/// in chunk order (deterministic).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dev: &dyn Launcher,
    dout: Span,
    x: Span,
    weight: Span,
    mean: Span,
    rstd: Span,
    dx: Span,
    dweight: Span,
    dbias: Span,
) -> Result<(), CudaError> {
    const K: &str = "layernorm_backward_dx";
    let c = weight.len;
    let rows = rows_of(K, "x", x.len, c)?;
    for (name, len) in [("dout", dout.len), ("dx", dx.len)] {
        ensure_len(K, name, len, rows, c)?;
    }
    for (name, len) in [("mean", mean.len), ("rstd", rstd.len)] {
        ensure_len(K, name, len, rows, 1)?;
    }
    ensure(K, dweight.len == c && dbias.len == c, || {
        format!(
            "dweight, dbias have {}, {} elements, expected {c}",
            dweight.len, dbias.len
        )
    })?;
    if rows == 0 {
        return Ok(());
    }
    let (per_chunk, chunks) = row_chunks(rows);
    let partials = Scratch::<f32>::zeroed(dev, 2 * chunks * c)?;
    let (dy, xp, w, m, s) = (dout.addr, x.addr, weight.addr, mean.addr, rstd.addr);
    let (dxp, part) = (dx.addr, partials.addr());
    let (n, ci, per) = (
        to_i32(rows, K, "rows")?,
        to_i32(c, K, "C")?,
        per_chunk as i32,
    );
    let chunks_i = chunks as i32;
    let (dw_part, db_part) = (partials.addr(), partials.addr_at(chunks * c));
    let (dw, db) = (dweight.addr, dbias.addr);
    let reduce = column_reduce(c);
    // SAFETY: argument types match the kernels; every buffer was checked
    // above and `partials` holds 2 × chunks × C.
    unsafe {
        dev.launch(
            K,
            &warp_per_row(rows),
            &mut params![dy, xp, w, m, s, dxp, n, ci],
        )?;
        dev.launch(
            "layernorm_param_partials",
            &column_partials(rows, c),
            &mut params![dy, xp, m, s, part, n, ci, per],
        )?;
        dev.launch(
            "add_column_partials",
            &reduce,
            &mut params![dw_part, chunks_i, ci, dw],
        )?;
        dev.launch(
            "add_column_partials",
            &reduce,
            &mut params![db_part, chunks_i, ci, db],
        )
    }
}

use super::super::runtime::{launch, params};
use super::{ensure, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{column_partials, column_reduce, row_chunks, to_i32, warp_per_row};

/// `cptrain::kernels::layernorm_forward`: `out`, `mean`, `rstd` from `x`.
pub fn layernorm_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) -> Result<(), CudaError> {
    const K: &str = "layernorm_forward";
    let c = weight.len();
    let rows = rows_of(K, "x", x.len(), c)?;
    ensure_len(K, "bias", bias.len(), 1, c)?;
    ensure_len(K, "out", out.len(), rows, c)?;
    ensure_len(K, "mean", mean.len(), rows, 1)?;
    ensure_len(K, "rstd", rstd.len(), rows, 1)?;
    if rows == 0 {
        return Ok(());
    }
    let (x, w, b) = (x.as_ptr(), weight.as_ptr(), bias.as_ptr());
    let (out, mean, rstd) = (out.as_mut_ptr(), mean.as_mut_ptr(), rstd.as_mut_ptr());
    let (n, c) = (to_i32(rows, K, "rows")?, to_i32(c, K, "C")?);
    // SAFETY: argument types match the kernel; every buffer was checked above.
    unsafe {
        launch(
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
    dout: &[f32],
    x: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
) -> Result<(), CudaError> {
    const K: &str = "layernorm_backward_dx";
    let c = weight.len();
    let rows = rows_of(K, "x", x.len(), c)?;
    for (name, len) in [("dout", dout.len()), ("dx", dx.len())] {
        ensure_len(K, name, len, rows, c)?;
    }
    for (name, len) in [("mean", mean.len()), ("rstd", rstd.len())] {
        ensure_len(K, name, len, rows, 1)?;
    }
    ensure(K, dweight.len() == c && dbias.len() == c, || {
        format!(
            "dweight, dbias have {}, {} elements, expected {c}",
            dweight.len(),
            dbias.len()
        )
    })?;
    if rows == 0 {
        return Ok(());
    }
    let (per_chunk, chunks) = row_chunks(rows);
    let mut partials = vec![0.0f32; 2 * chunks * c];
    let (dy, xp, w, m, s) = (
        dout.as_ptr(),
        x.as_ptr(),
        weight.as_ptr(),
        mean.as_ptr(),
        rstd.as_ptr(),
    );
    let (dxp, part) = (dx.as_mut_ptr(), partials.as_mut_ptr());
    let (n, ci, per) = (
        to_i32(rows, K, "rows")?,
        to_i32(c, K, "C")?,
        per_chunk as i32,
    );
    let chunks_i = chunks as i32;
    // SAFETY: argument types match the kernels; every buffer was checked
    // above and `partials` holds 2 × chunks × C.
    unsafe {
        launch(
            K,
            &warp_per_row(rows),
            &mut params![dy, xp, w, m, s, dxp, n, ci],
        )?;
        launch(
            "layernorm_param_partials",
            &column_partials(rows, c),
            &mut params![dy, xp, m, s, part, n, ci, per],
        )?;
        let (dw_part, db_part) = (partials.as_ptr(), partials.as_ptr().add(chunks * c));
        let (dw, db) = (dweight.as_mut_ptr(), dbias.as_mut_ptr());
        let reduce = column_reduce(c);
        launch(
            "add_column_partials",
            &reduce,
            &mut params![dw_part, chunks_i, ci, dw],
        )?;
        launch(
            "add_column_partials",
            &reduce,
            &mut params![db_part, chunks_i, ci, db],
        )
    }
}

use cptrain::kernels::BatchedAttention;

use super::super::runtime::{launch, params};
use super::{ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{AttentionShape, thread_per_row, to_i32};

/// Checks every buffer against the call; `lse`-shaped buffers last.
fn check(
    a: &BatchedAttention,
    q_side: &[(&str, usize)],
    kv_side: &[(&str, usize)],
    lse_side: &[(&str, usize)],
) -> Result<AttentionShape, CudaError> {
    const K: &str = "attention";
    let shape = AttentionShape::new(a)?;
    for &(name, len) in q_side {
        ensure_len(K, name, len, a.slabs * a.q_rows.per_slab, a.head_dim)?;
    }
    for &(name, len) in kv_side {
        ensure_len(K, name, len, a.slabs * a.kv_rows.per_slab, a.head_dim)?;
    }
    for &(name, len) in lse_side {
        ensure_len(K, name, len, a.slabs, a.q_rows.per_slab)?;
    }
    Ok(shape)
}

/// `BatchedAttention::forward`: writes the selected rows of `out` and `lse`.
pub fn attention_forward(
    a: &BatchedAttention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) -> Result<(), CudaError> {
    let s = check(
        a,
        &[("q", q.len()), ("out", out.len())],
        &[("k", k.len()), ("v", v.len())],
        &[("lse", lse.len())],
    )?;
    if s.slabs == 0 || s.q_count == 0 {
        return Ok(());
    }
    let (qp, kp, vp, o, l) = (
        q.as_ptr(),
        k.as_ptr(),
        v.as_ptr(),
        out.as_mut_ptr(),
        lse.as_mut_ptr(),
    );
    // SAFETY: argument types match (AttentionShape is the kernel's struct);
    // sizes checked above.
    unsafe {
        launch(
            "attention_forward",
            &s.query_pass(),
            &mut params![qp, kp, vp, o, l, s],
        )
    }
}

/// `BatchedAttention::backward`: ACCUMULATES into the selected rows of `dq`,
/// `dk`, `dv`; `out` and `lse` are the final forward results.
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
    let s = check(
        a,
        &[
            ("q", q.len()),
            ("out", out.len()),
            ("dout", dout.len()),
            ("dq", dq.len()),
        ],
        &[
            ("k", k.len()),
            ("v", v.len()),
            ("dk", dk.len()),
            ("dv", dv.len()),
        ],
        &[("lse", lse.len())],
    )?;
    if s.slabs == 0 || s.q_count == 0 || s.kv_count == 0 {
        return Ok(());
    }
    let mut delta = vec![0.0f32; lse.len()];
    let (qp, kp, vp, o, l, d) = (
        q.as_ptr(),
        k.as_ptr(),
        v.as_ptr(),
        out.as_ptr(),
        lse.as_ptr(),
        dout.as_ptr(),
    );
    let (dqp, dkp, dvp, dl) = (
        dq.as_mut_ptr(),
        dk.as_mut_ptr(),
        dv.as_mut_ptr(),
        delta.as_mut_ptr(),
    );
    // SAFETY: argument types match; sizes checked above, `delta` is laid
    // out as `lse`.
    unsafe {
        launch(
            "attention_backward_dq",
            &s.query_pass(),
            &mut params![qp, kp, vp, o, l, d, dqp, dl, s],
        )?;
        launch(
            "attention_backward_dkdv",
            &s.key_pass(),
            &mut params![qp, kp, vp, l, dl, d, dkp, dvp, s],
        )
    }
}

/// `cptrain::kernels::merge_partial`: `(o_acc, lse_acc) ← (o_acc, lse_acc) ⊕
/// (o_part, lse_part)` row by row; `o` is `[rows, head_dim]`.
pub fn attention_merge(
    o_acc: &mut [f32],
    lse_acc: &mut [f32],
    o_part: &[f32],
    lse_part: &[f32],
) -> Result<(), CudaError> {
    const K: &str = "attention_merge";
    let rows = lse_acc.len();
    ensure_len(K, "lse_part", lse_part.len(), rows, 1)?;
    if rows == 0 {
        return Ok(());
    }
    let d = rows_of(K, "o_acc", o_acc.len(), rows)?;
    ensure_len(K, "o_part", o_part.len(), rows, d)?;
    let (o, l, op, lp) = (
        o_acc.as_mut_ptr(),
        lse_acc.as_mut_ptr(),
        o_part.as_ptr(),
        lse_part.as_ptr(),
    );
    let (n, di) = (to_i32(rows, K, "rows")?, to_i32(d, K, "head_dim")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { launch(K, &thread_per_row(rows), &mut params![o, l, op, lp, n, di]) }
}

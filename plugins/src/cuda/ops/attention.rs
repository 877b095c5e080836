use cptrain::kernels::BatchedAttention;

use super::{Launcher, Span, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{AttentionShape, thread_per_row, to_i32};
use crate::cuda::launcher::{Scratch, params};

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
    dev: &dyn Launcher,
    a: &BatchedAttention,
    q: Span,
    k: Span,
    v: Span,
    out: Span,
    lse: Span,
) -> Result<(), CudaError> {
    let s = check(
        a,
        &[("q", q.len), ("out", out.len)],
        &[("k", k.len), ("v", v.len)],
        &[("lse", lse.len)],
    )?;
    if s.slabs == 0 || s.q_count == 0 {
        return Ok(());
    }
    let (qp, kp, vp, o, l) = (q.addr, k.addr, v.addr, out.addr, lse.addr);
    // SAFETY: argument types match (AttentionShape is the kernel's struct);
    // sizes checked above.
    unsafe {
        dev.launch(
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
    dev: &dyn Launcher,
    a: &BatchedAttention,
    q: Span,
    k: Span,
    v: Span,
    out: Span,
    lse: Span,
    dout: Span,
    dq: Span,
    dk: Span,
    dv: Span,
) -> Result<(), CudaError> {
    let s = check(
        a,
        &[
            ("q", q.len),
            ("out", out.len),
            ("dout", dout.len),
            ("dq", dq.len),
        ],
        &[("k", k.len), ("v", v.len), ("dk", dk.len), ("dv", dv.len)],
        &[("lse", lse.len)],
    )?;
    if s.slabs == 0 || s.q_count == 0 || s.kv_count == 0 {
        return Ok(());
    }
    let delta = Scratch::<f32>::zeroed(dev, lse.len)?;
    let (qp, kp, vp, o, l, d) = (q.addr, k.addr, v.addr, out.addr, lse.addr, dout.addr);
    let (dqp, dkp, dvp, dl) = (dq.addr, dk.addr, dv.addr, delta.addr());
    // SAFETY: argument types match; sizes checked above, `delta` is laid
    // out as `lse`.
    unsafe {
        dev.launch(
            "attention_backward_dq",
            &s.query_pass(),
            &mut params![qp, kp, vp, o, l, d, dqp, dl, s],
        )?;
        dev.launch(
            "attention_backward_dkdv",
            &s.key_pass(),
            &mut params![qp, kp, vp, l, dl, d, dkp, dvp, s],
        )
    }
}

/// `cptrain::kernels::merge_partial`: `(o_acc, lse_acc) ← (o_acc, lse_acc) ⊕
/// (o_part, lse_part)` row by row; `o` is `[rows, head_dim]`.
pub fn attention_merge(
    dev: &dyn Launcher,
    o_acc: Span,
    lse_acc: Span,
    o_part: Span,
    lse_part: Span,
) -> Result<(), CudaError> {
    const K: &str = "attention_merge";
    let rows = lse_acc.len;
    ensure_len(K, "lse_part", lse_part.len, rows, 1)?;
    if rows == 0 {
        return Ok(());
    }
    let d = rows_of(K, "o_acc", o_acc.len, rows)?;
    ensure_len(K, "o_part", o_part.len, rows, d)?;
    let (o, l, op, lp) = (o_acc.addr, lse_acc.addr, o_part.addr, lse_part.addr);
    let (n, di) = (to_i32(rows, K, "rows")?, to_i32(d, K, "head_dim")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &thread_per_row(rows), &mut params![o, l, op, lp, n, di]) }
}

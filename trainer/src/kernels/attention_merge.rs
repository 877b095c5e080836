//! Exact merge of attention results computed over disjoint key sets
//! (docs/cp-attention.md §3).
//!
//! A partial result is `(o, lse)` with `o` normalised within its own keys.
//! Merging `(o_a, lse_a) ⊕ (o_b, lse_b)` gives `lse = log(e^lse_a + e^lse_b)`
//! and `o = e^(lse_a − lse)·o_a + e^(lse_b − lse)·o_b`: both weights are at most
//! 1, so nothing overflows. A partial with `lse = −inf` (no visible key)
//! contributes nothing, and a row that never sees a key stays `o = 0`,
//! `lse = −inf`, with no NaN.

/// Sets an accumulator to "no keys seen yet": `o = 0`, `lse = −inf`.
pub fn clear_partial(o_acc: &mut [f32], lse_acc: &mut [f32]) {
    o_acc.fill(0.0);
    lse_acc.fill(f32::NEG_INFINITY);
}

/// `(o_acc, lse_acc) ← (o_acc, lse_acc) ⊕ (o_part, lse_part)`, row by row;
/// `o` is `[rows, head_dim]` and `lse` is `[rows]`.
pub fn merge_partial(o_acc: &mut [f32], lse_acc: &mut [f32], o_part: &[f32], lse_part: &[f32]) {
    let rows = lse_acc.len();
    assert_eq!(
        lse_part.len(),
        rows,
        "partial lse has a different row count"
    );
    assert_eq!(
        o_acc.len(),
        o_part.len(),
        "partial output has a different size"
    );
    if rows == 0 {
        return;
    }
    assert_eq!(o_acc.len() % rows, 0, "output is not [rows, head_dim]");
    let d = o_acc.len() / rows;
    let rows = o_acc
        .chunks_exact_mut(d)
        .zip(lse_acc.iter_mut())
        .zip(o_part.chunks_exact(d).zip(lse_part));
    for ((o, lse), (o_i, &lse_i)) in rows {
        if lse_i == f32::NEG_INFINITY {
            continue;
        }
        if *lse == f32::NEG_INFINITY {
            o.copy_from_slice(o_i);
            *lse = lse_i;
            continue;
        }
        let (hi, lo) = if *lse >= lse_i {
            (*lse, lse_i)
        } else {
            (lse_i, *lse)
        };
        let merged = hi + (lo - hi).exp().ln_1p();
        let w_acc = (*lse - merged).exp();
        let w_part = (lse_i - merged).exp();
        o.iter_mut()
            .zip(o_i)
            .for_each(|(a, &b)| *a = w_acc * *a + w_part * b);
        *lse = merged;
    }
}

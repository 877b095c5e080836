//! Attention kernels through cuda-emu against `BatchedAttention` and
//! `merge_partial`.
#![cfg(feature = "cuda")]

mod cuda;

use cptrain::kernels::{BatchedAttention, Mask, Rows, Threads, merge_partial};
use cptrain_plugins::cuda::emu::ops;
use cuda::{assert_close, values};

/// Forward and backward (accumulating into nonzero gradients) for each mask
/// on 2 slabs: the whole 17-row sequence, and rows 3..12 attending to keys
/// 5..16 of a 21-row buffer (bottom-right causal and full: a CP sub-block),
/// with head widths 8 and 16 and 70 rows (two row tiles). Tolerance 2e-5
/// relative: exp and summation orders differ from the CPU's tiles.
#[test]
fn attention_matches_the_cpu() {
    let whole = |n| Rows::all(n);
    let part = |start, count| Rows {
        per_slab: 21,
        start,
        count,
    };
    let cases = [
        (8, whole(17), whole(17), Mask::Causal),
        (16, whole(17), whole(17), Mask::None),
        (8, whole(70), whole(70), Mask::Causal),
        (16, part(3, 9), part(5, 11), Mask::CausalBottomRight),
        (8, part(3, 9), part(5, 11), Mask::None),
    ];
    for (i, (d, q_rows, kv_rows, mask)) in cases.into_iter().enumerate() {
        let a = BatchedAttention {
            slabs: 2,
            head_dim: d,
            q_rows,
            kv_rows,
            scale: 1.0 / (d as f32).sqrt(),
            mask,
        };
        let (qn, kn) = (2 * q_rows.per_slab * d, 2 * kv_rows.per_slab * d);
        let seed = 100 * i as u64;
        let (q, k, v) = (
            values(qn, seed, 1.5),
            values(kn, seed + 1, 1.5),
            values(kn, seed + 2, 1.0),
        );
        let threads = Threads::single();
        let (mut out, mut lse) = (vec![0.0; qn], vec![0.0; 2 * q_rows.per_slab]);
        a.forward(&threads, &q, &k, &v, &mut out, &mut lse);
        let (mut got_out, mut got_lse) = (vec![0.0; qn], vec![0.0; 2 * q_rows.per_slab]);
        ops::attention_forward(&a, &q, &k, &v, &mut got_out, &mut got_lse).unwrap();
        assert_close(&format!("case {i} out"), &got_out, &out, 2e-5);
        assert_close(&format!("case {i} lse"), &got_lse, &lse, 2e-5);

        let dout = values(qn, seed + 3, 1.0);
        let start = (
            values(qn, seed + 4, 1.0),
            values(kn, seed + 5, 1.0),
            values(kn, seed + 6, 1.0),
        );
        let mut want = start.clone();
        a.backward(
            &threads,
            &q,
            &k,
            &v,
            &out,
            &lse,
            &dout,
            &mut want.0,
            &mut want.1,
            &mut want.2,
        );
        let mut got = start.clone();
        ops::attention_backward(
            &a, &q, &k, &v, &out, &lse, &dout, &mut got.0, &mut got.1, &mut got.2,
        )
        .unwrap();
        assert_close(&format!("case {i} dq"), &got.0, &want.0, 2e-5);
        assert_close(&format!("case {i} dk"), &got.1, &want.1, 2e-5);
        assert_close(&format!("case {i} dv"), &got.2, &want.2, 2e-5);
    }
}

/// Merging partial results, including rows where either side saw no key
/// (lse = −inf), against `merge_partial`; 1e-6 relative (expf and log1pf
/// against Rust's).
#[test]
fn merge_matches_the_cpu() {
    let (rows, d) = (7, 16);
    let mut lse_acc = values(rows, 70, 3.0);
    let mut lse_part = values(rows, 71, 3.0);
    lse_acc[1] = f32::NEG_INFINITY;
    lse_part[2] = f32::NEG_INFINITY;
    (lse_acc[3], lse_part[3]) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    let (o_acc, o_part) = (values(rows * d, 72, 1.0), values(rows * d, 73, 1.0));
    let (mut want_o, mut want_l) = (o_acc.clone(), lse_acc.clone());
    merge_partial(&mut want_o, &mut want_l, &o_part, &lse_part);
    let (mut got_o, mut got_l) = (o_acc.clone(), lse_acc.clone());
    ops::attention_merge(&mut got_o, &mut got_l, &o_part, &lse_part).unwrap();
    assert_close("o", &got_o, &want_o, 1e-6);
    assert_close("lse", &got_l, &want_l, 1e-6);
}

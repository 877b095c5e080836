//! Elementwise and row kernels through cuda-emu against the CPU kernels of
//! `cptrain`, on shapes that are not multiples of any block size.
#![cfg(feature = "cuda")]

mod cuda;

use cptrain::kernels;
use cptrain_plugins::cuda::emu::ops;
use cuda::{assert_close, values};

/// LayerNorm forward and backward (which accumulates) on 7 and 70 rows of
/// 33: the weight gradients of 70 rows take three chunks. Tolerance 2e-6
/// relative: the row sums are added in another order (warp lanes against
/// 16 vector lanes), a few f32 ulps on values of order 1.
#[test]
fn layernorm_matches_the_cpu() {
    for rows in [7, 70] {
        let c = 33;
        let x = values(rows * c, 1, 2.0);
        let (w, b) = (values(c, 2, 1.0), values(c, 3, 0.5));
        let mut want = (vec![0.0; rows * c], vec![0.0; rows], vec![0.0; rows]);
        kernels::layernorm_forward(&x, &w, &b, &mut want.0, &mut want.1, &mut want.2);
        let mut got = (vec![0.0; rows * c], vec![0.0; rows], vec![0.0; rows]);
        ops::layernorm_forward(&x, &w, &b, &mut got.0, &mut got.1, &mut got.2).unwrap();
        assert_close("out", &got.0, &want.0, 2e-6);
        assert_close("mean", &got.1, &want.1, 2e-6);
        assert_close("rstd", &got.2, &want.2, 2e-6);

        let dout = values(rows * c, 4, 1.0);
        let start = (
            values(rows * c, 5, 1.0),
            values(c, 6, 1.0),
            values(c, 7, 1.0),
        );
        let mut want_g = start.clone();
        kernels::layernorm_backward(
            &dout,
            &x,
            &w,
            &want.1,
            &want.2,
            &mut want_g.0,
            &mut want_g.1,
            &mut want_g.2,
        );
        let mut got_g = start.clone();
        ops::layernorm_backward(
            &dout,
            &x,
            &w,
            &want.1,
            &want.2,
            &mut got_g.0,
            &mut got_g.1,
            &mut got_g.2,
        )
        .unwrap();
        assert_close("dx", &got_g.0, &want_g.0, 2e-6);
        assert_close("dweight", &got_g.1, &want_g.1, 2e-6);
        assert_close("dbias", &got_g.2, &want_g.2, 2e-6);
        let mut again = start.clone();
        ops::layernorm_backward(
            &dout,
            &x,
            &w,
            &want.1,
            &want.2,
            &mut again.0,
            &mut again.1,
            &mut again.2,
        )
        .unwrap();
        assert_eq!(
            (&again.1, &again.2),
            (&got_g.1, &got_g.2),
            "weight gradients are deterministic"
        );
    }
}

/// Bias + GELU (output and saved slope), GELU backward from the slope, and
/// the residual add. Tolerance 1e-6 relative: the CPU's exp is its own
/// polynomial, a few ulp from libm's expf.
#[test]
fn gelu_and_residual_match_the_cpu() {
    let (rows, width) = (5, 33);
    let (bias, x) = (values(width, 8, 0.5), values(rows * width, 9, 4.0));
    let (mut want_pre, mut want_out) = (x.clone(), vec![0.0; x.len()]);
    kernels::bias_gelu_forward(&bias, &mut want_pre, &mut want_out);
    let (mut pre, mut out) = (x.clone(), vec![0.0; x.len()]);
    ops::bias_gelu_forward(&bias, &mut pre, &mut out).unwrap();
    assert_close("gelu", &out, &want_out, 1e-6);
    assert_close("slope", &pre, &want_pre, 1e-6);

    let dout = values(x.len(), 10, 1.0);
    let (mut want_g, mut got_g) = (dout.clone(), dout.clone());
    kernels::gelu_backward_from_slope(&want_pre, &mut want_g);
    ops::gelu_backward_from_slope(&want_pre, &mut got_g).unwrap();
    assert_eq!(got_g, want_g, "one multiply per element");

    let (mut want_r, mut got_r) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    kernels::residual_add(&x, &dout, &bias, &mut want_r);
    ops::residual_add(&x, &dout, &bias, &mut got_r).unwrap();
    assert_eq!(got_r, want_r, "the same two additions per element");
}

/// Cross-entropy forward (lse, loss sum and count, one ignored row) and
/// backward on 7 rows of a 67-token vocabulary. Tolerances: lse 1e-6
/// relative (another summation order and exp); the loss sum 1e-6 relative;
/// gradients 1e-6 relative to their scale.
#[test]
fn cross_entropy_matches_the_cpu() {
    let (rows, vocab) = (7, 67);
    let logits = values(rows * vocab, 11, 5.0);
    let targets = [3, 66, kernels::IGNORE_TARGET, 0, 12, 40, 65];
    let mut want_lse = vec![0.0; rows];
    let want = kernels::cross_entropy_forward(&logits, &targets, &mut want_lse).unwrap();
    let mut lse = vec![0.0; rows];
    let got = ops::cross_entropy_forward(&logits, &targets, &mut lse).unwrap();
    assert_close("lse", &lse, &want_lse, 1e-6);
    assert_eq!(got.count, want.count);
    assert!(
        (got.sum - want.sum).abs() <= 1e-6 * want.sum.abs(),
        "{got:?} vs {want:?}"
    );

    let scale = 1.0 / 6.0;
    let (mut want_d, mut got_d) = (logits.clone(), logits.clone());
    kernels::cross_entropy_backward(&mut want_d, &targets, &want_lse, scale);
    ops::cross_entropy_backward(&mut got_d, &targets, &want_lse, scale).unwrap();
    assert_close("dlogits", &got_d, &want_d, 1e-6);
    assert!(
        got_d[2 * vocab..3 * vocab].iter().all(|&g| g == 0.0),
        "ignored row is zero"
    );

    let bad = [3, 67, 0, 0, 0, 0, 0];
    let err = ops::cross_entropy_forward(&logits, &bad, &mut lse).unwrap_err();
    assert!(err.to_string().contains("target 67 at position 1"), "{err}");
}

/// Rounding to bf16 and widening back, on odd and even lengths, including
/// the special values: bit for bit the CPU's rounding (every device keeps
/// the same bits), and widening exact.
#[test]
fn bf16_storage_matches_the_cpu() {
    let specials = [
        f32::from_bits(0x3f80_8000), // a tie, rounded down to even
        f32::from_bits(0x3f81_8000), // a tie, rounded up to even
        f32::MAX,                    // rounds to infinity
        f32::from_bits(0x807f_ffff), // a subnormal: a signed zero
        f32::NAN,
        -0.0,
    ];
    for len in [1, 6, 257, 1000] {
        let mut x = values(len, 8, 3.0);
        for (v, &s) in x.iter_mut().zip(&specials) {
            *v = s;
        }
        let mut want = vec![0u32; len.div_ceil(2)];
        kernels::round_to_bf16(&x, &mut want);
        let mut got = vec![u32::MAX; len.div_ceil(2)];
        ops::round_to_bf16(&x, &mut got).unwrap();
        assert_eq!(got, want, "rounded words, {len} values");

        let mut back = vec![f32::NAN; len];
        ops::widen_bf16(&got, &mut back).unwrap();
        let mut want_back = vec![0.0; len];
        kernels::widen_bf16(&want, &mut want_back);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&back),
            bits(&want_back),
            "widened values, {len} values"
        );
    }
}

//! The attention block kernel at real head widths (16-64: the vectorized
//! column blocks of [`attention_tile`](super::attention_tile), plus 16-wide
//! and scalar tails) and sizes spanning several row and key tiles, against a
//! naive f64 forward and its analytic backward. The analytic backward is
//! itself checked against central differences on a small case, so a wrong
//! formula cannot hide a wrong kernel.

use super::test_support::{assert_close, central_difference, uniform, wide};
use super::{Mask, attention_block_backward, attention_block_forward};

/// Naive f64 attention: `(out, lse, probabilities [m, n])`.
fn forward_ref(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    d: usize,
    scale: f64,
    mask: Mask,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (m, n) = (q.len() / d, k.len() / d);
    let mut out = vec![0.0; m * d];
    let mut lse = vec![f64::NEG_INFINITY; m];
    let mut p = vec![0.0; m * n];
    for i in 0..m {
        let visible = mask.visible_keys(i, m, n);
        if visible == 0 {
            continue;
        }
        let s: Vec<f64> = (0..visible)
            .map(|j| scale * dot(&q[i * d..][..d], &k[j * d..][..d]))
            .collect();
        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lse[i] = mx + s.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
        for (j, sj) in s.iter().enumerate() {
            p[i * n + j] = (sj - lse[i]).exp();
            for c in 0..d {
                out[i * d + c] += p[i * n + j] * v[j * d + c];
            }
        }
    }
    (out, lse, p)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Analytic gradients `(dq, dk, dv)` of `Σ out · dout`.
fn backward_ref(
    (q, k, v, dout): (&[f64], &[f64], &[f64], &[f64]),
    d: usize,
    scale: f64,
    mask: Mask,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (m, n) = (q.len() / d, k.len() / d);
    let (out, _, p) = forward_ref(q, k, v, d, scale, mask);
    let (mut dq, mut dk, mut dv) = (vec![0.0; m * d], vec![0.0; n * d], vec![0.0; n * d]);
    for i in 0..m {
        let row_dot = dot(&out[i * d..][..d], &dout[i * d..][..d]);
        for j in 0..n {
            let pij = p[i * n + j];
            if pij == 0.0 {
                continue;
            }
            let dp = dot(&dout[i * d..][..d], &v[j * d..][..d]);
            let ds = scale * pij * (dp - row_dot);
            for c in 0..d {
                dq[i * d + c] += ds * k[j * d + c];
                dk[j * d + c] += ds * q[i * d + c];
                dv[j * d + c] += pij * dout[i * d + c];
            }
        }
    }
    (dq, dk, dv)
}

#[test]
fn analytic_reference_backward_matches_finite_differences() {
    let (m, n, d, mask) = (6, 9, 3, Mask::CausalBottomRight);
    let (q, k, v, dout) = (
        wide(&uniform(70, m * d)),
        wide(&uniform(71, n * d)),
        wide(&uniform(72, n * d)),
        wide(&uniform(73, m * d)),
    );
    let loss = |q: &[f64], k: &[f64], v: &[f64]| dot(&forward_ref(q, k, v, d, 0.6, mask).0, &dout);
    let (dq, dk, dv) = backward_ref((&q, &k, &v, &dout), d, 0.6, mask);
    let fd = [
        central_difference(|x| loss(x, &k, &v), &q),
        central_difference(|x| loss(&q, x, &v), &k),
        central_difference(|x| loss(&q, &k, x), &v),
    ];
    for (analytic, numeric) in [dq, dk, dv].iter().zip(&fd) {
        for (a, f) in analytic.iter().zip(numeric) {
            assert!((a - f).abs() < 1e-8, "{a} vs {f}");
        }
    }
}

/// (m, n, d, mask): every mask, m ≠ n both ways, partial last row and key
/// tiles (64 × 128), bottom-right rows that see nothing, widths 16 (one
/// narrow block), 32 (one wide block), 40 (wide + scalar tail), 48 (wide +
/// narrow) and 64.
const WIDE_CASES: &[(usize, usize, usize, Mask)] = &[
    (200, 200, 32, Mask::Causal),
    (130, 300, 16, Mask::CausalBottomRight),
    (300, 90, 48, Mask::CausalBottomRight),
    (70, 260, 40, Mask::None),
    (129, 129, 64, Mask::Causal),
    (64, 128, 64, Mask::None),
];

/// f32 forward and backward against f64. Tolerances: outputs are convex
/// combinations of O(1) values (1e-5 of the largest, as for the small
/// cases); gradients sum up to 300 products of f32 scores with ≤ 2-ulp exps,
/// so 2e-4 of the largest gradient.
#[test]
fn forward_and_backward_match_f64_at_head_widths_over_many_tiles() {
    for &(m, n, d, mask) in WIDE_CASES {
        let what = format!("{m}x{n}x{d} {mask:?}");
        let (q, k, v, dout) = (
            uniform(80, m * d),
            uniform(81, n * d),
            uniform(82, n * d),
            uniform(83, m * d),
        );
        // Peaked softmax rows, as in trained models.
        let q: Vec<f32> = q.iter().map(|x| x * 2.0).collect();
        let scale = 1.0 / (d as f32).sqrt();
        let (mut out, mut lse) = (vec![f32::NAN; m * d], vec![f32::NAN; m]);
        attention_block_forward(&q, &k, &v, d, scale, mask, &mut out, &mut lse);
        let (qw, kw, vw, gw) = (wide(&q), wide(&k), wide(&v), wide(&dout));
        let s = f64::from(scale);
        let (out_ref, lse_ref, _) = forward_ref(&qw, &kw, &vw, d, s, mask);
        assert_close(&format!("out {what}"), &out, &out_ref, 1e-5);
        for (i, (&a, &e)) in lse.iter().zip(&lse_ref).enumerate() {
            if e == f64::NEG_INFINITY {
                assert_eq!(a, f32::NEG_INFINITY, "lse[{i}] {what}");
            } else {
                assert!(
                    (f64::from(a) - e).abs() < 1e-5 * (1.0 + e.abs()),
                    "lse[{i}] {what}"
                );
            }
        }
        // Accumulation: gradients start at 0.5.
        let (mut dq, mut dk, mut dv) = (vec![0.5; m * d], vec![0.5; n * d], vec![0.5; n * d]);
        attention_block_backward(
            &q, &k, &v, &out, &lse, &dout, d, scale, mask, &mut dq, &mut dk, &mut dv,
        );
        let (dq_ref, dk_ref, dv_ref) = backward_ref((&qw, &kw, &vw, &gw), d, s, mask);
        let plus_half = |g: Vec<f64>| g.into_iter().map(|x| x + 0.5).collect::<Vec<_>>();
        assert_close(&format!("dq {what}"), &dq, &plus_half(dq_ref), 2e-4);
        assert_close(&format!("dk {what}"), &dk, &plus_half(dk_ref), 2e-4);
        assert_close(&format!("dv {what}"), &dv, &plus_half(dv_ref), 2e-4);
    }
}

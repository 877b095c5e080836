//! LayerNorm over the last dimension (eps 1e-5, as GPT-2).
//!
//! Forward: `y = (x − mean)·rstd·w + b` with `rstd = 1/sqrt(var + eps)` and
//! the biased variance. The per-row `mean` and `rstd` are saved for backward.
//! Row reductions keep 16 partial lanes so they vectorize; both functions
//! work on any number of whole rows, so callers can split rows over threads.

use super::rowops::{LANES, lane_tree};
use super::simd::simd_dispatch;

/// GPT-2's LayerNorm epsilon.
pub const LAYERNORM_EPS: f32 = 1e-5;

/// `Σ f(a[i], b[i], c[i])` with lane-wise partial sums (whole 16-element
/// chunks, then the tail), so the loop vectorizes without reassociation.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let tails = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .zip(cc.remainder());
    for ((ca, cb), cc) in ca.zip(cb).zip(cc) {
        for (s, ((&a, &b), &c)) in acc.iter_mut().zip(ca.iter().zip(cb).zip(cc)) {
            *s += f(a, b, c);
        }
    }
    for (s, ((&a, &b), &c)) in acc.iter_mut().zip(tails) {
        *s += f(a, b, c);
    }
    lane_tree(acc, |a, b| a + b)
}

simd_dispatch! {
    /// Normalizes each `c`-wide row of `x` into `out`, saving `mean` and
    /// `rstd` (one per row).
    pub fn layernorm_forward(
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
    ) {
        let c = weight.len();
        assert_eq!(bias.len(), c);
        assert_eq!(x.len(), out.len());
        assert_eq!(x.len(), mean.len() * c);
        assert_eq!(mean.len(), rstd.len());
        let rows = x.chunks_exact(c).zip(out.chunks_exact_mut(c));
        for ((x, y), (mu, rs)) in rows.zip(mean.iter_mut().zip(rstd.iter_mut())) {
            let m = lane_sum(x, x, x, |x, _, _| x) / c as f32;
            let var = lane_sum(x, x, x, |x, _, _| (x - m) * (x - m)) / c as f32;
            let s = 1.0 / (var + LAYERNORM_EPS).sqrt();
            for (((y, &x), &w), &b) in y.iter_mut().zip(x).zip(weight).zip(bias) {
                *y = (x - m) * s * w + b;
            }
            *mu = m;
            *rs = s;
        }
    }
}

simd_dispatch! {
    /// LayerNorm backward. ACCUMULATES into `dx` (the residual stream's
    /// gradient), `dweight` and `dbias`.
    pub fn layernorm_backward(
        dout: &[f32],
        x: &[f32],
        weight: &[f32],
        mean: &[f32],
        rstd: &[f32],
        dx: &mut [f32],
        dweight: &mut [f32],
        dbias: &mut [f32],
    ) {
        let c = weight.len();
        assert_eq!(dout.len(), x.len());
        assert_eq!(dx.len(), x.len());
        assert_eq!(x.len(), mean.len() * c);
        assert_eq!(dweight.len(), c);
        assert_eq!(dbias.len(), c);
        let rows = dout
            .chunks_exact(c)
            .zip(x.chunks_exact(c))
            .zip(dx.chunks_exact_mut(c));
        for (((dy, x), dx), (&m, &s)) in rows.zip(mean.iter().zip(rstd)) {
            // With xhat = (x − m)·s and g = dy·w:
            // dx = s·(g − mean(g) − xhat·mean(g·xhat)).
            let g_mean = lane_sum(dy, weight, weight, |dy, w, _| dy * w) / c as f32;
            let gx_mean = lane_sum(dy, weight, x, |dy, w, x| dy * w * (x - m) * s) / c as f32;
            let rows = dbias.iter_mut().zip(dweight.iter_mut()).zip(dx.iter_mut());
            for (((db, dw), dx), ((&dy, &x), &w)) in rows.zip(dy.iter().zip(x).zip(weight)) {
                let xhat = (x - m) * s;
                *db += dy;
                *dw += dy * xhat;
                *dx += s * (dy * w - g_mean - xhat * gx_mean);
            }
        }
    }
}

//! GELU, tanh approximation (GPT-2's `gelu_new`):
//! `gelu(x) = x/2 · (1 + tanh(u))`, `u = √(2/π)·(x + 0.044715·x³)`.
//!
//! Computed through the identity `(1 + tanh(u))/2 = σ(2u) = 1/(1 + e^{−2u})`,
//! so one vectorized [`fast_math::exp`](super::fast_math::exp) and one
//! division per element, with no branch between a small- and a large-argument
//! formula. `x·σ(2u)` keeps its relative accuracy for every `x`: the result
//! is within a few ulp of f64.

use super::fast_math::exp;
use super::simd::{MulAdd, simd_dispatch};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;

/// `σ(2u)` and `du/dx` at `x`.
#[inline(always)]
fn gate<M: MulAdd>(x: f32) -> (f32, f32) {
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * M::mul_add(CUBIC * x2, x, x);
    let sigma = 1.0 / (1.0 + exp::<M>(-2.0 * u));
    let du = SQRT_2_OVER_PI * M::mul_add(3.0 * CUBIC, x2, 1.0);
    (sigma, du)
}

/// `gelu'(x) = σ + x·σ·(1 − σ)·2·du/dx`, given `σ = σ(2u)` and `du/dx`.
#[inline(always)]
fn slope<M: MulAdd>(x: f32, s: f32, du: f32) -> f32 {
    M::mul_add(2.0 * x * s, (1.0 - s) * du, s)
}

/// `gelu'(x)`.
#[inline(always)]
fn gelu_derivative<M: MulAdd>(x: f32) -> f32 {
    let (s, du) = gate::<M>(x);
    slope::<M>(x, s, du)
}

simd_dispatch! {
    /// `out = gelu(x)` elementwise.
    pub fn gelu_forward(x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        for (y, &x) in out.iter_mut().zip(x) {
            *y = x * gate::<M>(x).0;
        }
    }
}

simd_dispatch! {
    /// The GELU of an fc layer, with its bias, in one pass: adds `bias` to
    /// every `bias.len()`-wide row of `pre`, writes `out = gelu(pre)` and
    /// leaves in `pre` the slope `gelu′(pre)`, which is all the backward
    /// needs ([`gelu_backward_from_slope`]): it then multiplies instead of
    /// evaluating an `exp` and a division per element a second time.
    pub fn bias_gelu_forward(bias: &[f32], pre: &mut [f32], out: &mut [f32]) {
        assert_eq!(pre.len(), out.len());
        assert!(!bias.is_empty() && pre.len().is_multiple_of(bias.len()), "rows are not bias-wide");
        let rows = pre.chunks_exact_mut(bias.len()).zip(out.chunks_exact_mut(bias.len()));
        for (pre, out) in rows {
            for ((p, y), &b) in pre.iter_mut().zip(out.iter_mut()).zip(bias) {
                let x = *p + b;
                let (s, du) = gate::<M>(x);
                *y = x * s;
                *p = slope::<M>(x, s, du);
            }
        }
    }
}

simd_dispatch! {
    /// Overwrites `dx = dout · gelu'(x)`.
    pub fn gelu_backward(x: &[f32], dout: &[f32], dx: &mut [f32]) {
        assert_eq!(x.len(), dout.len());
        assert_eq!(x.len(), dx.len());
        for ((dx, &dy), &x) in dx.iter_mut().zip(dout).zip(x) {
            *dx = dy * gelu_derivative::<M>(x);
        }
    }
}

simd_dispatch! {
    /// Turns `grad` (holding dout) into `dout · gelu′(x)` in place, given
    /// the slope `gelu′(x)` that [`bias_gelu_forward`] saved.
    pub fn gelu_backward_from_slope(slope: &[f32], grad: &mut [f32]) {
        assert_eq!(slope.len(), grad.len());
        for (g, &s) in grad.iter_mut().zip(slope) {
            *g *= s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x/2·(1 + tanh u)` written as `x/(1 + e^{−2u})`, which f64 keeps
    /// accurate in the far left tail where `1 + tanh u` rounds to 0.
    fn gelu_f64(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        x / (1.0 + (-2.0 * u).exp())
    }

    /// The fused bias + GELU equals adding the bias row by row, then GELU,
    /// and the slope it leaves gives the same gradient as the derivative.
    #[test]
    fn bias_gelu_adds_the_bias_per_row_then_applies_gelu() {
        let bias = [0.5f32, -1.0, 2.0];
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.3 - 1.7).collect();
        let (mut pre, mut out) = (x.clone(), vec![0.0; 12]);
        bias_gelu_forward(&bias, &mut pre, &mut out);
        let shifted: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + bias[i % 3]).collect();
        let mut want = vec![0.0; 12];
        gelu_forward(&shifted, &mut want);
        assert_eq!(out, want);
        let dout: Vec<f32> = (0..12).map(|i| 1.0 - i as f32 * 0.1).collect();
        let (mut from_slope, mut from_x) = (dout.clone(), vec![0.0; 12]);
        gelu_backward_from_slope(&pre, &mut from_slope);
        gelu_backward(&shifted, &dout, &mut from_x);
        assert_eq!(from_slope, from_x);
    }

    /// Relative error against f64 on a dense grid. Rounding `u` in f32 moves
    /// `e^{−2u}` by about `|2u|·ε` relative, so the bound is
    /// `4e-7·(1 + |2u|)`: a few ulp near 0, about 1e-5 at x = −9 where the
    /// result is ~1e-30. Below 1e-30 in magnitude (the far left tail, where
    /// `e^{−2u}` saturates) the error must be under 1e-30 absolute.
    #[test]
    fn gelu_is_within_a_few_ulp_of_f64() {
        let x: Vec<f32> = (0..=400_000).map(|i| -20.0 + i as f32 * 1e-4).collect();
        let mut y = vec![0.0; x.len()];
        gelu_forward(&x, &mut y);
        for (&x, &y) in x.iter().zip(&y) {
            let want = gelu_f64(x as f64);
            let err = (y as f64 - want).abs();
            let x64 = x as f64;
            let two_u = 2.0 * 0.797_884_6 * (x64 + 0.044_715 * x64 * x64 * x64);
            let ok = if want.abs() > 1e-30 {
                err <= 4e-7 * (1.0 + two_u.abs()) * want.abs()
            } else {
                err <= 1e-30
            };
            assert!(ok, "gelu({x}) = {y}, f64 says {want}");
        }
    }
}

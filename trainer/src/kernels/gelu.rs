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

/// `gelu'(x) = σ + x·σ·(1 − σ)·2·du/dx` with `σ = σ(2u)`.
#[inline(always)]
fn gelu_derivative<M: MulAdd>(x: f32) -> f32 {
    let (s, du) = gate::<M>(x);
    M::mul_add(2.0 * x * s, (1.0 - s) * du, s)
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
    /// Overwrites `dx = dout · gelu'(x)`. `dx` may not alias `dout`; use
    /// [`gelu_backward_inplace`] to turn `dout` into `dx` in place.
    pub fn gelu_backward(x: &[f32], dout: &[f32], dx: &mut [f32]) {
        assert_eq!(x.len(), dout.len());
        assert_eq!(x.len(), dx.len());
        for ((dx, &dy), &x) in dx.iter_mut().zip(dout).zip(x) {
            *dx = dy * gelu_derivative::<M>(x);
        }
    }
}

simd_dispatch! {
    /// Turns `grad` (holding dout) into `dout · gelu'(x)` in place.
    pub fn gelu_backward_inplace(x: &[f32], grad: &mut [f32]) {
        assert_eq!(x.len(), grad.len());
        for (g, &x) in grad.iter_mut().zip(x) {
            *g *= gelu_derivative::<M>(x);
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

//! GELU, tanh approximation (GPT-2's `gelu_new`):
//! `gelu(x) = x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//!
//! Vectorized through [`fast_math::tanh`](super::fast_math::tanh) (≤ 3 ulp),
//! so values differ from a libm version by a few ulp of `tanh`.

use super::fast_math::tanh;
use super::simd::simd_dispatch;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CUBIC: f32 = 0.044_715;

simd_dispatch! {
    /// `out = gelu(x)` elementwise.
    pub fn gelu_forward(x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        for (y, &x) in out.iter_mut().zip(x) {
            let t = tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x));
            *y = 0.5 * x * (1.0 + t);
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
            *dx = dy * gelu_derivative(x);
        }
    }
}

simd_dispatch! {
    /// Turns `grad` (holding dout) into `dout · gelu'(x)` in place.
    pub fn gelu_backward_inplace(x: &[f32], grad: &mut [f32]) {
        assert_eq!(x.len(), grad.len());
        for (g, &x) in grad.iter_mut().zip(x) {
            *g *= gelu_derivative(x);
        }
    }
}

#[inline(always)]
fn gelu_derivative(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    let t = tanh(u);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

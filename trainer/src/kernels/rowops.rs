//! Vectorized row operations shared by the softmax-style kernels
//! (attention, cross-entropy): reductions keep 16 partial lanes so LLVM can
//! vectorize them without reassociating a serial float sum.
//!
//! The generic `#[inline(always)]` versions are for kernels that are
//! themselves compiled per ISA (the attention tile loops call them once per
//! row, where a dispatched call would cost more than a short row's math);
//! the dispatched ones are for everything else.

use super::fast_math::exp;
use super::simd::{MulAdd, simd_dispatch};

/// Lanes of the partial sums (one AVX-512 vector).
pub(crate) const LANES: usize = 16;

/// Combines the lanes of `acc` pairwise (8 + 8, 4 + 4, ...) with `f`: a few
/// vector shuffles, where a left-to-right fold is a chain of 15 dependent
/// scalar operations that the compiler may not reorder.
#[inline(always)]
pub(crate) fn lane_tree(mut acc: [f32; LANES], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] = f(acc[i], acc[i + width]);
        }
        width /= 2;
    }
    acc[0]
}

simd_dispatch! {
    /// The largest element (`−inf` for an empty row; NaN-free input assumed).
    pub(crate) fn row_max(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a = a.max(v);
            }
        }
        for (a, &v) in acc.iter_mut().zip(rest) {
            *a = a.max(v);
        }
        lane_tree(acc, f32::max)
    }
}

/// The whole vectors of `x` (`x.len()` a multiple of 16: the attention
/// tiles pad each row with `−inf` scores).
#[inline(always)]
fn vectors_mut(x: &mut [f32]) -> &mut [[f32; LANES]] {
    let (whole, rest) = x.as_chunks_mut::<LANES>();
    assert!(rest.is_empty(), "row is not whole vectors");
    whole
}

// The function below indexes fixed-size arrays: written with `iter_mut`
// over the accumulator, LLVM kept it in memory (behind a run-time alias
// check).

/// `x ← e^(x·scale − shift)` in place over a row of whole vectors; returns
/// the sum of the new values. `−inf` entries become 0.
#[inline(always)]
pub(crate) fn vectors_exp_scaled_sum<M: MulAdd>(x: &mut [f32], scale: f32, shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    for v in vectors_mut(x) {
        let mut e = *v;
        for i in 0..LANES {
            e[i] = exp::<M>(M::mul_add(e[i], scale, -shift));
            acc[i] += e[i];
        }
        *v = e;
    }
    lane_tree(acc, |a, b| a + b)
}

simd_dispatch! {
    /// `Σ e^(x − shift)`, leaving `x` as it is.
    pub(crate) fn exp_sum(x: &[f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; LANES];
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += exp::<M>(v - shift);
            }
        }
        for (a, &v) in acc.iter_mut().zip(rest) {
            *a += exp::<M>(v - shift);
        }
        lane_tree(acc, |a, b| a + b)
    }
}

simd_dispatch! {
    /// `x ← scale · e^(x − shift)`.
    pub(crate) fn scaled_exp(x: &mut [f32], shift: f32, scale: f32) {
        for v in x {
            *v = scale * exp::<M>(*v - shift);
        }
    }
}

/// `ds ← scale · p · (ds − dot)`: the softmax backward of one row.
#[inline(always)]
pub(crate) fn softmax_grad_row(ds: &mut [f32], p: &[f32], scale: f32, dot: f32) {
    for (g, &p) in ds.iter_mut().zip(p) {
        *g = scale * p * (*g - dot);
    }
}

/// `x ← x·s`.
#[inline(always)]
pub(crate) fn scale_in_place(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

/// `Σ a·b` with lane-wise partial sums.
#[inline(always)]
pub(crate) fn dot<M: MulAdd>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] = M::mul_add(x[i], y[i], acc[i]);
        }
    }
    for (i, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[i] = M::mul_add(x, y, acc[i]);
    }
    lane_tree(acc, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{Fused, Unfused};

    /// Row lengths around the lane width and its multiples.
    const LENS: [usize; 6] = [0, 1, 15, 16, 17, 100];

    fn row(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3)
            .collect()
    }

    /// Each op against a plain f64 loop; tolerance 1e-5 relative: f32 sums
    /// of at most 100 terms in a different order, plus ≤ 2 ulp per exp.
    #[test]
    fn row_ops_match_plain_f64_loops() {
        for n in LENS {
            let x = row(n);
            let want_max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!(row_max(&x), want_max, "max n={n}");

            let (scale, shift) = (0.7f32, 1.5f32);
            let want: Vec<f64> = x
                .iter()
                .map(|&v| (v as f64 * scale as f64 - shift as f64).exp())
                .collect();
            // The whole-vector forms see the row padded with −inf.
            let mut padded = x.clone();
            padded.resize(n.next_multiple_of(LANES), f32::NEG_INFINITY);
            let mut got = padded.clone();
            let sum = vectors_exp_scaled_sum::<Unfused>(&mut got, scale, shift);
            let mut fused = padded.clone();
            let fused_sum = vectors_exp_scaled_sum::<Fused>(&mut fused, scale, shift);
            assert!(
                (fused_sum - sum).abs() <= 1e-5 * sum.max(1.0),
                "fused sum n={n}"
            );
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 1e-5 * w, "exp n={n}: {g} vs {w}");
            }
            assert!(got[n..].iter().chain(&fused[n..]).all(|&p| p == 0.0));
            let want_sum: f64 = want.iter().sum();
            let plain: f64 = x.iter().map(|&v| (v as f64 - shift as f64).exp()).sum();
            let got_plain = exp_sum(&x, shift) as f64;
            assert!(
                (got_plain - plain).abs() <= 1e-5 * plain.max(1.0),
                "exp_sum n={n}"
            );
            let mut sc = x.clone();
            scaled_exp(&mut sc, shift, 0.25);
            for (g, &v) in sc.iter().zip(&x) {
                let w = 0.25 * (v as f64 - shift as f64).exp();
                assert!((*g as f64 - w).abs() <= 1e-5 * w, "scaled_exp n={n}");
            }
            assert!(
                (sum as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1.0),
                "sum n={n}"
            );

            let y: Vec<f32> = x.iter().map(|v| v * 0.5 + 1.0).collect();
            let want_dot: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
            let got_dot = dot::<Unfused>(&x, &y) as f64;
            assert!((dot::<Fused>(&x, &y) as f64 - got_dot).abs() <= 1e-5 * got_dot.abs().max(1.0));
            assert!(
                (got_dot - want_dot).abs() <= 1e-5 * want_dot.abs().max(1.0),
                "dot n={n}"
            );

            let mut ds = y.clone();
            softmax_grad_row(&mut ds, &x, 0.5, 2.0);
            for ((g, &yv), &p) in ds.iter().zip(&y).zip(&x) {
                assert_eq!(*g, 0.5 * p * (yv - 2.0));
            }
            let mut s = x.clone();
            scale_in_place(&mut s, 3.0);
            assert!(s.iter().zip(&x).all(|(a, b)| *a == b * 3.0));
        }
    }
}

//! Vectorized row operations shared by the softmax-style kernels
//! (attention, cross-entropy): reductions keep 16 partial lanes so LLVM can
//! vectorize them without reassociating a serial float sum.

use super::fast_math::exp;
use super::simd::simd_dispatch;

const LANES: usize = 16;

simd_dispatch! {
    /// The largest element (`−inf` for an empty row; NaN-free input assumed).
    pub(crate) fn row_max(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a = if v > *a { v } else { *a };
            }
        }
        for (a, &v) in acc.iter_mut().zip(rest) {
            *a = if v > *a { v } else { *a };
        }
        acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }
}

simd_dispatch! {
    /// `x ← e^(x·scale − shift)` in place; returns the sum of the new values.
    pub(crate) fn exp_scaled_sum(x: &mut [f32], scale: f32, shift: f32) -> f32 {
        let mut acc = [0.0f32; LANES];
        let mut chunks = x.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (a, v) in acc.iter_mut().zip(c) {
                *v = exp::<M>(*v * scale - shift);
                *a += *v;
            }
        }
        for (a, v) in acc.iter_mut().zip(chunks.into_remainder()) {
            *v = exp::<M>(*v * scale - shift);
            *a += *v;
        }
        acc.iter().sum()
    }
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
        acc.iter().sum()
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

simd_dispatch! {
    /// `ds ← scale · p · (ds − dot)`: the softmax backward of one row.
    pub(crate) fn softmax_grad_row(ds: &mut [f32], p: &[f32], scale: f32, dot: f32) {
        for (g, &p) in ds.iter_mut().zip(p) {
            *g = scale * p * (*g - dot);
        }
    }
}

simd_dispatch! {
    /// `x ← x·s`.
    pub(crate) fn scale_in_place(x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }
}

simd_dispatch! {
    /// `Σ a·b` with lane-wise partial sums.
    pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                acc[i] += x[i] * y[i];
            }
        }
        for (i, (&x, &y)) in ra.iter().zip(rb).enumerate() {
            acc[i] += x * y;
        }
        acc.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let mut got = x.clone();
            let sum = exp_scaled_sum(&mut got, scale, shift);
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 1e-5 * w, "exp n={n}: {g} vs {w}");
            }
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
            let got_dot = dot(&x, &y) as f64;
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

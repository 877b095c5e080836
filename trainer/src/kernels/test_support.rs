//! Helpers shared by the kernel and model tests: seeded data, f64 central
//! differences and tolerance checks.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::device::{Slice, SliceMut};

/// Host values as a kernel argument.
pub fn h(x: &[f32]) -> Slice<'_> {
    Slice::from(x)
}

/// Writable host values as a kernel argument.
pub fn hm(x: &mut [f32]) -> SliceMut<'_> {
    SliceMut::from(x)
}

/// `len` values uniform in [−1, 1), reproducible from `seed`.
pub fn uniform(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

/// Widens to f64.
pub fn wide(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// Central-difference gradient of `f` at `x`, in f64 (step 1e-5: truncation
/// error ~1e-10, rounding ~1e-11 for O(1) values).
pub fn central_difference(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let h = 1e-5;
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = x[i];
            x[i] = orig + h;
            let up = f(&x);
            x[i] = orig - h;
            let down = f(&x);
            x[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Asserts `|actual − expected| ≤ tol · max(1, max|expected|)` elementwise.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let scale = expected.iter().fold(1.0f64, |m, &e| m.max(e.abs()));
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (f64::from(a) - e).abs();
        assert!(
            err <= tol * scale,
            "{what}[{i}]: got {a}, expected {e} (error {err:.3e} > {:.3e})",
            tol * scale
        );
    }
}

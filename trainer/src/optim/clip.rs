//! Global-norm gradient clipping, in pieces a multi-rank caller can combine:
//! each rank computes [`sum_of_squares`] of its gradient, the caller
//! all-reduces the sums and takes the square root, then every rank scales by
//! [`clip_coefficient`].

/// Sum of squares of `values`, accumulated in f64 (exact enough for 10⁹
/// elements). Infinite or NaN when any value is.
pub fn sum_of_squares(values: &[f32]) -> f64 {
    // Eight independent accumulators let the compiler vectorize the loop.
    let mut lanes = [0.0_f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += (x as f64) * (x as f64);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// The factor that brings a gradient of L2 norm `global_norm` down to
/// `max_norm` (torch's `clip_grad_norm_`: `max_norm / (norm + 1e-6)`, capped
/// at 1). `max_norm <= 0` disables clipping. A non-finite norm gives 1: the
/// caller is expected to check the norm and skip or stop.
pub fn clip_coefficient(global_norm: f64, max_norm: f64) -> f32 {
    if max_norm <= 0.0 || !global_norm.is_finite() {
        return 1.0;
    }
    (max_norm / (global_norm + 1e-6)).min(1.0) as f32
}

/// Multiplies every value by `factor` (a no-op for 1).
pub fn scale(values: &mut [f32], factor: f32) {
    if factor != 1.0 {
        values.iter_mut().for_each(|x| *x *= factor);
    }
}

/// Index of the first NaN or infinite value, if any: where a non-finite
/// gradient first appeared.
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    values.iter().position(|x| !x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_of_squares_matches_the_definition() {
        // 1² + 2² + … + 19² = 19·20·39/6 = 2470.
        let values: Vec<f32> = (1..20).map(|i| i as f32).collect();
        assert_eq!(sum_of_squares(&values), 2470.0);
        assert_eq!(sum_of_squares(&[]), 0.0);
        assert!(sum_of_squares(&[1.0, f32::NAN]).is_nan());
        assert!(sum_of_squares(&[f32::INFINITY]).is_infinite());
    }

    /// A gradient split over two "ranks": all-reducing the sums of squares
    /// gives the norm of the whole, and scaling brings it to max_norm.
    #[test]
    fn clipping_by_global_norm_over_ranks() {
        let mut rank0 = vec![3.0_f32, 0.0];
        let mut rank1 = vec![0.0_f32, 4.0];
        let norm = (sum_of_squares(&rank0) + sum_of_squares(&rank1)).sqrt();
        assert_eq!(norm, 5.0);
        let coef = clip_coefficient(norm, 1.0);
        scale(&mut rank0, coef);
        scale(&mut rank1, coef);
        let clipped = (sum_of_squares(&rank0) + sum_of_squares(&rank1)).sqrt();
        assert!((clipped - 1.0).abs() < 1e-6, "{clipped}");
    }

    #[test]
    fn small_norms_disabled_clipping_and_non_finite_norms_are_left_alone() {
        let cases = [
            (0.5, 1.0, 1.0),
            (5.0, 0.0, 1.0),
            (f64::NAN, 1.0, 1.0),
            (f64::INFINITY, 1.0, 1.0),
            (2.0, 1.0, 0.5),
        ];
        for (norm, max, want) in cases {
            let got = clip_coefficient(norm, max);
            assert!((got - want).abs() < 1e-6, "norm {norm} max {max}: {got}");
        }
        assert_eq!(
            first_non_finite(&[1.0, 2.0, f32::NEG_INFINITY, f32::NAN]),
            Some(2)
        );
        assert_eq!(first_non_finite(&[1.0]), None);
    }
}

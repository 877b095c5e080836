//! Residual connections.

use super::simd::simd_dispatch;

simd_dispatch! {
    /// `out = a + (b + bias)`, `bias` added to every `bias.len()`-wide row:
    /// a residual add that also applies the bias of the projection `b` came
    /// from.
    pub fn residual_add(a: &[f32], b: &[f32], bias: &[f32], out: &mut [f32]) {
        assert_eq!(a.len(), b.len());
        assert_eq!(a.len(), out.len());
        assert!(!bias.is_empty() && a.len().is_multiple_of(bias.len()), "rows are not bias-wide");
        let width = bias.len();
        let rows = out.chunks_exact_mut(width).zip(a.chunks_exact(width).zip(b.chunks_exact(width)));
        for (o, (a, b)) in rows {
            for (((o, &a), &b), &c) in o.iter_mut().zip(a).zip(b).zip(bias) {
                *o = a + (b + c);
            }
        }
    }
}

/// `acc += x` elementwise.
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len());
    acc.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bias_is_added_to_every_row() {
        let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [10.0f32, 20.0, 30.0, 40.0]);
        let mut out = [0.0; 4];
        residual_add(&a, &b, &[0.5, -0.5], &mut out);
        assert_eq!(out, [11.5, 21.5, 33.5, 43.5]);
    }
}

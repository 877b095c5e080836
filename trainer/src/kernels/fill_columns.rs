//! Setting a band of columns of row-major rows (the logits of padding ids).

use std::ops::Range;

/// Sets columns `columns` of every `width`-wide row of `x` to `value`.
pub fn fill_columns(x: &mut [f32], width: usize, columns: Range<usize>, value: f32) {
    if columns.is_empty() {
        return;
    }
    for row in x.chunks_exact_mut(width) {
        row[columns.clone()].fill(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chosen_columns_change() {
        let mut x: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let inf = f32::NEG_INFINITY;
        fill_columns(&mut x, 4, 3..4, inf);
        assert_eq!(x, [0.0, 1.0, 2.0, inf, 4.0, 5.0, 6.0, inf]);
        let mut untouched = vec![1.0; 6];
        fill_columns(&mut untouched, 3, 3..3, inf);
        assert_eq!(untouched, [1.0; 6]);
    }
}

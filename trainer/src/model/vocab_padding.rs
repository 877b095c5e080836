//! `model.vocab_padding`: `wte` has rows past `vocab_size` so the output
//! head's matrix products run on a round width. Those rows are zero and
//! their ids are never predicted: their logits are set to −∞ before the
//! softmax, so they add exactly 0 to each row's normalizer and get a zero
//! gradient.

/// Sets the logits of the padding ids (columns `vocab..width` of every row
/// of `logits`, rows `width` wide) to −∞. Nothing to do without padding.
pub fn mask_vocab_padding(logits: &mut [f32], width: usize, vocab: usize) {
    if vocab >= width {
        return;
    }
    for row in logits.chunks_exact_mut(width) {
        row[vocab..].fill(f32::NEG_INFINITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_padding_columns_are_masked() {
        let mut logits: Vec<f32> = (0..8).map(|i| i as f32).collect();
        mask_vocab_padding(&mut logits, 4, 3);
        let inf = f32::NEG_INFINITY;
        assert_eq!(logits, [0.0, 1.0, 2.0, inf, 4.0, 5.0, 6.0, inf]);
        let mut unpadded = vec![1.0; 6];
        mask_vocab_padding(&mut unpadded, 3, 3);
        assert_eq!(unpadded, [1.0; 6]);
    }
}

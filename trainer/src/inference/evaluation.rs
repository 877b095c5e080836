//! What an evaluation reports: loss, perplexity and bits per byte, from
//! the sums over the evaluated targets (`train::evaluate_on_layout`
//! computes them on any rank layout).

use crate::tokenizer::Tokenizer;

/// Sums over the evaluated targets.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvalTotals {
    /// Σ −ln p(target), in nats.
    pub loss_sum: f64,
    /// Targets counted (not `IGNORE_TARGET`).
    pub targets: u64,
    /// Bytes the counted targets decode to (end-of-text counts 0); `None`
    /// when the tokens are not text.
    pub bytes: Option<u64>,
    /// Sequences (windows) evaluated.
    pub sequences: usize,
}

impl EvalTotals {
    /// Mean loss per target (nats).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.targets as f64
    }

    /// `exp(loss)`.
    pub fn perplexity(&self) -> f64 {
        self.loss().exp()
    }

    /// `loss_sum / ln 2 / bytes`: bits per byte of text, comparable across
    /// tokenizers; `None` without text or bytes.
    pub fn bits_per_byte(&self) -> Option<f64> {
        self.bytes
            .filter(|&b| b > 0)
            .map(|b| self.loss_sum / std::f64::consts::LN_2 / b as f64)
    }
}

/// Bytes each token id below `vocab_size` decodes to, end-of-text 0.
pub fn byte_lengths(tokenizer: &dyn Tokenizer, vocab_size: usize) -> Vec<u64> {
    (0..vocab_size as u32)
        .map(|id| {
            if Some(id) == tokenizer.end_of_text() {
                0
            } else {
                tokenizer.decode_bytes(&[id]).len() as u64
            }
        })
        .collect()
}

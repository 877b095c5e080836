use std::ops::Range;

use super::TpError;
use crate::model::ModelConfig;

/// How the rows of `wte` (one per token id) are split over a TP group: the
/// one rule every vocabulary-parallel piece (embedding, output head, loss,
/// checkpoints) follows.
///
/// **Rule: pad, then split evenly.** The vocabulary is padded to a multiple
/// of `model.vocab_padding × tp`, and TP rank `t` owns the contiguous ids
/// `t·R .. (t+1)·R` with `R = padded / tp`. Ids from `model.vocab_size` on
/// are padding rows: zero, never predicted (their logits are masked to −∞),
/// never saved, exactly like the single-rank padding of
/// [`ModelConfig::padded_vocab`]. Since real ids come first, a rank's
/// padding rows are the trailing rows of its block, which is what
/// [`ParamSpec::padding_rows`](crate::model::ParamSpec) describes.
///
/// Why padding rather than an uneven split (first ranks one row more):
/// - every rank has the same local layout, so a buffer size, a logits width
///   (`R`) and the memory per rank are one number, not one per rank;
/// - each rank's block stays a multiple of `model.vocab_padding`, the
///   alignment that option exists to give the output head's matrix product;
/// - at tp = 1 it is [`ModelConfig::padded_vocab`] itself, and the padding
///   machinery (masking, `saved_range`) is the one the single-rank model
///   already has;
/// - the cost is fewer than `vocab_padding × tp` zero rows (GPT-2's 50257 at
///   tp = 2: one row). Megatron-LM pads the same way
///   (`--make-vocab-size-divisible-by` × tp).
///
/// With a vocabulary much smaller than `vocab_padding × tp` the last ranks
/// may own only padding; they still take part in every vocabulary-parallel
/// reduction, with all logits at −∞.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabSplit {
    vocab_size: usize,
    rows_per_rank: usize,
    tp: usize,
}

impl VocabSplit {
    /// The split of `cfg`'s vocabulary over `tp` ranks.
    pub fn new(cfg: &ModelConfig, tp: usize) -> Result<Self, TpError> {
        if tp == 0 {
            return Err(TpError::ZeroTp);
        }
        let overflow = || TpError::VocabOverflow {
            vocab_size: cfg.vocab_size,
            vocab_padding: cfg.vocab_padding,
            tp,
        };
        let padded = cfg
            .vocab_padding
            .max(1)
            .checked_mul(tp)
            .and_then(|multiple| cfg.vocab_size.checked_next_multiple_of(multiple))
            .ok_or_else(overflow)?;
        Ok(VocabSplit {
            vocab_size: cfg.vocab_size,
            rows_per_rank: padded / tp,
            tp,
        })
    }

    /// Rows of `wte` over the whole group, padding included.
    pub fn padded(&self) -> usize {
        self.rows_per_rank * self.tp
    }

    /// Rows of `wte` on every rank (`padded / tp`): the width of a rank's
    /// logits.
    pub fn rows_per_rank(&self) -> usize {
        self.rows_per_rank
    }

    /// The token ids rank `rank` owns, padding included.
    pub fn rows(&self, rank: usize) -> Range<usize> {
        rank * self.rows_per_rank..(rank + 1) * self.rows_per_rank
    }

    /// The real token ids (below `model.vocab_size`) rank `rank` owns: a
    /// prefix of [`Self::rows`], possibly empty.
    pub fn real_rows(&self, rank: usize) -> Range<usize> {
        let rows = self.rows(rank);
        rows.start..rows.end.min(self.vocab_size).max(rows.start)
    }

    /// Trailing padding rows of rank `rank`'s block.
    pub fn padding_rows(&self, rank: usize) -> usize {
        self.rows_per_rank - self.real_rows(rank).len()
    }
}

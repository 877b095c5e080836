//! The global gradient norm under tensor parallelism: every parameter
//! counted once, though replicated tensors live on every TP rank.
//!
//! Each TP rank sums the squares of the values it *owns* — its shards, plus
//! the replicated tensors on TP rank 0 only — and the sums are all-reduced
//! over the TP group. This needs the replicated tensors' gradients to be
//! identical across the group when the norm is taken (without sequence
//! parallelism they are by construction; with it, they are all-reduced over
//! the TP group first). The DP×CP all-reduce leaves every replica with the
//! same gradient, so no reduction over DP×CP is needed for the norm.

use std::ops::Range;

use super::error::check_len;
use super::{RankShard, TpError};
use crate::optim;

impl RankShard {
    /// The ranges of the local buffer this rank counts in a global sum of
    /// squares: every sharded tensor, and the replicated ones on TP rank 0
    /// only. Sorted, disjoint, adjacent ranges merged (a device sums each
    /// with one `Kernels::sum_of_squares`).
    pub fn owned_ranges(&self) -> Vec<Range<usize>> {
        let mut owned: Vec<Range<usize>> = Vec::new();
        let counted = self
            .layout()
            .specs()
            .iter()
            .zip(self.tensors())
            .filter(|(_, shard)| !shard.partition.is_replicated() || self.rank() == 0)
            .map(|(spec, _)| spec.range());
        for range in counted {
            match owned.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => owned.push(range),
            }
        }
        owned
    }

    /// This rank's part of the global sum of squares of a buffer in its
    /// local layout: the sum over [`Self::owned_ranges`]. Summed over the TP
    /// ranks, it is the full buffer's sum of squares.
    pub fn owned_sum_of_squares(&self, local: &[f32]) -> Result<f64, TpError> {
        let what = || format!("the buffer of TP rank {}", self.rank());
        check_len(what, self.layout().len(), local.len())?;
        Ok(self
            .owned_ranges()
            .into_iter()
            .map(|range| optim::sum_of_squares(&local[range]))
            .sum())
    }
}

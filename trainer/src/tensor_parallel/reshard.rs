//! Moving whole flat buffers between the full layout and the TP ranks'
//! local layouts: parameters, gradients and AdamW moments alike.

use super::error::check_len;
use super::{RankShard, TpError, TpSharding};

impl RankShard {
    /// This rank's local buffer cut out of `full` (a buffer in the
    /// [`ParamLayout::gpt2`](crate::model::ParamLayout::gpt2) layout):
    /// sharded pieces and replicated tensors copied, padding rows zero.
    pub fn split(&self, full: &[f32]) -> Result<Vec<f32>, TpError> {
        check_len(|| "the full buffer".into(), self.full_len(), full.len())?;
        let mut local = vec![0.0; self.layout().len()];
        for (l, f, _) in self.runs() {
            local[l].copy_from_slice(&full[f]);
        }
        Ok(local)
    }
}

impl TpSharding {
    /// The full buffer ([`ParamLayout::gpt2`](crate::model::ParamLayout::gpt2)
    /// layout) assembled from every TP rank's local buffer, `locals[t]`
    /// being rank `t`'s. Sharded pieces come from their owner, replicated
    /// tensors from TP rank 0 (the ranks keep them identical); padding rows
    /// are zero. `split` then `gather` returns the full buffer when its
    /// padding rows are zero, which they always are in training.
    pub fn gather(&self, locals: &[&[f32]]) -> Result<Vec<f32>, TpError> {
        if locals.len() != self.tp() {
            return Err(TpError::RankCount {
                tp: self.tp(),
                found: locals.len(),
            });
        }
        let ranks = self.ranks()?;
        let mut full = vec![0.0; ranks[0].full_len()];
        for (shard, local) in ranks.iter().zip(locals) {
            let what = || format!("the buffer of TP rank {}", shard.rank());
            check_len(what, shard.layout().len(), local.len())?;
            for (l, f, replicated) in shard.runs() {
                if !replicated || shard.rank() == 0 {
                    full[f].copy_from_slice(&local[l]);
                }
            }
        }
        Ok(full)
    }
}

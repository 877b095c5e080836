//! A TP rank's shard of the model: its widths and its `Gpt`.

use std::sync::Arc;

use super::{TpError, TpSharding};
use crate::model::{Gpt, LocalShape, TpGroup};
use crate::parallel::ProcessGroup;

impl TpSharding {
    /// The widths TP rank `rank` computes with: its heads, hidden units and
    /// vocabulary block, and with `sequence_parallel` its share of the
    /// residual stream's rows.
    pub fn local_shape(&self, rank: usize, sequence_parallel: bool) -> LocalShape {
        let cfg = self.model();
        let slices = self.slices(rank);
        let vocab_holders = (0..self.tp())
            .filter(|&t| !self.vocab().real_rows(t).is_empty())
            .count();
        LocalShape {
            n_layer: cfg.n_layer,
            n_embd: cfg.n_embd,
            n_head: slices.heads.len(),
            head_dim: cfg.head_dim(),
            hidden: slices.hidden.len(),
            vocab: slices.vocab,
            real_vocab: slices.real_vocab,
            vocab_holders,
            adds_positions: rank == 0,
            row_split: if sequence_parallel { self.tp() } else { 1 },
        }
    }

    /// TP rank `rank`'s shard of the model, its TP sums taken over `group`
    /// (whose rank must be `rank`), with or without sequence parallelism.
    pub fn rank_model(
        &self,
        rank: usize,
        group: Arc<dyn ProcessGroup>,
        sequence_parallel: bool,
    ) -> Result<Gpt, TpError> {
        if group.rank() != rank || group.size() != self.tp() {
            return Err(TpError::Group {
                tp: self.tp(),
                rank,
                group: group.info().to_string(),
            });
        }
        let layout = self.rank(rank)?.layout().clone();
        let shape = self.local_shape(rank, sequence_parallel);
        Ok(Gpt::tensor_parallel(
            self.model().clone(),
            layout,
            shape,
            TpGroup::new(group),
        ))
    }
}

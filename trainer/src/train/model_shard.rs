//! A rank's part of the model under the plan's tensor parallelism: its
//! `Gpt` (the whole model at `tp = 1`), and how its flat buffers relate to
//! the full layout that starts, checkpoints and samples use.

use std::borrow::Cow;

use super::{RankGroups, TrainError, TrainPlan};
use crate::device::Slice;
use crate::kernels::Kernels;
use crate::model::Gpt;
use crate::optim::OptimizerState;
use crate::parallel::{ProcessGroup, ReduceOp};
use crate::tensor_parallel::{RankShard, TpSharding};

/// The model as one rank computes it.
pub struct ModelShard {
    gpt: Gpt,
    /// Under tensor parallelism: the sharding and this rank's piece.
    tp: Option<(TpSharding, RankShard)>,
}

impl ModelShard {
    /// The shard of the rank whose groups are `groups`.
    pub fn new(plan: &TrainPlan, groups: &RankGroups) -> Result<Self, TrainError> {
        let tp = plan.parallel.tp;
        if tp == 1 {
            return Ok(ModelShard {
                gpt: Gpt::new(plan.model.clone()),
                tp: None,
            });
        }
        let sharding = TpSharding::new(&plan.model, tp)?;
        let rank = groups.tp.rank();
        let sp = plan.parallel.sequence_parallel;
        let gpt = sharding.rank_model(rank, groups.tp.clone(), sp)?;
        let shard = sharding.rank(rank)?;
        Ok(ModelShard {
            gpt,
            tp: Some((sharding, shard)),
        })
    }

    /// The model this rank runs.
    pub fn gpt(&self) -> &Gpt {
        &self.gpt
    }

    /// This rank's piece of a buffer in the full layout (the buffer itself
    /// without tensor parallelism).
    pub fn split<'a>(&self, full: &'a [f32]) -> Result<Cow<'a, [f32]>, TrainError> {
        match &self.tp {
            None => Ok(Cow::Borrowed(full)),
            Some((_, shard)) => Ok(Cow::Owned(shard.split(full)?)),
        }
    }

    /// The optimizer state of a checkpoint, cut to this rank's piece.
    pub fn split_state<'a>(
        &self,
        full: &'a OptimizerState<'_>,
    ) -> Result<OptimizerState<'a>, TrainError> {
        let slots = full
            .slots
            .iter()
            .map(|(name, values)| Ok((name.clone(), self.split(values)?)));
        Ok(OptimizerState {
            step: full.step,
            slots: slots.collect::<Result<_, TrainError>>()?,
        })
    }

    /// The full buffer assembled from every TP rank's `local` (a collective
    /// over the TP group: every rank of it calls it with its own piece).
    pub fn gather<'a>(
        &self,
        tp_group: &dyn ProcessGroup,
        local: Cow<'a, [f32]>,
    ) -> Result<Cow<'a, [f32]>, TrainError> {
        let Some((sharding, _)) = &self.tp else {
            return Ok(local);
        };
        let mut all = vec![0.0; local.len() * tp_group.size()];
        tp_group.all_gather(&local, &mut all)?;
        let pieces: Vec<&[f32]> = all.chunks_exact(local.len()).collect();
        Ok(Cow::Owned(sharding.gather(&pieces)?))
    }

    /// The full optimizer state from every TP rank's (a collective over the
    /// TP group, like [`Self::gather`]).
    pub fn gather_state<'a>(
        &self,
        tp_group: &dyn ProcessGroup,
        local: OptimizerState<'a>,
    ) -> Result<OptimizerState<'a>, TrainError> {
        local.try_map(|slot| self.gather(tp_group, slot))
    }

    /// The squared L2 norm of the whole model's gradient, each parameter
    /// counted once: this rank's owned ranges summed over the TP group.
    pub fn sum_of_squares(
        &self,
        kernels: &dyn Kernels,
        tp_group: &dyn ProcessGroup,
        grads: Slice<'_>,
    ) -> Result<f64, TrainError> {
        let Some((_, shard)) = &self.tp else {
            return Ok(kernels.sum_of_squares(grads));
        };
        let owned = shard.owned_ranges().into_iter();
        let mut sum = [owned
            .map(|r| kernels.sum_of_squares(grads.range(r)))
            .sum::<f64>()];
        tp_group.all_reduce_f64(&mut sum, ReduceOp::Sum)?;
        Ok(sum[0])
    }
}

//! The tensor-parallel group as the model uses it: the sums of Megatron-LM's
//! `f` and `g` operators (after a row-parallel product in the forward,
//! before a LayerNorm whose input fed column-parallel products in the
//! backward) and the small exchanges of the vocabulary-parallel loss.

use std::sync::Arc;

use super::ModelError;
use crate::device::{Slice, SliceMut};
use crate::kernels::Kernels;
use crate::parallel::{ProcessGroup, ReduceOp};

/// A rank's TP group. Device memory moves as the backend can move it
/// ([`ProcessGroup::all_reduce_view`]).
#[derive(Clone)]
pub struct TpGroup {
    group: Arc<dyn ProcessGroup>,
}

impl std::fmt::Debug for TpGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TpGroup({})", self.group.info())
    }
}

impl TpGroup {
    /// The model's view of `group`.
    pub fn new(group: Arc<dyn ProcessGroup>) -> Self {
        TpGroup { group }
    }

    /// The group itself.
    pub fn group(&self) -> &dyn ProcessGroup {
        &*self.group
    }

    /// Sums `buf` over the group in place; every rank gets the same bits.
    pub fn all_reduce(&self, kernels: &dyn Kernels, buf: SliceMut<'_>) -> Result<(), ModelError> {
        Ok(self.group.all_reduce_view(kernels, buf, ReduceOp::Sum)?)
    }

    /// `full` = every rank's `local` in rank order (sequence parallelism's
    /// gather of the rows the group's ranks hold).
    pub fn all_gather(
        &self,
        kernels: &dyn Kernels,
        local: Slice<'_>,
        full: SliceMut<'_>,
    ) -> Result<(), ModelError> {
        Ok(self.group.all_gather_view(kernels, local, full)?)
    }

    /// `local` = this rank's block of `full` summed over the group
    /// (sequence parallelism's sum of row-parallel partial products).
    pub fn reduce_scatter(
        &self,
        kernels: &dyn Kernels,
        full: Slice<'_>,
        local: SliceMut<'_>,
    ) -> Result<(), ModelError> {
        Ok((self.group).reduce_scatter_view(kernels, full, local, ReduceOp::Sum)?)
    }
}

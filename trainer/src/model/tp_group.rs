//! The tensor-parallel group as the model uses it: the sums of Megatron-LM's
//! `f` and `g` operators (after a row-parallel product in the forward,
//! before a LayerNorm whose input fed column-parallel products in the
//! backward) and the small exchanges of the vocabulary-parallel loss.

use std::sync::Arc;

use super::ModelError;
use crate::device::SliceMut;
use crate::kernels::Kernels;
use crate::parallel::{ProcessGroup, ReduceOp};

/// A rank's TP group. Device buffers pass through the host, like the CP
/// exchanges.
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
        if buf.device().is_none() {
            self.group.all_reduce(buf.expect_host(), ReduceOp::Sum)?;
            return Ok(());
        }
        let mut staged = buf.as_slice().to_host()?.into_owned();
        self.group.all_reduce(&mut staged, ReduceOp::Sum)?;
        let staged = kernels.upload_vec(staged)?;
        kernels.copy(staged.view(), buf);
        Ok(())
    }
}

//! Where a tensor-parallel rank's model meets its TP group between the
//! matrix products: Megatron-LM's `f` and `g` operators (a sum after a
//! row-parallel product, a gather before a column-parallel one under
//! sequence parallelism) and the LayerNorm gradients' sum that sequence
//! parallelism needs once per step. Without a TP group they do nothing.

use super::activations::SpBuffers;
use super::{Gpt, ModelError};
use crate::device::{Buffer, Slice, SliceMut};
use crate::kernels::Kernels;
use crate::parallel::ReduceOp;

impl Gpt {
    /// A column-parallel product's input: `rows` itself, or under sequence
    /// parallelism the TP group's rows all-gathered into `sp.gathered`
    /// (Megatron-LM's `g`: all-gather forward; for the backward's inputs,
    /// the same gather of a gradient).
    pub(super) fn gather_rows<'a>(
        &self,
        kernels: &dyn Kernels,
        rows: Slice<'a>,
        sp: &'a mut Option<SpBuffers>,
    ) -> Result<Slice<'a>, ModelError> {
        match (sp, &self.tp) {
            (Some(sp), Some(tp)) => {
                tp.all_gather(kernels, rows, sp.gathered.view_mut())?;
                Ok(sp.gathered.view())
            }
            _ => Ok(rows),
        }
    }

    /// `partial` (`[N, C]`, a row-parallel product's output or the gradient
    /// of a column-parallel product's input) summed over the TP group: in
    /// place, or under sequence parallelism this rank's rows into
    /// `sp.scattered` (reduce-scatter). Nothing to do without TP.
    pub(super) fn sum_rows<'a>(
        &self,
        kernels: &dyn Kernels,
        partial: &'a mut Buffer,
        sp: &'a mut Option<SpBuffers>,
    ) -> Result<Slice<'a>, ModelError> {
        match (sp, &self.tp) {
            (Some(sp), Some(tp)) => {
                tp.reduce_scatter(kernels, partial.view(), sp.scattered.view_mut())?;
                Ok(sp.scattered.view())
            }
            (None, Some(tp)) => {
                tp.all_reduce(kernels, partial.view_mut())?;
                Ok(partial.view())
            }
            (_, None) => Ok(partial.view()),
        }
    }

    /// Under sequence parallelism the LayerNorms' gradients come from each
    /// rank's rows alone: sums them over the TP group (once per step, after
    /// every micro-batch's backward). Nothing to do otherwise.
    pub fn reduce_replicated_grads(
        &self,
        kernels: &dyn Kernels,
        mut grads: SliceMut<'_>,
    ) -> Result<(), ModelError> {
        let Some(tp) = self.tp.as_ref().filter(|_| self.shape.sequence_parallel()) else {
            return Ok(());
        };
        let norms: Vec<_> = (self.layout.specs().iter())
            .filter(|spec| spec.name.contains("ln_"))
            .map(|spec| spec.range())
            .collect();
        let mut values = Vec::new();
        for range in &norms {
            values.extend_from_slice(&grads.reborrow().range(range.clone()).as_slice().to_host()?);
        }
        tp.group().all_reduce(&mut values, ReduceOp::Sum)?;
        let mut summed = values.as_slice();
        for range in norms {
            let (mine, rest) = summed.split_at(range.len());
            let staged = kernels.upload(mine)?;
            kernels.copy(staged.view(), grads.reborrow().range(range));
            summed = rest;
        }
        Ok(())
    }
}

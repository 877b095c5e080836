//! Where a tensor-parallel rank's model meets its TP group between the
//! matrix products: Megatron-LM's `f` and `g` operators (a sum after a
//! row-parallel product, a gather before a column-parallel one under
//! sequence parallelism) and the LayerNorm gradients' sum that sequence
//! parallelism needs once per step. Without a TP group they do nothing.

use super::activations::SpBuffers;
use super::{Gpt, ModelError};
use crate::device::{Buffer, Slice, SliceMut};
use crate::kernels::{Kernels, Runs};

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
        grads: SliceMut<'_>,
    ) -> Result<(), ModelError> {
        let Some(tp) = self.tp.as_ref().filter(|_| self.shape.sequence_parallel()) else {
            return Ok(());
        };
        // Every LayerNorm parameter is a vector of n_embd values: packed
        // into one buffer, summed in one collective, and put back.
        let mut packed = Runs::new(self.shape.n_embd);
        for spec in (self.layout.specs().iter()).filter(|spec| spec.name.contains("ln_")) {
            let range = spec.range();
            assert_eq!(range.len(), packed.len, "{} is not n_embd wide", spec.name);
            packed.push(range.start, packed.starts.len() * packed.len);
        }
        let mut values = kernels.alloc(packed.starts.len() * packed.len)?;
        kernels.copy_runs(grads.as_slice(), values.view_mut(), &packed);
        tp.all_reduce(kernels, values.view_mut())?;
        kernels.copy_runs(values.view(), grads, &packed.inverse());
        Ok(())
    }
}

//! The optimizer as the trainer sees it, and the factory `optimizer.kind`
//! selects.

use super::{DecayMask, OptimStateError, OptimizerState};
use crate::device::{DeviceError, Slice, SliceMut};
use crate::kernels::Kernels;

/// An optimizer of one rank's flat parameter buffer (its shard under tensor
/// parallelism), its state in the memory of the rank's device.
pub trait Optimizer: Send {
    /// One update of `params` from `grads` (averaged and clipped) at
    /// learning rate `lr`, on the device of `kernels`; advances the state.
    fn step(&mut self, kernels: &dyn Kernels, params: SliceMut<'_>, grads: Slice<'_>, lr: f64);

    /// The state to checkpoint.
    fn state(&self) -> Result<OptimizerState<'_>, OptimStateError>;

    /// Replaces the state with one loaded from a checkpoint (refused when
    /// its slots or lengths are not this optimizer's).
    fn load_state(&mut self, state: &OptimizerState<'_>) -> Result<(), OptimStateError>;
}

/// Builds each rank's optimizer. A component providing it is selected by
/// `optimizer.kind` (the built-in `adamw`, or a plugin's).
pub trait OptimizerFactory: Send + Sync {
    /// A fresh optimizer (step 0) for a buffer shaped like `mask` (which
    /// elements get weight decay), its state allocated on the device of
    /// `kernels`.
    fn build(
        &self,
        mask: DecayMask,
        kernels: &dyn Kernels,
    ) -> Result<Box<dyn Optimizer>, DeviceError>;

    /// The `f32` values of state the optimizer keeps per parameter (its
    /// slots), for the memory estimate that `check` prints and every run
    /// checks against the machine's memory. The default, 2, is AdamW's (and
    /// Adam's, LAMB's): an optimizer keeping more or fewer says so (SGD with
    /// momentum 1, plain SGD 0), or the estimate is off by the difference.
    fn state_per_parameter(&self) -> usize {
        2
    }
}

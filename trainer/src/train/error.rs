use crate::attention::AttentionError;
use crate::checkpoint::CheckpointError;
use crate::data::{BatchPlanError, DataError};
use crate::device::DeviceError;
use crate::kernels::ThreadsError;
use crate::metrics::MetricsError;
use crate::model::{ModelConfigError, ModelError};
use crate::optim::{OptimStateError, OptimizerConfigError};
use crate::parallel::{CommError, GridError, ZigzagError};

/// Why training could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The `[model]` section describes no buildable model.
    #[error(transparent)]
    ModelConfig(#[from] ModelConfigError),
    /// The `[optimizer]` section has a value out of range.
    #[error(transparent)]
    OptimizerConfig(#[from] OptimizerConfigError),
    /// The rank grid does not fit the `[parallel]` sizes.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// The sequence does not split over the CP group.
    #[error(transparent)]
    Zigzag(#[from] ZigzagError),
    /// The batch does not split over the ranks and micro-batches.
    #[error(transparent)]
    BatchPlan(#[from] BatchPlanError),
    /// The run needs more memory than the process may allocate.
    #[error(transparent)]
    Memory(#[from] super::MemoryError),
    /// A configuration combination that cannot run (key, value, rule).
    #[error("{0}")]
    Invalid(String),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model rejected its inputs.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// CP attention failed.
    #[error(transparent)]
    Attention(#[from] AttentionError),
    /// A collective failed or timed out.
    #[error(transparent)]
    Comm(#[from] CommError),
    /// The model cannot be split over `parallel.tp`.
    #[error(transparent)]
    TensorParallel(#[from] crate::tensor_parallel::TpError),
    /// A checkpoint or `model.init` file could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The out_dir is locked by or holds another run.
    #[error(transparent)]
    RunDir(#[from] super::RunDirError),
    /// The optimizer state of a checkpoint does not fit the model.
    #[error(transparent)]
    OptimizerState(#[from] OptimStateError),
    /// Metrics could not be written.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The kernel thread pool could not start.
    #[error(transparent)]
    Threads(#[from] ThreadsError),
    /// A background task (a checkpoint write) panicked, or its context's
    /// executor refused or dropped it.
    #[error(transparent)]
    Task(#[from] appctx::Error),
    /// The device failed (memory, a lost device).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The loss or the gradient stopped being finite; nothing was updated.
    #[error(
        "step {step}: the {what} is not finite ({value}); the update was skipped and the run \
         stopped. Lower optimizer.lr, set optimizer.grad_clip, or resume from the last checkpoint"
    )]
    NonFinite {
        /// 1-based step.
        step: u64,
        /// `loss` or `gradient norm`.
        what: &'static str,
        /// The value seen.
        value: f64,
    },
    /// A step whose global batch has no target that counts in the loss.
    #[error("step {step}: no target token counts in the loss of the global batch")]
    NoTargets {
        /// 1-based step.
        step: u64,
    },
}

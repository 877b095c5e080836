//! The training run: plan (validation and `check` output), start state,
//! the per-rank step loop, and the reporting rank's metrics and checkpoints.

mod available_memory;
mod checkpoint_queue;
mod checkpoint_writer;
mod error;
mod evaluation;
mod groups;
mod memory;
mod model_shard;
mod phase_report;
mod plan;
mod rank;
mod reporter;
mod resume;
mod run_dir;
mod runner;
mod start;
mod trace;

pub use available_memory::{AvailableMemory, human_bytes};
pub use checkpoint_writer::{CheckpointData, CheckpointWriter, DiskCheckpoints};
pub use error::TrainError;
pub use evaluation::{EvalBatches, RankAttention, evaluate_on_layout};
pub use groups::{RankGroups, Traffic};
pub use memory::{MemoryError, MemoryEstimate, MemoryInputs, MemoryItem};
pub use model_shard::ModelShard;
pub use plan::{AttentionBalance, TrainPlan};
pub use rank::{RankInfo, RankOutcome, RankTrainer, StepOutcome};
pub use reporter::{Reporter, SharedSink};
pub use resume::ResumePoint;
pub use run_dir::{Claim, LOCK_FILE, RunDir, RunDirError};
pub use runner::RunStatus;
pub use runner::TrainRunner;
pub use start::{RunOptions, StartState};
pub use trace::{SliceKind, TRACE_FILE, TraceSlice, TraceWindow, chrome_trace};

//! `trainer_state.json`: everything besides tensors that an exact, checked
//! resume needs.

use serde::{Deserialize, Serialize};

use crate::data::DataFingerprint;
use crate::model::ModelConfig;

/// Version of the checkpoint layout written by this build (2: the run
/// identity and `MANIFEST.json`).
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;

/// Everything besides tensors that an exact resume needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    /// [`CHECKPOINT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Optimizer steps completed; the resumed run starts at this 0-based step.
    pub step: u64,
    /// AdamW's own step count (its bias corrections); equals `step` unless
    /// steps were skipped.
    pub optimizer_step: u64,
    /// Which run wrote it.
    pub run: RunIdentity,
    /// Where the data stream stands.
    pub data: DataPosition,
    /// Running totals the metrics continue from.
    pub metrics: ResumeMetrics,
    /// The effective configuration of the run, as JSON; `--resume` restores it.
    pub config: serde_json::Value,
}

/// What makes a run the same run: its id, seed, model shape, data and the
/// length its learning-rate schedule was planned for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIdentity {
    /// Random id given when the run started fresh, kept by every resume.
    pub run_id: String,
    /// `train.seed`.
    pub seed: u64,
    /// The model's shape.
    pub model: ModelShape,
    /// The training data.
    pub data: DataFingerprint,
    /// `train.steps` of the fresh start: the LR schedule keeps this plan
    /// when a resume raises `train.steps`.
    pub schedule_steps: u64,
}

/// The dimensions of the model (`model.*` without `init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// `model.n_layer`.
    pub n_layer: usize,
    /// `model.n_head`.
    pub n_head: usize,
    /// `model.n_embd`.
    pub n_embd: usize,
    /// `model.vocab_size`.
    pub vocab_size: usize,
    /// `model.seq_len`.
    pub seq_len: usize,
}

impl ModelShape {
    /// The shape of `model`.
    pub fn of(model: &ModelConfig) -> Self {
        ModelShape {
            n_layer: model.n_layer,
            n_head: model.n_head,
            n_embd: model.n_embd,
            vocab_size: model.vocab_size,
            seq_len: model.seq_len,
        }
    }
}

impl std::fmt::Display for ModelShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n_layer = {}, n_head = {}, n_embd = {}, vocab_size = {}, seq_len = {}",
            self.n_layer, self.n_head, self.n_embd, self.vocab_size, self.seq_len
        )
    }
}

/// The data stream's position. Batches are a pure function of the step
/// (the epoch's permutation too), so the next step is the whole position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataPosition {
    /// The 0-based step whose batch comes next.
    pub next_step: u64,
    /// The epoch (from 0) that batch starts in, for file data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// Totals a resumed run's metrics continue from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeMetrics {
    /// Tokens trained on so far.
    pub tokens_seen: u64,
    /// Training wall-clock seconds so far.
    pub elapsed_s: f64,
    /// Loss of the last step.
    pub last_loss: Option<f64>,
    /// Last evaluation loss.
    pub last_eval_loss: Option<f64>,
}

/// A new run id: 16 random hex digits (the thread RNG, seeded by the OS).
pub fn new_run_id() -> String {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    format!("{:016x}", rng.random::<u64>())
}

use std::path::PathBuf;

use super::TrainError;
use crate::checkpoint::{TrainerState, prune_checkpoints, save_checkpoint};
use crate::model::ParamLayout;
use crate::optim::OptimizerState;

/// One training checkpoint as the reporting rank hands it out: the whole
/// model in the full (Hugging Face) layout, whatever `parallel.tp`.
pub struct CheckpointData<'a> {
    /// The layout of `params` and of the optimizer's slots ([`ParamLayout::gpt2`]).
    pub layout: &'a ParamLayout,
    /// Flat weights after `state.step` completed steps.
    pub params: &'a [f32],
    /// The optimizer's step and slots (AdamW's moments).
    pub optimizer: &'a OptimizerState<'a>,
    /// Step, data position, run identity and configuration.
    pub state: &'a TrainerState,
    /// `config.json` and the tokenizer's files: (file name, contents).
    pub hf_files: &'a [(&'static str, String)],
}

/// Where the reporting rank's checkpoints go (every `train.checkpoint_every`
/// steps and at the end). The built-in `disk_checkpoints` component writes
/// them under `train.out_dir`; an application that embeds the trainer can
/// add its own (the weights in memory) or exclude the built-in one.
pub trait CheckpointWriter: Send + Sync {
    /// Saves `checkpoint`; returns its directory when it went to disk.
    fn write(&self, checkpoint: &CheckpointData<'_>) -> Result<Option<PathBuf>, TrainError>;
}

/// Atomic checkpoints in `<out_dir>/checkpoints/step-N/`, the newest
/// `keep_last` kept (0: all).
pub struct DiskCheckpoints {
    /// `train.out_dir`.
    pub out_dir: PathBuf,
    /// `train.keep_last`.
    pub keep_last: usize,
}

impl CheckpointWriter for DiskCheckpoints {
    fn write(&self, c: &CheckpointData<'_>) -> Result<Option<PathBuf>, TrainError> {
        let dir = save_checkpoint(
            &self.out_dir,
            c.layout,
            c.params,
            c.optimizer,
            c.state,
            c.hf_files,
        )?;
        tracing::info!(step = c.state.step, dir = %dir.display(), "checkpoint written");
        prune_checkpoints(&self.out_dir, self.keep_last)?;
        Ok(Some(dir))
    }
}

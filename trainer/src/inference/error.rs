//! Why a trained model cannot be loaded or used.

use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::model::ModelError;

/// A failure of `generate`, `eval` or a training sample.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// A file that could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory holds neither a checkpoint nor a Hugging Face model.
    #[error(
        "{dir} is not a model directory: expected a checkpoint (`step-N` with \
         trainer_state.json), a run's out_dir (with checkpoints/), or a Hugging Face GPT-2 \
         directory (config.json and model.safetensors)"
    )]
    NotAModel {
        /// The directory given.
        dir: PathBuf,
    },
    /// A run directory with no complete checkpoint.
    #[error(
        "{dir}/checkpoints holds no complete checkpoint; train first or name a step-N directory"
    )]
    NoCheckpoint {
        /// The run directory.
        dir: PathBuf,
    },
    /// A Hugging Face `config.json` this model cannot honour.
    #[error("{path} {what}")]
    HfConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A checkpoint whose recorded configuration has no usable model shape.
    #[error("{dir}/trainer_state.json: the run's configuration has no valid [model]: {what}")]
    RunConfig {
        /// The checkpoint.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Loading or verifying the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The model refused an input.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
}

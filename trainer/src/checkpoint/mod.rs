//! Weights and training checkpoints as safetensors with Hugging Face
//! `GPT2LMHeadModel` names.
//!
//! - [`save_weights`] / [`load_weights`]: the flat parameter buffer as a
//!   `model.safetensors` that `transformers` loads (Conv1D weights `[in, out]`).
//! - [`import_hf_gpt2`]: `model.init` — a GPT-2 file from the Hugging Face hub,
//!   with its extra buffers, with or without the `transformer.` prefix, in
//!   F32, F16 or BF16, and a `wpe` at least `seq_len` rows long.
//! - [`save_checkpoint`] / [`load_checkpoint`] / [`latest_checkpoint`] /
//!   [`prune_checkpoints`]: `<out_dir>/checkpoints/step-N/` holding
//!   `model.safetensors`, `optimizer.safetensors`, `trainer_state.json`,
//!   Hugging Face's `config.json` (and the tokenizer's files), a
//!   `MANIFEST.json` of their checksums and a `DONE` marker, written into a
//!   temporary directory and renamed into place; every load verifies the
//!   manifest and that the tensors are finite.

mod error;
mod hf_config;
mod manifest;
mod state;
mod tensors;
#[cfg(test)]
mod tests;
mod training;
mod weights;

pub use error::CheckpointError;
pub use hf_config::{Gpt2Config, HF_CONFIG_FILE, hf_files, import_model_init, init_positions};
pub use manifest::MANIFEST_FILE;
pub use state::{
    CHECKPOINT_FORMAT_VERSION, DataPosition, ModelShape, ResumeMetrics, RunIdentity, TrainerState,
    new_run_id,
};
pub use training::{
    Checkpoint, checkpoint_dir, latest_checkpoint, load_checkpoint, prune_checkpoints,
    read_trainer_state, save_checkpoint, step_dirs, temp_dirs,
};
pub use weights::{import_hf_gpt2, load_weights, save_weights};

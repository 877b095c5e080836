use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[data]` section: where tokens come from.
///
/// Defaults: `source = "synthetic"`, `task = "copy"`, no `path`, no
/// `val_path`, `val_fraction = 0.1`, `symbols` = all of `model.vocab_size`,
/// `tokenizer = "bytes"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `synthetic` (generated tasks), `text` (bytes of any file, vocab 256)
    /// or `tokens` (raw little-endian u16 ids, nanoGPT's `train.bin`).
    pub source: String,
    /// The file for `text` and `tokens`.
    pub path: Option<PathBuf>,
    /// Optional separate validation file (same format as `path`); without it
    /// the last `val_fraction` of `path`'s windows are held out.
    pub val_path: Option<PathBuf>,
    /// Fraction of the windows of `path` held out for validation when there
    /// is no `val_path`, in `[0, 1)`; 0 disables evaluation.
    pub val_fraction: f64,
    /// The generated task of `source = "synthetic"`.
    pub task: SyntheticTask,
    /// How many distinct token ids the synthetic task draws from
    /// (at most `model.vocab_size`; unset means all of them).
    pub symbols: Option<usize>,
    /// The tokenizer that turns text into the ids (`bytes` or `gpt2`): used
    /// by `cptrain prepare`, `generate` and `eval` (see [`crate::tokenizer`]).
    pub tokenizer: String,
    /// Visit the windows of file data in a seeded permutation per epoch
    /// (`train.seed`); unset means yes for `text` and `tokens`. Generated
    /// data is never shuffled.
    pub shuffle: Option<bool>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "synthetic".into(),
            path: None,
            val_path: None,
            val_fraction: 0.1,
            task: SyntheticTask::Copy,
            symbols: None,
            tokenizer: "bytes".into(),
            shuffle: None,
        }
    }
}

/// A generated task that can only be solved by attending across the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyntheticTask {
    /// The second half of each sequence repeats the first half.
    Copy,
    /// The second half of each sequence is the first half reversed.
    Reverse,
}

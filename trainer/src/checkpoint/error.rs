use std::path::PathBuf;

/// Why weights or a checkpoint cannot be written or read. Each message names
/// the file (and tensor) and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "read" or "create directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{} is not a readable safetensors file (truncated or corrupt?): {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        source: safetensors::SafeTensorError,
    },
    /// Writing a safetensors file failed.
    /// The first 8 bytes claim a header longer than the file.
    #[error(
        "{} is not a safetensors file, or is truncated: its first 8 bytes give a header of \
         {header} bytes, but the file holds {len} bytes in all",
        path.display()
    )]
    HeaderBeyondFile {
        /// The file.
        path: PathBuf,
        /// The header length the file claims.
        header: u64,
        /// The file's length.
        len: u64,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        source: safetensors::SafeTensorError,
    },
    /// A tensor the model needs is absent.
    #[error(
        "{} has no tensor {name} (looked for {looked_for}); expected shape {expected:?}; \
         is this a GPT-2 file for the configured model?",
        path.display()
    )]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's Hugging Face name.
        name: String,
        /// The names tried, comma-separated.
        looked_for: String,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// A tensor of the wrong shape.
    #[error(
        "{}: tensor {name} has shape {found:?}, but the model needs {expected:?}; \
         check model.{{n_layer,n_embd,vocab_size,seq_len}} against the file",
        path.display()
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor of an unsupported element type.
    #[error("{}: tensor {name} is {found}, but {accepted} is required", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// The dtype in the file.
        found: String,
        /// What is accepted here.
        accepted: &'static str,
    },
    /// The file's position embedding has another number of rows than
    /// `model.n_positions`.
    #[error(
        "{}: tensor {name} has {rows} positions, but model.n_positions = {positions}; \
         leave model.n_positions unset (it then follows model.init) or set it to {rows} \
         (model.seq_len may be at most {rows})",
        path.display()
    )]
    WpeRows {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file.
        name: String,
        /// Rows in the file.
        rows: usize,
        /// `model.n_positions` (default `model.seq_len`).
        positions: usize,
    },
    /// Tensors the model has no place for.
    #[error(
        "{} holds tensors the model has no place for: {names}; \
         the file is for a different architecture or a larger model.n_layer",
        path.display()
    )]
    UnexpectedTensors {
        /// The file.
        path: PathBuf,
        /// The first few such names, comma-separated.
        names: String,
    },
    /// A checkpoint directory without its `DONE` marker.
    #[error("{} is incomplete (no DONE marker): it was interrupted while being written; resume from an earlier checkpoint", dir.display())]
    Incomplete {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// `trainer_state.json` cannot be parsed.
    #[error("{} is not a valid trainer state: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A checkpoint whose parts disagree with each other or with this version.
    #[error("{} is inconsistent: {what}", dir.display())]
    Inconsistent {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What disagrees.
        what: String,
    },
    /// A file whose size or checksum differs from its manifest entry.
    #[error("{} is corrupt: {what}; resume from an earlier checkpoint", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// Weights or optimizer moments holding NaN or infinity.
    #[error(
        "{}: the {what} hold {value} (tensor {tensor}); a checkpoint never holds non-finite \
         values: resume from an earlier checkpoint, with a lower optimizer.lr or \
         optimizer.grad_clip",
        path.display()
    )]
    NonFinite {
        /// The file or checkpoint directory.
        path: PathBuf,
        /// "weights" or `"optimizer's <slot>"`.
        what: String,
        /// The Hugging Face name of the tensor.
        tensor: String,
        /// The first such value.
        value: f32,
    },
}

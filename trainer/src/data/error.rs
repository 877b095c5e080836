use std::path::PathBuf;

/// Why data cannot be opened or read. Each message names the key or file and
/// says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// `data.source` names no known source.
    #[error("data.source = {name:?} is not a known data source; expected one of: {known}")]
    UnknownSource {
        /// The configured name.
        name: String,
        /// The accepted names, comma-separated.
        known: String,
    },
    /// One evaluation would read the validation split more than once.
    #[error(
        "train.eval_batches = {eval_batches} evaluates {eval_batches} x train.batch_size = \
         {batch_size} sequences, more than the {windows} validation windows of the data hold; \
         set train.eval_batches to at most {} (0 turns evaluation off), or add validation data \
         (data.val_path, data.val_fraction)",
        windows.div_ceil(*batch_size)
    )]
    EvalBatches {
        /// `train.eval_batches`.
        eval_batches: usize,
        /// `train.batch_size`.
        batch_size: usize,
        /// Windows of the validation split.
        windows: usize,
    },
    /// A file-based source without `data.path`.
    #[error(
        "data.source = {source_name:?} reads a file, but data.path is not set; set data.path to the file"
    )]
    PathRequired {
        /// The configured source.
        source_name: String,
    },
    /// A token file whose header is not understood or disagrees with its size.
    #[error("{key} = {}: {what}", path.display())]
    Header {
        /// The config key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A directory or pattern that names no token file.
    #[error("{key} = {} is {what}", spec.display())]
    NoFiles {
        /// The config key.
        key: &'static str,
        /// The configured path or pattern.
        spec: PathBuf,
        /// What it is instead.
        what: String,
    },
    /// The file cannot be opened or read.
    #[error("cannot read {key} = {}: {source}", path.display())]
    Io {
        /// The config key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Fewer than `T + 1` tokens: not even one window.
    #[error(
        "{key} = {} holds {tokens} tokens, but one sequence of model.seq_len = {seq_len} \
         needs {} (inputs plus the next-token target); use a longer file or a smaller seq_len",
        path.display(), seq_len + 1
    )]
    TooShort {
        /// The config key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Tokens in the file.
        tokens: u64,
        /// `model.seq_len`.
        seq_len: usize,
    },
    /// A u16 token file whose byte length is odd.
    #[error(
        "{key} = {} has {bytes} bytes, an odd number, so it is not a file of u16 tokens \
         (data.source = \"tokens\" reads raw little-endian u16 ids with no header)",
        path.display()
    )]
    OddLength {
        /// The config key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A token id the model's embedding cannot hold.
    #[error(
        "{key} = {}: token {index} (byte offset {byte_offset}) has id {id}, but model.vocab_size = {vocab_size}; \
         the data was tokenized for a larger vocabulary, so raise model.vocab_size or re-tokenize",
        path.display()
    )]
    TokenOutOfRange {
        /// The config key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Index of the token in the file.
        index: u64,
        /// Byte offset of the token in the file.
        byte_offset: u64,
        /// The id found.
        id: u32,
        /// `model.vocab_size`.
        vocab_size: usize,
    },
    /// `data.val_fraction` outside `[0, 1)`.
    #[error("data.val_fraction = {value} is invalid: expected 0 <= val_fraction < 1")]
    ValFraction {
        /// The configured value.
        value: f64,
    },
    /// Holding out validation windows leaves none to train on.
    #[error(
        "data.path = {} has {windows} windows of model.seq_len = {seq_len} tokens; holding out \
         data.val_fraction = {val_fraction} of them leaves none for training; lower data.val_fraction \
         or give data.val_path",
        path.display()
    )]
    NoTrainWindows {
        /// The file.
        path: PathBuf,
        /// Its windows.
        windows: usize,
        /// `model.seq_len`.
        seq_len: usize,
        /// `data.val_fraction`.
        val_fraction: f64,
    },
    /// A synthetic task that cannot be laid out on the sequence.
    #[error(
        "data.task = {task} needs an even model.seq_len >= 2 (a first half and its transform), got {seq_len}"
    )]
    SyntheticSeqLen {
        /// The task's name.
        task: &'static str,
        /// `model.seq_len`.
        seq_len: usize,
    },
    /// `data.symbols` out of range.
    #[error(
        "data.symbols = {symbols} is invalid: expected 1 <= symbols <= model.vocab_size = {vocab_size}"
    )]
    Symbols {
        /// The configured value.
        symbols: usize,
        /// `model.vocab_size`.
        vocab_size: usize,
    },
    /// A source whose sequence length differs from the batch plan's.
    #[error(
        "the data source yields sequences of {source_len} tokens, but the batch plan expects model.seq_len = {plan_len}"
    )]
    SeqLenMismatch {
        /// The source's `T`.
        source_len: usize,
        /// The plan's `T`.
        plan_len: usize,
    },
    /// A batch requested from a split with no windows.
    #[error(
        "the {split} split has no windows; for validation set data.val_fraction > 0 or data.val_path, \
         or set train.eval_every = 0"
    )]
    EmptySplit {
        /// The split.
        split: super::Split,
    },
}

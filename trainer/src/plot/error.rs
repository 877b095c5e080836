use std::path::PathBuf;

/// Why `cptrain plot` cannot draw.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A run directory that does not exist or is not a directory.
    #[error(
        "{} is not a directory: give the train.out_dir of a run (the folder with metrics.jsonl)",
        dir.display()
    )]
    NoRunDir {
        /// The directory given.
        dir: PathBuf,
    },
    /// A run directory without `metrics.jsonl`.
    #[error(
        "{} does not exist: is {} the train.out_dir of a run? A run writes metrics.jsonl from its first step on",
        path.display(),
        dir.display()
    )]
    NoMetrics {
        /// The run directory.
        dir: PathBuf,
        /// The missing file.
        path: PathBuf,
    },
    /// A `metrics.jsonl` without a single step record.
    #[error(
        "{} has no step records: the run has not finished a step yet; plot it after the first",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line of `metrics.jsonl` that is not a step record.
    #[error(
        "{}:{line} is not a metrics record ({source}); the file was edited or is not cptrain's: \
         repair or delete that line",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The drawing library failed.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The picture being drawn.
        path: PathBuf,
        /// The drawing library's or the encoder's error.
        message: String,
    },
}

use std::path::PathBuf;

/// Why metrics cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An existing metrics file has a line that is not a step record.
    #[error(
        "{}:{line} is not a metrics record ({source}); the file was edited or belongs to something else; \
         move it away to resume",
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
    /// An existing `metrics.csv` has a line that is not a row of its columns.
    #[error(
        "{}:{line} is not a metrics row ({problem}); the file was edited or belongs to something else; \
         move it away to resume",
        path.display()
    )]
    CorruptRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

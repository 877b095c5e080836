/// Why an embedded training run could not be built or failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The configuration does not parse or bind.
    #[error("the configuration: {0}")]
    Config(Box<appctx::Error>),
    /// A [`TrainerConfig`](super::TrainerConfig) could not be written as TOML.
    #[error("the typed configuration cannot be written as TOML: {0}")]
    Serialize(toml::ser::Error),
    /// Building, running or closing the context failed (the wiring, the
    /// plan, the data, or a rank's training).
    #[error("{0}")]
    Run(Box<appctx::Error>),
    /// A key asks for files while the run writes none.
    #[error(
        "`{key}` writes files into train.out_dir, and this run writes no files. \
         Action: call `Training::write_to(dir)` to write them, or turn `{key}` off"
    )]
    NeedsOutDir {
        /// The configuration key.
        key: &'static str,
    },
    /// [`Training::resume`](super::Training::resume) without a directory.
    #[error(
        "resuming continues a run on disk. Action: call `Training::write_to(dir)` with the \
         run's directory"
    )]
    ResumeNeedsOutDir,
    /// No checkpoint to resume (none, or none complete and valid).
    #[error("{0}")]
    Resume(Box<crate::train::TrainError>),
    /// The configuration would train something else than the resumed run.
    #[error(
        "resuming {}: the configuration changes what the run trains:\n  {}\nAction: give the \
         run's configuration (only train.steps, evaluation, checkpoints, layout, kernels and \
         metrics may differ), or set train.allow_config_change = true to accept the changes",
        checkpoint.display(),
        changes.join("\n  ")
    )]
    ChangesMeaning {
        /// The checkpoint.
        checkpoint: std::path::PathBuf,
        /// One line per changed key: `key: old → new (from source)`.
        changes: Vec<String>,
    },
    /// Training ended without the reporting rank's outcome (rank 0 runs in
    /// another process).
    #[error(
        "training ended, but global rank 0 does not run in this process: its losses and \
         weights are not here. Action: embed with parallel.backend = \"local\""
    )]
    NoOutcome,
}

impl From<appctx::Error> for EmbedError {
    fn from(error: appctx::Error) -> Self {
        EmbedError::Config(Box::new(error))
    }
}

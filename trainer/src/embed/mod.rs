//! The trainer as a library: build a training run from typed configuration
//! ([`TrainerConfig`]) or TOML text, optionally replace components, run it
//! under a [`CancellationToken`], and get a [`TrainOutcome`] back.
//!
//! The run is the `cptrain run` pipeline (the same appctx components, the
//! same plan and step loop) in a context of the trainer's module only, with
//! every side effect off unless asked for: no console output
//! ([`Training::console`]), no files ([`Training::write_to`]), no startup
//! matmul probe ([`Training::measure_peak`]), no signal handler and no
//! tracing subscriber. The final weights come back in memory.
//!
//! The guide below is docs/embedding.md.
#![doc = ""]
#![doc = include_str!("../../../docs/embedding.md")]

mod config;
mod error;
mod outcome;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use appctx::{CancellationToken, ContextBuilder, Environment};

pub use config::TrainerConfig;
pub use error::EmbedError;
pub use outcome::{TrainOutcome, TrainedWeights};

use crate::cli::{embedded_environment, run_config_changes};
use crate::components::MODULE;
use crate::data::TrainConfig;
use crate::metrics::MetricsConfig;
use crate::train::{CheckpointWriter, RankOutcome, ResumePoint, RunOptions, RunStatus, SharedSink};
use outcome::{Recorder, WeightsInMemory};

/// The name of the caller's configuration layer (in `cptrain config`-style
/// reports and errors).
const CONFIG_LAYER: &str = "(embedding application)";

/// The built-in components that write into `train.out_dir`.
const FILE_COMPONENTS: [&str; 4] = [
    "run_dir",
    "jsonl_metrics",
    "csv_metrics",
    "disk_checkpoints",
];

/// One training run being set up; [`Training::run`] trains it.
pub struct Training {
    config: String,
    out_dir: Option<PathBuf>,
    resume: bool,
    console: bool,
    measure_peak: bool,
    context: ContextBuilder,
}

impl Training {
    /// A run of `toml` layered over the embedded defaults
    /// (`config/default.toml`); nothing is read from files, profiles or
    /// environment variables. The text is checked when the run starts.
    pub fn from_toml(toml: impl Into<String>) -> Self {
        Training {
            config: toml.into(),
            out_dir: None,
            resume: false,
            console: false,
            measure_peak: false,
            context: ContextBuilder::new()
                .name("cptrain")
                .module(&MODULE)
                .strict_sections(),
        }
    }

    /// A run of `config`.
    pub fn from_config(config: &TrainerConfig) -> Result<Self, EmbedError> {
        Ok(Self::from_toml(config.to_toml()?))
    }

    /// Writes what `cptrain run` writes into `out_dir` (it replaces
    /// `train.out_dir`): `config.toml`, `metrics.jsonl` (and `metrics.csv`
    /// with `metrics.csv = true`), checkpoints, profiles and traces. The
    /// directory is claimed as `cptrain run` claims it (`train.overwrite`).
    pub fn write_to(mut self, out_dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(out_dir.into());
        self
    }

    /// Continues the run in [`Training::write_to`]'s directory from its
    /// newest complete checkpoint, bit-exactly, as `cptrain run --resume`
    /// does. The configuration must train what the run trained: only keys a
    /// resume may change (`train.steps`, evaluation, checkpoints, the rank
    /// layout, kernels, metrics) may differ, unless
    /// `train.allow_config_change` accepts the changes.
    pub fn resume(mut self) -> Self {
        self.resume = true;
        self
    }

    /// Prints step lines and the run summary on the console, as `cptrain run` does.
    pub fn console(mut self) -> Self {
        self.console = true;
        self
    }

    /// Measures the machine's matmul rate at startup (about 0.1 s) so the
    /// records carry MFU; `metrics.peak_gflops` gives it without measuring.
    pub fn measure_peak(mut self) -> Self {
        self.measure_peak = true;
        self
    }

    /// Adds a metrics sink: it receives every step's record and the summary.
    pub fn sink(mut self, name: &str, sink: Arc<SharedSink>) -> Self {
        self.context = self.context.named_instance(name, sink);
        self
    }

    /// Changes the context the run is built in: override or exclude
    /// components (`override_component`, `exclude`), add components or the
    /// module of a plugin crate (`module`).
    pub fn context(mut self, change: impl FnOnce(ContextBuilder) -> ContextBuilder) -> Self {
        self.context = change(self.context);
        self
    }

    /// Trains until `train.steps` or until `cancel` is cancelled (training
    /// stops after the step in progress; the outcome says `interrupted`).
    pub fn run(self, cancel: &CancellationToken) -> Result<TrainOutcome, EmbedError> {
        let env = self.environment()?;
        let metrics: MetricsConfig = env.bind("metrics")?;
        let writes = self.out_dir.is_some();
        if !writes {
            refuse_file_outputs(&metrics)?;
        }
        let (resume, config_changes) = self.resume_point(&env)?;
        let options = RunOptions {
            resume,
            config_snapshot: env.to_json(),
            run_files: if writes {
                vec![
                    ("config.toml".into(), env.to_toml()),
                    ("config.sources.txt".into(), env.effective().to_string()),
                ]
            } else {
                Vec::new()
            },
            config_changes,
        };
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let weights = Arc::new(WeightsInMemory::default());
        let status = Arc::new(RunStatus::default());
        let mut context = self
            .context
            .environment(env)
            .instance(Arc::new(options))
            .instance(status.clone())
            .named_instance::<SharedSink>("embedded_records", recorder.clone())
            .named_instance::<dyn CheckpointWriter>("weights_in_memory", weights.clone())
            .shutdown_token(cancel.clone());
        let mut excluded = Vec::new();
        if !writes {
            excluded.extend(FILE_COMPONENTS);
        }
        if !self.console {
            excluded.push("console_metrics");
        }
        if !self.measure_peak && metrics.peak_gflops.is_none() {
            excluded.push("machine_peak");
        }
        for name in excluded {
            context = context.exclude(name);
        }
        let context = context.build().map_err(|e| EmbedError::Run(Box::new(e)))?;
        let ran = context.run();
        context.close();
        ran.map_err(|e| EmbedError::Run(Box::new(e)))?;
        let outcome = match status.outcome() {
            Some(outcome) => outcome,
            // Cancelled before the context ran its trainer.
            None if cancel.is_cancelled() => RankOutcome {
                first_step: 0,
                next_step: 0,
                interrupted: true,
                checkpoint: None,
            },
            None => return Err(EmbedError::NoOutcome),
        };
        let recorded =
            std::mem::take(&mut *recorder.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(TrainOutcome {
            records: recorded.records,
            summary: recorded.summary,
            weights: weights.take(),
            checkpoint: outcome.checkpoint,
            interrupted: outcome.interrupted,
            steps: outcome.next_step,
        })
    }

    /// The checkpoint [`Training::resume`] continues from, and the changes
    /// of meaning `train.allow_config_change` accepted.
    fn resume_point(
        &self,
        env: &Environment,
    ) -> Result<(Option<ResumePoint>, Vec<String>), EmbedError> {
        if !self.resume {
            return Ok((None, Vec::new()));
        }
        let out_dir = self.out_dir.as_ref().ok_or(EmbedError::ResumeNeedsOutDir)?;
        let point =
            ResumePoint::latest(out_dir, false).map_err(|e| EmbedError::Resume(Box::new(e)))?;
        let changes = run_config_changes(&point.state.config, env);
        let train: TrainConfig = env.bind("train")?;
        if !changes.is_empty() && !train.allow_config_change {
            return Err(EmbedError::ChangesMeaning {
                checkpoint: point.dir,
                changes,
            });
        }
        Ok((Some(point), changes))
    }

    /// The caller's configuration over the defaults, with `train.out_dir`
    /// from [`Training::write_to`].
    fn environment(&self) -> Result<Environment, EmbedError> {
        let mut layers = vec![(CONFIG_LAYER, self.config.clone())];
        if let Some(dir) = &self.out_dir {
            let dir = toml::Value::String(dir.display().to_string());
            layers.push((
                "(Training::write_to)",
                format!("[train]\nout_dir = {dir}\n"),
            ));
        }
        Ok(embedded_environment(&layers)?)
    }
}

/// The keys that would write files into `train.out_dir`.
fn refuse_file_outputs(metrics: &MetricsConfig) -> Result<(), EmbedError> {
    let asked = [
        ("metrics.phase_profile", metrics.phase_profile),
        ("metrics.trace_steps", metrics.trace_steps > 0),
        ("metrics.csv", metrics.csv),
    ];
    match asked.into_iter().find(|&(_, on)| on) {
        Some((key, _)) => Err(EmbedError::NeedsOutDir { key }),
        None => Ok(()),
    }
}

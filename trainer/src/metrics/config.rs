use serde::{Deserialize, Serialize};

/// The `[metrics]` section: how progress is shown and MFU computed.
///
/// Defaults: `log_every = 10`, `progress = "auto"`, `peak_gflops` unset
/// (MFU is then reported only if the trainer measured a peak),
/// `phase_profile = false`, `trace_steps = 0` (no trace), `trace_start = 2`,
/// `csv = false`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Print a console line every this many steps (the first and last step
    /// are always printed). `metrics.jsonl` always gets every step.
    pub log_every: u64,
    /// Progress bar on a terminal (`auto`), always, or never.
    pub progress: ProgressMode,
    /// Peak GFLOP/s of all the job's hardware (every process, every GPU)
    /// for MFU; unset: measured or none.
    pub peak_gflops: Option<f64>,
    /// Time every phase of every training step on every rank (batch fill,
    /// forward and backward per layer kind, attention, communication,
    /// optimizer) and show the totals after the run (console and
    /// `profile.txt`).
    pub phase_profile: bool,
    /// Write a timeline of this many training steps, every rank and phase,
    /// to `<out_dir>/trace.json` (Chrome trace format, for Perfetto or
    /// `chrome://tracing`); 0 writes none.
    pub trace_steps: u64,
    /// The first traced step, numbered from 1 as in `metrics.jsonl`; the
    /// default leaves out the first step's one-time costs.
    pub trace_start: u64,
    /// Also write every step's record to `<out_dir>/metrics.csv` (a header
    /// line, then the columns of `metrics.jsonl`; optional fields empty).
    pub csv: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            log_every: 10,
            progress: ProgressMode::Auto,
            peak_gflops: None,
            phase_profile: false,
            trace_steps: 0,
            trace_start: 2,
            csv: false,
        }
    }
}

/// When the console shows a progress bar instead of plain lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise (CI, pipes).
    Auto,
    /// Always a bar.
    Always,
    /// Always plain lines.
    Never,
}

//! Training metrics: one record per optimizer step, sent to sinks — the
//! `metrics.jsonl` file, optionally `metrics.csv`, and the console — plus
//! the end-of-run summary.
//!
//! ```
//! use cptrain::metrics::{JsonlSink, MetricsSink, StepRecord};
//!
//! let out_dir = tempfile::tempdir().unwrap();
//! let mut sink = JsonlSink::create(out_dir.path(), None).unwrap();
//! let record = StepRecord { step: 1, loss: 5.5, lr: 6e-4, grad_norm: 1.2, tokens: 4096,
//!     tokens_per_s: 20480.0, elapsed_s: 0.2, step_time_s: 0.2, ..Default::default() };
//! sink.record(&record).unwrap();
//! let line = std::fs::read_to_string(out_dir.path().join("metrics.jsonl")).unwrap();
//! assert!(line.starts_with(r#"{"step":1,"loss":5.5,"lr":0.0006,"#));
//! ```

mod config;
mod console;
mod csv;
mod error;
mod jsonl;
mod memory;
mod record;
mod step_file;
mod summary;

pub use config::{MetricsConfig, ProgressMode};
pub use console::{ConsoleSink, format_step_line};
pub use csv::{CSV_COLUMNS, CsvSink, METRICS_CSV_FILE, csv_row, parse_csv_row};
pub use error::MetricsError;
pub(crate) use jsonl::parse_records;
pub use jsonl::{JsonlSink, METRICS_FILE};
pub use memory::peak_rss_bytes;
pub(crate) use memory::proc_kib_field;
pub use record::StepRecord;
pub use summary::RunSummary;

/// Where per-step records go. Implementations decide what to keep and when
/// to write; the trainer calls `record` once per optimizer step, in order.
pub trait MetricsSink: Send {
    /// Takes the record of one completed optimizer step.
    fn record(&mut self, record: &StepRecord) -> Result<(), MetricsError>;

    /// Called once when the run ends (normally or interrupted).
    fn finish(&mut self, _summary: &RunSummary) -> Result<(), MetricsError> {
        Ok(())
    }
}

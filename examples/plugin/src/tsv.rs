//! A metrics sink: one tab-separated line per step (`step`, `loss`, `lr`,
//! `attention_calls`) in the file `tsv_metrics.path`, on when that key is
//! set, written by the process that runs rank 0. A new run, or a resumed
//! one, starts the file anew.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use appctx::{Config, ConfigSection, component, on_property_present};
use cptrain::metrics::{MetricsError, MetricsSink, RunSummary, StepRecord};
use cptrain::parallel::Backend;
use cptrain::train::SharedSink;
use serde::Deserialize;

use crate::counted::AttentionCalls;

/// The `[tsv_metrics]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsvConfig {
    /// The file written.
    pub path: PathBuf,
}

impl ConfigSection for TsvConfig {
    const PREFIX: &'static str = "tsv_metrics";
}

/// Writes the step lines.
pub struct TsvSink {
    path: PathBuf,
    /// `None` in processes that do not run rank 0.
    out: Option<BufWriter<File>>,
    calls: Option<Arc<AttentionCalls>>,
}

impl TsvSink {
    /// Creates `path` with its header line; `calls` fills the last column
    /// (empty without the `counted` strategy).
    pub fn create(path: PathBuf, calls: Option<Arc<AttentionCalls>>) -> Result<Self, MetricsError> {
        let mut sink = TsvSink {
            out: None,
            calls,
            path,
        };
        let file = File::create(&sink.path).map_err(|e| sink.io_error("create", e))?;
        sink.out = Some(BufWriter::new(file));
        sink.write_line("step\tloss\tlr\tattention_calls".into())?;
        Ok(sink)
    }

    /// A sink that writes nothing (processes without rank 0).
    pub fn discard() -> Self {
        TsvSink {
            path: PathBuf::new(),
            out: None,
            calls: None,
        }
    }

    fn io_error(&self, action: &'static str, source: std::io::Error) -> MetricsError {
        MetricsError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `line` and hands it to the file at once.
    fn write_line(&mut self, line: String) -> Result<(), MetricsError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let written = writeln!(out, "{line}").and_then(|()| out.flush());
        written.map_err(|e| self.io_error("write", e))
    }
}

impl MetricsSink for TsvSink {
    fn record(&mut self, r: &StepRecord) -> Result<(), MetricsError> {
        let calls = self.calls.as_ref().map(|c| c.get().to_string());
        let calls = calls.unwrap_or_default();
        self.write_line(format!("{}\t{}\t{}\t{calls}", r.step, r.loss, r.lr))
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<(), MetricsError> {
        self.write_line(format!(
            "# {} steps, {:.0} tokens/s",
            summary.steps, summary.tokens_per_s
        ))
    }
}

/// The component: one more sink beside the built-in ones when
/// `tsv_metrics.path` is set.
fn tsv_metrics(
    config: Config<TsvConfig>,
    calls: Option<Arc<AttentionCalls>>,
    backend: Arc<dyn Backend>,
) -> Result<Arc<SharedSink>, MetricsError> {
    let sink = if backend.local_ranks().contains(&0) {
        TsvSink::create(config.path.clone(), calls)?
    } else {
        TsvSink::discard()
    };
    Ok(Arc::new(Mutex::new(sink)))
}
component!(
    tsv_metrics,
    when = on_property_present("tsv_metrics.path"),
    order = 2
);

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use crate::metrics::{MetricsError, MetricsSink, RunSummary, StepRecord};
use crate::model::ParamLayout;
use crate::train::{CheckpointData, CheckpointWriter, TrainError};

/// What an embedded training run returns.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// Every trained step's record, in order: loss, learning rate, gradient
    /// norm, throughput, and the validation loss of the steps that evaluated.
    pub records: Vec<StepRecord>,
    /// The run's totals (`None` when it stopped before its end was reported).
    pub summary: Option<RunSummary>,
    /// The weights after the last trained step (`None` when no step was trained).
    pub weights: Option<TrainedWeights>,
    /// The final checkpoint's directory, when the run writes files
    /// ([`Training::write_to`](super::Training::write_to)).
    pub checkpoint: Option<PathBuf>,
    /// Whether the cancellation token stopped training early.
    pub interrupted: bool,
    /// Optimizer steps completed (the step the next run would start at).
    pub steps: u64,
}

impl TrainOutcome {
    /// The training loss of every step, in order.
    pub fn losses(&self) -> Vec<f64> {
        self.records.iter().map(|r| r.loss).collect()
    }

    /// `(step, validation loss)` of every step that evaluated
    /// (`train.eval_every` and the last step).
    pub fn eval_losses(&self) -> Vec<(u64, f64)> {
        (self.records.iter())
            .filter_map(|r| Some((r.step, r.eval_loss?)))
            .collect()
    }
}

/// The whole model's weights in memory: one flat buffer in the Hugging Face
/// GPT-2 tensor order of `layout` (what a checkpoint's `model.safetensors`
/// holds), whatever `parallel.tp` trained it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedWeights {
    /// Completed optimizer steps.
    pub step: u64,
    /// Where each tensor lies in `params`.
    pub layout: ParamLayout,
    /// `layout.len()` values.
    pub params: Vec<f32>,
}

/// A metrics sink that keeps every record and the summary.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) records: Vec<StepRecord>,
    pub(super) summary: Option<RunSummary>,
}

impl MetricsSink for Recorder {
    fn record(&mut self, record: &StepRecord) -> Result<(), MetricsError> {
        self.records.push(record.clone());
        Ok(())
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<(), MetricsError> {
        self.summary = Some(summary.clone());
        Ok(())
    }
}

/// A checkpoint writer that keeps the newest checkpoint's weights in memory.
#[derive(Default)]
pub(super) struct WeightsInMemory {
    newest: Mutex<Option<TrainedWeights>>,
}

impl WeightsInMemory {
    pub(super) fn take(&self) -> Option<TrainedWeights> {
        self.newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl CheckpointWriter for WeightsInMemory {
    fn write(&self, c: &CheckpointData<'_>) -> Result<Option<PathBuf>, TrainError> {
        let weights = TrainedWeights {
            step: c.state.step,
            layout: c.layout.clone(),
            params: c.params.to_vec(),
        };
        *self.newest.lock().unwrap_or_else(PoisonError::into_inner) = Some(weights);
        Ok(None)
    }
}

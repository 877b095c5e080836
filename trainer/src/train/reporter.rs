use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use appctx::Executor;

use super::checkpoint_queue::CheckpointQueue;
use super::phase_report::phase_report;
use super::{
    CheckpointWriter, RunOptions, StartState, StepOutcome, TRACE_FILE, TraceSlice, Traffic,
    TrainError, TrainPlan, chrome_trace,
};
use crate::checkpoint::{
    CHECKPOINT_FORMAT_VERSION, DataPosition, ResumeMetrics, RunIdentity, TrainerState, hf_files,
};
use crate::data::WindowOrder;
use crate::metrics::{MetricsSink, RunSummary, StepRecord, peak_rss_bytes};
use crate::model::{ParamLayout, PhaseFlops, Profile, flops_per_token};
use crate::optim::OptimizerState;
use crate::parallel::GroupKind;
use crate::tokenizer::Tokenizer;
use std::path::PathBuf;

/// A metrics sink shared between the context that owns it and the reporting rank.
pub type SharedSink = Mutex<dyn MetricsSink>;

/// The reporting rank's bookkeeping: step records to every sink, checkpoints,
/// and the run summary. Exactly one rank of the job owns it (global rank 0).
pub struct Reporter {
    plan: Arc<TrainPlan>,
    sinks: Vec<Arc<SharedSink>>,
    checkpoints: CheckpointQueue,
    config: serde_json::Value,
    identity: RunIdentity,
    /// Recorded with the first step, then cleared.
    config_changes: Option<Vec<String>>,
    peak_gflops: Option<f64>,
    flops_per_token: f64,
    totals: ResumeMetrics,
    run: RunTotals,
    phase_profile: Option<String>,
    /// The device's peak memory as of the last step (devices other than the host).
    device_peak_bytes: Option<u64>,
}

/// What this process trained (a resumed run counts only its own steps).
#[derive(Default)]
struct RunTotals {
    steps: u64,
    tokens: u64,
    step_time_s: f64,
}

impl Reporter {
    /// A reporter continuing from `start` (fresh or resumed); writes the
    /// run's files (`options.run_files`) into `train.out_dir`, and the
    /// `tokenizer`'s Hugging Face files into each checkpoint. Step records
    /// go to every sink, checkpoints to every writer (on the training
    /// thread until [`write_in_background`](Self::write_in_background)).
    pub fn new(
        plan: Arc<TrainPlan>,
        sinks: Vec<Arc<SharedSink>>,
        writers: Vec<Arc<dyn CheckpointWriter>>,
        start: &StartState,
        options: &RunOptions,
        tokenizer: &dyn Tokenizer,
        peak_gflops: Option<f64>,
    ) -> Result<Self, TrainError> {
        for (name, text) in &options.run_files {
            write_atomically(&plan.train.out_dir.join(name), text)?;
        }
        let totals = start
            .resumed
            .as_ref()
            .map(|c| c.state.metrics.clone())
            .unwrap_or_default();
        let hf_files = hf_files(&plan.model, tokenizer);
        let layout = ParamLayout::gpt2(&plan.model);
        Ok(Reporter {
            checkpoints: CheckpointQueue::new(layout, hf_files, writers),
            flops_per_token: flops_per_token(&plan.model),
            plan,
            sinks,
            config: options.config_snapshot.clone(),
            identity: start.identity.clone(),
            config_changes: Some([&options.config_changes[..], &start.data_changes[..]].concat())
                .filter(|changes| !changes.is_empty()),
            peak_gflops,
            totals,
            run: RunTotals::default(),
            phase_profile: None,
            device_peak_bytes: None,
        })
    }

    /// Writes the checkpoints from now on as tasks of `executor`'s ordered
    /// thread (`train.async_checkpoint`), while training goes on.
    pub fn write_in_background(&mut self, executor: Executor) {
        self.checkpoints.write_on(executor);
    }

    /// Records step `step` (1-based) to every sink.
    pub fn step_done(
        &mut self,
        step: u64,
        outcome: &StepOutcome,
        eval_loss: Option<f64>,
        took: Duration,
        comm: Traffic,
    ) -> Result<(), TrainError> {
        let step_time_s = took.as_secs_f64();
        let tokens = self.plan.tokens_per_step();
        self.totals.tokens_seen += tokens;
        self.totals.elapsed_s += step_time_s;
        self.totals.last_loss = Some(outcome.loss);
        self.device_peak_bytes = outcome.device_peak_bytes;
        if eval_loss.is_some() {
            self.totals.last_eval_loss = eval_loss;
        }
        self.run.steps += 1;
        self.run.tokens += tokens;
        self.run.step_time_s += step_time_s;
        let tokens_per_s = tokens as f64 / step_time_s.max(1e-9);
        let record = StepRecord {
            step,
            loss: outcome.loss,
            lr: outcome.lr,
            grad_norm: outcome.grad_norm,
            tokens: self.totals.tokens_seen,
            tokens_per_s,
            elapsed_s: self.totals.elapsed_s,
            step_time_s,
            eval_loss,
            mfu: self
                .peak_gflops
                .map(|peak| tokens_per_s * self.flops_per_token / (peak * 1e9)),
            comm_bytes: (self.plan.grid.world_size() > 1).then_some(comm.bytes()),
            comm_bytes_by_group: self.bytes_by_group(&comm),
            comm_wait_s: (self.plan.grid.world_size() > 1).then_some(comm.wait_s),
            peak_rss_bytes: peak_rss_bytes(),
            device_peak_bytes: outcome.device_peak_bytes,
            device_host_bytes: outcome.device_host_bytes,
            config_changes: self.config_changes.take(),
            epoch: self.epoch_of(step - 1),
        };
        for sink in &self.sinks {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(&record)?;
        }
        Ok(())
    }

    /// Bytes sent per group kind (`tp`, `cp`, `dp-cp`), for the groups
    /// with more than one rank; `None` on one rank.
    fn bytes_by_group(&self, comm: &Traffic) -> Option<BTreeMap<String, u64>> {
        let p = &self.plan.parallel;
        let groups = [
            (GroupKind::Tp, p.tp, comm.tp_bytes),
            (GroupKind::Cp, p.cp, comm.cp_bytes),
            (GroupKind::DpCp, p.cp * self.plan.dp(), comm.dp_cp_bytes),
        ];
        let kinds: BTreeMap<String, u64> = groups
            .into_iter()
            .filter(|&(_, size, _)| size > 1)
            .map(|(kind, _, bytes)| (kind.name().to_string(), bytes))
            .collect();
        (!kinds.is_empty()).then_some(kinds)
    }

    /// The epoch of 0-based step `step`'s first sequence, for file data.
    fn epoch_of(&self, step: u64) -> Option<u64> {
        let windows = self.identity.data.train_windows?;
        let first = u128::from(step) * self.plan.train.batch_size as u128;
        Some(WindowOrder::epoch(first, windows as usize))
    }

    /// Hands the checkpoint of `step` completed steps to every writer, in
    /// the background with `train.async_checkpoint` (after the previous
    /// write has finished; its error is returned here). A step this run
    /// already handed out (a stop right after a scheduled checkpoint) is
    /// kept as it is, never rewritten. [`flush`](Self::flush) waits for the
    /// write and names its directory.
    pub fn checkpoint(
        &mut self,
        step: u64,
        params: Cow<'_, [f32]>,
        optimizer: OptimizerState<'_>,
    ) -> Result<(), TrainError> {
        if self.checkpoints.newest_step() == Some(step) {
            tracing::info!(step, "checkpoint of this step already saved; kept");
            return Ok(());
        }
        let state = TrainerState {
            format_version: CHECKPOINT_FORMAT_VERSION,
            step,
            optimizer_step: optimizer.step,
            run: self.identity.clone(),
            data: DataPosition {
                next_step: step,
                epoch: self.epoch_of(step),
            },
            metrics: self.totals.clone(),
            config: self.config.clone(),
        };
        self.checkpoints.push(params, optimizer, state)
    }

    /// Waits for the checkpoint being written, if any; returns the newest
    /// checkpoint's directory (when one went to disk), or the write's error.
    pub fn flush(&mut self) -> Result<Option<PathBuf>, TrainError> {
        self.checkpoints.wait()
    }

    /// Every rank's phase totals over this run's `steps` steps
    /// (`metrics.phase_profile`): the report goes to `<out_dir>/profile.txt`
    /// now and after the run summary at the end.
    pub fn phase_profiles(&mut self, steps: u64, profiles: &[Profile]) -> Result<(), TrainError> {
        // Every rank computes an equal share of the step.
        let tokens = self.plan.tokens_per_step() as f64 * steps as f64;
        let rank_tokens = tokens / self.plan.grid.world_size() as f64;
        let flops = PhaseFlops::new(&self.plan.model, rank_tokens);
        let text = phase_report(steps, profiles, &flops);
        write_atomically(&self.plan.train.out_dir.join("profile.txt"), &text)?;
        self.phase_profile = Some(text);
        Ok(())
    }

    /// Every rank's timeline of the traced steps (`ranks[r]` is rank `r`),
    /// written to `<out_dir>/trace.json`.
    pub fn trace(&mut self, ranks: &[Vec<TraceSlice>]) -> Result<(), TrainError> {
        let path = self.plan.train.out_dir.join(TRACE_FILE);
        write_atomically(&path, &chrome_trace(ranks, &self.plan.grid))?;
        tracing::info!(
            path = %path.display(),
            slices = ranks.iter().map(Vec::len).sum::<usize>(),
            "step timeline written; open it in https://ui.perfetto.dev"
        );
        Ok(())
    }

    /// Ends the run: the summary goes to every sink.
    pub fn finish(&mut self) -> Result<RunSummary, TrainError> {
        let mut summary = RunSummary::new(
            self.run.steps,
            self.run.tokens,
            self.run.step_time_s,
            self.flops_per_token,
            self.peak_gflops,
        );
        summary.final_loss = self.totals.last_loss;
        summary.final_eval_loss = self.totals.last_eval_loss;
        summary.peak_rss_bytes = peak_rss_bytes();
        summary.device_peak_bytes = self.device_peak_bytes;
        summary.phase_profile = self.phase_profile.take();
        for sink in &self.sinks {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .finish(&summary)?;
        }
        Ok(summary)
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so readers
/// never see a half-written file.
fn write_atomically(path: &Path, text: &str) -> Result<(), TrainError> {
    let temp = path.with_extension("tmp");
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::write(&temp, text))
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| TrainError::Invalid(format!("cannot write {}: {e}", path.display())))
}

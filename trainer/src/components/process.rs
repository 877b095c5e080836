//! Components of the process-level context.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use appctx::{Config, ContextHandle, Runner, component, on_custom, on_property};

use crate::bench::measure_matmul_gflops;
use crate::data::{DataConfig, DataError, DataSource, TrainConfig, open_data_source};
use crate::kernels::{KernelsConfig, Threads};
use crate::metrics::{
    ConsoleSink, CsvSink, JsonlSink, MetricsConfig, MetricsError, MetricsSink, StepRecord,
};
use crate::model::ModelConfig;
use crate::optim::{OptimizerConfig, OptimizerFactory};
use crate::parallel::{Backend, LocalBackend, ParallelConfig};
use crate::train::{
    CheckpointWriter, Claim, DiskCheckpoints, RunDir, RunOptions, RunStatus, SharedSink,
    StartState, TrainError, TrainPlan, TrainRunner,
};

/// Ranks as threads of this process (`parallel.backend = "local"`).
fn local(parallel: Config<ParallelConfig>) -> Arc<dyn Backend> {
    let timeout = Duration::from_secs_f64(parallel.timeout_s.clamp(1e-3, 1e9));
    Arc::new(LocalBackend::new(parallel.world_size, timeout))
}
component!(local, select = "parallel.backend");

/// The validated plan of the run (the optimizer for its state in the memory
/// estimate).
#[allow(clippy::too_many_arguments)]
fn train_plan(
    model: Config<ModelConfig>,
    train: Config<TrainConfig>,
    optimizer: Config<OptimizerConfig>,
    optimizers: Arc<dyn OptimizerFactory>,
    parallel: Config<ParallelConfig>,
    kernels: Config<KernelsConfig>,
    metrics: Config<MetricsConfig>,
    backend: Arc<dyn Backend>,
) -> Result<Arc<TrainPlan>, TrainError> {
    let plan = TrainPlan::new(
        &model,
        &train,
        &optimizer,
        optimizers.state_per_parameter(),
        &parallel,
        &kernels,
        &metrics,
        backend.local_ranks().len(),
    )?;
    if let Some(warning) = &plan.oversubscription {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(plan))
}
component!(train_plan);

/// The dataset, opened once per process and shared by its ranks, with
/// enough validation windows for `train.eval_batches`; registered once per
/// built-in `data.source` name.
fn open_source(
    data: Config<DataConfig>,
    model: Config<ModelConfig>,
    train: Config<TrainConfig>,
) -> Result<Arc<dyn DataSource>, DataError> {
    let source = open_data_source(&data, &model, train.seed)?;
    train.check_eval_windows(&*source)?;
    Ok(source)
}
component!(open_source, name = "synthetic", select = "data.source");
component!(open_source, name = "text", select = "data.source");
component!(open_source, name = "tokens", select = "data.source");

/// `train.out_dir`, locked for this run and checked to hold no other run's
/// files, in the process that runs rank 0 (the only one that writes there).
fn run_dir(
    plan: Arc<TrainPlan>,
    options: Option<Arc<RunOptions>>,
    backend: Arc<dyn Backend>,
) -> Result<Arc<RunDir>, TrainError> {
    let out_dir = &plan.train.out_dir;
    if !reports(&*backend) {
        return Ok(Arc::new(RunDir::unclaimed(out_dir)));
    }
    let claim = match options.as_ref().and_then(|o| o.resume.as_ref()) {
        Some(point) => Claim::Resume {
            run_id: point.state.run.run_id.clone(),
        },
        None => Claim::Fresh {
            overwrite: plan.train.overwrite,
        },
    };
    Ok(Arc::new(RunDir::claim(out_dir, &claim)?))
}
component!(run_dir);

/// The weights every rank starts from (resumed, imported or initialized),
/// read once `train.out_dir` is claimed (when the run writes there).
fn start_state(
    plan: Arc<TrainPlan>,
    options: Option<Arc<RunOptions>>,
    _claimed: Option<Arc<RunDir>>,
    data_config: Config<DataConfig>,
    data: Arc<dyn DataSource>,
) -> Result<Arc<StartState>, TrainError> {
    let options = options.as_deref().cloned().unwrap_or_default();
    Ok(Arc::new(StartState::load(
        &plan,
        &options,
        &data_config,
        &*data,
    )?))
}
component!(start_state);

/// Checkpoints in `<out_dir>/checkpoints/step-N/` (`train.checkpoint_every`
/// and the end of the run), written by the process that runs rank 0.
fn disk_checkpoints(plan: Arc<TrainPlan>, _claimed: Arc<RunDir>) -> Arc<dyn CheckpointWriter> {
    Arc::new(DiskCheckpoints {
        out_dir: plan.train.out_dir.clone(),
        keep_last: plan.train.keep_last,
    })
}
component!(disk_checkpoints);

/// `<out_dir>/metrics.jsonl`, continued (and truncated to the resumed step)
/// when resuming. Only the process that runs rank 0 reports; elsewhere the
/// sink discards.
fn jsonl_metrics(
    plan: Arc<TrainPlan>,
    start: Arc<StartState>,
    run_dir: Arc<RunDir>,
) -> Result<Arc<SharedSink>, MetricsError> {
    if !run_dir.is_claimed() {
        return Ok(Arc::new(Mutex::new(Discard)));
    }
    let resumed = start.resumed.as_ref().map(|c| c.state.step);
    let sink = JsonlSink::create(&plan.train.out_dir, resumed)?;
    Ok(Arc::new(Mutex::new(sink)))
}
component!(jsonl_metrics, order = 0);

/// `<out_dir>/metrics.csv` (`metrics.csv = true`), with the resume rules of
/// `metrics.jsonl`, in the process that runs rank 0.
fn csv_metrics(
    plan: Arc<TrainPlan>,
    start: Arc<StartState>,
    backend: Arc<dyn Backend>,
) -> Result<Arc<SharedSink>, MetricsError> {
    if !reports(&*backend) {
        return Ok(Arc::new(Mutex::new(Discard)));
    }
    let resumed = start.resumed.as_ref().map(|c| c.state.step);
    let sink = CsvSink::create(&plan.train.out_dir, resumed)?;
    Ok(Arc::new(Mutex::new(sink)))
}
component!(
    csv_metrics,
    when = on_property("metrics.csv", "true"),
    order = 0
);

/// Step lines (or a progress bar on a terminal) and the final summary with
/// the `cptrain plot` command that draws the run, in the process that runs
/// rank 0.
fn console_metrics(
    plan: Arc<TrainPlan>,
    metrics: Config<MetricsConfig>,
    backend: Arc<dyn Backend>,
) -> Arc<SharedSink> {
    if !reports(&*backend) {
        return Arc::new(Mutex::new(Discard));
    }
    let sink = ConsoleSink::new(plan.train.steps, &metrics)
        .with_hint(crate::plot::plot_hint(&plan.train.out_dir));
    Arc::new(Mutex::new(sink))
}
component!(console_metrics, order = 1);

/// Whether this process runs global rank 0, the one that reports.
fn reports(backend: &dyn Backend) -> bool {
    backend.local_ranks().contains(&0)
}

/// The sink of processes that do not report.
struct Discard;

impl MetricsSink for Discard {
    fn record(&mut self, _record: &StepRecord) -> Result<(), MetricsError> {
        Ok(())
    }
}

/// Side of the square matmul measured at startup (2 GFLOP, ~20 ms a product).
const MATMUL_PROBE_SIZE: usize = 1024;

/// The matmul rate MFU is measured against: `metrics.peak_gflops` (the
/// job's), or, on the CPU device, measured at startup with all of the
/// process's kernel threads at `kernels.precision` (bf16 operands when the
/// run's products use them), times the job's processes. Another device's rate is not the host's: its plugin may provide
/// the peak (the CUDA plugin measures the GPU), else there is no MFU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachinePeak {
    /// GFLOP/s.
    pub gflops: f64,
    /// Whether it was measured (rather than configured).
    pub measured: bool,
}

fn machine_peak(
    metrics: Config<MetricsConfig>,
    kernels: Config<KernelsConfig>,
    parallel: Config<ParallelConfig>,
) -> Result<Arc<MachinePeak>, TrainError> {
    if let Some(gflops) = metrics.peak_gflops {
        return Ok(Arc::new(MachinePeak {
            gflops,
            measured: false,
        }));
    }
    let threads = Threads::new(kernels.threads_per_rank(1))?;
    let product = kernels
        .precision
        .cpu_product()
        .map_err(|e| TrainError::Invalid(format!("kernels.precision: {e}")))?;
    let one = measure_matmul_gflops(&threads, product, MATMUL_PROBE_SIZE, 6);
    Ok(Arc::new(MachinePeak {
        // Each process measures its own rate; the job's is their sum.
        gflops: one * parallel.processes() as f64,
        measured: true,
    }))
}

component!(
    machine_peak,
    when = on_custom(
        "kernels.device == cpu, or metrics.peak_gflops is set",
        |env| env.get_string("kernels.device").is_none_or(|d| d == "cpu")
            || env.contains("metrics.peak_gflops")
    )
);

/// The trainer, run by `ctx.run()`; its outcome goes to the context's
/// [`RunStatus`], when there is one.
fn trainer(
    context: ContextHandle,
    backend: Arc<dyn Backend>,
    metrics: Config<MetricsConfig>,
    status: Option<Arc<RunStatus>>,
) -> Arc<dyn Runner> {
    let mut runner = TrainRunner::new(context, backend, super::RANK_SCOPE)
        .with_phase_profile(metrics.phase_profile);
    if let Some(status) = status {
        runner = runner.with_status(status);
    }
    Arc::new(runner)
}
component!(trainer);

//! Components of each rank's child context (scope `rank`).

use std::sync::Arc;

use appctx::{Config, Scope, component, on_custom, on_property};

use super::{MachinePeak, RANK_SCOPE};
use crate::attention::{
    AllGatherAttention, Attention, LocalAttention, RingAttention, UlyssesAttention,
};
use crate::data::{DataConfig, DataSource};
use crate::inference::TrainingSampler;
use crate::kernels::{CpuKernels, Kernels, KernelsConfig, Threads};
use crate::optim::OptimizerConfig;
use crate::parallel::Backend;
use crate::train::{
    CheckpointWriter, RankGroups, RankInfo, RankTrainer, Reporter, RunOptions, SharedSink,
    StartState, TrainError, TrainPlan,
};

fn rank_scope() -> Scope {
    Scope::named(RANK_SCOPE)
}

/// The rank's kernel threads (its share of `kernels.threads`).
fn rank_threads(plan: Arc<TrainPlan>) -> Result<Arc<Threads>, TrainError> {
    Ok(Arc::new(Threads::new(plan.threads_per_rank)?))
}
component!(rank_threads, scope = rank_scope());

/// CPU kernels (`kernels.device = "cpu"`) at `kernels.precision`.
fn cpu(
    threads: Arc<Threads>,
    kernels: Config<KernelsConfig>,
) -> Result<Arc<dyn Kernels>, TrainError> {
    let cpu = CpuKernels::with_precision((*threads).clone(), kernels.precision)
        .map_err(|e| TrainError::Invalid(format!("kernels.precision: {e}")))?;
    Ok(Arc::new(cpu))
}
component!(cpu, select = "kernels.device", scope = rank_scope());

/// The rank's CP and DP×CP process groups.
fn rank_groups(
    info: Arc<RankInfo>,
    plan: Arc<TrainPlan>,
    backend: Arc<dyn Backend>,
) -> Result<Arc<RankGroups>, TrainError> {
    Ok(Arc::new(RankGroups::new(&*backend, &plan.grid, info.rank)?))
}
component!(rank_groups, scope = rank_scope());

/// Whole-sequence attention when the sequence is not split (`parallel.cp = 1`).
fn local_attention(kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    Arc::new(LocalAttention::new(kernels))
}
component!(
    local_attention,
    name = "local",
    when = on_property("parallel.cp", "1"),
    scope = rank_scope()
);

fn cp_enabled() -> appctx::Condition {
    on_custom("parallel.cp > 1", |env| {
        env.get_string("parallel.cp")
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|cp| cp > 1)
    })
}

/// Ring attention over the CP group (`parallel.cp_comm = "p2p"`).
fn p2p(groups: Arc<RankGroups>, kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    Arc::new(RingAttention::new(groups.cp.clone(), kernels, true))
}
component!(
    p2p,
    select = "parallel.cp_comm",
    when = cp_enabled(),
    scope = rank_scope()
);

/// All-gather K/V attention (`parallel.cp_comm = "all_gather"`).
fn all_gather(groups: Arc<RankGroups>, kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    Arc::new(AllGatherAttention::new(groups.cp.clone(), kernels, true))
}
component!(
    all_gather,
    select = "parallel.cp_comm",
    when = cp_enabled(),
    scope = rank_scope()
);

/// Ulysses all-to-all attention (`parallel.cp_comm = "a2a"`).
fn a2a(groups: Arc<RankGroups>, kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    Arc::new(UlyssesAttention::new(groups.cp.clone(), kernels, true))
}
component!(
    a2a,
    select = "parallel.cp_comm",
    when = cp_enabled(),
    scope = rank_scope()
);

/// The rank's trainer; global rank 0 also reports metrics (MFU when a
/// [`MachinePeak`] is in the context) and hands out checkpoints.
#[allow(clippy::too_many_arguments)]
fn rank_trainer(
    info: Arc<RankInfo>,
    plan: Arc<TrainPlan>,
    optimizer: Config<OptimizerConfig>,
    start: Arc<StartState>,
    data: Arc<dyn DataSource>,
    kernels: Arc<dyn Kernels>,
    attention: Arc<dyn Attention>,
    groups: Arc<RankGroups>,
    sinks: Vec<Arc<SharedSink>>,
    writers: Vec<Arc<dyn CheckpointWriter>>,
    options: Option<Arc<RunOptions>>,
    peak: Option<Arc<MachinePeak>>,
) -> Result<Arc<RankTrainer>, TrainError> {
    let reporter = if info.rank == 0 {
        let options = options.as_deref().cloned().unwrap_or_default();
        let peak = peak.map(|p| p.gflops);
        let plan = plan.clone();
        Some(Reporter::new(plan, sinks, writers, &start, &options, peak)?)
    } else {
        None
    };
    let trainer = RankTrainer::new(
        *info, plan, &optimizer, &start, data, kernels, attention, groups, reporter,
    )?;
    Ok(Arc::new(trainer))
}
component!(rank_trainer, scope = rank_scope());

/// The samples printed during training (`train.sample_every`), by global
/// rank 0 only.
fn training_sampler(
    info: Arc<RankInfo>,
    plan: Arc<TrainPlan>,
    data: Config<DataConfig>,
    kernels: Arc<dyn Kernels>,
) -> Result<Arc<TrainingSampler>, TrainError> {
    let every = if info.rank == 0 {
        plan.train.sample_every
    } else {
        0
    };
    let sampler = TrainingSampler::new(every, &plan.train, &plan.model, &data.tokenizer, kernels);
    Ok(Arc::new(sampler.map_err(TrainError::Invalid)?))
}
component!(training_sampler, scope = rank_scope());

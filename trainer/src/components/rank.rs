//! Components of each rank's child context (scope `rank`).

use std::sync::Arc;

use appctx::{Condition, Config, Scope, component, on_check};

use super::{MachinePeak, RANK_SCOPE};
use crate::attention::{Attention, BuiltinStrategy};
use crate::data::DataSource;
use crate::inference::TrainingSampler;
use crate::kernels::{CpuKernels, Kernels, KernelsConfig, Threads};
use crate::optim::{LearningRate, OptimizerConfig, OptimizerFactory};
use crate::parallel::Backend;
use crate::tokenizer::Tokenizer;
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

/// The built-in strategy `strategy` over the rank's CP group.
fn builtin_attention(
    strategy: BuiltinStrategy,
    groups: &RankGroups,
    kernels: Arc<dyn Kernels>,
) -> Arc<dyn Attention> {
    strategy.build(groups.cp.clone(), kernels)
}

/// Ring attention over the CP group (`parallel.cp_comm = "p2p"`, the
/// default); whole-sequence attention at `parallel.cp = 1`, as for every
/// built-in strategy.
fn p2p(groups: Arc<RankGroups>, kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    builtin_attention(BuiltinStrategy::P2p, &groups, kernels)
}
component!(p2p, select = "parallel.cp_comm", scope = rank_scope());

/// All-gather K/V attention (`parallel.cp_comm = "all_gather"`).
fn all_gather(groups: Arc<RankGroups>, kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    builtin_attention(BuiltinStrategy::AllGather, &groups, kernels)
}
component!(
    all_gather,
    select = "parallel.cp_comm",
    scope = rank_scope()
);

/// Ulysses all-to-all attention (`parallel.cp_comm = "a2a"`): it scatters
/// whole heads over the CP group, which its condition requires.
fn a2a(groups: Arc<RankGroups>, kernels: Arc<dyn Kernels>) -> Arc<dyn Attention> {
    builtin_attention(BuiltinStrategy::A2a, &groups, kernels)
}
component!(
    a2a,
    select = "parallel.cp_comm",
    when = heads_split_over_cp(),
    scope = rank_scope()
);

/// Ulysses' requirement: `parallel.cp` divides each TP rank's heads
/// (`model.n_head / parallel.tp`). Values that do not parse are left to the
/// sections' own validation.
fn heads_split_over_cp() -> Condition {
    on_check(
        "parallel.cp divides each rank's heads (a2a scatters whole heads over the CP group)",
        |env| {
            let number = |key: &str| {
                env.get_string(key)
                    .map_or(Some(1), |v| v.parse::<usize>().ok())
            };
            let (Some(heads), Some(tp), Some(cp)) = (
                number("model.n_head"),
                number("parallel.tp"),
                number("parallel.cp"),
            ) else {
                return Ok(());
            };
            let rank_heads = heads / tp.max(1);
            if cp == 0 || rank_heads.is_multiple_of(cp) {
                return Ok(());
            }
            let held = if tp > 1 {
                format!("model.n_head / parallel.tp = {heads} / {tp} = {rank_heads} heads per rank")
            } else {
                format!("model.n_head = {heads}")
            };
            Err(format!(
                "{held}, not divisible by parallel.cp = {cp}; choose cp among the divisors of \
                 {rank_heads}, or cp_comm = \"p2p\" or \"all_gather\""
            ))
        },
    )
}

/// The rank's trainer; global rank 0 also reports metrics (MFU when a
/// [`MachinePeak`] is in the context) and hands out checkpoints.
#[allow(clippy::too_many_arguments)]
fn rank_trainer(
    info: Arc<RankInfo>,
    plan: Arc<TrainPlan>,
    optimizer: Config<OptimizerConfig>,
    optimizers: Arc<dyn OptimizerFactory>,
    schedule: Arc<dyn LearningRate>,
    tokenizer: Arc<dyn Tokenizer>,
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
    let computes = kernels.product_precision();
    if computes != plan.precision {
        return Err(TrainError::Invalid(format!(
            "kernels.precision = \"{}\": the device {} computes its products in {computes} \
             only; set kernels.precision = \"{computes}\"",
            plan.precision,
            kernels.name()
        )));
    }
    let reporter = if info.rank == 0 {
        let options = options.as_deref().cloned().unwrap_or_default();
        let peak = peak.map(|p| p.gflops);
        let plan = plan.clone();
        Some(Reporter::new(
            plan,
            sinks,
            writers,
            &start,
            &options,
            &*tokenizer,
            peak,
        )?)
    } else {
        None
    };
    let trainer = RankTrainer::new(
        *info,
        plan,
        &optimizer,
        &*optimizers,
        schedule,
        &start,
        data,
        kernels,
        attention,
        groups,
        reporter,
    )?;
    Ok(Arc::new(trainer))
}
component!(rank_trainer, scope = rank_scope());

/// The samples printed during training (`train.sample_every`), by global
/// rank 0 only.
fn training_sampler(
    info: Arc<RankInfo>,
    plan: Arc<TrainPlan>,
    tokenizer: Arc<dyn Tokenizer>,
    kernels: Arc<dyn Kernels>,
) -> Result<Arc<TrainingSampler>, TrainError> {
    let every = if info.rank == 0 {
        plan.train.sample_every
    } else {
        0
    };
    let sampler = TrainingSampler::new(every, &plan.train, &plan.model, tokenizer, kernels);
    Ok(Arc::new(sampler.map_err(TrainError::Invalid)?))
}
component!(training_sampler, scope = rank_scope());

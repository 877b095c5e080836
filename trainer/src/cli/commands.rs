use std::fmt::Write as _;
use std::sync::Arc;

use appctx::{CancellationToken, ContextBuilder, Environment};

use super::{Cli, Command, RunArgs, build_environment};
use crate::checkpoint::import_hf_gpt2;
use crate::components::RANK_SCOPE;
use crate::data::{DataConfig, TrainConfig, open_data_source};
use crate::kernels::KernelsConfig;
use crate::metrics::MetricsConfig;
use crate::model::{ModelConfig, ParamLayout};
use crate::optim::OptimizerConfig;
use crate::parallel::ParallelConfig;
use crate::train::{AvailableMemory, RankInfo, ResumeFrom, RunOptions, TrainPlan, human_bytes};

/// A command's failure: printed as one paragraph.
pub(super) type CommandError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one parsed command line.
pub fn execute(cli: Cli) -> Result<(), CommandError> {
    let env = build_environment(&cli.layers)?;
    match cli.command {
        Command::Config => {
            print!("{}", env.effective());
            Ok(())
        }
        Command::Components => {
            let prepared = context_builder(env).prepare()?;
            print!("{}", prepared.condition_report());
            Ok(())
        }
        Command::Check => check(env),
        Command::Bench(args) => super::bench::bench(&env, &args),
        Command::Run(args) => run(env, &args),
    }
}

/// The process context of every command, before anything run-specific.
fn context_builder(env: Environment) -> ContextBuilder {
    ContextBuilder::new().name("cptrain").environment(env)
}

/// The plan as the run would compute it, from the bound sections alone.
fn plan_of(env: &Environment) -> Result<TrainPlan, CommandError> {
    let model: ModelConfig = env.bind("model")?;
    let train: TrainConfig = env.bind("train")?;
    let parallel: ParallelConfig = env.bind("parallel")?;
    let kernels: KernelsConfig = env.bind("kernels")?;
    let optimizer: OptimizerConfig = env.bind("optimizer")?;
    let metrics: MetricsConfig = env.bind("metrics")?;
    let local_ranks = if parallel.backend == "local" {
        parallel.world_size
    } else {
        1
    };
    Ok(TrainPlan::new(
        &model,
        &train,
        &optimizer,
        &parallel,
        &kernels,
        &metrics,
        local_ranks,
    )?)
}

/// Everything `run` does before training, short of creating anything: the
/// plan and its memory fit, the process context and every rank's context
/// (their wiring, device included), the data and the initial weights.
fn check(env: Environment) -> Result<(), CommandError> {
    let plan = plan_of(&env)?;
    let dry = context_builder(env).prepare()?.dry_run();
    for rank in checked_ranks(&plan) {
        dry.prepare_child(RANK_SCOPE, |child| {
            child.instance(Arc::new(RankInfo { rank }))
        })
        .map_err(|e| format!("the context of rank {rank}: {e}"))?;
    }
    let data: DataConfig = dry.environment().bind("data")?;
    let source = open_data_source(&data, &plan.model, plan.train.seed)?;
    plan.train.check_eval_windows(&*source)?;
    if let Some(init) = &plan.model.init {
        import_hf_gpt2(init, &ParamLayout::gpt2(&plan.model))
            .map_err(|e| format!("model.init = {}: {e}", init.display()))?;
    }
    let mut out = String::new();
    writeln!(out, "{plan}")?;
    if let Some(available) = AvailableMemory::detect() {
        writeln!(
            out,
            "fits       {} of the {} available",
            human_bytes(plan.memory.total()),
            available
        )?;
    }
    writeln!(out, "data       {}", source.describe())?;
    writeln!(out, "components (process context)")?;
    for node in dry.graph().nodes {
        writeln!(out, "  {:<16} provides {}", node.name, node.provides)?;
    }
    writeln!(
        out,
        "\nOK: configuration, memory, wiring (process and rank contexts), data and initial \
         weights are valid; nothing was trained."
    )?;
    print!("{out}");
    Ok(())
}

/// The ranks whose contexts this process builds: all of them with the
/// local backend; elsewhere the process's rank is known only at launch, and
/// every rank's context is wired alike, so rank 0 stands for it.
fn checked_ranks(plan: &TrainPlan) -> std::ops::Range<usize> {
    if plan.parallel.backend == "local" {
        0..plan.grid.world_size()
    } else {
        0..1
    }
}

fn run(env: Environment, args: &RunArgs) -> Result<(), CommandError> {
    plan_of(&env)?;
    let resume = args.resume.as_ref().map(|dir| {
        if dir.as_os_str() == "latest" {
            ResumeFrom::Latest
        } else {
            ResumeFrom::Dir(dir.clone())
        }
    });
    let options = RunOptions {
        resume,
        config_snapshot: env.to_json(),
        // `config.toml` reproduces the run with `--config`.
        run_files: vec![
            ("config.toml".into(), env.to_toml()),
            ("config.sources.txt".into(), env.effective().to_string()),
        ],
    };
    let token = CancellationToken::new();
    let _signals = appctx::signals::cancel_on_signals(&token)?;
    let context = context_builder(env)
        .instance(Arc::new(options))
        .shutdown_token(token)
        .prepare()?
        .refresh()?;
    let result = context.run();
    context.close();
    Ok(result?)
}

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use appctx::{CancellationToken, ContextBuilder, Environment};

use super::resume::{prepare_resume, resume_target};
use super::{Cli, Command, ConfigLayers, RunArgs, build_environment};
use crate::checkpoint::import_model_init;
use crate::components::{RANK_SCOPE, configured};
use crate::data::{DataSource, TrainConfig};
use crate::kernels::KernelsConfig;
use crate::metrics::MetricsConfig;
use crate::model::ModelConfig;
use crate::optim::{OptimizerConfig, OptimizerFactory};
use crate::parallel::ParallelConfig;
use crate::train::{
    AvailableMemory, RankInfo, RankOutcome, RunOptions, RunStatus, TrainPlan, human_bytes,
};

/// A command's failure: printed as one paragraph.
pub(super) type CommandError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one parsed command line; returns the exit code of a command that
/// did not fail (`run` stopped by a signal: 128 + the signal).
pub fn execute(cli: Cli) -> Result<ExitCode, CommandError> {
    let env = build_environment(&cli.layers)?;
    match cli.command {
        Command::Config => print!("{}", env.effective()),
        Command::Components => {
            let prepared = context_builder(env).prepare()?;
            print!("{}", prepared.condition_report());
        }
        Command::Check => check(env)?,
        Command::Bench(args) => super::bench::bench(&env, &args)?,
        Command::Plot(args) => super::plot::plot(&args)?,
        Command::Prepare(args) => super::prepare::prepare(&env, &args)?,
        Command::Run(args) => return run(&cli.layers, env, &args),
        Command::Generate(args) => super::generate::generate_command(&cli.layers, &args)?,
        Command::Eval(args) => super::eval::eval_command(&cli.layers, &args)?,
        Command::Export(args) => super::export::export(&args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The process context of every command, before anything run-specific:
/// the binary's own context, so it takes every linked module (the
/// trainer's and the plugins' the binary links).
fn context_builder(env: Environment) -> ContextBuilder {
    ContextBuilder::new()
        .name("cptrain")
        .all_modules()
        .environment(env)
        // A key under a section that only inactive components read (a
        // plugin's section while another plugin is chosen) is an error.
        .strict_sections()
}

/// The plan as the run would compute it, from the bound sections alone.
fn plan_of(env: &Environment) -> Result<TrainPlan, CommandError> {
    let model: ModelConfig = env.bind("model")?;
    let train: TrainConfig = env.bind("train")?;
    let parallel: ParallelConfig = env.bind("parallel")?;
    let kernels: KernelsConfig = env.bind("kernels")?;
    let optimizer: OptimizerConfig = env.bind("optimizer")?;
    let metrics: MetricsConfig = env.bind("metrics")?;
    let local_ranks = parallel.ranks_per_process();
    // The optimizer `optimizer.kind` selects, for its state in the memory
    // estimate.
    let optimizers = configured::<dyn OptimizerFactory>(env, "optimizer")?;
    let plan = TrainPlan::new(
        &model,
        &train,
        &optimizer,
        optimizers.state_per_parameter(),
        &parallel,
        &kernels,
        &metrics,
        local_ranks,
    )?;
    // What the machine lacks for the device and the backend (a driver, a
    // library, a GPU), before any context.
    crate::parallel::probe_backend(&parallel)?;
    crate::kernels::probe_device(&kernels)?;
    Ok(plan)
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
    // The source `data.source` selects, a plugin's too, created as the
    // run creates it (the built-ins check the windows train.eval_batches
    // needs).
    let described = configured::<dyn DataSource>(dry.environment(), "data")?.describe();
    if let Some(init) = &plan.model.init {
        import_model_init(init, &plan.model)
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
    writeln!(out, "data       {described}")?;
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

fn run(layers: &ConfigLayers, env: Environment, args: &RunArgs) -> Result<ExitCode, CommandError> {
    let (env, resume, config_changes) = match &args.resume {
        None => (env, None, Vec::new()),
        Some(argument) => {
            let target = resume_target(argument);
            let resume = prepare_resume(layers, &env, target.as_deref(), args.fallback)?;
            (resume.env, Some(resume.point), resume.changes)
        }
    };
    plan_of(&env)?;
    let options = RunOptions {
        resume,
        config_snapshot: env.to_json(),
        // `config.toml` reproduces the run with `--config`.
        run_files: vec![
            ("config.toml".into(), env.to_toml()),
            ("config.sources.txt".into(), env.effective().to_string()),
        ],
        config_changes,
    };
    let token = CancellationToken::new();
    let signals = appctx::signals::cancel_on_signals(&token)?;
    let status = Arc::new(RunStatus::default());
    let context = context_builder(env)
        .instance(Arc::new(options))
        .instance(status.clone())
        .shutdown_token(token)
        .prepare()?
        .refresh();
    let result = context.and_then(|context| {
        let result = context.run();
        context.close();
        result
    });
    result?;
    let Some(signal) = signals.received() else {
        return Ok(ExitCode::SUCCESS);
    };
    match status.outcome() {
        Some(outcome) if !outcome.interrupted => return Ok(ExitCode::SUCCESS),
        outcome => eprintln!("{}", interrupted_message(signal, outcome.as_ref())),
    }
    Ok(ExitCode::from(128 + signal as u8))
}

/// What a run stopped by `signal` says: where its checkpoint is and how to
/// continue, or that nothing was trained.
fn interrupted_message(signal: i32, outcome: Option<&RankOutcome>) -> String {
    let name = match signal {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    };
    match outcome {
        Some(RankOutcome {
            next_step,
            checkpoint: Some(dir),
            ..
        }) => format!(
            "stopped by {name} after step {next_step}; the checkpoint is {}. Continue with \
             `cptrain run --resume` and the same --config/--profile/--set options (or \
             `--resume {}`)",
            dir.display(),
            dir.display()
        ),
        Some(outcome) if outcome.next_step > outcome.first_step => format!(
            "stopped by {name} after step {}; this process saved no checkpoint (another rank's \
             process reports)",
            outcome.next_step
        ),
        _ => format!("stopped by {name} before the first step: nothing was trained or saved"),
    }
}

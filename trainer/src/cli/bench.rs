use std::fmt::Write as _;

use appctx::Environment;

use super::BenchArgs;
use super::commands::CommandError;
use crate::attention::QkvLayout;
use crate::bench::{BenchConfig, measure_matmul_gflops, run_step_benchmark};
use crate::components::configured;
use crate::data::TrainConfig;
use crate::kernels::{KernelsConfig, Threads};
use crate::model::ModelConfig;
use crate::optim::{OptimizerConfig, OptimizerFactory};
use crate::parallel::ParallelConfig;
use crate::train::{AvailableMemory, MemoryEstimate, MemoryInputs};

/// `cptrain bench`: the configured model (`[model]`), one rank with all of
/// `kernels.threads`, `train.batch_size` sequences per step, updated by the
/// optimizer `optimizer.kind` selects (a plugin's too); prints the step
/// times, throughput, MFU against the matmul rate measured in the same run,
/// and the per-phase profile. `[parallel]` is not used: with several ranks
/// configured it says so and how to profile them (`metrics.phase_profile`,
/// `metrics.trace_steps`).
pub fn bench(env: &Environment, args: &BenchArgs) -> Result<(), CommandError> {
    let model: ModelConfig = env.bind("model")?;
    let train: TrainConfig = env.bind("train")?;
    let kernels: KernelsConfig = env.bind("kernels")?;
    let optimizer: OptimizerConfig = env.bind("optimizer")?;
    let parallel: ParallelConfig = env.bind("parallel")?;
    optimizer.validate()?;
    model.validate()?;
    let optimizers = configured::<dyn OptimizerFactory>(env, "optimizer")?;
    let threads = kernels.threads_per_rank(1);
    // One rank, whole sequences, the batch in one micro-batch.
    MemoryEstimate::new(&MemoryInputs {
        model: &model,
        train: &TrainConfig {
            micro_batch_size: None,
            ..train.clone()
        },
        parallel: &ParallelConfig::default(),
        optimizer: &optimizer.kind,
        optimizer_state: optimizers.state_per_parameter(),
        dp: 1,
        layout: QkvLayout::Packed,
        precision: kernels.precision,
        local_ranks: 1,
        threads_per_rank: threads,
        // `cptrain bench` runs the CPU kernels.
        device_memory: false,
    })
    .check_fit(AvailableMemory::detect())?;
    let mut cfg = BenchConfig::new(model, train.batch_size);
    cfg.threads = threads;
    cfg.steps = args.steps;
    cfg.warmup = args.warmup;
    cfg.profile = !args.no_profile;
    cfg.seed = train.seed;
    cfg.lr = optimizer.lr;
    cfg.precision = kernels.precision;
    let product = kernels
        .precision
        .cpu_product()
        .map_err(crate::bench::BenchError::from)?;
    let peak = measure_matmul_gflops(&Threads::new(cfg.threads)?, product, 1024, 6);
    let report = run_step_benchmark(&cfg, &*optimizers, |i, s| {
        eprintln!(
            "step {}/{}: {:.1} ms, loss {:.4}",
            i + 1,
            cfg.steps,
            s.seconds * 1e3,
            s.loss
        );
    })?;
    let times: Vec<f64> = report.samples.iter().map(|s| s.seconds * 1e3).collect();
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    let m = &cfg.model;
    let mut out = String::new();
    writeln!(
        out,
        "model L{} d{} h{} T{} V{}, batch {}, optimizer {}, {} thread(s), {} timed step(s)",
        m.n_layer,
        m.n_embd,
        m.n_head,
        m.seq_len,
        m.vocab_size,
        cfg.batch,
        optimizer.kind,
        report.threads,
        cfg.steps
    )?;
    writeln!(
        out,
        "step       {:.1} ms median ({min:.1}-{max:.1})",
        report.median_seconds() * 1e3
    )?;
    writeln!(
        out,
        "throughput {:.0} tokens/s, {:.1} GFLOP/s",
        report.tokens_per_second(),
        report.gflops()
    )?;
    writeln!(
        out,
        "mfu        {:.0}% of the {peak:.1} GFLOP/s measured for a 1024^3 {} matmul in this run",
        100.0 * report.gflops() / peak,
        cfg.precision
    )?;
    if let Some(rss) = report.peak_rss_bytes {
        writeln!(out, "memory     peak RSS {:.0} MiB", rss as f64 / 1048576.0)?;
    }
    if let Some(profile) = &report.profile {
        let flops = report.phase_flops(&cfg.model);
        writeln!(out, "\n{}", profile.table(Some(&flops)))?;
    }
    if parallel.world_size > 1 {
        writeln!(
            out,
            "note: bench times one rank without communication (parallel.world_size = {} is not \
             used); for every rank's phases, communication included, run `cptrain run --set \
             metrics.phase_profile=true` with the same settings, or `--set metrics.trace_steps=2` \
             for a timeline of two steps (trace.json)",
            parallel.world_size
        )?;
    }
    print!("{out}");
    Ok(())
}

//! Full training steps (forward + backward + AdamW) of the GPT-2 model on one
//! rank, one JSON object per line on stdout, the per-phase profile on stderr.
//!
//! ```text
//! cargo run --release -p cptrain --example step_bench -- \
//!     --layers 2 --embd 128 --heads 4 --seq 256 --batch 8 --vocab 256 \
//!     --threads 2 --steps 10 --warmup 2 [--profile] [--matmul-peak] [--bf16]
//! ```
//!
//! `--bf16` runs the model's matrix products, and the matmul peak, with
//! bf16 operands (`kernels.precision = "bf16"`).
//!
//! `bench/compare.py` runs this beside `bench/torch_gpt2.py`.

use std::process::ExitCode;

use cptrain::bench::{BenchConfig, measure_matmul_gflops, run_step_benchmark};
use cptrain::kernels::{Precision, Threads};
use cptrain::model::ModelConfig;
use cptrain::optim::{AdamWFactory, OptimizerConfig};
use serde_json::json;

/// The allocator the `cptrain` binary uses, so both measure the same thing.
#[global_allocator]
static ALLOC: cptrain::HugePageAlloc = cptrain::HugePageAlloc;

const USAGE: &str = "usage: step_bench --layers L --embd D --heads H --seq T --batch B --vocab V \
[--threads N] [--steps S] [--warmup W] [--profile] [--matmul-peak] [--bf16]";

fn parse(args: &[String]) -> Result<(BenchConfig, bool), String> {
    let mut model = ModelConfig {
        n_layer: 0,
        n_head: 0,
        n_embd: 0,
        vocab_size: 0,
        seq_len: 0,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    };
    let mut cfg = BenchConfig::new(model.clone(), 0);
    let mut matmul = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--profile" => cfg.profile = true,
            "--matmul-peak" => matmul = true,
            "--bf16" => cfg.precision = Precision::Bf16,
            _ => {
                let value = it.next().ok_or(format!("{flag} needs a value"))?;
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("{flag}: expected a whole number, got {value:?}"))?;
                match flag.as_str() {
                    "--layers" => model.n_layer = n,
                    "--embd" => model.n_embd = n,
                    "--heads" => model.n_head = n,
                    "--seq" => model.seq_len = n,
                    "--vocab" => model.vocab_size = n,
                    "--batch" => cfg.batch = n,
                    "--threads" => cfg.threads = n,
                    "--steps" => cfg.steps = n,
                    "--warmup" => cfg.warmup = n,
                    _ => return Err(format!("unknown option {flag}")),
                }
            }
        }
    }
    cfg.model = model;
    Ok((cfg, matmul))
}

fn main() -> ExitCode {
    if let Err(e) = cptrain::HugePages::from_env() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, matmul) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if matmul {
        let measured = Threads::new(cfg.threads)
            .map_err(|e| e.to_string())
            .and_then(|threads| {
                let product = cfg.precision.cpu_product().map_err(|e| e.to_string())?;
                Ok(measure_matmul_gflops(&threads, product, 2048, 5))
            });
        let gflops = match measured {
            Ok(gflops) => gflops,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let line = json!({"kind": "matmul", "shape": [2048, 2048, 2048], "gflops": gflops,
            "precision": cfg.precision.to_string()});
        println!("{line}");
    }
    let adamw = AdamWFactory(OptimizerConfig::default());
    let report = run_step_benchmark(&cfg, &adamw, |i, s| {
        println!(
            "{}",
            json!({"kind": "step", "step": i, "seconds": s.seconds, "loss": s.loss})
        );
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(profile) = &report.profile {
        eprintln!(
            "per-phase time over {} steps ({} threads):\n{}",
            report.samples.len(),
            report.threads,
            profile.table(Some(&report.phase_flops(&cfg.model)))
        );
    }
    let summary = json!({
        "kind": "summary",
        "peak_rss_bytes": report.peak_rss_bytes,
        "threads": report.threads,
        "tokens_per_step": report.tokens_per_step,
        "flops_per_step": report.flops_per_step,
        "tokens_per_second": report.tokens_per_second(),
        "gflops": report.gflops(),
    });
    println!("{summary}");
    ExitCode::SUCCESS
}

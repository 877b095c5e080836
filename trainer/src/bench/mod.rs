//! Training-step benchmark on one rank: full steps (zero grads, forward,
//! backward, optimizer update) of the GPT-2 model over its flat buffers,
//! timed one by one, with an optional per-phase profile and the machine's
//! matmul rate for scale. The optimizer is any [`OptimizerFactory`]'s (the
//! one `optimizer.kind` selects in `cptrain bench`).
//!
//! ```
//! use cptrain::bench::{BenchConfig, run_step_benchmark};
//! use cptrain::model::ModelConfig;
//! use cptrain::optim::{AdamWFactory, OptimizerConfig};
//!
//! let model = ModelConfig { n_layer: 1, n_head: 2, n_embd: 16, vocab_size: 32, seq_len: 8, init: None,
//!     n_positions: None, vocab_padding: 1 };
//! let cfg = BenchConfig { steps: 2, warmup: 1, profile: true, ..BenchConfig::new(model, 2) };
//! let adamw = AdamWFactory(OptimizerConfig::default());
//! let report = run_step_benchmark(&cfg, &adamw, |_, _| {}).unwrap();
//! assert_eq!(report.samples.len(), 2);
//! assert!(report.tokens_per_second() > 0.0);
//! ```

mod matmul;
#[cfg(test)]
mod optimizer_tests;
#[cfg(test)]
mod precision_tests;
mod report;

pub use matmul::measure_matmul_gflops;
pub use report::{BenchReport, StepSample};

use std::sync::Arc;
use std::time::Instant;

use crate::attention::{Attention, LocalAttention};
use crate::device::DeviceError;
use crate::kernels::{Bf16Unsupported, CpuKernels, Kernels, Precision, Threads, ThreadsError};
use crate::model::{
    Activations, Batch, Gpt, ModelConfig, ModelConfigError, ModelError, Pass, Phase,
    flops_per_token, init_params,
};
use crate::optim::{DecayMask, OptimizerConfig, OptimizerFactory};

/// What to benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// Model shape; sequences are `model.seq_len` tokens long.
    pub model: ModelConfig,
    /// Sequences per step.
    pub batch: usize,
    /// Kernel threads (`0` = all cores).
    pub threads: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (page faults, caches, lazy pools).
    pub warmup: usize,
    /// Collect a per-phase profile over the timed steps.
    pub profile: bool,
    /// Seed of the parameter init.
    pub seed: u64,
    /// The learning rate of every step (`optimizer.lr`).
    pub lr: f64,
    /// Number format of the model's matrix products.
    pub precision: Precision,
}

impl BenchConfig {
    /// Defaults around `model` and `batch`: 1 thread, 5 steps after 1
    /// warm-up, no profile, seed 1, the default `optimizer.lr`, f32
    /// products.
    pub fn new(model: ModelConfig, batch: usize) -> Self {
        BenchConfig {
            model,
            batch,
            threads: 1,
            steps: 5,
            warmup: 1,
            profile: false,
            seed: 1,
            lr: OptimizerConfig::default().lr,
            precision: Precision::F32,
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model shape is invalid.
    #[error("bench model: {0}")]
    Config(#[from] ModelConfigError),
    /// The kernel thread pool could not start.
    #[error(transparent)]
    Threads(#[from] ThreadsError),
    /// The model rejected the synthetic batch (a bug in the benchmark).
    #[error("bench step: {0}")]
    Model(#[from] ModelError),
    /// A batch of zero sequences measures nothing.
    #[error("bench batch must be at least 1 sequence")]
    EmptyBatch,
    /// This CPU cannot run the products at `precision`.
    #[error("kernels.precision: {0}")]
    Precision(#[from] Bf16Unsupported),
    /// The device failed.
    #[error("bench device: {0}")]
    Device(#[from] DeviceError),
}

/// The deterministic batch both cptrain and the PyTorch reference
/// (`bench/torch_gpt2.py`) train on: token `i` is `31·i mod vocab`, and each
/// target is the next id.
pub fn synthetic_tokens(n: usize, vocab: usize) -> (Vec<u32>, Vec<u32>) {
    let tokens: Vec<u32> = (0..n).map(|i| (i * 31 % vocab) as u32).collect();
    let targets = tokens.iter().map(|&t| (t + 1) % vocab as u32).collect();
    (tokens, targets)
}

/// Runs `cfg.warmup + cfg.steps` training steps, each updating the weights
/// with the optimizer `optimizer` builds, and reports the timed ones;
/// `on_step(i, sample)` sees each timed step as it finishes.
pub fn run_step_benchmark(
    cfg: &BenchConfig,
    optimizer: &dyn OptimizerFactory,
    mut on_step: impl FnMut(usize, &StepSample),
) -> Result<BenchReport, BenchError> {
    cfg.model.validate()?;
    if cfg.batch == 0 {
        return Err(BenchError::EmptyBatch);
    }
    let threads = Threads::new(cfg.threads)?;
    let thread_count = threads.count();
    let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::with_precision(threads, cfg.precision)?);
    let k = &*kernels;
    let attn = LocalAttention::new(kernels.clone());
    let gpt = Gpt::new(cfg.model.clone());
    let mut params = k.upload(&init_params(&cfg.model, cfg.seed))?;
    let mut grads = k.alloc(params.len())?;
    let mut optimizer = optimizer.build(DecayMask::from_layout(gpt.layout()), k)?;
    let len = cfg.model.seq_len;
    let n_tokens = cfg.batch * len;
    let mut acts = Activations::new(k, &cfg.model, cfg.batch, len, attn.qkv_layout())?;
    let (tokens, targets) = synthetic_tokens(n_tokens, cfg.model.vocab_size);
    let positions: Vec<usize> = (0..len).collect();
    let batch = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };

    let mut samples = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.warmup + cfg.steps {
        let timed = step >= cfg.warmup;
        if step == cfg.warmup {
            acts.set_profiling(cfg.profile);
        }
        let t0 = Instant::now();
        let timer = acts.profile().start();
        k.fill(grads.view_mut(), 0.0);
        let _ = acts
            .profile_mut()
            .stop(timer, Pass::Update, Phase::Optimizer);
        let loss = gpt.forward(k, &attn, params.view(), batch, &mut acts)?;
        let scale = 1.0 / loss.count.max(1) as f32;
        let grads_view = grads.view_mut();
        gpt.backward(k, &attn, params.view(), batch, scale, &mut acts, grads_view)?;
        let timer = acts.profile().start();
        optimizer.step(k, params.view_mut(), grads.view(), cfg.lr);
        let _ = acts
            .profile_mut()
            .stop(timer, Pass::Update, Phase::Optimizer);
        let sample = StepSample {
            seconds: t0.elapsed().as_secs_f64(),
            loss: loss.mean(),
        };
        if timed {
            on_step(samples.len(), &sample);
            samples.push(sample);
        }
    }
    Ok(BenchReport {
        samples,
        tokens_per_step: n_tokens,
        flops_per_step: flops_per_token(&cfg.model) * n_tokens as f64,
        threads: thread_count,
        profile: cfg.profile.then(|| acts.profile().clone()),
        peak_rss_bytes: crate::metrics::peak_rss_bytes(),
    })
}

//! The benchmark updates the weights with the optimizer it is given, not a
//! built-in one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BenchConfig, BenchReport, run_step_benchmark};
use crate::device::{DeviceError, Slice, SliceMut};
use crate::kernels::Kernels;
use crate::model::ModelConfig;
use crate::optim::{
    AdamWFactory, DecayMask, OptimStateError, Optimizer, OptimizerConfig, OptimizerFactory,
    OptimizerState,
};

/// An optimizer that leaves the weights alone and counts its steps.
struct Counting(Arc<AtomicU64>);

impl Optimizer for Counting {
    fn step(&mut self, _: &dyn Kernels, _: SliceMut<'_>, _: Slice<'_>, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn state(&self) -> Result<OptimizerState<'_>, OptimStateError> {
        Ok(OptimizerState {
            step: self.0.load(Ordering::Relaxed),
            slots: Vec::new(),
        })
    }

    fn load_state(&mut self, _: &OptimizerState<'_>) -> Result<(), OptimStateError> {
        Ok(())
    }
}

struct CountingFactory(Arc<AtomicU64>);

impl OptimizerFactory for CountingFactory {
    fn build(&self, _: DecayMask, _: &dyn Kernels) -> Result<Box<dyn Optimizer>, DeviceError> {
        Ok(Box::new(Counting(self.0.clone())))
    }
}

/// Every step, warm-up included, is one step of the given optimizer, and
/// since it never moves the weights every timed step sees the same loss
/// (bit for bit: same weights, same tokens, same kernels), where AdamW's
/// updates change it.
#[test]
fn the_given_optimizer_makes_every_update() {
    let model = ModelConfig {
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        vocab_size: 32,
        seq_len: 8,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    };
    let cfg = BenchConfig {
        steps: 3,
        warmup: 2,
        ..BenchConfig::new(model, 2)
    };
    let steps = Arc::new(AtomicU64::new(0));
    let report = run_step_benchmark(&cfg, &CountingFactory(steps.clone()), |_, _| {}).unwrap();
    assert_eq!(steps.load(Ordering::Relaxed), 5);
    let losses = |report: BenchReport| report.samples.iter().map(|s| s.loss).collect::<Vec<_>>();
    let unchanged = losses(report);
    assert!(
        unchanged.iter().all(|&l| l == unchanged[0]),
        "{unchanged:?}"
    );
    let adamw = AdamWFactory(OptimizerConfig::default());
    let cold = BenchConfig { warmup: 0, ..cfg };
    let trained = losses(run_step_benchmark(&cold, &adamw, |_, _| {}).unwrap());
    assert_eq!(trained[0], unchanged[0], "the same start");
    assert!(trained[2] < trained[0], "{trained:?}");
}

//! Built-ins of the trainer replaced by an application's own components,
//! registered from code and selected by configuration like the built-ins:
//! the learning-rate schedule (`optimizer.schedule`) and the optimizer
//! (`optimizer.kind`).

#[path = "../examples/embed.rs"]
#[allow(dead_code)] // the example's `main` is not called here
mod example;

use std::sync::Arc;

use appctx::{CancellationToken, ComponentDef, Config};
use cptrain::checkpoint::load_checkpoint;
use cptrain::device::{DeviceError, Slice, SliceMut};
use cptrain::embed::Training;
use cptrain::kernels::Kernels;
use cptrain::optim::{
    DecayMask, LearningRate, OptimStateError, Optimizer, OptimizerConfig, OptimizerFactory,
    OptimizerState,
};

/// lr, then half of it at each step.
struct Halving(f64);

impl LearningRate for Halving {
    fn lr_at(&self, step: u64) -> f64 {
        self.0 / 2f64.powi(step as i32)
    }
}

fn halving(optimizer: Config<OptimizerConfig>) -> Arc<dyn LearningRate> {
    Arc::new(Halving(optimizer.lr))
}

#[test]
fn a_schedule_registered_from_code_is_selected_by_config() {
    let mut config = example::tiny_config().unwrap();
    config.optimizer.schedule = "halving".into();
    let outcome = Training::from_config(&config)
        .unwrap()
        .context(|b| {
            b.component(ComponentDef::new("halving", halving).select("optimizer.schedule"))
        })
        .run(&CancellationToken::new())
        .expect("trains");
    let lrs: Vec<f64> = outcome.records.iter().map(|r| r.lr).collect();
    let expected: Vec<f64> = (0..lrs.len())
        .map(|s| config.optimizer.lr / 2f64.powi(s as i32))
        .collect();
    assert_eq!(lrs, expected);
}

/// Momentum of `SgdMomentum`.
const MOMENTUM: f32 = 0.5;

/// SGD with momentum as torch.optim.SGD does it (`buf ← μ·buf + g`,
/// `p ← p − lr·buf`), on host memory (the CPU device); its one slot is
/// torch's `momentum_buffer`.
struct SgdMomentum {
    step: u64,
    buffer: Vec<f32>,
}

impl Optimizer for SgdMomentum {
    fn step(&mut self, _kernels: &dyn Kernels, params: SliceMut<'_>, grads: Slice<'_>, lr: f64) {
        self.step += 1;
        let (params, grads) = (params.expect_host(), grads.expect_host());
        for ((p, g), b) in params.iter_mut().zip(grads).zip(&mut self.buffer) {
            *b = MOMENTUM * *b + g;
            *p -= lr as f32 * *b;
        }
    }

    fn state(&self) -> Result<OptimizerState<'_>, OptimStateError> {
        Ok(OptimizerState {
            step: self.step,
            slots: vec![("momentum_buffer".into(), self.buffer.as_slice().into())],
        })
    }

    fn load_state(&mut self, state: &OptimizerState<'_>) -> Result<(), OptimStateError> {
        state.check(&["momentum_buffer"], self.buffer.len())?;
        self.buffer
            .copy_from_slice(state.slot("momentum_buffer").unwrap());
        self.step = state.step;
        Ok(())
    }
}

struct SgdFactory;

impl OptimizerFactory for SgdFactory {
    fn build(&self, mask: DecayMask, _: &dyn Kernels) -> Result<Box<dyn Optimizer>, DeviceError> {
        Ok(Box::new(SgdMomentum {
            step: 0,
            buffer: vec![0.0; mask.len()],
        }))
    }

    /// The momentum buffer.
    fn state_per_parameter(&self) -> usize {
        1
    }
}

fn sgd() -> Arc<dyn OptimizerFactory> {
    Arc::new(SgdFactory)
}

/// The application's optimizer updates the trainer's weights and its state
/// is checkpointed: between the checkpoints of steps 1 and 2, the weights
/// moved by exactly `−lr · momentum_buffer` of step 2.
#[test]
fn an_optimizer_registered_from_code_trains_and_is_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut config = example::tiny_config().unwrap();
    config.optimizer.kind = "sgd".into();
    config.optimizer.schedule = "constant".into();
    config.optimizer.warmup_steps = 0;
    config.optimizer.lr = 0.1;
    config.train.steps = 2;
    config.train.checkpoint_every = 1;
    config.train.keep_last = 0;
    let outcome = Training::from_config(&config)
        .unwrap()
        .write_to(&out_dir)
        .context(|b| b.component(ComponentDef::new("sgd", sgd).select("optimizer.kind")))
        .run(&CancellationToken::new())
        .expect("trains");
    assert_eq!(outcome.records.len(), 2);
    let load = |step: u64| {
        let dir = out_dir.join(format!("checkpoints/step-{step}"));
        load_checkpoint(&dir, &config.model).unwrap()
    };
    let (first, second) = (load(1), load(2));
    assert_eq!(second.optimizer.slot_names(), ["momentum_buffer"]);
    assert_eq!(second.optimizer.step, 2);
    let buffer = second.optimizer.slot("momentum_buffer").unwrap();
    assert!(buffer.iter().any(|&b| b != 0.0));
    // p2 = p1 − lr·buf2 in f32: the difference of two weights of size ~0.1
    // carries an f32 rounding of ~1e-8, divided by lr = 0.1.
    for ((p1, p2), b) in first.params.iter().zip(&second.params).zip(buffer) {
        let moved = (p1 - p2) / 0.1;
        assert!((moved - b).abs() <= 1e-6 + 1e-5 * b.abs(), "{moved} vs {b}");
    }
}

//! The built-in optimizer (`optimizer.kind`) and learning-rate schedules
//! (`optimizer.schedule`); a plugin registers its own [`OptimizerFactory`]
//! or [`LearningRate`] under a new name.

use std::sync::Arc;

use appctx::{Config, component};

use crate::optim::{
    AdamWFactory, LearningRate, LrSchedule, OptimizerConfig, OptimizerFactory, ScheduleKind,
};
use crate::train::StartState;

/// AdamW with the `[optimizer]` section's hyperparameters (the default).
fn adamw(optimizer: Config<OptimizerConfig>) -> Arc<dyn OptimizerFactory> {
    Arc::new(AdamWFactory((*optimizer).clone()))
}
component!(adamw, select = "optimizer.kind");

/// The schedule of shape `kind` over the run's planned steps (those of its
/// first `train.steps`, kept on resume).
fn built_in(
    kind: ScheduleKind,
    cfg: &OptimizerConfig,
    start: &StartState,
) -> Arc<dyn LearningRate> {
    Arc::new(LrSchedule::new(kind, cfg, start.identity.schedule_steps))
}

/// Cosine decay to `optimizer.min_lr` (the default).
fn cosine(optimizer: Config<OptimizerConfig>, start: Arc<StartState>) -> Arc<dyn LearningRate> {
    built_in(ScheduleKind::Cosine, &optimizer, &start)
}
component!(cosine, select = "optimizer.schedule");

/// `optimizer.lr` after warmup.
fn constant(optimizer: Config<OptimizerConfig>, start: Arc<StartState>) -> Arc<dyn LearningRate> {
    built_in(ScheduleKind::Constant, &optimizer, &start)
}
component!(constant, select = "optimizer.schedule");

/// Linear decay to `optimizer.min_lr`.
fn linear(optimizer: Config<OptimizerConfig>, start: Arc<StartState>) -> Arc<dyn LearningRate> {
    built_in(ScheduleKind::Linear, &optimizer, &start)
}
component!(linear, select = "optimizer.schedule");

/// Warmup-stable-decay over the last `optimizer.decay_fraction` of the steps.
fn wsd(optimizer: Config<OptimizerConfig>, start: Arc<StartState>) -> Arc<dyn LearningRate> {
    built_in(ScheduleKind::Wsd, &optimizer, &start)
}
component!(wsd, select = "optimizer.schedule");

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use appctx::Executor;

use super::evaluation::{EvalBatches, RankModel};
use super::trace::gather_slices;
use super::{
    ModelShard, RankGroups, Reporter, StartState, TraceSlice, TraceWindow, TrainError, TrainPlan,
};
use crate::attention::Attention;
use crate::data::{BatchBuilder, DataSource, MicroBatch, Split};
use crate::device::Buffer;
use crate::inference::TrainingSampler;
use crate::kernels::Kernels;
use crate::model::{Activations, Batch, Pass, Phase, Profile};
use crate::optim::{
    DecayMask, LearningRate, Optimizer, OptimizerConfig, OptimizerFactory, OptimizerState,
    clip_coefficient,
};
use crate::parallel::{GroupKind, ProcessGroup, ReduceOp};

/// One rank's identity, given to its child context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankInfo {
    /// Global rank.
    pub rank: usize,
}

/// What one optimizer step measured (identical on every rank).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean loss over the global batch.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate applied.
    pub lr: f64,
    /// Peak memory of the rank's device so far (devices other than the host).
    pub device_peak_bytes: Option<u64>,
    /// Bytes of `f32` buffers the rank's device copied to or from the host
    /// during the step ([`Kernels::host_transfer_bytes`]).
    pub device_host_bytes: Option<u64>,
}

/// How a rank's training ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RankOutcome {
    /// The 0-based step this run started at.
    pub first_step: u64,
    /// The 0-based step the next run would start at.
    pub next_step: u64,
    /// Whether a shutdown request ended training early.
    pub interrupted: bool,
    /// The checkpoint holding `next_step` (on the reporting rank, when this
    /// run trained at least one step).
    pub checkpoint: Option<std::path::PathBuf>,
}

/// What an evaluation ended with.
enum Evaluation {
    /// The mean validation loss (`None`: evaluation is off or has no data).
    Loss(Option<f64>),
    /// A stop was requested during it; the step stays trained.
    Stopped,
}

/// The state one rank trains: its copy of the weights (its shard of them
/// under tensor parallelism), gradients, optimizer moments, activations and
/// batches. The weights are replicated over the DP×CP group; each rank sees
/// its own tokens (the same as the rest of its TP group).
pub struct RankTrainer {
    plan: Arc<TrainPlan>,
    model: ModelShard,
    kernels: Arc<dyn Kernels>,
    attention: Arc<dyn Attention>,
    groups: Arc<RankGroups>,
    /// Whether this rank helps assemble the whole model for the reporting
    /// rank (global rank 0) when it samples or saves: the ranks of rank 0's
    /// TP group; the others skip the copy.
    assembles: bool,
    schedule: Arc<dyn LearningRate>,
    grad_clip: f64,
    first_step: u64,
    reporter: Option<Mutex<Reporter>>,
    sampler: OnceLock<Arc<TrainingSampler>>,
    state: Mutex<RankState>,
}

struct RankState {
    params: Buffer,
    grads: Buffer,
    optimizer: Box<dyn Optimizer>,
    acts: Activations,
    batches: BatchBuilder,
    micro: Vec<MicroBatch>,
}

impl RankTrainer {
    /// Builds rank `info.rank`'s state from the shared start state, in the
    /// memory of the device of `kernels`; `reporter` is given to the rank
    /// that writes metrics and checkpoints. `optimizer` is the `[optimizer]`
    /// section (its clipping applies whatever the optimizer), `optimizers`
    /// builds the rank's optimizer and `schedule` gives each step's rate.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        info: RankInfo,
        plan: Arc<TrainPlan>,
        optimizer: &OptimizerConfig,
        optimizers: &dyn OptimizerFactory,
        schedule: Arc<dyn LearningRate>,
        start: &StartState,
        data: Arc<dyn DataSource>,
        kernels: Arc<dyn Kernels>,
        attention: Arc<dyn Attention>,
        groups: Arc<RankGroups>,
        reporter: Option<Reporter>,
    ) -> Result<Self, TrainError> {
        optimizer.validate()?;
        let model = ModelShard::new(&plan, &groups)?;
        let gpt = model.gpt();
        let k = &*kernels;
        let mut rank_optimizer = optimizers.build(DecayMask::from_layout(gpt.layout()), k)?;
        if let Some(resumed) = &start.resumed {
            rank_optimizer.load_state(&model.split_state(&resumed.optimizer)?)?;
        }
        let batch_plan = plan.batch_plan(info.rank)?;
        let micro_batches = batch_plan.micro_batches_per_step();
        let batches = BatchBuilder::new(batch_plan, data)?;
        let micro = (0..micro_batches)
            .map(|_| batches.new_micro_batch())
            .collect();
        let acts = Activations::with_shape(
            k,
            gpt.shape(),
            plan.micro_batch_size(),
            plan.local_seq_len(),
            attention.qkv_layout(),
        )?;
        let state = RankState {
            params: k.upload(&model.split(&start.params)?)?,
            grads: k.alloc(gpt.layout().len())?,
            optimizer: rank_optimizer,
            acts,
            batches,
            micro,
        };
        Ok(RankTrainer {
            assembles: groups.tp.info().members.contains(&0),
            schedule,
            grad_clip: optimizer.grad_clip,
            first_step: start.first_step(),
            plan,
            model,
            kernels,
            attention,
            groups,
            reporter: reporter.map(Mutex::new),
            sampler: OnceLock::new(),
            state: Mutex::new(state),
        })
    }

    /// Whether to time every phase of every step (`metrics.phase_profile`);
    /// after training, every rank's totals then reach the reporter. Set it
    /// on every rank or on none: gathering the totals is a collective.
    pub fn set_phase_profile(&self, enabled: bool) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .acts
            .set_profiling(enabled);
    }

    /// The samples printed during training (`train.sample_every`); the
    /// first one set stays.
    pub fn set_sampler(&self, sampler: Arc<TrainingSampler>) {
        let _ = self.sampler.set(sampler);
    }

    /// With `train.async_checkpoint`, the reporting rank writes its
    /// checkpoints as tasks of `executor` (the process context's ordered
    /// thread) while training goes on. Call it before [`train`](Self::train).
    pub fn set_checkpoint_executor(&self, executor: &Executor) {
        if self.plan.train.async_checkpoint
            && let Some(reporter) = &self.reporter
        {
            let mut reporter = reporter.lock().unwrap_or_else(PoisonError::into_inner);
            reporter.write_in_background(executor.clone());
        }
    }

    /// Trains from the start step to `train.steps`, or until `stop()` returns
    /// true on any rank (all ranks agree on the step at which they stop).
    /// However training ends, the reporting rank's checkpoint write in
    /// flight (`train.async_checkpoint`) has finished when this returns.
    pub fn train(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<RankOutcome, TrainError> {
        let trained = self.train_steps(stop);
        if trained.is_err()
            && let Some(reporter) = &self.reporter
        {
            // The write in flight holds what a resume starts from.
            let mut reporter = reporter.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(error) = reporter.flush() {
                tracing::error!(%error, "the checkpoint being written when training failed was not saved");
            }
        }
        trained
    }

    fn train_steps(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<RankOutcome, TrainError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let steps = self.plan.train.steps;
        let mut step = self.first_step;
        let mut interrupted = false;
        let window = self.trace_window();
        let mut trace = Vec::new();
        while step < steps {
            let number = step + 1;
            let traced = window.is_some_and(|w| w.contains(number));
            if traced {
                state.acts.profile_mut().start_trace();
                self.log_waits(true);
            }
            let started = Instant::now();
            let comm_before = self.groups.traffic();
            let Some(outcome) = self.step(&mut state, step, stop())? else {
                let _ = state.acts.profile_mut().take_trace();
                self.log_waits(false);
                interrupted = true;
                break;
            };
            let took = started.elapsed();
            if traced {
                trace.push(TraceSlice::step(number, started, started + took));
                let events = state.acts.profile_mut().take_trace();
                trace.extend(events.iter().map(|e| TraceSlice::phase(number, e)));
                for (kind, group) in self.traced_groups() {
                    let waits = group.take_waits();
                    trace.extend(waits.iter().map(|w| TraceSlice::wait(number, kind, w)));
                }
                self.log_waits(false);
            }
            let comm = self.groups.traffic().since(&comm_before);
            step += 1;
            let eval_every = self.plan.train.eval_every;
            let eval_loss = if (eval_every > 0 && step.is_multiple_of(eval_every)) || step == steps
            {
                match self.evaluate(&mut state, stop)? {
                    Evaluation::Loss(loss) => loss,
                    Evaluation::Stopped => {
                        interrupted = true;
                        None
                    }
                }
            } else {
                None
            };
            let due = |every: u64| self.assembles && every > 0 && step.is_multiple_of(every);
            let saves = due(self.plan.train.checkpoint_every) && step < steps;
            // Under tensor parallelism the whole model is gathered on every
            // rank of the TP group (a collective) before the reporting rank
            // samples from it or writes it.
            let full = if saves {
                Some(self.full_state(&state)?)
            } else {
                None
            };
            let weights = match &full {
                Some((params, _)) => Some(Cow::Borrowed(&params[..])),
                None if due(self.plan.train.sample_every) => Some(
                    self.model
                        .gather(&*self.groups.tp, state.params.to_host()?)?,
                ),
                None => None,
            };
            if let Some(reporter) = &self.reporter {
                let mut reporter = reporter.lock().unwrap_or_else(PoisonError::into_inner);
                reporter.step_done(step, &outcome, eval_loss, took, comm)?;
                if let Some(sampler) = self.sampler.get()
                    && let Some(weights) = &weights
                    && let Some(line) = sampler.after_step(step, weights)?
                {
                    println!("{line}");
                }
                if let Some((params, moments)) = full {
                    reporter.checkpoint(step, params, moments)?;
                }
            }
            if window.is_some_and(|w| w.last == step) {
                self.write_trace(&trace)?;
            }
            if interrupted {
                break;
            }
        }
        // Stopped early inside the window, after tracing some of it (this
        // run started at `first_step`): every rank stopped after the same
        // step, so they agree on writing what was traced.
        let traced_some = |w: TraceWindow| w.first.max(self.first_step + 1) <= step;
        if window.is_some_and(|w| traced_some(w) && step < w.last) {
            self.write_trace(&trace)?;
        }
        let profiles = if state.acts.profile().is_enabled() {
            Some(self.gather_profiles(state.acts.profile())?)
        } else {
            None
        };
        let mut checkpoint = None;
        let full = if self.assembles && step > self.first_step {
            Some(self.full_state(&state)?)
        } else {
            None
        };
        if let Some(reporter) = &self.reporter {
            let mut reporter = reporter.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(profiles) = &profiles {
                reporter.phase_profiles(step - self.first_step, profiles)?;
            }
            if let Some((params, moments)) = full {
                reporter.checkpoint(step, params, moments)?;
            }
            checkpoint = reporter.flush()?;
            reporter.finish()?;
        }
        Ok(RankOutcome {
            first_step: self.first_step,
            next_step: step,
            interrupted,
            checkpoint,
        })
    }

    /// The whole model's weights and optimizer state, in the full layout a
    /// checkpoint saves: gathered over the TP group under tensor parallelism
    /// (every rank of the group calls it), the rank's own otherwise.
    fn full_state<'s>(
        &self,
        state: &'s RankState,
    ) -> Result<(Cow<'s, [f32]>, OptimizerState<'s>), TrainError> {
        let tp = &*self.groups.tp;
        let params = self.model.gather(tp, state.params.to_host()?)?;
        let moments = self.model.gather_state(tp, state.optimizer.state()?)?;
        Ok((params, moments))
    }

    /// The traced steps this run still reaches (`metrics.trace_start`,
    /// `metrics.trace_steps`); the reporting rank warns when a resumed run
    /// starts after them.
    fn trace_window(&self) -> Option<TraceWindow> {
        let window = self.plan.trace?;
        if window.last > self.first_step {
            return Some(window);
        }
        if self.reporter.is_some() {
            tracing::warn!(
                first = window.first,
                last = window.last,
                resumed_after = self.first_step,
                "the traced steps (metrics.trace_start, metrics.trace_steps) were run before \
                 this resumed run starts: no trace is written"
            );
        }
        None
    }

    /// The groups whose waits a trace shows: those with other ranks in them.
    fn traced_groups(&self) -> impl Iterator<Item = (GroupKind, &dyn ProcessGroup)> {
        [
            (GroupKind::Cp, &self.groups.cp),
            (GroupKind::DpCp, &self.groups.dp_cp),
            (GroupKind::Tp, &self.groups.tp),
        ]
        .into_iter()
        .filter(|(_, group)| group.size() > 1)
        .map(|(kind, group)| (kind, &**group))
    }

    /// Starts or stops keeping the traced groups' waits.
    fn log_waits(&self, on: bool) {
        for (_, group) in self.traced_groups() {
            group.log_waits(on);
        }
    }

    /// Gathers every rank's trace slices (a collective over the world, as for
    /// the phase totals) and has the reporting rank write `trace.json`.
    fn write_trace(&self, mine: &[TraceSlice]) -> Result<(), TrainError> {
        let ranks = gather_slices(&*self.groups.world, mine)?;
        match &self.reporter {
            Some(reporter) => reporter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .trace(&ranks),
            None => Ok(()),
        }
    }

    /// One optimizer step (0-based `step`), or `None` when some rank asked to
    /// stop: that decision is reduced with the token count, so every rank
    /// stops before the same step.
    fn step(
        &self,
        state: &mut RankState,
        step: u64,
        stop_here: bool,
    ) -> Result<Option<StepOutcome>, TrainError> {
        let RankState {
            params,
            grads,
            optimizer,
            acts,
            batches,
            micro,
        } = state;
        let host_bytes_before = self.kernels.host_transfer_bytes();
        let timer = acts.profile().start();
        let mut local_count = 0;
        for (m, batch) in micro.iter_mut().enumerate() {
            batches.fill(Split::Train, step, m, batch)?;
            local_count += batch.target_count();
        }
        let timer = acts.profile_mut().stop(timer, Pass::Forward, Phase::Data);
        let mut counts = [local_count as f64, f64::from(u8::from(stop_here))];
        self.groups
            .dp_cp
            .all_reduce_f64(&mut counts, ReduceOp::Sum)?;
        let timer = acts
            .profile_mut()
            .stop(timer, Pass::Update, Phase::Communication);
        if counts[1] > 0.0 {
            return Ok(None);
        }
        if counts[0] == 0.0 {
            return Err(TrainError::NoTargets { step: step + 1 });
        }
        let loss_scale = (1.0 / counts[0]) as f32;

        let k = &*self.kernels;
        k.fill(grads.view_mut(), 0.0);
        let _ = acts
            .profile_mut()
            .stop(timer, Pass::Update, Phase::Optimizer);
        let mut loss_sum = 0.0;
        for batch in micro.iter() {
            let batch = Batch {
                tokens: &batch.tokens,
                targets: &batch.targets,
                positions: &batch.positions,
            };
            let a = &*self.attention;
            let waited = self.cp_wait(acts);
            let gpt = self.model.gpt();
            loss_sum += gpt.forward(k, a, params.view(), batch, acts)?.sum;
            let waited = self.attention_wait(acts, Pass::Forward, waited);
            let grads = grads.view_mut();
            gpt.backward(k, a, params.view(), batch, loss_scale, acts, grads)?;
            self.attention_wait(acts, Pass::Backward, waited);
        }
        let timer = acts.profile().start();
        // Sequence parallelism: the LayerNorms' gradients of each rank's rows
        // summed over the TP group, then the replicas' over DP×CP.
        (self.model.gpt()).reduce_replicated_grads(k, grads.view_mut())?;
        if self.groups.dp_cp.size() > 1 {
            (self.groups.dp_cp).all_reduce_view(k, grads.view_mut(), ReduceOp::Sum)?;
        }
        let mut loss = [loss_sum];
        self.groups.dp_cp.all_reduce_f64(&mut loss, ReduceOp::Sum)?;
        let timer = acts
            .profile_mut()
            .stop(timer, Pass::Update, Phase::Communication);
        let loss = loss[0] / counts[0];
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                what: "loss",
                value: loss,
            });
        }
        let grad_norm = (self.model)
            .sum_of_squares(k, &*self.groups.tp, grads.view())?
            .sqrt();
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                what: "gradient norm",
                value: grad_norm,
            });
        }
        let clip = clip_coefficient(grad_norm, self.grad_clip);
        if clip < 1.0 {
            k.scale(grads.view_mut(), clip);
        }
        let lr = self.schedule.lr_at(step);
        optimizer.step(k, params.view_mut(), grads.view(), lr);
        let _ = acts
            .profile_mut()
            .stop(timer, Pass::Update, Phase::Optimizer);
        let host_bytes_after = k.host_transfer_bytes();
        Ok(Some(StepOutcome {
            device_peak_bytes: k.peak_memory_bytes(),
            device_host_bytes: host_bytes_after.zip(host_bytes_before).map(|(a, b)| a - b),
            loss,
            grad_norm,
            lr,
        }))
    }

    /// Seconds this rank has waited on its CP group so far, when `acts` is
    /// profiling (the group's counters are not read otherwise).
    fn cp_wait(&self, acts: &Activations) -> Option<f64> {
        acts.profile()
            .is_enabled()
            .then(|| self.groups.cp.stats().wait.as_secs_f64())
    }

    /// Moves the CP group's wait since `before` (seconds, from
    /// [`Self::cp_wait`]), which the attention phase's timer caught, to the
    /// communication phase of `pass`; returns the wait so far.
    fn attention_wait(
        &self,
        acts: &mut Activations,
        pass: Pass,
        before: Option<f64>,
    ) -> Option<f64> {
        let (before, now) = (before?, self.cp_wait(acts)?);
        let waited = Duration::try_from_secs_f64(now - before).unwrap_or_default();
        acts.profile_mut()
            .move_time(pass, Phase::Attention, Phase::Communication, waited);
        Some(now)
    }

    /// Every rank's phase totals, in global rank order, on every rank (a
    /// collective over the world).
    fn gather_profiles(&self, mine: &Profile) -> Result<Vec<Profile>, TrainError> {
        let group = &self.groups.world;
        let mut all = vec![0.0; group.size() * Profile::VALUES];
        all[group.rank() * Profile::VALUES..][..Profile::VALUES]
            .copy_from_slice(&mine.to_seconds());
        group.all_reduce_f64(&mut all, ReduceOp::Sum)?;
        Ok(all
            .as_chunks::<{ Profile::VALUES }>()
            .0
            .iter()
            .map(Profile::from_seconds)
            .collect())
    }

    /// Mean loss over the fixed validation batches (`train.eval_batches`),
    /// `None` when evaluation is off or there is no validation split; or
    /// [`Evaluation::Stopped`] when some rank was asked to stop (checked
    /// before every batch, and agreed on by all ranks).
    fn evaluate(
        &self,
        state: &mut RankState,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Evaluation, TrainError> {
        let batches = self.plan.train.eval_batches;
        if batches == 0 || state.batches.source().num_windows(Split::Val) == 0 {
            return Ok(Evaluation::Loss(None));
        }
        let RankState {
            params,
            acts,
            batches: builder,
            micro,
            ..
        } = state;
        let model = RankModel {
            gpt: self.model.gpt(),
            kernels: &*self.kernels,
            attention: &*self.attention,
            groups: &self.groups,
        };
        let what = EvalBatches {
            split: Split::Val,
            batches: batches as u64,
            byte_lengths: None,
        };
        // Evaluation is not part of a training step's profile.
        let training_profile = std::mem::take(acts.profile_mut());
        let sums = model.eval_sums(params, acts, builder, micro, &what, stop);
        *acts.profile_mut() = training_profile;
        let Some(sums) = sums? else {
            return Ok(Evaluation::Stopped);
        };
        Ok(Evaluation::Loss((sums[1] > 0.0).then(|| sums[0] / sums[1])))
    }
}

use std::sync::{Arc, Mutex, PoisonError};

use appctx::{BoxError, CancellationToken, ContextHandle, Runner};

use super::{RankInfo, RankOutcome, RankTrainer};
use crate::inference::TrainingSampler;
use crate::parallel::{Backend, RankError};

/// How the run ended, as this process's first rank saw it: for the caller of
/// `ctx.run()` (exit codes, the closing message). Register an instance in the
/// context to receive it.
#[derive(Debug, Default)]
pub struct RunStatus {
    outcome: Mutex<Option<RankOutcome>>,
}

impl RunStatus {
    /// The outcome of this process's first rank (global rank 0 where it
    /// runs here), once training has ended; `None` when training failed.
    pub fn outcome(&self) -> Option<RankOutcome> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, outcome: RankOutcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

/// The `cptrain run` job: starts this process's ranks through the backend,
/// gives each its own child context (scope `rank`), and trains.
pub struct TrainRunner {
    context: ContextHandle,
    backend: Arc<dyn Backend>,
    scope: &'static str,
    phase_profile: bool,
    status: Arc<RunStatus>,
}

impl TrainRunner {
    /// A runner building `scope` children of the context behind `context`.
    pub fn new(context: ContextHandle, backend: Arc<dyn Backend>, scope: &'static str) -> Self {
        TrainRunner {
            context,
            backend,
            scope,
            phase_profile: false,
            status: Arc::default(),
        }
    }

    /// Whether every rank times its phases (`metrics.phase_profile`).
    pub fn with_phase_profile(mut self, enabled: bool) -> Self {
        self.phase_profile = enabled;
        self
    }

    /// Where the reporting rank's outcome goes.
    pub fn with_status(mut self, status: Arc<RunStatus>) -> Self {
        self.status = status;
        self
    }
}

impl Runner for TrainRunner {
    fn run(&self, shutdown: &CancellationToken) -> Result<(), BoxError> {
        let parent = self.context.context()?;
        let first_local = self.backend.local_ranks().into_iter().min();
        let body = |rank: usize| -> Result<(), RankError> {
            let child = parent
                .child(self.scope)
                .instance(Arc::new(RankInfo { rank }))
                .build()?;
            let trainer = child.get::<RankTrainer>()?;
            trainer.set_phase_profile(self.phase_profile);
            trainer.set_sampler(child.get::<TrainingSampler>()?);
            trainer.set_checkpoint_executor(parent.executor());
            let outcome = trainer.train(&|| shutdown.is_cancelled());
            child.close();
            let outcome = outcome?;
            if Some(rank) == first_local {
                self.status.set(outcome);
            }
            Ok(())
        };
        self.backend.launch(&body)
    }
}

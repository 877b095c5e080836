use std::sync::Arc;

use appctx::{BoxError, CancellationToken, ContextHandle, Runner};

use super::{RankInfo, RankTrainer};
use crate::parallel::{Backend, RankError};

/// The `cptrain run` job: starts this process's ranks through the backend,
/// gives each its own child context (scope `rank`), and trains.
pub struct TrainRunner {
    context: ContextHandle,
    backend: Arc<dyn Backend>,
    scope: &'static str,
    phase_profile: bool,
}

impl TrainRunner {
    /// A runner building `scope` children of the context behind `context`.
    pub fn new(context: ContextHandle, backend: Arc<dyn Backend>, scope: &'static str) -> Self {
        TrainRunner {
            context,
            backend,
            scope,
            phase_profile: false,
        }
    }

    /// Whether every rank times its phases (`metrics.phase_profile`).
    pub fn with_phase_profile(mut self, enabled: bool) -> Self {
        self.phase_profile = enabled;
        self
    }
}

impl Runner for TrainRunner {
    fn run(&self, shutdown: &CancellationToken) -> Result<(), BoxError> {
        let parent = self.context.context()?;
        let body = |rank: usize| -> Result<(), RankError> {
            let child = parent
                .child(self.scope)
                .instance(Arc::new(RankInfo { rank }))
                .build()?;
            let trainer = child.get::<RankTrainer>()?;
            trainer.set_phase_profile(self.phase_profile);
            let outcome = trainer.train(&|| shutdown.is_cancelled());
            child.close();
            let outcome = outcome?;
            if outcome.interrupted && rank == 0 {
                tracing::warn!(
                    step = outcome.next_step,
                    "stopped early on request; resume with `cptrain run --resume`"
                );
            }
            Ok(())
        };
        self.backend.launch(&body)
    }
}

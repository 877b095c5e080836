//! Components with a start/stop lifecycle, and runners.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use crate::error::BoxError;
use crate::shutdown::CancellationToken;

/// A component that is started after refresh and stopped on close.
///
/// Register it as a component providing `dyn Lifecycle` (often a second,
/// one-line component that returns the service itself):
/// `fn server_lifecycle(s: Arc<Server>) -> Arc<dyn Lifecycle> { s }`.
pub trait Lifecycle: Send + Sync {
    /// Starts; an error aborts the refresh (already started ones are stopped).
    fn start(&self) -> Result<(), BoxError> {
        Ok(())
    }
    /// Stops; should return promptly (close waits at most the stop timeout per phase).
    fn stop(&self) {}
    /// Lower phases start first and stop last. Default 0.
    fn phase(&self) -> i32 {
        0
    }
}

/// A component run by [`ApplicationContext::run`](crate::ApplicationContext::run)
/// after refresh, in order; register it as a component providing `dyn Runner`.
pub trait Runner: Send + Sync {
    /// Does the application's work; should return early once `shutdown` is cancelled.
    fn run(&self, shutdown: &CancellationToken) -> Result<(), BoxError>;
}

/// A started lifecycle, remembered for stopping.
pub(crate) struct Started {
    pub name: String,
    pub phase: i32,
    pub lifecycle: Arc<dyn Lifecycle>,
}

/// Stops `started` (in start order) in reverse: phase by phase, highest
/// first; each phase gets at most `timeout`, after which close moves on.
pub(crate) fn stop_all(mut started: Vec<Started>, timeout: Duration, context: &str) {
    while let Some(last) = started.last() {
        let phase = last.phase;
        let split = started
            .iter()
            .rposition(|s| s.phase != phase)
            .map_or(0, |i| i + 1);
        let group: Vec<Started> = started.split_off(split);
        let names: Vec<String> = group.iter().rev().map(|s| s.name.clone()).collect();
        let (done, finished) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("appctx-stop-{phase}"))
            .spawn(move || {
                for s in group.iter().rev() {
                    s.lifecycle.stop();
                }
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => {
                if finished.recv_timeout(timeout).is_err() {
                    tracing::warn!(
                        context,
                        phase,
                        ?names,
                        ?timeout,
                        "lifecycle phase did not stop in time; continuing close"
                    );
                }
            }
            Err(e) => tracing::warn!(context, phase, error = %e, "could not spawn stop thread"),
        }
    }
}

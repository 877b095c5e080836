//! Runs one closure per rank on dedicated threads of a [`LocalWorld`].

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

use super::local::LocalWorld;

/// How a rank's closure failed.
#[derive(Debug)]
pub enum RankFailure<E> {
    /// It returned an error.
    Error(E),
    /// It panicked, with this message.
    Panic(String),
}

/// The failure that stopped a multi-rank run: the first real one, not the
/// "stopped because rank r failed" errors it caused on the other ranks.
#[derive(Debug)]
pub struct RunError<E> {
    /// The global rank that failed first.
    pub rank: usize,
    /// Its failure.
    pub failure: RankFailure<E>,
    /// How many ranks failed in total (including this one).
    pub failed_ranks: usize,
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            RankFailure::Error(e) => write!(f, "rank {} failed: {e}", self.rank)?,
            RankFailure::Panic(m) => write!(f, "rank {} panicked: {m}", self.rank)?,
        }
        if self.failed_ranks > 1 {
            write!(
                f,
                " ({} other rank(s) stopped because of it)",
                self.failed_ranks - 1
            )?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display + std::error::Error + 'static> std::error::Error for RunError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            RankFailure::Error(e) => Some(e),
            RankFailure::Panic(_) => None,
        }
    }
}

/// Runs `body(rank)` for every rank of `world` on its own thread (never a
/// rayon task: ranks block on each other) and returns the results in rank
/// order. When a rank fails or panics the world is aborted, so the others
/// stop promptly, and the first failure is returned.
pub fn run_ranks<T, E, F>(world: &LocalWorld, body: F) -> Result<Vec<T>, RunError<E>>
where
    T: Send,
    E: Send + fmt::Display,
    F: Fn(usize) -> Result<T, E> + Sync,
{
    let body = &body;
    let outcomes: Vec<Result<T, RankFailure<E>>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..world.size())
            .map(|rank| {
                thread::Builder::new()
                    .name(format!("rank-{rank}"))
                    .spawn_scoped(scope, move || {
                        let outcome = match catch_unwind(AssertUnwindSafe(|| body(rank))) {
                            Ok(Ok(value)) => Ok(value),
                            Ok(Err(error)) => Err(RankFailure::Error(error)),
                            Err(panic) => Err(RankFailure::Panic(panic_message(&*panic))),
                        };
                        if let Err(failure) = &outcome {
                            world.abort(rank, describe(failure));
                        }
                        outcome
                    })
                    .expect("the OS refused to start a rank thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|p| Err(RankFailure::Panic(panic_message(&*p))))
            })
            .collect()
    });
    let failed_ranks = outcomes.iter().filter(|o| o.is_err()).count();
    if failed_ranks == 0 {
        return Ok(outcomes
            .into_iter()
            .map(|o| o.ok().expect("no failures"))
            .collect());
    }
    // The rank recorded in the abort cause failed first; fall back to the
    // lowest failing rank if that rank recovered from its own error.
    let first_failed = outcomes.iter().position(Result::is_err).expect("a failure");
    let rank = world
        .abort_cause()
        .map(|cause| cause.rank)
        .filter(|&r| outcomes[r].is_err())
        .unwrap_or(first_failed);
    let failure = outcomes
        .into_iter()
        .nth(rank)
        .and_then(Result::err)
        .expect("rank failed");
    Err(RunError {
        rank,
        failure,
        failed_ranks,
    })
}

fn describe<E: fmt::Display>(failure: &RankFailure<E>) -> String {
    match failure {
        RankFailure::Error(e) => e.to_string(),
        RankFailure::Panic(m) => format!("panicked: {m}"),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

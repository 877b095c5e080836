//! A context's executor (Vert.x's execution context): tasks submitted to it
//! run in submission order on the context's own thread, and blocking tasks
//! on a small pool of worker threads. Threads start with the first task, so
//! a context that submits nothing costs nothing.

mod lane;
mod settings;
mod task;

use std::sync::Arc;
use std::time::Instant;

pub(crate) use settings::ExecutorSettings;
pub use task::TaskHandle;

use crate::context::Resolver;
use crate::error::Result;
use crate::inject::{Dependency, Injectable};
use lane::Lane;
use task::task;

/// The executor of one context; clones share it. Inject it as a component
/// parameter (`executor: Executor`), or reach it through
/// [`ApplicationContext::executor`](crate::ApplicationContext::executor).
///
/// - [`submit`](Self::submit): tasks run one at a time, in submission
///   order, on the context's thread (`appctx-ordered-<context>`).
/// - [`submit_blocking`](Self::submit_blocking): tasks run on a pool of at
///   most `appctx.executor.blocking_threads` threads (default 4), in no
///   particular order relative to each other.
///
/// Closing the context drains the executor: the ordered tasks first (they
/// may still submit blocking tasks), then the blocking ones, both within
/// `appctx.executor.close_timeout_s` (default 30 s); tasks still queued then
/// are dropped (their handles return [`Error::TaskCancelled`](crate::Error::TaskCancelled))
/// and named in a warning. Submitting to a closed context is refused with
/// [`Error::TaskRefused`](crate::Error::TaskRefused).
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    context: String,
    settings: ExecutorSettings,
    ordered: Arc<Lane>,
    blocking: Arc<Lane>,
}

impl Executor {
    /// The executor of context `context`; it starts no thread.
    pub(crate) fn new(context: &str, settings: ExecutorSettings) -> Self {
        Executor {
            inner: Arc::new(Inner {
                context: context.to_string(),
                settings,
                ordered: Lane::new("ordered", context, 1),
                blocking: Lane::new("blocking", context, settings.blocking_threads()),
            }),
        }
    }

    /// Runs `work` on the context's thread after every task submitted
    /// before it; `name` identifies it in errors and in close's report.
    pub fn submit<T, F>(&self, name: impl Into<String>, work: F) -> Result<TaskHandle<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (job, handle) = task(&self.inner.context, name.into(), work);
        self.inner.ordered.submit(job)?;
        Ok(handle)
    }

    /// Runs `work` on the blocking pool: for file or network I/O and long
    /// computations that must not hold up the ordered tasks.
    pub fn submit_blocking<T, F>(&self, name: impl Into<String>, work: F) -> Result<TaskHandle<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (job, handle) = task(&self.inner.context, name.into(), work);
        self.inner.blocking.submit(job)?;
        Ok(handle)
    }

    /// Refuses new tasks, drains the ordered lane then the blocking pool
    /// within the close timeout, and warns about every task left undone.
    pub(crate) fn close(&self) {
        let timeout = self.inner.settings.close_timeout();
        let deadline = Instant::now() + timeout;
        for lane in [&self.inner.ordered, &self.inner.blocking] {
            let left = lane.drain(deadline, timeout);
            if !left.dropped.is_empty() || !left.running.is_empty() {
                tracing::warn!(
                    context = %self.inner.context,
                    ?timeout,
                    dropped = ?left.dropped,
                    still_running = ?left.running,
                    "executor closed with tasks left: queued ones were dropped unrun, \
                     running ones finish on their own threads \
                     (raise appctx.executor.close_timeout_s to wait longer)"
                );
            }
        }
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("context", &self.inner.context)
            .finish_non_exhaustive()
    }
}

impl Injectable for Executor {
    fn dependency() -> Dependency {
        Dependency::Context("executor")
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        Ok(resolver.plan.executor.clone())
    }
}

#[cfg(test)]
mod tests;

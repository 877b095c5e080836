//! A submitted task: the job a lane runs, and the [`TaskHandle`] its
//! submitter waits on (blocking, or as a future without any runtime).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::shutdown::lock;

/// Where a task's result waits for its handle.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    done: Condvar,
}

struct SlotState<T> {
    result: Option<Result<T>>,
    /// The task awaiting the handle as a future.
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn fill(&self, result: Result<T>) {
        let mut state = lock(&self.state);
        state.result = Some(result);
        let waker = state.waker.take();
        drop(state);
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A task in a lane's queue, type-erased: run it, or drop it with an error.
pub(crate) trait Job: Send {
    /// The name given at submission.
    fn name(&self) -> &str;
    /// Runs the task on this thread; a panic becomes [`Error::TaskPanicked`].
    fn run(self: Box<Self>);
    /// Resolves the handle with `error` without running the task.
    fn cancel(self: Box<Self>, error: Error);
}

/// A closure and the slot its result goes to.
pub(crate) struct TaskJob<T, F> {
    name: String,
    context: String,
    work: F,
    slot: Arc<Slot<T>>,
}

/// A new task named `name` of context `context`, and the handle on its result.
pub(crate) fn task<T, F>(
    context: &str,
    name: String,
    work: F,
) -> (Box<TaskJob<T, F>>, TaskHandle<T>)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            result: None,
            waker: None,
        }),
        done: Condvar::new(),
    });
    let handle = TaskHandle {
        name: name.clone(),
        slot: slot.clone(),
    };
    let job = TaskJob {
        name,
        context: context.to_string(),
        work,
        slot,
    };
    (Box::new(job), handle)
}

impl<T, F> Job for TaskJob<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Box<Self>) {
        let TaskJob {
            name,
            context,
            work,
            slot,
        } = *self;
        let result = catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            tracing::error!(context = %context, task = %name, %message, "task panicked");
            Error::TaskPanicked {
                context,
                task: name,
                message,
            }
        });
        slot.fill(result);
    }

    fn cancel(self: Box<Self>, error: Error) {
        self.slot.fill(Err(error));
    }
}

/// The handle on a submitted task's result: wait for it with
/// [`join`](Self::join), or `.await` it (the handle is a future that needs
/// no particular runtime). Dropping the handle does not cancel the task.
///
/// The result is an error when the task panicked ([`Error::TaskPanicked`])
/// or was dropped unrun by the context's close ([`Error::TaskCancelled`]).
/// Do not join a task of the ordered executor from a task of that same
/// executor: it runs after the current one, so the join would never return.
#[must_use = "the task runs anyway; join or await the handle to see its result"]
pub struct TaskHandle<T> {
    name: String,
    slot: Arc<Slot<T>>,
}

impl<T> TaskHandle<T> {
    /// The name given at submission.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the task has finished (or was dropped unrun).
    pub fn is_finished(&self) -> bool {
        lock(&self.slot.state).result.is_some()
    }

    /// Blocks until the task has finished; returns what it returned.
    pub fn join(self) -> Result<T> {
        let mut state = lock(&self.slot.state);
        loop {
            if let Some(result) = state.result.take() {
                return result;
            }
            state = self
                .slot
                .done
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks at most `timeout`: the result, or the handle back when the
    /// task has not finished by then.
    pub fn join_timeout(self, timeout: Duration) -> std::result::Result<Result<T>, Self> {
        let until = Instant::now() + timeout;
        let mut state = lock(&self.slot.state);
        loop {
            if let Some(result) = state.result.take() {
                return Ok(result);
            }
            let now = Instant::now();
            if now >= until {
                drop(state);
                return Err(self);
            }
            state = self
                .slot
                .done
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut state = lock(&self.slot.state);
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

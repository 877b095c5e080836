//! A lane: a FIFO queue of jobs served by at most `max_threads` threads,
//! started on demand. One thread gives the ordered executor (tasks run one
//! after another in submission order); more give the blocking pool.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::task::Job;
use crate::error::{Error, Result};
use crate::shutdown::lock;

thread_local! {
    /// The lane whose thread this is (its address), if any.
    static CURRENT_LANE: Cell<usize> = const { Cell::new(0) };
}

/// What a drained lane left undone.
#[derive(Debug, Default)]
pub(crate) struct Leftover {
    /// Queued tasks dropped unrun.
    pub dropped: Vec<String>,
    /// Tasks still running when the timeout passed (left to finish on their threads).
    pub running: Vec<String>,
}

pub(crate) struct Lane {
    /// `ordered` or `blocking`, for thread names and reports.
    kind: &'static str,
    context: String,
    max_threads: usize,
    state: Mutex<LaneState>,
    /// Signalled when a job is queued, one finishes, or the lane closes.
    changed: Condvar,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Box<dyn Job>>,
    threads: usize,
    idle: usize,
    running: Vec<String>,
    closed: bool,
}

impl Lane {
    /// A lane of `context`; no thread exists until the first job.
    pub fn new(kind: &'static str, context: &str, max_threads: usize) -> Arc<Lane> {
        Arc::new(Lane {
            kind,
            context: context.to_string(),
            max_threads,
            state: Mutex::new(LaneState::default()),
            changed: Condvar::new(),
        })
    }

    /// Queues `job`, starting a thread when none is idle and the limit allows.
    pub fn submit(self: &Arc<Self>, job: Box<dyn Job>) -> Result<()> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(self.refused(job.name(), "the context is closed".to_string()));
        }
        let name = job.name().to_string();
        state.queue.push_back(job);
        if state.idle > 0 {
            drop(state);
            self.changed.notify_one();
            return Ok(());
        }
        if state.threads >= self.max_threads {
            return Ok(());
        }
        state.threads += 1;
        drop(state);
        let lane = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("appctx-{}-{}", self.kind, self.context))
            .spawn(move || lane.serve());
        if let Err(e) = spawned {
            let mut state = lock(&self.state);
            state.threads -= 1;
            if state.threads == 0 {
                // Nobody would ever run it: take it back.
                if let Some(at) = state.queue.iter().rposition(|j| j.name() == name) {
                    state.queue.remove(at);
                }
                return Err(self.refused(&name, format!("no thread could be started: {e}")));
            }
        }
        Ok(())
    }

    /// Threads started and not yet ended.
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        lock(&self.state).threads
    }

    fn refused(&self, task: &str, reason: String) -> Error {
        Error::TaskRefused {
            context: self.context.clone(),
            task: task.to_string(),
            reason,
        }
    }

    /// A thread's loop: run queued jobs until the lane is closed and empty.
    fn serve(self: Arc<Self>) {
        CURRENT_LANE.with(|c| c.set(Arc::as_ptr(&self) as usize));
        let mut state = lock(&self.state);
        loop {
            let Some(job) = state.queue.pop_front() else {
                if state.closed {
                    state.threads -= 1;
                    drop(state);
                    self.changed.notify_all();
                    return;
                }
                state.idle += 1;
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                state.idle -= 1;
                continue;
            };
            let name = job.name().to_string();
            state.running.push(name.clone());
            drop(state);
            job.run();
            state = lock(&self.state);
            if let Some(at) = state.running.iter().position(|n| *n == name) {
                state.running.remove(at);
            }
            self.changed.notify_all();
        }
    }

    /// Whether the calling thread is one of this lane's.
    fn is_own_thread(self: &Arc<Self>) -> bool {
        CURRENT_LANE.with(|c| c.get()) == Arc::as_ptr(self) as usize
    }

    /// Refuses new jobs, lets queued ones run until `deadline`, then drops
    /// those still queued (their handles get [`Error::TaskCancelled`]).
    /// Called from a thread of this lane, it cannot wait for the lane: the
    /// queued jobs are dropped at once.
    pub fn drain(self: &Arc<Self>, deadline: Instant, timeout: Duration) -> Leftover {
        let own = self.is_own_thread();
        let mut state = lock(&self.state);
        state.closed = true;
        self.changed.notify_all();
        let done = |s: &LaneState| s.queue.is_empty() && s.running.is_empty();
        while !own && !done(&state) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let dropped: Vec<Box<dyn Job>> = state.queue.drain(..).collect();
        let running = state.running.clone();
        drop(state);
        let names = dropped.iter().map(|j| j.name().to_string()).collect();
        for job in dropped {
            let task = job.name().to_string();
            job.cancel(Error::TaskCancelled {
                context: self.context.clone(),
                task,
                timeout,
            });
        }
        Leftover {
            dropped: names,
            running,
        }
    }
}

//! A fork-join team of helper threads that wait for work by spinning.
//!
//! A training step calls a few hundred parallel kernels, each a few
//! microseconds to a few milliseconds long, with short serial stretches in
//! between. A pool whose idle workers go to sleep within microseconds
//! (rayon's) pays a wake-up, measured at 15-20 µs on this machine kind, on
//! most of those calls. A [`Team`]'s helpers instead poll for the next job
//! for a while ([`SPIN`], then [`YIELD`] with `yield_now` so other runnable
//! threads get the core), and only then park, as OpenMP runtimes do.
//!
//! One job at a time: [`Team::run`] calls `f(i)` for `i` in `0..n`. The
//! caller runs task 0 itself, then every member takes the next unclaimed
//! task from a shared counter until none is left.
//! A call made while the team is busy (from inside a task, or from another
//! thread) runs on its caller alone. A panic in a task is re-raised on the
//! caller once every started task has finished.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle helper polls with a pause hint before yielding.
const SPIN: Duration = Duration::from_micros(100);
/// How long an idle helper keeps polling (yielding its core between polls)
/// before it parks until woken.
const YIELD: Duration = Duration::from_millis(2);

/// Bits of [`Shared::state`]: `generation | task count | next task`.
const INDEX_BITS: u32 = 24;
const MAX_TASKS: usize = (1 << INDEX_BITS) - 1;

fn pack(generation: u64, tasks: usize, next: usize) -> u64 {
    (generation << (2 * INDEX_BITS)) | ((tasks as u64) << INDEX_BITS) | next as u64
}

fn unpack(state: u64) -> (u64, usize, usize) {
    let mask = (1u64 << INDEX_BITS) - 1;
    (
        state >> (2 * INDEX_BITS),
        ((state >> INDEX_BITS) & mask) as usize,
        (state & mask) as usize,
    )
}

/// The job being run: the caller's closure, alive until every task is done.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
}

/// What the caller and the helpers share.
struct Shared {
    /// Generation, task count and next unclaimed task of the current job,
    /// claimed by compare-and-swap so a task is only ever claimed for the
    /// generation it belongs to.
    state: AtomicU64,
    /// The current job (a `Job` on the caller's stack; erased lifetime).
    job: AtomicPtr<Job<'static>>,
    /// Tasks of the current job that have finished.
    done: AtomicUsize,
    /// The first panic of the current job.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Held by the caller of the running job.
    busy: Mutex<()>,
    /// Parked helpers wait here.
    sleep: Mutex<()>,
    wake: Condvar,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
}

impl Shared {
    /// Claims the next task of `generation`, if any is left.
    fn claim(&self, generation: u64) -> Option<usize> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let (g, tasks, next) = unpack(state);
            if g != generation || next >= tasks {
                return None;
            }
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(now) => state = now,
            }
        }
    }

    /// Runs tasks of `generation` until none is left.
    fn work(&self, generation: u64) {
        while let Some(i) = self.claim(generation) {
            self.run_claimed(i);
        }
    }

    /// Runs claimed task `i` of the current job and counts it done.
    fn run_claimed(&self, i: usize) {
        // SAFETY: a task of the current generation is claimed and not yet
        // counted done, so the caller is still waiting in `Team::run` and
        // the job it published for this generation is alive.
        let job = unsafe { &*self.job.load(Ordering::Acquire) };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (job.f)(i))) {
            let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(payload);
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// Waits for a generation after `seen` (or shutdown): polls, then
    /// yields, then parks. Returns the new generation, `None` on shutdown.
    fn next_generation(&self, seen: u64) -> Option<u64> {
        let start = Instant::now();
        let fresh = || {
            let (g, _, _) = unpack(self.state.load(Ordering::Acquire));
            (g != seen).then_some(g)
        };
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return None;
            }
            if let Some(g) = fresh() {
                return Some(g);
            }
            let idle = start.elapsed();
            if idle < SPIN {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            } else if idle < YIELD {
                std::thread::yield_now();
            } else {
                let mut guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                while fresh().is_none() && !self.shutdown.load(Ordering::SeqCst) {
                    guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn wake_sleepers(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }
}

/// The caller's thread plus `helpers` threads of its own.
pub(super) struct Team {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("helpers", &self.handles.len())
            .finish()
    }
}

impl Team {
    /// Starts `helpers` threads named `{name}-{i}`.
    pub(super) fn new(helpers: usize, name: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panic: Mutex::new(None),
            busy: Mutex::new(()),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
        });
        let mut team = Team {
            shared,
            handles: Vec::with_capacity(helpers),
        };
        for i in 0..helpers {
            let shared = Arc::clone(&team.shared);
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    let mut seen = 0;
                    while let Some(generation) = shared.next_generation(seen) {
                        seen = generation;
                        shared.work(generation);
                    }
                })?;
            // On an error `team` drops here and stops the threads started.
            team.handles.push(handle);
        }
        Ok(team)
    }

    /// Calls `f(i)` for every `i` in `0..tasks`, on the caller and the
    /// helpers; returns when all have finished.
    pub(super) fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let shared = &*self.shared;
        let guard = match shared.busy.try_lock() {
            Ok(guard) if tasks > 1 && tasks <= MAX_TASKS => guard,
            // Busy (a nested or concurrent call), or nothing to share.
            _ => return (0..tasks).for_each(f),
        };
        let job = Job { f };
        let (previous, _, _) = unpack(shared.state.load(Ordering::Acquire));
        let generation = (previous + 1) & ((1 << (64 - 2 * INDEX_BITS)) - 1);
        shared.done.store(0, Ordering::Relaxed);
        // The helpers only dereference this after claiming a task of the new
        // generation, which the Release store below publishes.
        shared.job.store(
            &job as *const Job<'_> as *mut Job<'static>,
            Ordering::Release,
        );
        // The caller keeps task 0, so a split into one task per thread puts
        // the same part on the same thread call after call, and the rows a
        // kernel writes stay in the cache of the thread whose next kernel
        // reads them (LayerNorm's backward on two threads was slower than
        // on one when the parts changed hands).
        shared
            .state
            .store(pack(generation, tasks, 1), Ordering::SeqCst);
        shared.wake_sleepers();
        shared.run_claimed(0);
        shared.work(generation);
        let start = Instant::now();
        while shared.done.load(Ordering::Acquire) < tasks {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        shared.job.store(std::ptr::null_mut(), Ordering::Release);
        let panic = shared
            .panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(guard);
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_jobs() {
        let team = Team::new(2, "test-team").unwrap();
        for tasks in [0, 1, 2, 3, 17, 1000] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                team.run(tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
        }
    }

    /// Task 0 runs on the caller, so with one task per thread each part of
    /// a split stays on the same thread from call to call.
    #[test]
    fn the_caller_runs_task_0() {
        let team = Team::new(1, "test-team").unwrap();
        let caller = std::thread::current().id();
        for _ in 0..100 {
            let first = Mutex::new(None);
            team.run(2, &|i| {
                if i == 0 {
                    *first.lock().unwrap() = Some(std::thread::current().id());
                }
            });
            assert_eq!(first.into_inner().unwrap(), Some(caller));
        }
    }

    #[test]
    fn a_nested_call_runs_on_its_caller() {
        let team = Team::new(1, "test-team").unwrap();
        let total = AtomicUsize::new(0);
        team.run(4, &|_| {
            team.run(3, &|j| {
                total.fetch_add(j + 1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 6);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_after_the_others_finish() {
        let team = Team::new(2, "test-team").unwrap();
        let finished = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            team.run(64, &|i| {
                if i == 5 {
                    panic!("task 5 failed");
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let payload = result.expect_err("the panic reaches the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task 5 failed"));
        assert_eq!(finished.load(Ordering::Relaxed), 63);
        // The team still works afterwards.
        let count = AtomicUsize::new(0);
        team.run(10, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn parked_helpers_wake_for_the_next_job() {
        let team = Team::new(1, "test-team").unwrap();
        std::thread::sleep(YIELD + Duration::from_millis(20));
        let seen = Mutex::new(std::collections::HashSet::new());
        // Tasks long enough that the woken helper takes some of them.
        team.run(200, &|_| {
            std::thread::sleep(Duration::from_micros(200));
            seen.lock().unwrap().insert(std::thread::current().id());
        });
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}

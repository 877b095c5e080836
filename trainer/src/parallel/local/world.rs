//! The in-process world: every rank is a thread, groups are shared memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::group::{GroupShared, LocalGroup};
use crate::parallel::comm::{CommError, GroupInfo};
use crate::parallel::holdup::{Activity, Holdup, Wait, find_holdup};

/// The first failure of any rank; every blocking wait checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbortCause {
    /// The global rank that failed first.
    pub rank: usize,
    /// Its error, as text.
    pub message: String,
}

#[derive(Default)]
pub(super) struct Abort {
    set: AtomicBool,
    cause: Mutex<Option<AbortCause>>,
}

impl Abort {
    /// Records `rank`'s failure unless another was recorded first.
    fn trigger(&self, rank: usize, message: String) {
        let mut cause = self.cause.lock().unwrap_or_else(PoisonError::into_inner);
        if cause.is_none() {
            *cause = Some(AbortCause { rank, message });
            self.set.store(true, Ordering::Release);
        }
    }

    pub(super) fn cause(&self) -> Option<AbortCause> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        self.cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub(super) struct WorldInner {
    pub(super) size: usize,
    pub(super) timeout: Duration,
    pub(super) abort: Abort,
    groups: Mutex<HashMap<GroupInfo, Arc<GroupShared>>>,
    /// The waits each global rank is blocked in (several when its handles
    /// are waited on from several threads).
    waits: Vec<Mutex<Vec<Wait>>>,
}

impl WorldInner {
    /// Stops the world because of `error` on `rank` (no-op for errors that
    /// are themselves the consequence of an abort).
    pub(super) fn fail(&self, rank: usize, error: CommError) -> CommError {
        if !error.is_secondary() {
            self.abort.trigger(rank, error.to_string());
        }
        error
    }

    fn waits_of(&self, rank: usize) -> std::sync::MutexGuard<'_, Vec<Wait>> {
        self.waits[rank]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that global rank `rank` is blocked in `wait` (replacing the
    /// record of the same operation, whose missing ranks changed).
    pub(super) fn enter_wait(&self, rank: usize, wait: &Wait) {
        let mut waits = self.waits_of(rank);
        waits.retain(|w| !same_operation(w, wait));
        waits.push(wait.clone());
    }

    /// Records that global rank `rank` no longer waits in `wait`.
    pub(super) fn leave_wait(&self, rank: usize, wait: &Wait) {
        self.waits_of(rank).retain(|w| !same_operation(w, wait));
    }

    /// The ranks holding up global rank `rank`'s `wait`, from every rank's
    /// current waits.
    pub(super) fn holdup(&self, rank: usize, wait: &Wait) -> Holdup {
        let activities = (0..self.size)
            .filter(|&r| r != rank)
            .map(|r| {
                let waits = self.waits_of(r).clone();
                let activity = if waits.is_empty() {
                    Activity::Outside
                } else {
                    Activity::Waiting(waits)
                };
                (r, activity)
            })
            .collect();
        find_holdup(rank, wait, &activities)
    }
}

/// Whether two records are of one operation (a collective's missing ranks
/// change while it waits; a send or receive is also told apart by its peer).
fn same_operation(a: &Wait, b: &Wait) -> bool {
    (a.op, a.seq, &a.group) == (b.op, b.seq, &b.group) && (a.op.is_collective() || a.on == b.on)
}

/// A world of `size` ranks living as threads of this process.
///
/// Each rank asks for the groups it belongs to with [`LocalWorld::group`];
/// ranks asking for the same name and members share one communicator.
/// A failure on any rank (a timeout, a wrong call, or [`LocalWorld::abort`])
/// makes every blocked or later call on every rank return
/// [`CommError::Aborted`] promptly.
///
/// ```
/// use std::time::Duration;
/// use cptrain::parallel::{LocalWorld, ProcessGroup, ReduceOp, run_ranks};
/// let world = LocalWorld::new(2, Duration::from_secs(10));
/// let sums = run_ranks(&world, |rank| {
///     let group = world.world_group(rank)?;
///     let mut x = [rank as f32 + 1.0];
///     group.all_reduce(&mut x, ReduceOp::Sum)?;
///     Ok::<_, cptrain::parallel::CommError>(x[0])
/// })
/// .unwrap();
/// assert_eq!(sums, [3.0, 3.0]);
/// ```
#[derive(Clone)]
pub struct LocalWorld {
    inner: Arc<WorldInner>,
}

impl LocalWorld {
    /// A world of `size` ranks whose operations give up after `timeout`.
    pub fn new(size: usize, timeout: Duration) -> Self {
        let inner = WorldInner {
            size,
            timeout,
            abort: Abort::default(),
            groups: Mutex::new(HashMap::new()),
            waits: (0..size).map(|_| Mutex::default()).collect(),
        };
        LocalWorld {
            inner: Arc::new(inner),
        }
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The deadline of every blocking operation.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Global rank `rank`'s handle on the group `name` made of `members`
    /// (global ranks, in group-rank order). Each rank should ask for a given
    /// group once and share the handle.
    pub fn group(
        &self,
        name: &str,
        members: &[usize],
        rank: usize,
    ) -> Result<LocalGroup, CommError> {
        let info = GroupInfo {
            name: name.to_string(),
            members: members.to_vec(),
        };
        let group_rank = info.member_rank(rank, self.inner.size)?;
        let shared = self
            .inner
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(info.clone())
            .or_insert_with(|| Arc::new(GroupShared::new(info)))
            .clone();
        Ok(LocalGroup::new(shared, self.inner.clone(), group_rank))
    }

    /// Global rank `rank`'s handle on the group of all ranks, named `world`.
    pub fn world_group(&self, rank: usize) -> Result<LocalGroup, CommError> {
        let members: Vec<usize> = (0..self.inner.size).collect();
        self.group("world", &members, rank)
    }

    /// Stops the world: every rank's pending and future operations fail
    /// with [`CommError::Aborted`] naming `rank` and `message`. Only the
    /// first call has an effect.
    pub fn abort(&self, rank: usize, message: impl Into<String>) {
        self.inner.abort.trigger(rank, message.into());
    }

    /// The failure that stopped the world, if any.
    pub fn abort_cause(&self) -> Option<AbortCause> {
        self.inner.abort.cause()
    }
}

//! What a group handle and its pending point-to-point handles share: the
//! communicator, the deadline, the counters, and how errors are built.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cptrain::parallel::{CommError, CommStats, GroupInfo, Op, Wait, WaitLog, WaitSpan};
use mpi::ffi;

use super::inquiry::{self, REPLY_GRACE};
use super::progress::{self, Waiting};
use super::runtime::{self, Handle};

/// One rank's side of one communicator.
pub(super) struct Core {
    pub(super) info: GroupInfo,
    /// This process's rank in the group.
    pub(super) rank: usize,
    pub(super) comm: Handle<ffi::MPI_Comm>,
    pub(super) timeout: Duration,
    /// Collectives this rank has entered on the group.
    collectives: Arc<AtomicU64>,
    stats: Mutex<CommStats>,
    waits: WaitLog,
}

impl Core {
    pub(super) fn new(
        info: GroupInfo,
        rank: usize,
        comm: Handle<ffi::MPI_Comm>,
        timeout: Duration,
    ) -> Self {
        let collectives = Arc::new(AtomicU64::new(0));
        progress::register_group(info.clone(), collectives.clone());
        Core {
            info,
            rank,
            comm,
            timeout,
            collectives,
            stats: Mutex::default(),
            waits: WaitLog::default(),
        }
    }

    pub(super) fn size(&self) -> usize {
        self.info.members.len()
    }

    pub(super) fn global(&self, group_rank: usize) -> usize {
        self.info.members[group_rank]
    }

    /// Counts one call of `op` moving these payload bytes.
    pub(super) fn record(&self, op: Op, sent: usize, received: usize) {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let index = Op::ALL
            .iter()
            .position(|&o| o == op)
            .expect("Op::ALL lists every operation");
        stats.calls[index] += 1;
        stats.bytes_sent += sent as u64;
        stats.bytes_received += received as u64;
    }

    /// Counts the wait that started at `started` and ends now (and logs
    /// it, while [`Core::log_waits`] is on).
    pub(super) fn add_wait(&self, started: Instant) {
        let ended = Instant::now();
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wait += ended - started;
        self.waits.push(started, ended);
    }

    pub(super) fn log_waits(&self, on: bool) {
        self.waits.set(on);
    }

    pub(super) fn take_waits(&self) -> Vec<WaitSpan> {
        self.waits.take()
    }

    pub(super) fn stats(&self) -> CommStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Refuses to start `op` once this process has failed.
    pub(super) fn check_failed(&self, op: Op) -> Result<(), CommError> {
        match runtime::failure() {
            None => Ok(()),
            Some(cause) => Err(CommError::Aborted {
                op,
                group: self.info.clone(),
                rank: self.global(self.rank),
                origin: self.global(self.rank),
                cause: cause.to_string(),
            }),
        }
    }

    /// Records `error` as this process's failure and returns it.
    pub(super) fn fail(&self, error: CommError) -> CommError {
        if !error.is_secondary() {
            runtime::record_failure(error.to_string());
        }
        error
    }

    /// A wrong call (sizes, peer): the peers are now out of step, so it
    /// fails the process like a timeout.
    pub(super) fn usage(&self, op: Op, problem: String) -> CommError {
        self.fail(CommError::Usage {
            op,
            group: self.info.clone(),
            rank: self.global(self.rank),
            problem,
        })
    }

    /// Reports that this rank now waits in collective `op` (the next one of
    /// the group) until the returned value is dropped.
    pub(super) fn enter_collective(&self, op: Op) -> Waiting {
        let seq = self.collectives.fetch_add(1, Ordering::Relaxed);
        let others = (0..self.size()).filter(|&r| r != self.rank);
        self.enter(op, seq, others.collect())
    }

    /// Reports that this rank now waits in operation number `seq` of `op`
    /// for the group ranks `on`, until the returned value is dropped.
    pub(super) fn enter(&self, op: Op, seq: u64, on: Vec<usize>) -> Waiting {
        Waiting::enter(Wait {
            op,
            group: self.info.clone(),
            seq,
            on: on.iter().map(|&r| self.global(r)).collect(),
        })
    }

    /// `waiting` reached the deadline: asks the other processes how far
    /// they got, to name the ranks that did not arrive and the ones that
    /// hold the job up.
    pub(super) fn timed_out(&self, waiting: &Waiting) -> CommError {
        let wait = waiting.wait();
        let me = self.global(self.rank);
        let (peers, holdup) = inquiry::diagnose(me, wait, self.timeout.min(REPLY_GRACE));
        self.fail(CommError::Timeout {
            op: wait.op,
            seq: wait.seq,
            group: self.info.clone(),
            rank: me,
            peers,
            after: self.timeout,
            holdup: Box::new(holdup),
        })
    }

    /// `n` as an MPI element count.
    pub(super) fn count(&self, op: Op, n: usize) -> Result<c_int, CommError> {
        c_int::try_from(n).map_err(|_| {
            self.usage(
                op,
                format!(
                    "{n} elements exceed MPI's count limit of {}; split the message",
                    c_int::MAX
                ),
            )
        })
    }

    /// Checks that `peer` is a group rank.
    pub(super) fn check_peer(&self, op: Op, peer: usize) -> Result<(), CommError> {
        if peer < self.size() {
            return Ok(());
        }
        Err(self.usage(
            op,
            format!(
                "peer {peer} is not a group rank (the group has {} ranks)",
                self.size()
            ),
        ))
    }

    /// Checks that a buffer has the length the operation needs.
    pub(super) fn check_len(
        &self,
        op: Op,
        what: &str,
        actual: usize,
        expected: usize,
    ) -> Result<(), CommError> {
        if actual == expected {
            return Ok(());
        }
        Err(self.usage(
            op,
            format!("{what} has {actual} elements, expected {expected}"),
        ))
    }
}

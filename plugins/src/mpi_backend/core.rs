//! What a group handle and its pending point-to-point handles share: the
//! communicator, the deadline, the counters, and how errors are built.

use std::ffi::c_int;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cptrain::parallel::{CommError, CommStats, GroupInfo, Op, WaitLog, WaitSpan};
use mpi::ffi;

use super::runtime::{self, Handle};

/// One rank's side of one communicator.
pub(super) struct Core {
    pub(super) info: GroupInfo,
    /// This process's rank in the group.
    pub(super) rank: usize,
    pub(super) comm: Handle<ffi::MPI_Comm>,
    pub(super) timeout: Duration,
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
        Core {
            info,
            rank,
            comm,
            timeout,
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

    /// `op` waited `timeout` for the group ranks `peers`.
    pub(super) fn timed_out(&self, op: Op, peers: &[usize]) -> CommError {
        self.fail(CommError::Timeout {
            op,
            group: self.info.clone(),
            rank: self.global(self.rank),
            peers: peers.iter().map(|&p| self.global(p)).collect(),
            after: self.timeout,
        })
    }

    /// Every group rank but this one (a collective cannot tell which peers
    /// are missing, so a timeout names them all).
    pub(super) fn others(&self) -> Vec<usize> {
        (0..self.size()).filter(|&r| r != self.rank).collect()
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

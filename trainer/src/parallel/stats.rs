//! Per-group communication counters: what metrics report and tests assert.

use std::time::Duration;

use super::comm::Op;

/// A snapshot of one rank's traffic on one group.
///
/// Bytes are payload bytes that crossed between this rank and others as the
/// backend's algorithm moves them (a rank's own block is not counted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommStats {
    /// Calls per operation, indexed like [`Op::ALL`].
    pub calls: [u64; Op::ALL.len()],
    /// Payload bytes this rank sent to other ranks.
    pub bytes_sent: u64,
    /// Payload bytes this rank received from other ranks.
    pub bytes_received: u64,
    /// Time spent blocked waiting for other ranks.
    pub wait: Duration,
}

impl CommStats {
    /// How many times `op` was called (for `Send`/`Recv`: messages).
    pub fn calls(&self, op: Op) -> u64 {
        self.calls[op as usize]
    }

    /// The traffic since `earlier` (a snapshot of the same group).
    pub fn since(&self, earlier: &CommStats) -> CommStats {
        let mut calls = self.calls;
        for (c, e) in calls.iter_mut().zip(earlier.calls) {
            *c -= e;
        }
        CommStats {
            calls,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            wait: self.wait.saturating_sub(earlier.wait),
        }
    }

    pub(crate) fn record(&mut self, op: Op, sent_bytes: usize, received_bytes: usize) {
        self.calls[op as usize] += 1;
        self.bytes_sent += sent_bytes as u64;
        self.bytes_received += received_bytes as u64;
    }
}

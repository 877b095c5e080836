//! [`Communicator`]: one raw NCCL communicator, created blocking (under the
//! watchdog), split by color, polled for asynchronous errors, aborted on
//! failure. `cudarc`'s safe `Comm` has no split and is not `Send`; the
//! trainer's groups are shared between threads, so calls on one
//! communicator are serialized by its owner ([`super::group`]).

use std::ffi::{CStr, c_int};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cudarc::nccl::sys;

use super::watchdog;

/// An NCCL call's failure: the call and NCCL's own text for the code.
#[derive(Clone, Debug)]
pub(super) struct CallError {
    pub(super) call: String,
    pub(super) message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.call, self.message)
    }
}

/// `code` as `Ok`, or an error naming `call` and NCCL's description.
pub(super) fn check(code: sys::ncclResult_t, call: impl Into<String>) -> Result<(), CallError> {
    match code {
        sys::ncclResult_t::ncclSuccess => Ok(()),
        other => Err(CallError {
            call: call.into(),
            message: describe(other),
        }),
    }
}

fn describe(code: sys::ncclResult_t) -> String {
    // SAFETY: ncclGetErrorString returns a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(sys::ncclGetErrorString(code)) };
    format!("{code:?}: {}", text.to_string_lossy())
}

/// A live NCCL communicator.
pub(super) struct Communicator {
    raw: sys::ncclComm_t,
    aborted: AtomicBool,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls
// on it do not overlap; the group that owns it serializes them (one lock per
// communicator), and `abort` is the one call NCCL allows concurrently.
unsafe impl Send for Communicator {}
// SAFETY: as above.
unsafe impl Sync for Communicator {}

impl Communicator {
    /// Rank `rank` of a new communicator of `world_size` ranks from the
    /// unique id every rank received. Blocks until every rank has joined;
    /// ends the process past `timeout` (the watchdog).
    pub(super) fn init(
        id: [u8; 128],
        world_size: usize,
        rank: usize,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let call = format!("ncclCommInitRank (world of {world_size}, rank {rank})");
        let mut unique = sys::ncclUniqueId { internal: [0; 128] };
        for (dst, src) in unique.internal.iter_mut().zip(id) {
            *dst = src as std::ffi::c_char;
        }
        let mut raw = null_mut();
        let _watch = watchdog::arm(call.clone(), timeout);
        // SAFETY: `raw` receives the new communicator; sizes fit c_int (a
        // world of over 2^31 processes does not start).
        let code =
            unsafe { sys::ncclCommInitRank(&mut raw, world_size as c_int, unique, rank as c_int) };
        check(code, call)?;
        Ok(Communicator {
            raw,
            aborted: AtomicBool::new(false),
        })
    }

    /// This rank's part of a split of the communicator: every rank of it
    /// must call this, those with the same `color` form a new communicator,
    /// ordered by `key`. Ends the process past `timeout`.
    pub(super) fn split(
        &self,
        color: usize,
        key: usize,
        what: &str,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let call = format!("ncclCommSplit creating {what}");
        let mut raw = null_mut();
        let _watch = watchdog::arm(call.clone(), timeout);
        // SAFETY: a live communicator; a null config inherits the parent's.
        let code = unsafe {
            sys::ncclCommSplit(self.raw, color as c_int, key as c_int, &mut raw, null_mut())
        };
        check(code, call)?;
        Ok(Communicator {
            raw,
            aborted: AtomicBool::new(false),
        })
    }

    /// The raw handle for a call the owner serializes.
    pub(super) fn raw(&self) -> sys::ncclComm_t {
        self.raw
    }

    /// NCCL's asynchronous error on this communicator (a peer failed, a
    /// network error), if any.
    pub(super) fn async_error(&self) -> Option<String> {
        let mut state = sys::ncclResult_t::ncclSuccess;
        // SAFETY: a live communicator and a valid output.
        let code = unsafe { sys::ncclCommGetAsyncError(self.raw, &mut state) };
        match (code, state) {
            (sys::ncclResult_t::ncclSuccess, sys::ncclResult_t::ncclSuccess) => None,
            (sys::ncclResult_t::ncclSuccess, state) => Some(describe(state)),
            (code, _) => Some(describe(code)),
        }
    }

    /// Aborts every operation in flight on it (once); it is unusable after.
    pub(super) fn abort(&self) {
        if !self.aborted.swap(true, Ordering::AcqRel) {
            // SAFETY: a live communicator, aborted once.
            let _ = unsafe { sys::ncclCommAbort(self.raw) };
        }
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        // Abort, not destroy: destroy waits for peers that may be gone.
        self.abort();
    }
}

//! Waiting with a deadline: MPI has no timeouts, so every wait is a loop of
//! non-blocking tests that gives up when the deadline passes.

use std::ffi::c_int;
use std::thread;
use std::time::{Duration, Instant};

use mpi::ffi;

use super::runtime::{Handle, check, empty_status, lock};
use super::{inquiry, p2p};

/// How long a wait spins (yielding the core between tests) before it starts
/// napping: collectives of a step finish well within it.
const SPIN: Duration = Duration::from_millis(50);

/// The nap between tests of a long wait (a peer still computing).
const NAP: Duration = Duration::from_micros(200);

/// A non-blocking operation in flight.
pub(super) type Request = Handle<ffi::MPI_Request>;

/// A request that is not (or no longer) in flight.
pub(super) fn null_request() -> Request {
    // SAFETY: reading a constant exported by the MPI shim.
    Handle(unsafe { ffi::RSMPI_REQUEST_NULL })
}

/// True once `request` completed (MPI resets completed requests to null).
pub(super) fn is_done(request: &Request) -> bool {
    request.0 == null_request().0
}

/// One `MPI_Test`; the status once complete.
pub(super) fn test(request: &mut Request) -> Option<ffi::MPI_Status> {
    if is_done(request) {
        return Some(empty_status());
    }
    let mut flag: c_int = 0;
    let mut status = empty_status();
    let _calls = lock();
    // SAFETY: `request` is a live request of this process; the outputs are valid.
    check(
        unsafe { ffi::MPI_Test(&mut request.0, &mut flag, &mut status) },
        "MPI_Test",
    );
    (flag != 0).then_some(status)
}

/// Lets MPI finish `request` on its own and forgets it. The buffers it uses
/// must stay allocated forever (the caller leaks them).
pub(super) fn release(request: &mut Request) {
    if is_done(request) {
        return;
    }
    let _calls = lock();
    // SAFETY: a live request; freeing an active request is allowed, the
    // operation completes in the background.
    check(
        unsafe { ffi::MPI_Request_free(&mut request.0) },
        "MPI_Request_free",
    );
}

/// Calls `step` until it yields a value or `timeout` has passed since
/// `started` (then `None`). Every iteration also matches posted receives of
/// this process, so a rank waiting on anything keeps its peers' sends
/// moving, and answers progress queries of timed-out peers.
pub(super) fn poll<T>(
    started: Instant,
    timeout: Duration,
    mut step: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = started + timeout;
    loop {
        p2p::match_posted_receives();
        inquiry::answer_queries();
        if let Some(value) = step() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now - started < SPIN {
            thread::yield_now();
        } else {
            thread::sleep(NAP.min(deadline - now));
        }
    }
}

//! Non-blocking point-to-point with owned buffers.
//!
//! A send is an `MPI_Isend` of the caller's host buffer (a `Vec`, or a
//! device's staging memory: page-locked on a GPU), which its handle owns
//! until MPI is done with it. A receive cannot be posted up front because
//! its length is unknown, so `irecv` registers a *slot* (source, tag) that
//! every wait of this process tries to match with `MPI_Improbe` and then
//! receives with `MPI_Imrecv` into a host buffer of the probed length (the
//! receiving device's staging memory for `irecv_for`). Matching
//! during *any* wait matters: two ranks that both wait on their sends to
//! each other would otherwise never receive (rendezvous sends complete only
//! once matched). Tags are per-peer sequence numbers, so receives match
//! sends in posting order whatever order the handles are waited in.
//!
//! A handle dropped before completion (or after a timeout) leaks its buffer
//! instead of freeing memory MPI may still read or write.

use std::ffi::c_int;
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use cptrain::device::Buffer;
use cptrain::parallel::{CommError, Op, RecvHandle, SendHandle};
use mpi::ffi;

use super::core::Core;
use super::poll::{Request, null_request, poll, release, test};
use super::runtime::{Handle, check, empty_status, lock};

/// Tags wrap at this value: MPI guarantees tags up to 32767. Two messages
/// with the same tag between a pair would need 32768 receives in flight.
const TAG_SPACE: u64 = 1 << 15;

/// The tag of the `seq`-th message from one rank to another.
fn tag_of(seq: u64) -> c_int {
    (seq % TAG_SPACE) as c_int
}

fn float() -> ffi::MPI_Datatype {
    // SAFETY: reading a constant exported by the MPI shim.
    unsafe { ffi::RSMPI_FLOAT }
}

/// Host memory for a received message of the given length.
pub(super) type Landing = Box<dyn Fn(usize) -> Buffer + Send + Sync>;

/// Starts sending `data` (host memory), the `seq`-th message to group
/// rank `peer`.
pub(super) fn isend(
    core: &Arc<Core>,
    peer: usize,
    seq: u64,
    data: Buffer,
) -> Result<SendHandle, CommError> {
    let values = data.host().expect("MPI sends host memory");
    let count = core.count(Op::Send, values.len())?;
    let (bytes, start) = (size_of_val(values), values.as_ptr());
    let mut pending = PendingSend {
        request: null_request(),
        data: Some(data),
    };
    {
        let _calls = lock();
        // SAFETY: the buffer is owned by `pending`, which keeps it alive (or
        // leaks it) until the request completes.
        check(
            unsafe {
                ffi::MPI_Isend(
                    start.cast(),
                    count,
                    float(),
                    peer as c_int,
                    tag_of(seq),
                    core.comm.0,
                    &mut pending.request.0,
                )
            },
            "MPI_Isend",
        );
    }
    core.record(Op::Send, bytes, 0);
    match_posted_receives();
    let core = core.clone();
    Ok(SendHandle::new(move || {
        // Bind the whole struct: a closure that only names `pending.request`
        // would copy that field and drop `pending` (freeing the request) now.
        let mut pending = pending;
        let waiting = core.enter(Op::Send, seq, vec![peer]);
        let started = Instant::now();
        let done = poll(started, core.timeout, || test(&mut pending.request));
        core.add_wait(started);
        match done {
            Some(_) => Ok(()),
            None => Err(core.timed_out(&waiting)),
        }
    }))
}

/// Registers a receive of the `seq`-th message from group rank `peer`,
/// into host memory from `landing`.
pub(super) fn irecv(core: &Arc<Core>, peer: usize, seq: u64, landing: Landing) -> RecvHandle {
    let slot = Arc::new(Slot {
        comm: core.comm.clone(),
        source: peer as c_int,
        tag: tag_of(seq),
        landing,
        state: Mutex::new(RecvState::Unmatched),
    });
    unmatched().push(slot.clone());
    match_posted_receives();
    let pending = PendingRecv { slot };
    let core = core.clone();
    RecvHandle::of_buffer(move || {
        let pending = pending;
        let waiting = core.enter(Op::Recv, seq, vec![peer]);
        let started = Instant::now();
        let data = poll(started, core.timeout, || pending.slot.try_take());
        core.add_wait(started);
        match data {
            Some(data) => {
                core.record(Op::Recv, 0, data.len() * size_of::<f32>());
                Ok(data)
            }
            None => Err(core.timed_out(&waiting)),
        }
    })
}

/// Matches every registered receive whose message has arrived and starts
/// receiving it.
pub(super) fn match_posted_receives() {
    let mut slots = unmatched();
    if !slots.is_empty() {
        slots.retain(|slot| !slot.try_match());
    }
}

static UNMATCHED: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

fn unmatched() -> std::sync::MutexGuard<'static, Vec<Arc<Slot>>> {
    UNMATCHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A send in flight: the request and the buffer it reads.
struct PendingSend {
    request: Request,
    data: Option<Buffer>,
}

impl Drop for PendingSend {
    fn drop(&mut self) {
        if test(&mut self.request).is_none() {
            release(&mut self.request);
            mem::forget(self.data.take());
        }
    }
}

enum RecvState {
    /// Waiting for the message to arrive.
    Unmatched,
    /// Matched; MPI is writing into `data`.
    Posted { request: Request, data: Buffer },
    /// Delivered to the caller.
    Taken,
    /// The handle was dropped before the message was matched.
    Abandoned,
}

/// One registered receive. Locks are taken in the order: the unmatched
/// list, a slot's state, then the MPI call lock.
struct Slot {
    comm: Handle<ffi::MPI_Comm>,
    source: c_int,
    tag: c_int,
    landing: Landing,
    state: Mutex<RecvState>,
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, RecvState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the receive if its message has arrived; true once the slot
    /// no longer needs matching.
    fn try_match(&self) -> bool {
        let mut state = self.state();
        if !matches!(*state, RecvState::Unmatched) {
            return true;
        }
        let mut flag: c_int = 0;
        // SAFETY: reading a constant exported by the MPI shim.
        let mut message = unsafe { ffi::RSMPI_MESSAGE_NULL };
        let mut status = empty_status();
        let _calls = lock();
        // SAFETY: a live communicator; the outputs are valid pointers.
        check(
            unsafe {
                ffi::MPI_Improbe(
                    self.source,
                    self.tag,
                    self.comm.0,
                    &mut flag,
                    &mut message,
                    &mut status,
                )
            },
            "MPI_Improbe",
        );
        if flag == 0 {
            return false;
        }
        let mut count: c_int = 0;
        // SAFETY: `status` was filled by the successful probe.
        check(
            unsafe { ffi::MPI_Get_count(&status, float(), &mut count) },
            "MPI_Get_count",
        );
        let mut data = (self.landing)(count.max(0) as usize);
        let start = data.host_mut().expect("MPI receives into host memory");
        let mut request = null_request();
        // SAFETY: `data` holds `count` floats and is kept alive by the slot
        // (or leaked) until the request completes; `message` was matched.
        check(
            unsafe {
                ffi::MPI_Imrecv(
                    start.as_mut_ptr().cast(),
                    count,
                    float(),
                    &mut message,
                    &mut request.0,
                )
            },
            "MPI_Imrecv",
        );
        *state = RecvState::Posted { request, data };
        true
    }

    /// The message, once fully received.
    fn try_take(&self) -> Option<Buffer> {
        let mut state = self.state();
        if let RecvState::Posted { request, .. } = &mut *state
            && test(request).is_some()
            && let RecvState::Posted { data, .. } = mem::replace(&mut *state, RecvState::Taken)
        {
            return Some(data);
        }
        None
    }
}

/// Owns a slot for its handle; dropping it early abandons the receive.
struct PendingRecv {
    slot: Arc<Slot>,
}

impl Drop for PendingRecv {
    fn drop(&mut self) {
        let mut state = self.slot.state();
        if let RecvState::Posted { mut request, data } =
            mem::replace(&mut *state, RecvState::Abandoned)
            && test(&mut request).is_none()
        {
            release(&mut request);
            mem::forget(data);
        }
    }
}

//! Process-wide MPI state: initialized once with `MPI_THREAD_SERIALIZED`,
//! every MPI call serialized by one lock, and ended when the process exits:
//! finalized after a clean exit, aborted after any other.
//!
//! The state lives in statics rather than in the backend because MPI can be
//! initialized only once per process: a second backend (another test in the
//! same process, a rebuilt context) must share it, and `MPI_Finalize` must
//! run exactly once, after everything else (mpirun reports a process that
//! exits without it as a failed job).
//!
//! `MPI_Finalize` waits for every other process to finalize too, so a
//! process that exits because of an error (a data file missing on this
//! machine, a config error only it sees, a panic before its rank started)
//! must not call it: the others would stay blocked in their next collective
//! until `parallel.timeout_s`, and this process in `MPI_Finalize`. The exit
//! handler therefore looks at the exit status: 0 finalizes, anything else
//! calls `MPI_Abort`, which makes mpirun end every process at once.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use mpi::ffi;

use crate::MpiError;

/// An MPI handle (communicator, request, message) that may move between
/// threads. Sound because every MPI call is made under [`lock`], which is
/// what `MPI_THREAD_SERIALIZED` asks of the program. Not `Copy`, so that a
/// closure naming a handle field captures the whole owner (whose `Drop`
/// manages the request) rather than a copy of the handle.
#[derive(Clone, Debug)]
pub(super) struct Handle<T>(pub(super) T);

// SAFETY: see the type's doc: MPI handles are plain identifiers that the MPI
// library lets any thread use as long as calls are serialized.
unsafe impl<T> Send for Handle<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Handle<T> {}

/// This process's place in the job.
pub(super) struct Runtime {
    /// Rank in `MPI_COMM_WORLD`.
    pub(super) rank: usize,
    /// Processes in `MPI_COMM_WORLD`.
    pub(super) size: usize,
}

static RUNTIME: OnceLock<Result<Runtime, MpiError>> = OnceLock::new();
static CALLS: Mutex<()> = Mutex::new(());
static FAILURE: OnceLock<String> = OnceLock::new();

/// Serializes MPI calls; hold it only for the duration of non-blocking calls.
pub(super) fn lock() -> MutexGuard<'static, ()> {
    CALLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Initializes MPI on first use and returns this process's rank and size.
pub(super) fn runtime() -> Result<&'static Runtime, MpiError> {
    RUNTIME
        .get_or_init(initialize)
        .as_ref()
        .map_err(Clone::clone)
}

/// `MPI_COMM_WORLD`.
pub(super) fn world() -> ffi::MPI_Comm {
    // SAFETY: reading a constant exported by the MPI shim.
    unsafe { ffi::RSMPI_COMM_WORLD }
}

fn initialize() -> Result<Runtime, MpiError> {
    let _calls = lock();
    let serialized = unsafe { ffi::RSMPI_THREAD_SERIALIZED };
    let mut initialized: c_int = 0;
    // SAFETY: MPI_Initialized may be called at any time.
    unsafe { ffi::MPI_Initialized(&mut initialized) };
    let mut provided: c_int = 0;
    if initialized == 0 {
        // SAFETY: MPI is not initialized yet (checked above, under the lock);
        // null argc/argv are allowed.
        let code =
            unsafe { ffi::MPI_Init_thread(null_mut(), null_mut(), serialized, &mut provided) };
        if code != 0 {
            return Err(MpiError::Init { code });
        }
        // SAFETY: registering a plain `extern "C"` function with no argument.
        unsafe { on_exit(end_at_exit, null_mut()) };
    } else {
        // SAFETY: MPI is initialized.
        unsafe { ffi::MPI_Query_thread(&mut provided) };
    }
    if provided < serialized {
        return Err(MpiError::ThreadLevel { provided });
    }
    let (mut rank, mut size): (c_int, c_int) = (0, 0);
    // SAFETY: MPI is initialized; the outputs are valid pointers.
    unsafe {
        ffi::MPI_Comm_rank(world(), &mut rank);
        ffi::MPI_Comm_size(world(), &mut size);
    }
    Ok(Runtime {
        rank: rank as usize,
        size: size as usize,
    })
}

unsafe extern "C" {
    /// glibc's `atexit` that also passes the exit status to the handler.
    fn on_exit(handler: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
    /// Ends the process at once, without exit handlers.
    fn _exit(status: c_int) -> !;
}

/// Ends MPI when the process exits (after `main` returns, or on
/// `std::process::exit`): a failed process of a job of several aborts the
/// job, anything else finalizes.
extern "C" fn end_at_exit(status: c_int, _arg: *mut c_void) {
    let mut finalized: c_int = 0;
    // SAFETY: MPI_Finalized may always be called.
    unsafe { ffi::MPI_Finalized(&mut finalized) };
    if finalized != 0 {
        return;
    }
    let (mut rank, mut size): (c_int, c_int) = (0, 1);
    // SAFETY: MPI is initialized (the handler is registered only then) and
    // not finalized; the outputs are valid pointers.
    unsafe {
        ffi::MPI_Comm_rank(world(), &mut rank);
        ffi::MPI_Comm_size(world(), &mut size);
    }
    if status != 0 && size > 1 {
        abort_job(&format!(
            "cptrain mpi: rank {rank} is exiting with status {status} after the error above; \
             aborting the MPI job (MPI_Abort) so that the other {} process(es) stop instead of \
             waiting for rank {rank}",
            size - 1
        ));
    }
    finalize();
}

/// `MPI_Finalize`, unless another thread seems wedged inside MPI.
fn finalize() {
    // A thread still polling holds the lock only for one call; one stuck for
    // a second means MPI is wedged, and finalizing is pointless.
    let started = Instant::now();
    let _calls = loop {
        match CALLS.try_lock() {
            Ok(guard) => break guard,
            Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock)
                if started.elapsed() < Duration::from_secs(1) =>
            {
                thread::sleep(Duration::from_millis(1));
            }
            Err(std::sync::TryLockError::WouldBlock) => return,
        }
    };
    // SAFETY: MPI is initialized and not finalized (checked by the caller).
    unsafe { ffi::MPI_Finalize() };
}

/// Prints `message` and ends the whole MPI job: mpirun kills every other
/// process and exits non-zero.
pub(super) fn abort_job(message: &str) -> ! {
    eprintln!("{message}");
    // No lock: MPI_Abort must work even if another thread is inside MPI.
    // SAFETY: MPI is initialized whenever a group or backend exists.
    unsafe { ffi::MPI_Abort(world(), 1) };
    // Not reached: MPI_Abort ends the process. `_exit`, not `exit`, because
    // this may run inside the exit handler.
    // SAFETY: ends the process; nothing runs after it.
    unsafe { _exit(1) }
}

/// Ends the job if an MPI call returned an error code. With MPI's default
/// error handler (`MPI_ERRORS_ARE_FATAL`) this never happens: the library
/// aborts first.
pub(super) fn check(code: c_int, call: &str) {
    if code != 0 {
        abort_job(&format!(
            "cptrain mpi: {call} failed with MPI error code {code}"
        ));
    }
}

/// Remembers the first failure of this process; later operations refuse to
/// run (MPI may still own buffers of the failed one, and peers are out of
/// step).
pub(super) fn record_failure(message: String) {
    let _ = FAILURE.set(message);
}

/// The failure recorded by [`record_failure`], if any.
pub(super) fn failure() -> Option<&'static str> {
    FAILURE.get().map(String::as_str)
}

/// A zeroed `MPI_Status` for MPI to fill.
pub(super) fn empty_status() -> ffi::MPI_Status {
    // SAFETY: MPI_Status is a plain C struct of integers.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

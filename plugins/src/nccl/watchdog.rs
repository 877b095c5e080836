//! Host-blocking NCCL calls (communicator creation and splits; a collective
//! whose first use connects to its peers) cannot be interrupted from the
//! calling thread. While one runs, a watchdog thread ends the process if it
//! outlives its deadline; the launcher then stops the other ranks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How often the watchdog looks at the deadlines.
const CHECK_EVERY: Duration = Duration::from_millis(100);

static ARMED: Mutex<Option<HashMap<u64, (String, Instant)>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);
static STARTED: OnceLock<()> = OnceLock::new();

/// Disarms its deadline when dropped.
pub(super) struct Armed(u64);

/// Watches the call described by `what` until the returned value is
/// dropped; ends the process with status 1 if that is later than `timeout`.
pub(super) fn arm(what: String, timeout: Duration) -> Armed {
    STARTED.get_or_init(|| {
        thread::Builder::new()
            .name("nccl-watchdog".into())
            .spawn(watch)
            .map(drop)
            .unwrap_or_else(|e| tracing::warn!("the NCCL watchdog did not start: {e}"));
    });
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + timeout;
    let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
    armed
        .get_or_insert_with(HashMap::new)
        .insert(id, (what, deadline));
    Armed(id)
}

impl Drop for Armed {
    fn drop(&mut self) {
        let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(armed) = armed.as_mut() {
            armed.remove(&self.0);
        }
    }
}

fn watch() {
    loop {
        thread::sleep(CHECK_EVERY);
        let now = Instant::now();
        let armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = armed
            .iter()
            .flatten()
            .find(|(_, (_, deadline))| *deadline <= now);
        if let Some((_, (what, _))) = expired {
            eprintln!(
                "error: {what} is still blocked at parallel.timeout_s: a peer is stuck, dead or \
                 much slower; ending this process (the launcher stops the others)"
            );
            std::process::exit(1);
        }
    }
}

//! Opt-in: turn SIGINT/SIGTERM into a cancelled [`CancellationToken`].
//!
//! appctx never installs a signal handler by itself; an application calls
//! [`cancel_on_signals`] (typically in `main`) and parents its context's
//! token under the returned token's owner with
//! [`ContextBuilder::shutdown_token`](crate::ContextBuilder::shutdown_token).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::shutdown::CancellationToken;

/// Keeps the signal listener alive; dropping it stops listening (the
/// handlers stay registered but do nothing, so a later Ctrl-C is ignored).
#[must_use = "signals are only watched while the guard lives"]
pub struct SignalGuard {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    first: Arc<AtomicI32>,
}

impl SignalGuard {
    /// The first signal received (`SIGINT` = 2, `SIGTERM` = 15), if any: a
    /// command line program exits with `128 + signal` after stopping on it.
    pub fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }
}

/// Cancels `token` with cause "received SIGINT" / "received SIGTERM" when
/// either signal arrives.
pub fn cancel_on_signals(token: &CancellationToken) -> std::io::Result<SignalGuard> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let token = token.clone();
    let first = Arc::new(AtomicI32::new(0));
    let seen = first.clone();
    let thread = std::thread::Builder::new()
        .name("appctx-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                let _ = seen.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
                tracing::info!(signal = name, "shutdown requested");
                token.cancel(format!("received {name}"));
            }
        })?;
    Ok(SignalGuard {
        handle,
        thread: Some(thread),
        first,
    })
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! The blocking waits of one rank on one group, as intervals, kept only
//! while a timeline asks for them ([`ProcessGroup::log_waits`]).
//!
//! [`ProcessGroup::log_waits`]: super::ProcessGroup::log_waits

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// One blocking wait: from the call's start until the data was there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitSpan {
    /// When the operation started waiting.
    pub start: Instant,
    /// When it stopped.
    pub end: Instant,
}

/// A backend's log of [`WaitSpan`]s: off until [`WaitLog::set`] turns it
/// on, and then one uncontended lock per wait (a relaxed load when off).
#[derive(Debug, Default)]
pub struct WaitLog {
    on: AtomicBool,
    spans: Mutex<Vec<WaitSpan>>,
}

impl WaitLog {
    /// Starts (`true`, emptying the log) or stops keeping waits.
    pub fn set(&self, on: bool) {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans.clear();
        self.on.store(on, Ordering::Relaxed);
    }

    /// Keeps the wait from `start` to `end`, if on.
    pub fn push(&self, start: Instant, end: Instant) {
        if self.on.load(Ordering::Relaxed) {
            let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
            spans.push(WaitSpan { start, end });
        }
    }

    /// The waits kept since the last call, oldest first.
    pub fn take(&self) -> Vec<WaitSpan> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_kept_only_while_on_and_taken_once() {
        let log = WaitLog::default();
        let (start, end) = (Instant::now(), Instant::now());
        log.push(start, end);
        assert!(log.take().is_empty(), "off when created");
        log.set(true);
        log.push(start, end);
        log.push(end, end);
        let spans = log.take();
        assert_eq!(
            spans,
            [WaitSpan { start, end }, WaitSpan { start: end, end }]
        );
        assert!(log.take().is_empty(), "taken once");
        log.push(start, end);
        log.set(false);
        log.push(start, end);
        assert!(log.take().is_empty(), "turning it off drops the rest");
    }
}

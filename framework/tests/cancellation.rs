//! Cancellation as a future and as a callback: what a program that does not
//! block a thread per token needs.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use appctx::{CancelCause, CancellationToken};

/// Wakes the thread that polls.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it completes, parking in between
/// (a minimal executor: the future must wake it).
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park_timeout(Duration::from_secs(5));
    }
}

#[test]
fn the_future_completes_when_another_thread_cancels() {
    let token = CancellationToken::new();
    let canceller = token.clone();
    let handle = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        canceller.cancel("shutting down");
    });
    let cause = block_on(token.cancelled());
    assert_eq!(cause, CancelCause::Requested("shutting down".into()));
    handle.join().unwrap();
}

#[test]
fn a_child_future_completes_when_the_parent_is_cancelled() {
    let parent = CancellationToken::new();
    let child = parent.child();
    let mut future = pin!(child.cancelled());
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(future.as_mut().poll(&mut cx).is_pending());
    parent.cancel("parent");
    assert_eq!(
        future.as_mut().poll(&mut cx),
        Poll::Ready(CancelCause::Requested("parent".into()))
    );
}

#[test]
fn a_deadline_completes_the_future_without_anyone_cancelling() {
    let token = CancellationToken::new().child_with_timeout(Duration::from_millis(80));
    let started = Instant::now();
    assert_eq!(block_on(token.cancelled()), CancelCause::DeadlineExceeded);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(80), "{took:?}");
    assert!(token.is_cancelled());
}

#[test]
fn a_callback_runs_once_with_the_cause() {
    let token = CancellationToken::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None));
    let (counter, cause) = (calls.clone(), seen.clone());
    token.on_cancel(move |c| {
        counter.fetch_add(1, Ordering::SeqCst);
        *cause.lock().unwrap() = Some(c.clone());
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    token.cancel("first");
    token.cancel("second");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(CancelCause::Requested("first".into()))
    );
}

#[test]
fn a_callback_on_a_cancelled_token_runs_at_once() {
    let token = CancellationToken::new();
    token.cancel("done");
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    token.on_cancel(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_callback_may_use_the_token_and_learns_of_deadlines() {
    let token = CancellationToken::new().child_with_timeout(Duration::from_millis(50));
    let (sender, receiver) = std::sync::mpsc::channel();
    let inner = token.clone();
    // The callback reads the token again: it runs outside the token's lock.
    token.on_cancel(move |cause| sender.send((cause.clone(), inner.is_cancelled())).unwrap());
    let (cause, cancelled) = receiver.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(cause, CancelCause::DeadlineExceeded);
    assert!(cancelled);
}

//! [`Cancelled`]: a token's cancellation as a future, with no runtime
//! dependency (std's `Waker` only).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use super::shutdown::{CancelCause, Node, cancel_node, lock};

/// The future of [`CancellationToken::cancelled`](super::CancellationToken::cancelled):
/// completes with the cause once the token is cancelled or its deadline
/// passes.
#[must_use = "a future does nothing unless polled"]
pub struct Cancelled {
    node: Arc<Node>,
}

impl Cancelled {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        Cancelled { node }
    }
}

impl Future for Cancelled {
    type Output = CancelCause;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CancelCause> {
        let node = &self.node;
        if lock(&node.state).cause.is_none() && node.deadline.is_some_and(|d| Instant::now() >= d) {
            cancel_node(node, CancelCause::DeadlineExceeded);
        }
        let mut state = lock(&node.state);
        if let Some(cause) = state.cause.clone() {
            return Poll::Ready(cause);
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        drop(state);
        watch_deadline(node);
        Poll::Pending
    }
}

/// Starts, once per node with a deadline, a thread that cancels the node
/// when the deadline passes (it leaves early when the node is cancelled or
/// dropped), so futures and callbacks learn of deadlines nobody polls.
pub(crate) fn watch_deadline(node: &Arc<Node>) {
    let Some(deadline) = node.deadline else {
        return;
    };
    {
        let mut state = lock(&node.state);
        if state.deadline_watched || state.cause.is_some() {
            return;
        }
        state.deadline_watched = true;
    }
    let weak: Weak<Node> = Arc::downgrade(node);
    let spawned = std::thread::Builder::new()
        .name("appctx-deadline".into())
        .spawn(move || {
            loop {
                let Some(node) = weak.upgrade() else { return };
                let now = Instant::now();
                if now >= deadline {
                    cancel_node(&node, CancelCause::DeadlineExceeded);
                    return;
                }
                let state = lock(&node.state);
                if state.cause.is_some() {
                    return;
                }
                // Woken early by a cancellation; checked again above. The
                // strong reference is dropped while waiting only through
                // the timeout, so a dropped token ends the thread within it.
                let wait = (deadline - now).min(std::time::Duration::from_secs(1));
                let _unused = node.changed.wait_timeout(state, wait);
            }
        });
    if spawned.is_err() {
        // Without a thread, deadlines are still seen by every poll.
        lock(&node.state).deadline_watched = false;
    }
}

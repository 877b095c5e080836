//! A tree of cancellation tokens, in the spirit of Go's `context.Context`.
//!
//! Cancelling a token cancels all of its descendants; a token may carry a
//! deadline after which it counts as cancelled; every cancellation has a
//! [`CancelCause`]. Tokens are cheap to clone and are passed explicitly.
//! Cancellation can be waited for by blocking ([`CancellationToken::wait`]),
//! awaited as a future ([`CancellationToken::cancelled`], usable in any
//! executor's `select!`), or answered by a callback
//! ([`CancellationToken::on_cancel`]).

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::cancelled::{Cancelled, watch_deadline};

/// Why a token was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelCause {
    /// `cancel(reason)` was called on this token or an ancestor.
    Requested(String),
    /// The deadline of this token or of an ancestor passed.
    DeadlineExceeded,
}

impl fmt::Display for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelCause::Requested(reason) => write!(f, "cancelled: {reason}"),
            CancelCause::DeadlineExceeded => f.write_str("deadline exceeded"),
        }
    }
}

/// A callback run once, with the cause, when its token is cancelled.
pub(crate) type OnCancel = Box<dyn FnOnce(&CancelCause) + Send>;

pub(crate) struct State {
    pub(crate) cause: Option<CancelCause>,
    children: Vec<Weak<Node>>,
    /// Tasks awaiting [`CancellationToken::cancelled`].
    pub(crate) wakers: Vec<Waker>,
    /// Callbacks of [`CancellationToken::on_cancel`].
    callbacks: Vec<OnCancel>,
    /// Whether a thread already cancels this node at its deadline.
    pub(crate) deadline_watched: bool,
}

pub(crate) struct Node {
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Condvar,
    pub(crate) deadline: Option<Instant>,
    parent: Option<Arc<Node>>,
}

/// A cancellation token; clones share one node of the tree.
#[derive(Clone)]
pub struct CancellationToken {
    node: Arc<Node>,
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cause", &self.cause())
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl Default for CancellationToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancellationToken {
    /// A root token without deadline.
    pub fn new() -> Self {
        Self::with_parent(None, None)
    }

    fn with_parent(parent: Option<&CancellationToken>, deadline: Option<Instant>) -> Self {
        let inherited = parent.and_then(|p| p.deadline());
        let deadline = match (deadline, inherited) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let node = Arc::new(Node {
            state: Mutex::new(State {
                cause: None,
                children: Vec::new(),
                wakers: Vec::new(),
                callbacks: Vec::new(),
                deadline_watched: false,
            }),
            changed: Condvar::new(),
            deadline,
            parent: parent.map(|p| p.node.clone()),
        });
        if let Some(parent) = parent {
            let mut state = lock(&parent.node.state);
            match &state.cause {
                Some(cause) => lock(&node.state).cause = Some(cause.clone()),
                None => {
                    state.children.retain(|c| c.strong_count() > 0);
                    state.children.push(Arc::downgrade(&node));
                }
            }
        }
        CancellationToken { node }
    }

    /// A child token: cancelled when this one is, never the other way round.
    pub fn child(&self) -> Self {
        Self::with_parent(Some(self), None)
    }

    /// A child token that also cancels itself `timeout` from now.
    pub fn child_with_timeout(&self, timeout: Duration) -> Self {
        Self::with_parent(Some(self), Some(Instant::now() + timeout))
    }

    /// A child token that also cancels itself at `deadline`.
    pub fn child_with_deadline(&self, deadline: Instant) -> Self {
        Self::with_parent(Some(self), Some(deadline))
    }

    /// The effective deadline (the earliest of this token's and its ancestors').
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// Cancels this token and all its descendants. The first cause wins.
    pub fn cancel(&self, reason: impl Into<String>) {
        cancel_node(&self.node, CancelCause::Requested(reason.into()));
    }

    /// Whether the token was cancelled or its deadline has passed.
    pub fn is_cancelled(&self) -> bool {
        self.cause().is_some()
    }

    /// The cause of cancellation, or `None` while the token is live.
    pub fn cause(&self) -> Option<CancelCause> {
        if let Some(cause) = lock(&self.node.state).cause.clone() {
            return Some(cause);
        }
        if self.node.deadline.is_some_and(|d| Instant::now() >= d) {
            cancel_node(&self.node, CancelCause::DeadlineExceeded);
            return lock(&self.node.state).cause.clone();
        }
        None
    }

    /// Blocks until the token is cancelled (or its deadline passes); returns the cause.
    pub fn wait(&self) -> CancelCause {
        loop {
            if let Some(cause) = self.wait_timeout(Duration::from_secs(3600)) {
                return cause;
            }
        }
    }

    /// Blocks at most `timeout`; returns the cause if the token got cancelled.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<CancelCause> {
        let mut until = Instant::now() + timeout;
        if let Some(deadline) = self.node.deadline {
            until = until.min(deadline);
        }
        let mut state = lock(&self.node.state);
        loop {
            if let Some(cause) = state.cause.clone() {
                return Some(cause);
            }
            let now = Instant::now();
            if now >= until {
                drop(state);
                return self.cause();
            }
            state = self
                .node
                .changed
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A future that completes with the cause once the token is cancelled
    /// or its deadline passes; it needs no particular runtime (a token with
    /// a deadline starts one thread that cancels it then). In an async
    /// program it races other work, e.g. with tokio:
    ///
    /// ```text
    /// tokio::select! {
    ///     cause = token.cancelled() => return Err(cause.into()),
    ///     line = lines.next_line() => handle(line?),
    /// }
    /// ```
    pub fn cancelled(&self) -> Cancelled {
        Cancelled::new(self.node.clone())
    }

    /// Runs `callback` once, with the cause, when the token is cancelled
    /// (on the cancelling thread, or the deadline's), or right away on this
    /// thread when it already is.
    ///
    /// ```
    /// let token = appctx::CancellationToken::new();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// token.on_cancel(move |cause| tx.send(cause.to_string()).unwrap());
    /// token.cancel("SIGTERM");
    /// assert_eq!(rx.recv().unwrap(), "cancelled: SIGTERM");
    /// ```
    pub fn on_cancel(&self, callback: impl FnOnce(&CancelCause) + Send + 'static) {
        let mut state = lock(&self.node.state);
        if state.cause.is_none() && self.node.deadline.is_some_and(|d| Instant::now() >= d) {
            drop(state);
            cancel_node(&self.node, CancelCause::DeadlineExceeded);
            state = lock(&self.node.state);
        }
        match state.cause.clone() {
            Some(cause) => {
                drop(state);
                callback(&cause);
            }
            None => {
                state.callbacks.push(Box::new(callback));
                drop(state);
                watch_deadline(&self.node);
            }
        }
    }

    /// A guard that cancels this token when dropped.
    pub fn drop_guard(&self) -> DropGuard {
        DropGuard {
            token: self.clone(),
        }
    }

    /// Whether `self` is `other` or a descendant of it.
    pub fn is_descendant_of(&self, other: &CancellationToken) -> bool {
        let mut node = Some(&self.node);
        while let Some(n) = node {
            if Arc::ptr_eq(n, &other.node) {
                return true;
            }
            node = n.parent.as_ref();
        }
        false
    }
}

/// Cancels its token when dropped (see [`CancellationToken::drop_guard`]).
#[must_use = "the token is cancelled as soon as the guard is dropped"]
pub struct DropGuard {
    token: CancellationToken,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.token.cancel("drop guard released");
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn cancel_node(node: &Arc<Node>, cause: CancelCause) {
    // Iterative so that deep trees cannot overflow the stack.
    let mut pending = vec![node.clone()];
    while let Some(node) = pending.pop() {
        let mut state = lock(&node.state);
        if state.cause.is_some() {
            continue;
        }
        state.cause = Some(cause.clone());
        pending.extend(state.children.drain(..).filter_map(|c| c.upgrade()));
        let wakers = std::mem::take(&mut state.wakers);
        let callbacks = std::mem::take(&mut state.callbacks);
        drop(state);
        node.changed.notify_all();
        // Outside the lock: a callback may use the token again.
        wakers.into_iter().for_each(Waker::wake);
        callbacks.into_iter().for_each(|callback| callback(&cause));
    }
}

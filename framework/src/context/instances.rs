//! The components a context holds: one slot per node, filled once, read
//! without locking; the values themselves in creation order, so that close
//! drops them in reverse whatever created them (refresh, a lazy lookup, or a
//! factory that looked up a component refresh had not reached yet).

use std::any::Any;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{self, ThreadId};
use std::time::Duration;

use super::ApplicationContext;
use crate::component::Stored;

/// What a lookup of a component not created yet may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Refresh is creating components: any may be created on demand.
    Refreshing,
    /// Refreshed: lazy components may still be created.
    Ready,
    /// Closed (or never refreshed): nothing is created any more.
    Closed,
}

/// One created component, remembered for the startup report and for close.
pub(crate) struct Created {
    pub id: usize,
    pub value: Stored,
    pub elapsed: Duration,
}

struct State {
    /// The thread creating components of this context, and its nesting depth.
    creator: Option<(ThreadId, usize)>,
    /// Every component created and not yet dropped, in creation order.
    created: Vec<Created>,
}

/// The instances of one context.
pub(crate) struct Instances {
    /// A weak reference per node; the strong one is in `State::created`.
    slots: Box<[OnceLock<Weak<dyn Any + Send + Sync>>]>,
    state: Mutex<State>,
    creator_left: Condvar,
    phase: AtomicU8,
    /// The context holding these instances (what a `Lazy` handle looks up through).
    owner: Weak<ApplicationContext>,
}

/// Holds the right to create components of one context; re-entrant on its
/// thread (a factory may cause further creations), released on drop.
pub(crate) struct Creating<'a>(&'a Instances);

impl Instances {
    pub fn new(nodes: usize, phase: Phase, owner: Weak<ApplicationContext>) -> Self {
        Instances {
            slots: (0..nodes).map(|_| OnceLock::new()).collect(),
            state: Mutex::new(State {
                creator: None,
                created: Vec::with_capacity(nodes),
            }),
            creator_left: Condvar::new(),
            phase: AtomicU8::new(phase as u8),
            owner,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of node `id`, if it was created and is not dropped.
    pub fn get(&self, id: usize) -> Option<Stored> {
        self.slots.get(id)?.get()?.upgrade()
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Refreshing,
            1 => Phase::Ready,
            _ => Phase::Closed,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub fn owner(&self) -> &Weak<ApplicationContext> {
        &self.owner
    }

    /// Waits until no other thread is creating components of this context.
    /// One creator at a time keeps each component created once, and turns
    /// what would be a deadlock between two threads into a cycle on one.
    pub fn enter(&self) -> Creating<'_> {
        let me = thread::current().id();
        let mut state = self.state();
        loop {
            match &mut state.creator {
                None => {
                    state.creator = Some((me, 1));
                    break;
                }
                Some((thread, depth)) if *thread == me => {
                    *depth += 1;
                    break;
                }
                Some(_) => {
                    state = self
                        .creator_left
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        }
        Creating(self)
    }

    /// Records a created component (while `Creating` is held).
    pub fn store(&self, _creating: &Creating<'_>, created: Created) {
        if let Some(slot) = self.slots.get(created.id) {
            let _ = slot.set(std::sync::Arc::downgrade(&created.value));
        }
        self.state().created.push(created);
    }

    /// The created components in creation order: (node, time taken).
    pub fn created(&self) -> Vec<(usize, Duration)> {
        (self.state().created.iter())
            .map(|c| (c.id, c.elapsed))
            .collect()
    }

    /// Stops creating, and drops every component in reverse creation order.
    pub fn close(&self) {
        self.set_phase(Phase::Closed);
        let mut created = std::mem::take(&mut self.state().created);
        while let Some(last) = created.pop() {
            drop(last);
        }
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        if let Some((_, depth)) = &mut state.creator {
            *depth -= 1;
            if *depth == 0 {
                state.creator = None;
                self.0.creator_left.notify_all();
            }
        }
    }
}

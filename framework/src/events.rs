//! Typed, synchronous events.

use crate::component::Scope;

/// Receives events of type `E`. Register listeners as components providing
/// `dyn EventListener<E>`; any `Fn(&E) + Send + Sync` is a listener.
pub trait EventListener<E: ?Sized>: Send + Sync {
    /// Handles one event (synchronously, on the publishing thread).
    fn on_event(&self, event: &E);
}

impl<E: ?Sized, F: Fn(&E) + Send + Sync> EventListener<E> for F {
    fn on_event(&self, event: &E) {
        self(event)
    }
}

/// Published when a context finished refreshing (all components created, lifecycles started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextRefreshed {
    /// The context's name.
    pub context: String,
    /// The context's scope.
    pub scope: Scope,
    /// How many components it created.
    pub components: usize,
}

/// Published when a context starts closing (components still alive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextClosed {
    /// The context's name.
    pub context: String,
    /// The context's scope.
    pub scope: Scope,
}

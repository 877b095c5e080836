//! A component's handle on the context that created it.

use std::sync::{Arc, OnceLock, Weak};

use crate::context::ApplicationContext;
use crate::error::{Error, Result};

/// Injectable handle on the context a component lives in, usable once that
/// context has finished `refresh()`: a runner uses it to build child
/// contexts (one per worker) while it runs.
///
/// It holds the context weakly, so a component keeping it does not keep its
/// own context alive.
#[derive(Clone, Default)]
pub struct ContextHandle(Arc<OnceLock<Weak<ApplicationContext>>>);

impl ContextHandle {
    /// The context, if it has finished refreshing and is still alive.
    pub fn context(&self) -> Result<Arc<ApplicationContext>> {
        self.0
            .get()
            .and_then(Weak::upgrade)
            .ok_or(Error::ContextUnavailable)
    }

    pub(crate) fn bind(&self, context: &Arc<ApplicationContext>) {
        // A plan is refreshed once, so the slot is empty here.
        let _ = self.0.set(Arc::downgrade(context));
    }
}

impl std::fmt::Debug for ContextHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextHandle")
            .field("bound", &self.0.get().is_some())
            .finish()
    }
}

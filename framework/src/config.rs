//! Typed configuration sections bound from a key prefix.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::DeserializeOwned;

/// A serde type bound from the configuration subtree at [`PREFIX`](Self::PREFIX).
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct ServerConfig { port: u16 }
///
/// impl appctx::ConfigSection for ServerConfig {
///     const PREFIX: &'static str = "server";
/// }
/// ```
pub trait ConfigSection: DeserializeOwned + Send + Sync + 'static {
    /// Dotted key prefix, e.g. `server` or `storage.cache`.
    const PREFIX: &'static str;
}

/// An injected configuration section: a shared, immutable `T` (derefs to `T`).
///
/// Sections are bound and validated during `prepare()`, once per context.
pub struct Config<T>(pub(crate) Arc<T>);

impl<T> Config<T> {
    /// Wraps an already-built section (for tests and programmatic use).
    pub fn new(value: T) -> Self {
        Config(Arc::new(value))
    }

    /// The shared section.
    pub fn shared(&self) -> Arc<T> {
        self.0.clone()
    }
}

impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Config(self.0.clone())
    }
}

impl<T> Deref for Config<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Config<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

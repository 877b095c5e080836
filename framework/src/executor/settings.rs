//! `appctx.executor.*`: how a context's executor closes and how many
//! threads its blocking pool may start.

use std::time::Duration;

use serde::Deserialize;

use crate::environment::Environment;
use crate::error::{Error, Result};

/// The `[appctx.executor]` keys, read by every context.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ExecutorSettings {
    /// How long `close()` lets queued tasks run before dropping the rest.
    close_timeout_s: f64,
    /// The most threads the blocking pool starts.
    blocking_threads: usize,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            close_timeout_s: 30.0,
            blocking_threads: 4,
        }
    }
}

impl ExecutorSettings {
    /// The prefix of these keys.
    const PREFIX: &'static str = "appctx.executor";

    /// Checks the values; an error names the key and where it was set.
    pub fn validated(self, env: &Environment) -> Result<Self> {
        let invalid = |leaf: &str, message: &str| {
            let key = format!("{}.{leaf}", Self::PREFIX);
            Error::InvalidConfig {
                origin: env.origin(&key).map(|s| s.to_string()),
                key,
                message: message.to_string(),
            }
        };
        if !(self.close_timeout_s.is_finite() && self.close_timeout_s >= 0.0) {
            return Err(invalid(
                "close_timeout_s",
                "expected a finite number of seconds >= 0",
            ));
        }
        if self.blocking_threads == 0 {
            return Err(invalid(
                "blocking_threads",
                "expected at least 1 thread for blocking tasks",
            ));
        }
        Ok(self)
    }

    /// `close_timeout_s` as a duration.
    pub fn close_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.close_timeout_s)
    }

    /// `blocking_threads`.
    pub fn blocking_threads(&self) -> usize {
        self.blocking_threads
    }
}

//! The layered configuration of a context, with the source of every value.
//!
//! Layers, lowest precedence first: embedded defaults < `--config` files <
//! profile files (in activation order) < environment variables
//! `PREFIX__A__B` < `--set a.b=value` overrides. Tables merge key by key; any
//! other value replaces what a lower layer set.
//!
//! The `config` crate reads and layers the sources. Provenance: each source
//! is first read into a `config::Config` of its own (embedded text with
//! `File::from_str`, files with `File::from`, every environment variable with
//! `config::Environment`, every `--set` with `set_override`); the keys in that
//! tree are exactly the keys the source sets. Those per-source configs are
//! then the sources of one layered `config::Config`, added in precedence order,
//! and its tree holds the values. `config::Value::origin` alone would not do:
//! it says "the environment" without the variable, and nothing for `--set` or
//! embedded text.
//!
//! The merged tree is kept as a `toml::Table` so that binding can report
//! TOML types and exact key paths.

mod bind;
mod builder;
mod convert;
mod layer;
mod placeholders;
mod provenance;
mod source;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::diagnostics::did_you_mean;
use crate::error::{Error, Result};
pub(crate) use bind::join;
use bind::{BindError, Failure, Ignored, ValueDe};
pub use builder::EnvironmentBuilder;
pub(crate) use builder::PROFILES_KEY;
pub use source::Source;

/// The merged configuration tree plus the provenance of every leaf.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    root: Table,
    origins: BTreeMap<String, Source>,
    profiles: Vec<String>,
}

impl Environment {
    /// Starts building an environment from its sources.
    pub fn builder() -> EnvironmentBuilder {
        EnvironmentBuilder::default()
    }

    /// An environment with no keys and no active profile.
    pub fn empty() -> Self {
        Environment::default()
    }

    /// The active profiles, in activation order.
    pub fn active_profiles(&self) -> &[String] {
        &self.profiles
    }

    /// Whether `profile` is active.
    pub fn is_profile_active(&self, profile: &str) -> bool {
        self.profiles.iter().any(|p| p == profile)
    }

    /// The raw merged tree (save it with a checkpoint, print it, ...).
    pub fn values(&self) -> &Table {
        &self.root
    }

    /// The merged tree as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.root).unwrap_or(serde_json::Value::Null)
    }

    /// The merged tree as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.root).unwrap_or_default()
    }

    /// The value at a dotted key path, e.g. `server.port`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let mut parts = key.split('.');
        let mut value = self.root.get(parts.next()?)?;
        for part in parts {
            value = value.as_table()?.get(part)?;
        }
        Some(value)
    }

    /// Whether a key (leaf or table) is set.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value at `key` as text: strings as-is, other scalars in TOML form.
    pub fn get_string(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Which source set `key`: the key itself, the nearest enclosing key a
    /// source set, or (for a table) the first key inside it.
    pub fn origin(&self, key: &str) -> Option<&Source> {
        let mut path = key;
        loop {
            if let Some(source) = self.origins.get(path) {
                return Some(source);
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => break,
            }
        }
        let inside = format!("{key}.");
        self.origins
            .range(inside.clone()..)
            .next()
            .filter(|(k, _)| k.starts_with(&inside))
            .map(|(_, source)| source)
    }

    /// Every leaf key (dotted) with its value and source, sorted by key.
    pub fn effective(&self) -> EffectiveConfig {
        let entries = self
            .origins
            .iter()
            .filter_map(|(key, source)| {
                self.get(key).map(|v| EffectiveEntry {
                    key: key.clone(),
                    value: v.to_string(),
                    source: source.clone(),
                })
            })
            .collect();
        EffectiveConfig { entries }
    }

    /// Leaf keys (dotted), sorted.
    pub fn leaf_keys(&self) -> impl Iterator<Item = &str> {
        self.origins.keys().map(String::as_str)
    }

    /// Binds the subtree at `prefix` (empty for the whole tree) to `T`.
    ///
    /// Keys `T` does not know are an error (with "did you mean"), whether `T`
    /// uses `#[serde(deny_unknown_fields)]` or silently ignores them; type
    /// errors name the key, the expected type and the source.
    pub fn bind<T: DeserializeOwned>(&self, prefix: &str) -> Result<T> {
        let empty = Value::Table(Table::new());
        let value = if prefix.is_empty() {
            None
        } else {
            self.get(prefix)
        };
        let root = Value::Table(self.root.clone());
        let value = match (prefix.is_empty(), value) {
            (true, _) => &root,
            (false, Some(v)) => v,
            (false, None) => &empty,
        };
        let ignored = Ignored::default();
        let de = ValueDe {
            value,
            path: prefix.to_string(),
            ignored: &ignored,
        };
        let section = std::any::type_name::<T>();
        let bound = T::deserialize(de).map_err(|e| self.bind_error(e, prefix, section))?;
        if let Some(key) = ignored.ignored.borrow().first() {
            let parent = key.rfind('.').map(|i| &key[..i]).unwrap_or("");
            let known: Vec<String> = ignored
                .read
                .borrow()
                .iter()
                .filter(|k| {
                    k.rfind('.').map(|i| &k[..i]).unwrap_or("") == parent
                        && !ignored.ignored.borrow().contains(k)
                })
                .cloned()
                .collect();
            return Err(self.unknown_key(key, &known));
        }
        Ok(bound)
    }

    /// An unknown-key error for `key`, suggesting the nearest of `known` (full paths).
    pub(crate) fn unknown_key(&self, key: &str, known: &[String]) -> Error {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let leaves: Vec<&str> = known
            .iter()
            .map(|k| k.rsplit('.').next().unwrap_or(k))
            .collect();
        let suggestion = did_you_mean(leaf, leaves.iter().copied()).and_then(|best| {
            known
                .iter()
                .find(|k| k.rsplit('.').next() == Some(best.as_str()))
                .cloned()
        });
        Error::UnknownConfigKey {
            key: key.to_string(),
            origin: self.origin_text(key),
            suggestion,
            known: known.to_vec(),
        }
    }

    fn origin_text(&self, key: &str) -> String {
        self.origin(key)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "no source".to_string())
    }

    fn bind_error(&self, e: BindError, prefix: &str, section: &'static str) -> Error {
        let key = e.path.unwrap_or_else(|| prefix.to_string());
        let origin = self.origin(&key).map(|s| s.to_string());
        match e.failure {
            Failure::Unknown { expected, .. } => {
                let parent = key.rfind('.').map(|i| &key[..i]).unwrap_or("");
                let known: Vec<String> = expected.iter().map(|f| join(parent, f)).collect();
                self.unknown_key(&key, &known)
            }
            Failure::Type { expected, found } => Error::ConfigType {
                key,
                expected,
                found,
                origin,
                section,
            },
            Failure::Missing { .. } => Error::MissingConfigKey { key, section },
            Failure::Custom(message) => Error::InvalidConfig {
                key,
                message,
                origin,
            },
        }
    }
}

/// One line of the effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveEntry {
    /// Dotted key.
    pub key: String,
    /// The value in TOML form.
    pub value: String,
    /// Where it was set.
    pub source: Source,
}

/// The effective configuration with the source of every value; prints as
/// `key = value  # source`, one line per key.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveConfig {
    /// One entry per leaf key, sorted by key.
    pub entries: Vec<EffectiveEntry>,
}

/// The widest `key = value` the `# source` column is aligned after; longer
/// assignments (a value of any length may be set) push their own comment out.
const ALIGNED_WIDTH: usize = 72;

impl fmt::Display for EffectiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .entries
            .iter()
            .map(|e| e.key.len() + e.value.len() + 3)
            .max()
            .unwrap_or(0)
            .min(ALIGNED_WIDTH);
        for e in &self.entries {
            let assignment = format!("{} = {}", e.key, e.value);
            writeln!(f, "{assignment:<width$}  # {}", e.source)?;
        }
        Ok(())
    }
}

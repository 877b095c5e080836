//! Reading one configuration source with the `config` crate.
//!
//! Every source (embedded text, a file, one environment variable, one
//! `--set`) becomes its own [`config::Config`]. Its tree tells which keys that
//! source sets; the builder then hands the layers to `config` in precedence
//! order, and `config` merges them.

use std::path::Path;

use config::{Config, ConfigError, File, FileFormat, Map, Value, ValueKind};

use super::Source;
use crate::error::{Error, Result};

/// One source, read by `config` on its own, with its provenance.
pub(super) struct Layer {
    /// Where the keys of this layer come from.
    pub source: Source,
    /// This source alone.
    pub config: Config,
}

impl Layer {
    /// Embedded TOML text (defaults, or an embedded profile).
    pub fn text(source: Source, text: &str) -> Result<Layer> {
        let built = Config::builder()
            .add_source(File::from_str(text, FileFormat::Toml))
            .build()
            .map_err(|e| Error::ConfigSyntax {
                origin: source.to_string(),
                message: parse_message(e),
            })?;
        Ok(Layer {
            source,
            config: built,
        })
    }

    /// A TOML file (a `--config` file or a profile file), read at exactly
    /// `path`: `config` alone would fall back to `path.toml` when `path` is
    /// missing, and the provenance would then name the wrong file.
    pub fn file(source: Source, path: &Path) -> Result<Layer> {
        let unreadable = |message: String| Error::ConfigFileUnreadable {
            path: path.to_path_buf(),
            message,
        };
        let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
        if !metadata.is_file() {
            return Err(unreadable("it is not a regular file".into()));
        }
        let built = Config::builder()
            .add_source(File::from(path).format(FileFormat::Toml))
            .build()
            .map_err(|e| match e {
                ConfigError::FileParse { .. } => Error::ConfigSyntax {
                    origin: source.to_string(),
                    message: parse_message(e),
                },
                other => unreadable(other.to_string()),
            })?;
        Ok(Layer {
            source,
            config: built,
        })
    }

    /// The variable `name=value` if it is one of ours (`PREFIX__A__B`, read
    /// by [`config::Environment`] as key `a.b`), else `None`.
    pub fn env_var(prefix: &str, name: &str, value: &str) -> Result<Option<Layer>> {
        let invalid = |reason: String| Error::InvalidOverride {
            argument: format!("{name}={value}"),
            reason,
        };
        let variable = TomlTypedEnv(
            config::Environment::with_prefix(prefix)
                .prefix_separator("__")
                .separator("__")
                .source(Some(Map::from([(name.to_string(), value.to_string())]))),
        );
        let keys = config::Source::collect(&variable).map_err(|e| invalid(e.to_string()))?;
        let Some(key) = keys.keys().next() else {
            return Ok(None);
        };
        if key.split('.').any(str::is_empty) {
            return Err(invalid("the variable name has an empty key segment".into()));
        }
        let built = Config::builder()
            .add_source(variable)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Some(Layer {
            source: Source::EnvVar {
                name: name.to_string(),
            },
            config: built,
        }))
    }

    /// A `--set key=value` argument, applied with `set_override`.
    pub fn assignment(argument: &str) -> Result<Layer> {
        let invalid = |reason: String| Error::InvalidOverride {
            argument: argument.to_string(),
            reason,
        };
        let (key, raw) = argument
            .split_once('=')
            .ok_or_else(|| invalid("it has no `=`".into()))?;
        let segments: Vec<&str> = key.trim().split('.').map(str::trim).collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(invalid("the key has an empty segment".into()));
        }
        if let Some(bad) = segments.iter().find(|s| !is_plain_key(s)) {
            return Err(invalid(format!(
                "the key segment `{bad}` may only hold ASCII letters, digits, `_` and `-` \
                 (set a whole array as `key=[1, 2]`)"
            )));
        }
        let built = Config::builder()
            .set_override(segments.join("."), toml_typed(raw.trim()))
            .and_then(|b| b.build())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Layer {
            source: Source::Override {
                argument: argument.to_string(),
            },
            config: built,
        })
    }
}

/// The tree of a built [`Config`].
pub(super) fn tree(config: &Config) -> Map<String, Value> {
    // Invariant: a built `Config` always holds a table at its root.
    config::Source::collect(config).expect("a built config's root is a table")
}

/// A key segment `config`'s path syntax reads as one plain key.
fn is_plain_key(segment: &str) -> bool {
    segment
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The parser's own message (with line and column), without `config`'s
/// " in <uri>" suffix: the error names the source itself.
fn parse_message(error: ConfigError) -> String {
    match error {
        ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    }
}

/// Reads `raw` as a TOML value (`5`, `1e-3`, `true`, `[1, 2]`, `"5"`), and
/// as text when it is not one (`adamw`).
fn toml_typed(raw: &str) -> Value {
    match config::Source::collect(&File::from_str(&format!("v = {raw}"), FileFormat::Toml)) {
        Ok(mut table) if table.len() == 1 => table.remove("v").unwrap_or_else(|| raw.into()),
        _ => raw.into(),
    }
}

/// `config`'s environment source whose values are read like `--set` values
/// ([`toml_typed`]). Plain `try_parsing` is not used: it would read `TRUE`
/// as a boolean and leave `[1, 2]` and `"5"` as text, unlike `--set`.
#[derive(Debug, Clone)]
struct TomlTypedEnv(config::Environment);

impl config::Source for TomlTypedEnv {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> std::result::Result<Map<String, Value>, ConfigError> {
        let variables = self.0.collect()?;
        Ok(variables
            .into_iter()
            .map(|(key, value)| match value.kind {
                ValueKind::String(text) => (key, toml_typed(&text)),
                _ => (key, value),
            })
            .collect())
    }
}

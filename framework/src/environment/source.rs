//! Where a configuration value came from (its provenance).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One configuration source. Layers apply in the order of this enum's
/// documentation, lowest precedence first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Defaults embedded in the program (e.g. `include_str!("default.toml")`).
    Defaults {
        /// A name for the embedded text, e.g. `config/default.toml`.
        name: String,
    },
    /// A file given with `--config`.
    File {
        /// Its path as given.
        path: PathBuf,
    },
    /// The file or embedded text of an active profile.
    Profile {
        /// The profile name.
        name: String,
        /// The file it was read from; `None` when embedded.
        path: Option<PathBuf>,
    },
    /// An environment variable such as `APP__SERVER__PORT`.
    EnvVar {
        /// The variable name.
        name: String,
    },
    /// A `--set key=value` override.
    Override {
        /// The argument as given.
        argument: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Defaults { name } => write!(f, "embedded defaults {name}"),
            Source::File { path } => write!(f, "file {}", path.display()),
            Source::Profile {
                name,
                path: Some(path),
            } => write!(f, "profile `{name}` ({})", path.display()),
            Source::Profile { name, path: None } => write!(f, "profile `{name}` (embedded)"),
            Source::EnvVar { name } => write!(f, "environment variable {name}"),
            Source::Override { argument } => write!(f, "--set {argument}"),
        }
    }
}

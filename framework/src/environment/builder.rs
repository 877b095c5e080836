//! Collects the sources of an [`Environment`] and layers them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Environment, Source, merge};
use crate::error::{Error, Result};

/// Builds an [`Environment`]: every knob is optional; nothing is read until
/// [`build`](Self::build).
#[derive(Debug, Default, Clone)]
pub struct EnvironmentBuilder {
    defaults: Vec<(String, String)>,
    files: Vec<PathBuf>,
    profiles: Vec<String>,
    profile_dir: Option<PathBuf>,
    embedded_profiles: BTreeMap<String, String>,
    env_prefix: Option<String>,
    env_vars: Option<Vec<(String, String)>>,
    overrides: Vec<String>,
}

impl EnvironmentBuilder {
    /// Adds embedded default TOML text (lowest precedence); `name` labels it in reports.
    pub fn defaults(mut self, name: impl Into<String>, toml_text: impl Into<String>) -> Self {
        self.defaults.push((name.into(), toml_text.into()));
        self
    }

    /// Adds a `--config` file; later files win over earlier ones.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Adds several `--config` files.
    pub fn files<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.files.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Activates a profile; later profiles win over earlier ones.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profiles.push(name.into());
        self
    }

    /// Activates several profiles in order.
    pub fn profiles<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.profiles.extend(names.into_iter().map(Into::into));
        self
    }

    /// The folder holding `<profile>.toml` files (searched before embedded profiles).
    pub fn profile_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.profile_dir = Some(dir.into());
        self
    }

    /// Defines a profile from embedded TOML text.
    pub fn embedded_profile(
        mut self,
        name: impl Into<String>,
        toml_text: impl Into<String>,
    ) -> Self {
        self.embedded_profiles.insert(name.into(), toml_text.into());
        self
    }

    /// Reads variables `PREFIX__A__B=value` as key `a.b` (keys are lowercased).
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// Uses these variables instead of the process environment (for tests).
    pub fn env_vars<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env_vars = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Adds a `--set key=value` override (highest precedence). The value is
    /// read as a TOML scalar or array where possible (`5`, `1e-3`, `true`,
    /// `[1, 2]`), and as a string otherwise.
    pub fn set(mut self, assignment: impl Into<String>) -> Self {
        self.overrides.push(assignment.into());
        self
    }

    /// Adds several `--set` overrides in order.
    pub fn sets<S: Into<String>>(mut self, assignments: impl IntoIterator<Item = S>) -> Self {
        self.overrides
            .extend(assignments.into_iter().map(Into::into));
        self
    }

    /// Reads and layers every source.
    pub fn build(self) -> Result<Environment> {
        let mut env = Environment {
            profiles: self.profiles.clone(),
            ..Environment::default()
        };
        let mut layer = |table: Table, source: Source| {
            merge(&mut env.root, table, "", &source, &mut env.origins);
        };
        for (name, text) in &self.defaults {
            let source = Source::Defaults { name: name.clone() };
            layer(parse_toml(text, &source)?, source);
        }
        for path in &self.files {
            let source = Source::File { path: path.clone() };
            layer(parse_toml(&read(path)?, &source)?, source);
        }
        for name in &self.profiles {
            let (text, source) = self.find_profile(name)?;
            layer(parse_toml(&text, &source)?, source);
        }
        if let Some(prefix) = &self.env_prefix {
            let vars = match &self.env_vars {
                Some(vars) => vars.clone(),
                None => std::env::vars().collect(),
            };
            let mut vars: Vec<_> = vars
                .into_iter()
                .filter(|(k, _)| k.starts_with(&format!("{prefix}__")))
                .collect();
            vars.sort();
            for (name, raw) in vars {
                let path: Vec<String> = name[prefix.len() + 2..]
                    .split("__")
                    .map(str::to_lowercase)
                    .collect();
                if path.iter().any(String::is_empty) {
                    return Err(Error::InvalidOverride {
                        argument: format!("{name}={raw}"),
                        reason: "the variable name has an empty key segment".into(),
                    });
                }
                layer(nest(&path, parse_scalar(&raw)), Source::EnvVar { name });
            }
        }
        for argument in &self.overrides {
            let (key, raw) = parse_assignment(argument)?;
            let source = Source::Override {
                argument: argument.clone(),
            };
            layer(nest(&key, parse_scalar(&raw)), source);
        }
        Ok(env)
    }

    fn find_profile(&self, name: &str) -> Result<(String, Source)> {
        if let Some(dir) = &self.profile_dir {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let text = read(&path)?;
                let source = Source::Profile {
                    name: name.to_string(),
                    path: Some(path),
                };
                return Ok((text, source));
            }
        }
        if let Some(text) = self.embedded_profiles.get(name) {
            let source = Source::Profile {
                name: name.to_string(),
                path: None,
            };
            return Ok((text.clone(), source));
        }
        let mut available: Vec<String> = self.embedded_profiles.keys().cloned().collect();
        if let Some(dir) = &self.profile_dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "toml")
                    && let Some(stem) = path.file_stem()
                {
                    available.push(stem.to_string_lossy().into_owned());
                }
            }
        }
        available.sort();
        available.dedup();
        Err(Error::ProfileNotFound {
            profile: name.to_string(),
            available,
            searched: self.profile_dir.clone(),
        })
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::ConfigFileUnreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn parse_toml(text: &str, source: &Source) -> Result<Table> {
    text.parse::<Table>().map_err(|e| Error::ConfigSyntax {
        origin: source.to_string(),
        message: e.to_string(),
    })
}

/// `a.b=value` into (`["a","b"]`, `"value"`).
fn parse_assignment(argument: &str) -> Result<(Vec<String>, String)> {
    let invalid = |reason: &str| Error::InvalidOverride {
        argument: argument.to_string(),
        reason: reason.to_string(),
    };
    let (key, value) = argument
        .split_once('=')
        .ok_or_else(|| invalid("it has no `=`"))?;
    let path: Vec<String> = key
        .trim()
        .split('.')
        .map(|s| s.trim().to_string())
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(invalid("the key has an empty segment"));
    }
    Ok((path, value.trim().to_string()))
}

/// Reads text as a TOML value (number, boolean, array, quoted string, ...), else as a string.
fn parse_scalar(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut table) if table.len() == 1 => table.remove("v").unwrap_or(Value::String(raw.into())),
        _ => Value::String(raw.to_string()),
    }
}

fn nest(path: &[String], value: Value) -> Table {
    let mut value = value;
    for key in path[1..].iter().rev() {
        let mut table = Table::new();
        table.insert(key.clone(), value);
        value = Value::Table(table);
    }
    let mut root = Table::new();
    root.insert(path[0].clone(), value);
    root
}

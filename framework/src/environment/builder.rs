//! Collects the sources of an [`Environment`] and layers them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use config::{Config, ValueKind};

use super::convert::to_toml_table;
use super::layer::{Layer, tree};
use super::{Environment, Source, placeholders, provenance};
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

    /// Reads variables `PREFIX__A__B=value` as key `a.b` with
    /// [`config::Environment`]: keys are lowercased and the prefix matches
    /// in any case. Values are read like `--set` values.
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
    /// `[1, 2]`), and as a string otherwise. Key segments hold ASCII letters,
    /// digits, `_` and `-` (no `[i]` subscripts: set the whole array).
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

    /// Reads every source with the `config` crate and has `config` layer them,
    /// recording which source set each key; then resolves `${...}`
    /// placeholders. Profiles named by `app.profiles` in any source other than
    /// a profile are activated after those given to [`profile`](Self::profile).
    pub fn build(self) -> Result<Environment> {
        let vars = self.vars();
        let below = self.layers_below_profiles()?;
        let above = self.layers_above_profiles(&vars)?;
        let mut profiles = self.profiles.clone();
        for name in configured_profiles(below.iter().chain(&above))? {
            if !profiles.contains(&name) {
                profiles.push(name);
            }
        }
        let mut origins = BTreeMap::new();
        let mut layered = Config::builder();
        let middle = profiles
            .iter()
            .map(|name| self.profile_layer(name))
            .collect::<Result<Vec<_>>>()?;
        for layer in below.into_iter().chain(middle).chain(above) {
            provenance::record(&mut origins, &tree(&layer.config), "", &layer.source);
            layered = layered.add_source(layer.config);
        }
        // Invariant: layering tables that were already read cannot fail.
        let merged = layered.build().expect("config layers in-memory tables");
        let mut root = to_toml_table(tree(&merged));
        let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        placeholders::resolve(&mut root, &origins, &var)?;
        Ok(Environment {
            root,
            origins,
            profiles,
        })
    }

    /// The environment variables: those given to
    /// [`env_vars`](Self::env_vars), else the process's, sorted by name.
    fn vars(&self) -> Vec<(String, String)> {
        let mut vars = match &self.env_vars {
            Some(vars) => vars.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into())))
                .collect(),
        };
        vars.sort();
        vars
    }

    /// Defaults and files: the sources below the profiles.
    fn layers_below_profiles(&self) -> Result<Vec<Layer>> {
        let mut layers = Vec::new();
        for (name, text) in &self.defaults {
            layers.push(Layer::text(Source::Defaults { name: name.clone() }, text)?);
        }
        for path in &self.files {
            layers.push(Layer::file(Source::File { path: path.clone() }, path)?);
        }
        Ok(layers)
    }

    /// Environment variables and `--set`: the sources above the profiles.
    fn layers_above_profiles(&self, vars: &[(String, String)]) -> Result<Vec<Layer>> {
        let mut layers = Vec::new();
        if let Some(prefix) = &self.env_prefix {
            // One layer per variable, in name order: conflicting variables
            // (`P__A=1`, `P__A__B=2`) resolve the same way on every run.
            for (name, value) in vars {
                layers.extend(Layer::env_var(prefix, name, value)?);
            }
        }
        for argument in &self.overrides {
            layers.push(Layer::assignment(argument)?);
        }
        Ok(layers)
    }

    /// The layer of an active profile: `<profile_dir>/<name>.toml`, else the
    /// embedded profile of that name.
    fn profile_layer(&self, name: &str) -> Result<Layer> {
        if let Some(dir) = &self.profile_dir {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let source = Source::Profile {
                    name: name.to_string(),
                    path: Some(path.clone()),
                };
                return Layer::file(source, &path);
            }
        }
        if let Some(text) = self.embedded_profiles.get(name) {
            let source = Source::Profile {
                name: name.to_string(),
                path: None,
            };
            return Layer::text(source, text);
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

/// The key that activates profiles from the configuration.
pub(crate) const PROFILES_KEY: &str = "app.profiles";

/// The profiles `app.profiles` names in the highest layer that sets it: a
/// list of names, or one string of comma-separated names.
fn configured_profiles<'a>(layers: impl Iterator<Item = &'a Layer>) -> Result<Vec<String>> {
    let Some((layer, value)) = layers
        .filter_map(|layer| {
            let app = tree(&layer.config).remove("app")?.into_table().ok()?;
            Some((layer, app.get("profiles")?.clone()))
        })
        .last()
    else {
        return Ok(Vec::new());
    };
    let wrong_type = |found: String| Error::ConfigType {
        key: PROFILES_KEY.to_string(),
        expected: "a list of profile names, or a string of comma-separated names".to_string(),
        found,
        origin: Some(layer.source.to_string()),
        section: "profile activation",
    };
    let names: Vec<String> = match value.kind {
        ValueKind::String(text) => text.split(',').map(str::to_string).collect(),
        ValueKind::Array(items) => items
            .into_iter()
            .map(|item| match item.kind {
                ValueKind::String(name) => Ok(name),
                other => Err(wrong_type(format!("a list holding {other}"))),
            })
            .collect::<Result<_>>()?,
        other => return Err(wrong_type(other.to_string())),
    };
    Ok(names
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect())
}

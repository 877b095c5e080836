//! `cptrain run --resume`: the run continues with its own configuration;
//! the command line may change only keys that keep the run's meaning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use appctx::{Environment, Source};
use serde_json::Value;

use super::commands::CommandError;
use super::{ConfigLayers, build_environment_over};
use crate::data::TrainConfig;
use crate::train::ResumePoint;

/// Keys (or sections, ending in `.`) a resume may change: how long, how
/// often, where and on what layout the run trains, and what it logs. Every
/// other key changes what is trained (model, data, optimizer, seed, batch).
/// Every rank layout trains the single-rank curve, so `parallel.` is free.
const CHANGEABLE: [&str; 15] = [
    "train.steps",
    "train.out_dir",
    "train.eval_every",
    "train.eval_batches",
    "train.checkpoint_every",
    "train.async_checkpoint",
    "train.keep_last",
    "train.overwrite",
    "train.allow_config_change",
    "train.sample_every",
    "train.sample_prompt",
    "train.sample_tokens",
    "parallel.",
    "kernels.",
    "metrics.",
];

/// A resume, prepared: the environment to run with and what it changed.
pub(super) struct Resume {
    /// The run's configuration under the command line's allowed changes.
    pub env: Environment,
    /// The checkpoint to continue from.
    pub point: ResumePoint,
    /// Changes of meaning accepted with `train.allow_config_change`.
    pub changes: Vec<String>,
}

/// Finds the checkpoint (`target`, or the newest under the configured
/// `train.out_dir`), rebuilds the environment with the run's own
/// configuration under `layers`, and refuses changes of meaning unless
/// `train.allow_config_change` is set.
pub(super) fn prepare_resume(
    layers: &ConfigLayers,
    env: &Environment,
    target: Option<&Path>,
    fallback: bool,
) -> Result<Resume, CommandError> {
    let point = match target {
        Some(dir) => ResumePoint::at(dir)?,
        None => {
            let train: TrainConfig = env.bind("train")?;
            ResumePoint::latest(&train.out_dir, fallback)?
        }
    };
    let run_config = &without_profiles(&point.state.config);
    let toml_text = toml::to_string(run_config).map_err(|e| {
        format!(
            "{}: the run's configuration cannot be restored: {e}",
            point.dir.display()
        )
    })?;
    let name = format!("(the resumed run's, {})", point.dir.display());
    let env = build_environment_over(layers, Some((&name, &toml_text)))?;
    let changes = run_config_changes(&point.state.config, &env);
    let train: TrainConfig = env.bind("train")?;
    if !changes.is_empty() {
        if !train.allow_config_change {
            return Err(format!(
                "--resume: these settings change what run {} trains ({}):\n  {}\n\
                 Drop them to continue the run as it was; or start a new run in another \
                 train.out_dir (model.init = {} starts from its weights); or accept the change \
                 with --set train.allow_config_change=true (logged and recorded in metrics.jsonl)",
                point.state.run.run_id,
                point.dir.display(),
                changes.join("\n  "),
                point.dir.join("model.safetensors").display()
            )
            .into());
        }
        tracing::warn!(
            changes = %changes.join("; "),
            "train.allow_config_change: the resumed run trains with a changed configuration"
        );
    }
    Ok(Resume {
        env,
        point,
        changes,
    })
}

/// What `env` changes in what a resumed run trains, compared with the
/// run's configuration snapshot `run_config` (one line per key; keys a
/// resume may change left out).
pub(crate) fn run_config_changes(run_config: &Value, env: &Environment) -> Vec<String> {
    let mut was = BTreeMap::new();
    flatten("", &without_profiles(run_config), &mut was);
    config_changes(&was, env)
}

/// What `env` changes in the run's configuration `was` (flattened), one
/// line per key, keys a resume may change left out. A key the run's
/// configuration lacks and `env` takes from the embedded defaults is not a
/// change: it was added to cptrain after the run started, and a new key's
/// default keeps what earlier versions did (`optimizer.kind = "adamw"`).
fn config_changes(was: &BTreeMap<String, Value>, env: &Environment) -> Vec<String> {
    let mut now = BTreeMap::new();
    flatten("", &env.to_json(), &mut now);
    let mut changes = Vec::new();
    for (key, value) in &now {
        let old = was.get(key);
        let origin = env.origin(key);
        let new_default = old.is_none() && matches!(origin, Some(Source::Defaults { .. }));
        if old == Some(value) || new_default || CHANGEABLE.iter().any(|c| changeable(c, key)) {
            continue;
        }
        let old = old.map_or_else(|| "unset".to_string(), Value::to_string);
        let source = origin.map_or_else(String::new, |s| format!(" (from {s})"));
        changes.push(format!("{key}: {old} → {value}{source}"));
    }
    for key in was.keys().filter(|k| !now.contains_key(*k)) {
        changes.push(format!("{key}: {} → unset", was[key]));
    }
    changes
}

/// The run's configuration without `app.profiles`: its values already hold
/// what those profiles set (and what the run's command line set over them),
/// so activating the profiles again, above it, would undo such overrides.
fn without_profiles(config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(root) = config.as_object_mut()
        && let Some(app) = root.get_mut("app").and_then(Value::as_object_mut)
    {
        app.remove("profiles");
        if app.is_empty() {
            root.remove("app");
        }
    }
    config
}

/// Whether `key` falls under the changeable key or section `entry`.
fn changeable(entry: &str, key: &str) -> bool {
    if entry.ends_with('.') {
        key.starts_with(entry)
    } else {
        key == entry
    }
}

/// Every leaf of `value` under its dotted key.
fn flatten(prefix: &str, value: &Value, into: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, into);
            }
        }
        leaf => {
            into.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// The checkpoint a `--resume` argument names: `None` for the newest.
pub(super) fn resume_target(argument: &Path) -> Option<PathBuf> {
    (argument.as_os_str() != "latest").then(|| argument.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_single_keys_are_matched_exactly() {
        assert!(changeable("parallel.", "parallel.cp"));
        assert!(changeable("train.steps", "train.steps"));
        assert!(!changeable("train.steps", "train.steps_extra"));
        assert!(!changeable("train.steps", "train.seed"));
        let mut leaves = BTreeMap::new();
        flatten(
            "",
            &serde_json::json!({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}),
            &mut leaves,
        );
        let keys: Vec<&str> = leaves.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a.b", "a.c.d", "e"]);
    }

    /// A run saved before `optimizer.kind` existed resumes with the key's
    /// default; the same key set by the user, or a changed value, is a change.
    #[test]
    fn keys_new_since_the_run_take_their_default_without_a_change() {
        let was = |json: Value| {
            let mut leaves = BTreeMap::new();
            flatten("", &json, &mut leaves);
            leaves
        };
        let defaults = "[optimizer]\nkind = \"adamw\"\nlr = 0.1\n";
        let env = |sets: &[&str]| {
            let mut builder = Environment::builder().defaults("default.toml", defaults);
            for set in sets {
                builder = builder.set(*set);
            }
            builder.build().unwrap()
        };
        let old_run = was(serde_json::json!({"optimizer": {"lr": 0.1}}));
        assert_eq!(config_changes(&old_run, &env(&[])), Vec::<String>::new());
        let changes = config_changes(&old_run, &env(&["optimizer.kind=sgd"]));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0].starts_with("optimizer.kind: unset → \"sgd\""),
            "{changes:?}"
        );
        let changes = config_changes(&old_run, &env(&["optimizer.lr=0.2"]));
        assert!(
            changes[0].starts_with("optimizer.lr: 0.1 → 0.2"),
            "{changes:?}"
        );
    }
}

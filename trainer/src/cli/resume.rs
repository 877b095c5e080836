//! `cptrain run --resume`: the run continues with its own configuration;
//! the command line may change only keys that keep the run's meaning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use appctx::Environment;
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
    let mut was = BTreeMap::new();
    flatten("", run_config, &mut was);
    let mut now = BTreeMap::new();
    flatten("", &env.to_json(), &mut now);
    let mut changes = Vec::new();
    for (key, value) in &now {
        let old = was.get(key);
        if old == Some(value) || CHANGEABLE.iter().any(|c| changeable(c, key)) {
            continue;
        }
        let old = old.map_or_else(|| "unset".to_string(), Value::to_string);
        let source = env
            .origin(key)
            .map_or_else(String::new, |s| format!(" (from {s})"));
        changes.push(format!("{key}: {old} → {value}{source}"));
    }
    for key in was.keys().filter(|k| !now.contains_key(*k)) {
        changes.push(format!("{key}: {} → unset", was[key]));
    }
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
}

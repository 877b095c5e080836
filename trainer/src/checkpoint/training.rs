use super::CheckpointError;
use super::weights::{read_buffers, write_buffers};
use crate::model::ParamLayout;
use crate::optim::AdamWState;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout written by this build.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "trainer_state.json";
const DONE_FILE: &str = "DONE";
const FIRST_MOMENT_PREFIX: &str = "exp_avg.";
const SECOND_MOMENT_PREFIX: &str = "exp_avg_sq.";
/// Prefix of directories being written (or left behind by a crash).
const TEMP_PREFIX: &str = ".tmp-";

/// Everything besides tensors that an exact resume needs, as `trainer_state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    /// [`CHECKPOINT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Optimizer steps completed; the resumed run starts at this 0-based step.
    pub step: u64,
    /// AdamW's own step count (its bias corrections); equals `step` unless
    /// steps were skipped.
    pub optimizer_step: u64,
    /// `train.seed` of the run.
    pub seed: u64,
    /// Where the data stream stands.
    pub data: DataPosition,
    /// Running totals the metrics continue from.
    pub metrics: ResumeMetrics,
    /// The effective configuration of the run, as JSON.
    pub config: serde_json::Value,
}

/// The data stream's position. Batches are a pure function of the step (the
/// DESIGN.md token contract), so the next step is the whole position; the
/// window count lets a resume notice that the data changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataPosition {
    /// The 0-based step whose batch comes next.
    pub next_step: u64,
    /// Windows of the train split when the checkpoint was written.
    pub train_windows: u64,
}

/// Totals a resumed run's metrics continue from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeMetrics {
    /// Tokens trained on so far.
    pub tokens_seen: u64,
    /// Training wall-clock seconds so far.
    pub elapsed_s: f64,
    /// Loss of the last step.
    pub last_loss: Option<f64>,
    /// Last evaluation loss.
    pub last_eval_loss: Option<f64>,
}

/// A loaded training checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The directory it came from.
    pub dir: PathBuf,
    /// Flat parameters in the model's layout.
    pub params: Vec<f32>,
    /// AdamW's moments and step.
    pub optimizer: AdamWState,
    /// The trainer's state.
    pub state: TrainerState,
}

/// `<out_dir>/checkpoints/step-<step>`.
pub fn checkpoint_dir(out_dir: &Path, step: u64) -> PathBuf {
    out_dir.join("checkpoints").join(format!("step-{step}"))
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    move |source| CheckpointError::Io {
        action,
        path,
        source,
    }
}

/// Writes the checkpoint of `state.step` to `<out_dir>/checkpoints/step-N/`
/// atomically: the files go to a temporary directory, are synced, get a
/// `DONE` marker, and the directory is renamed into place. A checkpoint of
/// the same step that already exists is replaced. Returns the directory.
pub fn save_checkpoint(
    out_dir: &Path,
    layout: &ParamLayout,
    params: &[f32],
    optimizer: &AdamWState,
    state: &TrainerState,
) -> Result<PathBuf, CheckpointError> {
    let final_dir = checkpoint_dir(out_dir, state.step);
    let parent = final_dir.parent().expect("checkpoint dirs have a parent");
    std::fs::create_dir_all(parent).map_err(io("create directory", parent))?;
    let temp = parent.join(format!(
        "{TEMP_PREFIX}step-{}-{}",
        state.step,
        std::process::id()
    ));
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(io("remove stale directory", &temp))?;
    }
    std::fs::create_dir(&temp).map_err(io("create directory", &temp))?;

    write_buffers(&temp.join(MODEL_FILE), layout, &[("", params)])?;
    write_buffers(
        &temp.join(OPTIMIZER_FILE),
        layout,
        &[
            (FIRST_MOMENT_PREFIX, &optimizer.m),
            (SECOND_MOMENT_PREFIX, &optimizer.v),
        ],
    )?;
    let json = serde_json::to_vec_pretty(state).expect("trainer state serializes");
    let state_path = temp.join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(io("write", &state_path))?;
    for name in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        let path = temp.join(name);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", &path))?;
    }
    let done = temp.join(DONE_FILE);
    File::create(&done)
        .and_then(|f| f.sync_all())
        .map_err(io("write", &done))?;
    sync_dir(&temp)?;

    if final_dir.exists() {
        let old = parent.join(format!(
            "{TEMP_PREFIX}old-step-{}-{}",
            state.step,
            std::process::id()
        ));
        std::fs::rename(&final_dir, &old).map_err(io("move aside", &final_dir))?;
        std::fs::remove_dir_all(&old).map_err(io("remove", &old))?;
    }
    std::fs::rename(&temp, &final_dir).map_err(io("rename into place", &temp))?;
    sync_dir(parent)?;
    Ok(final_dir)
}

/// Makes a directory's entries durable (a rename is only safe once synced).
fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

/// Loads and validates the checkpoint in `dir` for a model laid out by `layout`.
pub fn load_checkpoint(dir: &Path, layout: &ParamLayout) -> Result<Checkpoint, CheckpointError> {
    if !dir.is_dir() {
        return Err(CheckpointError::Io {
            action: "open checkpoint directory",
            path: dir.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    if !dir.join(DONE_FILE).is_file() {
        return Err(CheckpointError::Incomplete {
            dir: dir.to_path_buf(),
        });
    }
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read(&state_path).map_err(io("read", &state_path))?;
    let state: TrainerState =
        serde_json::from_slice(&text).map_err(|source| CheckpointError::State {
            path: state_path,
            source,
        })?;
    let inconsistent = |what: String| CheckpointError::Inconsistent {
        dir: dir.to_path_buf(),
        what,
    };
    if state.format_version != CHECKPOINT_FORMAT_VERSION {
        return Err(inconsistent(format!(
            "format_version {} but this build reads version {CHECKPOINT_FORMAT_VERSION}",
            state.format_version
        )));
    }
    if dir.file_name().and_then(|n| n.to_str()) != Some(&format!("step-{}", state.step)) {
        return Err(inconsistent(format!(
            "{STATE_FILE} says step {}, the directory name disagrees",
            state.step
        )));
    }
    let params = read_buffers(&dir.join(MODEL_FILE), layout, &[""])?.remove(0);
    let mut moments = read_buffers(
        &dir.join(OPTIMIZER_FILE),
        layout,
        &[FIRST_MOMENT_PREFIX, SECOND_MOMENT_PREFIX],
    )?;
    let v = moments.pop().expect("two buffers read");
    let m = moments.pop().expect("two buffers read");
    let optimizer = AdamWState {
        step: state.optimizer_step,
        m,
        v,
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        params,
        optimizer,
        state,
    })
}

/// Complete checkpoints (with `DONE`) under `<out_dir>/checkpoints`, oldest first.
fn complete_checkpoints(out_dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let root = out_dir.join("checkpoints");
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", &root)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io("list", &root))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(step) = step
            && path.join(DONE_FILE).is_file()
        {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest complete checkpoint under `<out_dir>/checkpoints`, if any;
/// interrupted writes (temporary directories, no `DONE`) are skipped.
pub fn latest_checkpoint(out_dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    Ok(complete_checkpoints(out_dir)?.pop().map(|(_, path)| path))
}

/// Keeps the newest `keep_last` complete checkpoints (all when 0) and removes
/// the older ones and any temporary directories left by interrupted writes.
/// Returns the removed directories.
pub fn prune_checkpoints(
    out_dir: &Path,
    keep_last: usize,
) -> Result<Vec<PathBuf>, CheckpointError> {
    let mut removed = Vec::new();
    let complete = complete_checkpoints(out_dir)?;
    if keep_last > 0 && complete.len() > keep_last {
        removed.extend(
            complete[..complete.len() - keep_last]
                .iter()
                .map(|(_, p)| p.clone()),
        );
    }
    let root = out_dir.join("checkpoints");
    if root.is_dir() {
        for entry in std::fs::read_dir(&root).map_err(io("list", &root))? {
            let path = entry.map_err(io("list", &root))?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(TEMP_PREFIX))
            {
                removed.push(path);
            }
        }
    }
    for path in &removed {
        std::fs::remove_dir_all(path).map_err(io("remove", path))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn layout() -> ParamLayout {
        ParamLayout::gpt2(&ModelConfig {
            n_layer: 1,
            n_head: 1,
            n_embd: 4,
            vocab_size: 5,
            seq_len: 3,
            init: None,
        })
    }

    fn state(step: u64) -> TrainerState {
        TrainerState {
            format_version: CHECKPOINT_FORMAT_VERSION,
            step,
            optimizer_step: step,
            seed: 1337,
            data: DataPosition {
                next_step: step,
                train_windows: u64::MAX,
            },
            metrics: ResumeMetrics {
                tokens_seen: 96 * step,
                elapsed_s: 1.5,
                last_loss: Some(2.25),
                last_eval_loss: None,
            },
            config: serde_json::json!({"train": {"steps": 10}}),
        }
    }

    fn save(out: &Path, step: u64) -> (PathBuf, Vec<f32>, AdamWState) {
        let layout = layout();
        let n = layout.len();
        let params: Vec<f32> = (0..n).map(|i| (i as f32).sin() + step as f32).collect();
        let optimizer = AdamWState {
            step,
            m: (0..n).map(|i| i as f32 * 1e-3).collect(),
            v: (0..n).map(|i| 1.0 / (i + 1) as f32).collect(),
        };
        let dir = save_checkpoint(out, &layout, &params, &optimizer, &state(step)).unwrap();
        (dir, params, optimizer)
    }

    #[test]
    fn checkpoints_round_trip_bit_exactly() {
        let out = tempfile::tempdir().unwrap();
        let (dir, params, optimizer) = save(out.path(), 7);
        assert_eq!(dir, out.path().join("checkpoints/step-7"));
        for file in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, DONE_FILE] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        let loaded = load_checkpoint(&dir, &layout()).unwrap();
        assert_eq!(loaded.params, params);
        assert_eq!(loaded.optimizer, optimizer);
        assert_eq!(loaded.state, state(7));
        // Saving the same step again replaces it.
        save(out.path(), 7);
        assert_eq!(latest_checkpoint(out.path()).unwrap(), Some(dir));
    }

    /// A crash mid-write leaves a temporary directory (or a directory without
    /// DONE); neither counts as a checkpoint, and pruning removes the former.
    #[test]
    fn interrupted_writes_are_ignored_and_cleaned() {
        let out = tempfile::tempdir().unwrap();
        assert_eq!(latest_checkpoint(out.path()).unwrap(), None);
        let (dir3, ..) = save(out.path(), 3);
        let root = out.path().join("checkpoints");
        std::fs::create_dir_all(root.join(".tmp-step-9-123")).unwrap();
        std::fs::write(root.join(".tmp-step-9-123").join(MODEL_FILE), b"partial").unwrap();
        std::fs::create_dir_all(root.join("step-8")).unwrap();
        std::fs::create_dir_all(root.join("notes")).unwrap();
        assert_eq!(latest_checkpoint(out.path()).unwrap(), Some(dir3));
        let err = load_checkpoint(&root.join("step-8"), &layout())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step-8 is incomplete (no DONE marker)"),
            "{err}"
        );
        let removed = prune_checkpoints(out.path(), 3).unwrap();
        assert_eq!(removed, vec![root.join(".tmp-step-9-123")]);
    }

    #[test]
    fn retention_keeps_the_newest() {
        let out = tempfile::tempdir().unwrap();
        for step in [2, 10, 4, 6] {
            save(out.path(), step);
        }
        let root = out.path().join("checkpoints");
        assert_eq!(
            prune_checkpoints(out.path(), 2).unwrap(),
            vec![root.join("step-2"), root.join("step-4")]
        );
        assert_eq!(
            latest_checkpoint(out.path()).unwrap(),
            Some(root.join("step-10"))
        );
        assert!(root.join("step-6").is_dir());
        assert_eq!(
            prune_checkpoints(out.path(), 0).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    /// Damaged or mismatched checkpoints are refused with the file named.
    #[test]
    fn damaged_checkpoints_are_explained() {
        let out = tempfile::tempdir().unwrap();
        let (dir, ..) = save(out.path(), 5);
        let other_model = ParamLayout::gpt2(&ModelConfig {
            n_layer: 1,
            n_head: 1,
            n_embd: 4,
            vocab_size: 6,
            seq_len: 3,
            init: None,
        });
        let err = load_checkpoint(&dir, &other_model).unwrap_err().to_string();
        assert!(err.contains("model.safetensors: tensor transformer.wte.weight has shape [5, 4], but the model needs [6, 4]"), "{err}");

        let optimizer = dir.join(OPTIMIZER_FILE);
        let bytes = std::fs::read(&optimizer).unwrap();
        std::fs::write(&optimizer, &bytes[..bytes.len() - 8]).unwrap();
        let err = load_checkpoint(&dir, &layout()).unwrap_err().to_string();
        assert!(
            err.contains("optimizer.safetensors is not a readable safetensors file"),
            "{err}"
        );

        let (dir, ..) = save(out.path(), 6);
        std::fs::write(dir.join(STATE_FILE), br#"{"step": 6}"#).unwrap();
        let err = load_checkpoint(&dir, &layout()).unwrap_err().to_string();
        assert!(
            err.contains("trainer_state.json is not a valid trainer state: missing field"),
            "{err}"
        );

        let (dir, ..) = save(out.path(), 7);
        let moved = out.path().join("checkpoints/step-70");
        std::fs::rename(&dir, &moved).unwrap();
        let err = load_checkpoint(&moved, &layout()).unwrap_err().to_string();
        assert!(
            err.contains("says step 7, the directory name disagrees"),
            "{err}"
        );
    }
}

use super::manifest::{MANIFEST_FILE, verify_manifest, write_manifest};
use super::state::{CHECKPOINT_FORMAT_VERSION, TrainerState};
use super::weights::{read_buffers, read_slots, write_buffers};
use super::{CheckpointError, ModelShape};
use crate::model::{ModelConfig, ParamLayout};
use crate::optim::OptimizerState;
use std::fs::File;
use std::path::{Path, PathBuf};

const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "trainer_state.json";
const DONE_FILE: &str = "DONE";
/// The files every manifest covers.
const CHECKED_FILES: [&str; 3] = [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE];
/// Prefix of directories being written (or left behind by a crash).
const TEMP_PREFIX: &str = ".tmp-";

/// A loaded training checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The directory it came from.
    pub dir: PathBuf,
    /// Flat parameters in the model's layout.
    pub params: Vec<f32>,
    /// The optimizer's step and slots (AdamW's moments).
    pub optimizer: OptimizerState<'static>,
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

/// The first non-finite value of `values`, as `(index, value)`.
fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .position(|x| !x.is_finite())
        .map(|i| (i, values[i]))
}

/// Refuses tensors holding NaN or infinity, naming `what` and `file`.
fn check_finite(
    file: &Path,
    buffers: &[(String, &[f32])],
    layout: &ParamLayout,
) -> Result<(), CheckpointError> {
    for (what, values) in buffers {
        if let Some((index, value)) = first_non_finite(values) {
            let tensor = layout
                .specs()
                .iter()
                .find(|s| s.range().contains(&index))
                .map_or_else(String::new, |s| s.name.clone());
            return Err(CheckpointError::NonFinite {
                path: file.to_path_buf(),
                what: what.clone(),
                tensor,
                value,
            });
        }
    }
    Ok(())
}

/// The optimizer's slots as named buffers for [`check_finite`].
fn slot_buffers<'s>(optimizer: &'s OptimizerState<'_>) -> Vec<(String, &'s [f32])> {
    optimizer
        .slots
        .iter()
        .map(|(name, values)| (format!("optimizer's {name}"), &**values))
        .collect()
}

/// Writes the checkpoint of `state.step` to `<out_dir>/checkpoints/step-N/`
/// atomically: the files go to a temporary directory, are synced, get a
/// `MANIFEST.json` of their checksums and a `DONE` marker, and the directory
/// is renamed into place. Weights or moments holding NaN or infinity are
/// refused before anything is written. A checkpoint of the same step already
/// there (of a timeline a resume from an earlier step discarded) is
/// replaced only once the new one is complete. A failed write removes its
/// temporary directory. `extra_files` (name, contents), e.g. the Hugging Face
/// `config.json` and tokenizer files, are written beside the tensors and
/// covered by the manifest. Returns the directory.
pub fn save_checkpoint(
    out_dir: &Path,
    layout: &ParamLayout,
    params: &[f32],
    optimizer: &OptimizerState<'_>,
    state: &TrainerState,
    extra_files: &[(&str, String)],
) -> Result<PathBuf, CheckpointError> {
    let final_dir = checkpoint_dir(out_dir, state.step);
    if let Some((slot, _)) = optimizer
        .slots
        .iter()
        .find(|(name, _)| name.is_empty() || name.contains('.'))
    {
        // The file names each tensor `<slot>.<tensor>` and reads the slot
        // back as what precedes the first dot.
        return Err(CheckpointError::Inconsistent {
            dir: final_dir,
            what: format!(
                "the optimizer's slot {slot:?} cannot be saved: a slot name is non-empty and \
                 has no '.' (it prefixes the tensor names)"
            ),
        });
    }
    let mut buffers = vec![("weights".to_string(), params)];
    buffers.extend(slot_buffers(optimizer));
    check_finite(&final_dir, &buffers, layout)?;
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
    if let Err(error) = write_into(&temp, layout, params, optimizer, state, extra_files) {
        // Best effort: the error that matters is the write's.
        let _ = std::fs::remove_dir_all(&temp);
        return Err(error);
    }
    let replaced = parent.join(format!(
        "{TEMP_PREFIX}old-step-{}-{}",
        state.step,
        std::process::id()
    ));
    let had_one = final_dir.exists();
    if had_one {
        std::fs::rename(&final_dir, &replaced).map_err(io("move aside", &final_dir))?;
    }
    std::fs::rename(&temp, &final_dir).map_err(io("rename into place", &temp))?;
    sync_dir(parent)?;
    if had_one {
        std::fs::remove_dir_all(&replaced).map_err(io("remove", &replaced))?;
    }
    Ok(final_dir)
}

/// Writes and syncs every file of a checkpoint into `temp`.
fn write_into(
    temp: &Path,
    layout: &ParamLayout,
    params: &[f32],
    optimizer: &OptimizerState<'_>,
    state: &TrainerState,
    extra_files: &[(&str, String)],
) -> Result<(), CheckpointError> {
    write_buffers(&temp.join(MODEL_FILE), layout, &[("", params)])?;
    for (name, text) in extra_files {
        let path = temp.join(name);
        std::fs::write(&path, text).map_err(io("write", &path))?;
    }
    let prefixes: Vec<String> = optimizer
        .slots
        .iter()
        .map(|(name, _)| format!("{name}."))
        .collect();
    let slots: Vec<(&str, &[f32])> = prefixes
        .iter()
        .zip(&optimizer.slots)
        .map(|(prefix, (_, values))| (prefix.as_str(), &**values))
        .collect();
    write_buffers(&temp.join(OPTIMIZER_FILE), layout, &slots)?;
    let json = serde_json::to_vec_pretty(state).expect("trainer state serializes");
    let state_path = temp.join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(io("write", &state_path))?;
    let mut files: Vec<&str> = CHECKED_FILES.to_vec();
    files.extend(extra_files.iter().map(|(name, _)| *name));
    for name in &files {
        let path = temp.join(name);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", &path))?;
    }
    write_manifest(temp, &files)?;
    let done = temp.join(DONE_FILE);
    File::create(&done)
        .and_then(|f| f.sync_all())
        .map_err(io("write", &done))?;
    sync_dir(temp)
}

/// Makes a directory's entries durable (a rename is only safe once synced).
fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

/// Reads and checks `trainer_state.json` of the checkpoint in `dir`, and
/// verifies every file against `MANIFEST.json`, without loading tensors.
pub fn read_trainer_state(dir: &Path) -> Result<TrainerState, CheckpointError> {
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
    let inconsistent = |what: String| CheckpointError::Inconsistent {
        dir: dir.to_path_buf(),
        what,
    };
    let version = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version")?.as_u64());
    if let Some(version) = version
        && version != u64::from(CHECKPOINT_FORMAT_VERSION)
    {
        return Err(inconsistent(format!(
            "format_version {version}, but this build reads version {CHECKPOINT_FORMAT_VERSION} \
             (written by another cptrain version; resume it with that version, or start a new \
             run from its weights with model.init = {})",
            dir.join(MODEL_FILE).display()
        )));
    }
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(inconsistent(format!(
            "{MANIFEST_FILE} is missing, so its files cannot be verified"
        )));
    }
    verify_manifest(dir, &CHECKED_FILES)?;
    let state: TrainerState =
        serde_json::from_slice(&text).map_err(|source| CheckpointError::State {
            path: state_path,
            source,
        })?;
    if dir.file_name().and_then(|n| n.to_str()) != Some(&format!("step-{}", state.step)) {
        return Err(inconsistent(format!(
            "{STATE_FILE} says step {}, the directory name disagrees",
            state.step
        )));
    }
    Ok(state)
}

/// Loads and verifies the checkpoint in `dir` for `model`: the manifest's
/// checksums, the model shape, the tensors, and that weights and moments
/// are finite.
pub fn load_checkpoint(dir: &Path, model: &ModelConfig) -> Result<Checkpoint, CheckpointError> {
    let state = read_trainer_state(dir)?;
    let layout = &ParamLayout::gpt2(model);
    let wanted = ModelShape::of(model);
    if state.run.model != wanted {
        return Err(CheckpointError::Inconsistent {
            dir: dir.to_path_buf(),
            what: format!(
                "the checkpoint's model is {}, but the configured model is {wanted}",
                state.run.model
            ),
        });
    }
    let params = read_buffers(&dir.join(MODEL_FILE), layout, &[""])?.remove(0);
    let slots = read_slots(&dir.join(OPTIMIZER_FILE), layout)?;
    check_finite(
        &dir.join(MODEL_FILE),
        &[("weights".into(), &params)],
        layout,
    )?;
    let optimizer = OptimizerState {
        step: state.optimizer_step,
        slots: slots
            .into_iter()
            .map(|(name, values)| (name, values.into()))
            .collect(),
    };
    check_finite(&dir.join(OPTIMIZER_FILE), &slot_buffers(&optimizer), layout)?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        params,
        optimizer,
        state,
    })
}

/// The entries of `<out_dir>/checkpoints` (none when it does not exist).
fn checkpoint_entries(out_dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let root = out_dir.join("checkpoints");
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", &root)(e)),
    };
    entries
        .map(|entry| entry.map(|e| e.path()).map_err(io("list", &root)))
        .collect()
}

/// Checkpoint directories (`step-N`, complete or not) under
/// `<out_dir>/checkpoints`, oldest first; temporary directories are skipped.
pub fn step_dirs(out_dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let mut found = Vec::new();
    for path in checkpoint_entries(out_dir)? {
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(step) = step
            && path.is_dir()
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
    Ok(step_dirs(out_dir)?
        .into_iter()
        .rev()
        .find(|(_, p)| p.join(DONE_FILE).is_file())
        .map(|(_, path)| path))
}

/// Temporary directories under `<out_dir>/checkpoints` (writes that were
/// interrupted or failed); with the out_dir's lock held, all are stale.
pub fn temp_dirs(out_dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let mut found = Vec::new();
    for path in checkpoint_entries(out_dir)? {
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TEMP_PREFIX))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Keeps the newest `keep_last` complete checkpoints (all when 0) and removes
/// the older ones and any temporary directories left by interrupted writes.
/// Returns the removed directories. Call it only with the out_dir's lock held.
pub fn prune_checkpoints(
    out_dir: &Path,
    keep_last: usize,
) -> Result<Vec<PathBuf>, CheckpointError> {
    let complete: Vec<PathBuf> = step_dirs(out_dir)?
        .into_iter()
        .filter(|(_, p)| p.join(DONE_FILE).is_file())
        .map(|(_, p)| p)
        .collect();
    let mut removed = Vec::new();
    if keep_last > 0 && complete.len() > keep_last {
        removed.extend_from_slice(&complete[..complete.len() - keep_last]);
    }
    removed.extend(temp_dirs(out_dir)?);
    for path in &removed {
        std::fs::remove_dir_all(path).map_err(io("remove", path))?;
    }
    Ok(removed)
}

//! Checkpoint round trips, verification and retention.

use std::path::{Path, PathBuf};

use super::*;
use crate::data::DataFingerprint;
use crate::model::{ModelConfig, ParamLayout};
use crate::optim::OptimizerState;

fn model() -> ModelConfig {
    ModelConfig {
        n_layer: 1,
        n_head: 1,
        n_embd: 4,
        vocab_size: 5,
        seq_len: 3,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    }
}

fn state(step: u64) -> TrainerState {
    TrainerState {
        format_version: CHECKPOINT_FORMAT_VERSION,
        step,
        optimizer_step: step,
        run: RunIdentity {
            run_id: "00000000cafef00d".into(),
            seed: 1337,
            model: ModelShape::of(&model()),
            data: DataFingerprint {
                source: "synthetic".into(),
                train_file: None,
                val_file: None,
                train_windows: None,
            },
            schedule_steps: 10,
        },
        data: DataPosition {
            next_step: step,
            epoch: None,
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

fn buffers(step: u64) -> (Vec<f32>, OptimizerState<'static>) {
    let n = ParamLayout::gpt2(&model()).len();
    let params: Vec<f32> = (0..n).map(|i| (i as f32).sin() + step as f32).collect();
    let m: Vec<f32> = (0..n).map(|i| i as f32 * 1e-3).collect();
    let v: Vec<f32> = (0..n).map(|i| 1.0 / (i + 1) as f32).collect();
    let optimizer = OptimizerState {
        step,
        slots: vec![
            ("exp_avg".into(), m.into()),
            ("exp_avg_sq".into(), v.into()),
        ],
    };
    (params, optimizer)
}

fn save(out: &Path, step: u64) -> (PathBuf, Vec<f32>, OptimizerState<'static>) {
    let (params, optimizer) = buffers(step);
    let layout = ParamLayout::gpt2(&model());
    let dir = save_checkpoint(out, &layout, &params, &optimizer, &state(step), &[]).unwrap();
    (dir, params, optimizer)
}

fn load_error(dir: &Path) -> String {
    load_checkpoint(dir, &model()).unwrap_err().to_string()
}

#[test]
fn checkpoints_round_trip_bit_exactly() {
    let out = tempfile::tempdir().unwrap();
    let (dir, params, optimizer) = save(out.path(), 7);
    assert_eq!(dir, out.path().join("checkpoints/step-7"));
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
        MANIFEST_FILE,
        "DONE",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let loaded = load_checkpoint(&dir, &model()).unwrap();
    assert_eq!(loaded.params, params);
    assert_eq!(loaded.optimizer, optimizer);
    assert_eq!(loaded.state, state(7));
    assert_eq!(latest_checkpoint(out.path()).unwrap(), Some(dir));
}

/// Another optimizer's slots are saved and read back by name, whatever
/// their number (an optimizer.kind of a plugin).
#[test]
fn any_optimizers_slots_round_trip() {
    let out = tempfile::tempdir().unwrap();
    let (params, mut optimizer) = buffers(3);
    optimizer.slots.truncate(1);
    optimizer.slots[0].0 = "momentum_buffer".into();
    let layout = ParamLayout::gpt2(&model());
    let dir = save_checkpoint(out.path(), &layout, &params, &optimizer, &state(3), &[]).unwrap();
    let loaded = load_checkpoint(&dir, &model()).unwrap();
    assert_eq!(loaded.optimizer, optimizer);
}

/// A slot name that could not be read back (it holds the separator) is
/// refused before anything is written.
#[test]
fn a_slot_name_with_a_dot_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let (params, mut optimizer) = buffers(3);
    optimizer.slots[0].0 = "exp.avg".into();
    let layout = ParamLayout::gpt2(&model());
    let err = save_checkpoint(out.path(), &layout, &params, &optimizer, &state(3), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("slot \"exp.avg\" cannot be saved"), "{err}");
    assert!(!out.path().join("checkpoints").exists());
}

/// Files other users of a shared filesystem must read get the umask's mode,
/// not the 0600 of safetensors' private temporary file.
#[cfg(unix)]
#[test]
fn tensor_files_are_as_readable_as_other_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let out = tempfile::tempdir().unwrap();
    let (dir, ..) = save(out.path(), 1);
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("model.safetensors"), mode("trainer_state.json"));
    assert_eq!(mode("optimizer.safetensors"), mode("trainer_state.json"));
}

/// Saving a step that is already there (a timeline discarded by a resume
/// from an earlier step) replaces it, and leaves no temporary directory.
#[test]
fn an_existing_step_is_replaced_whole() {
    let out = tempfile::tempdir().unwrap();
    let (dir, ..) = save(out.path(), 4);
    let (other, optimizer) = buffers(99);
    let layout = ParamLayout::gpt2(&model());
    let again = save_checkpoint(out.path(), &layout, &other, &optimizer, &state(4), &[]).unwrap();
    assert_eq!(again, dir);
    assert_eq!(load_checkpoint(&dir, &model()).unwrap().params, other);
    assert_eq!(temp_dirs(out.path()).unwrap(), Vec::<PathBuf>::new());
}

/// NaN or infinity is refused before anything is written, naming the tensor.
#[test]
fn non_finite_values_are_never_saved() {
    let out = tempfile::tempdir().unwrap();
    let layout = ParamLayout::gpt2(&model());
    let (mut params, mut optimizer) = buffers(3);
    params[layout.len() - 1] = f32::NAN;
    let err = save_checkpoint(out.path(), &layout, &params, &optimizer, &state(3), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weights hold NaN (tensor transformer.ln_f.bias)"),
        "{err}"
    );
    params[layout.len() - 1] = 0.0;
    optimizer.slots[1].1.to_mut()[0] = f32::INFINITY;
    let err = save_checkpoint(out.path(), &layout, &params, &optimizer, &state(3), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("optimizer's exp_avg_sq hold inf"), "{err}");
    assert!(!out.path().join("checkpoints/step-3").exists());
    assert_eq!(temp_dirs(out.path()).unwrap(), Vec::<PathBuf>::new());
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
    std::fs::write(root.join(".tmp-step-9-123/model.safetensors"), b"partial").unwrap();
    std::fs::create_dir_all(root.join("step-8")).unwrap();
    std::fs::create_dir_all(root.join("notes")).unwrap();
    assert_eq!(latest_checkpoint(out.path()).unwrap(), Some(dir3));
    let err = load_error(&root.join("step-8"));
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

/// Any damage is refused with the file named: a flipped byte in tensor
/// data, a truncated file, a missing manifest entry or manifest, a state
/// that disagrees with its directory, another model shape.
#[test]
fn damaged_checkpoints_are_explained() {
    let out = tempfile::tempdir().unwrap();
    let (dir, ..) = save(out.path(), 5);
    let mut other = model();
    other.vocab_size = 6;
    let err = load_checkpoint(&dir, &other).unwrap_err().to_string();
    assert!(
        err.contains(
            "the checkpoint's model is n_layer = 1, n_head = 1, n_embd = 4, vocab_size = 5"
        ),
        "{err}"
    );

    // A flipped byte in the last tensor's data (the header is intact).
    let model_file = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&model_file).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    std::fs::write(&model_file, &bytes).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("model.safetensors is corrupt: checksum"),
        "{err}"
    );

    let (dir, ..) = save(out.path(), 6);
    let optimizer = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&optimizer).unwrap();
    std::fs::write(&optimizer, &bytes[..bytes.len() - 8]).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("optimizer.safetensors is corrupt") && err.contains("truncated"),
        "{err}"
    );

    let (dir, ..) = save(out.path(), 7);
    let manifest = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["files"]
        .as_object_mut()
        .unwrap()
        .remove("trainer_state.json");
    std::fs::write(&manifest, json.to_string()).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("trainer_state.json is corrupt: the file has no entry in MANIFEST.json"),
        "{err}"
    );
    std::fs::remove_file(&manifest).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("MANIFEST.json is missing"), "{err}");

    let (dir, ..) = save(out.path(), 8);
    let moved = out.path().join("checkpoints/step-80");
    std::fs::rename(&dir, &moved).unwrap();
    let err = load_error(&moved);
    assert!(
        err.contains("says step 8, the directory name disagrees"),
        "{err}"
    );
}

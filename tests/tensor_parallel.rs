//! Tensor parallelism is invisible to the math too: every (tp, cp, dp,
//! cp_comm) layout trains the single-rank loss curve and ends with its
//! weights, saved as one Hugging Face file whatever tp; a run saved at one
//! tp resumes at another.

mod common;

use common::{assert_same_training, checkpoint_weights, cptrain, cptrain_ok, losses};
use std::path::{Path, PathBuf};

const STEPS: u64 = 10;

/// A layout: TP, CP and DP sizes and the CP strategy.
type Layout = (usize, usize, usize, &'static str);

/// The model every run trains: 12 heads (split at tp 2, 3, 4, and at
/// tp = 2 × cp = 2 for a2a), a vocabulary of 259 that no tp divides (the
/// synthetic copy task draws from its first 16 ids, so 10 steps learn),
/// sequences of 48 so that every layout's rows split over its TP group
/// (sequence parallelism).
fn sets(out: &Path, (tp, cp, dp, comm): Layout, extra: &[String]) -> Vec<String> {
    let mut sets = vec![
        "model.n_layer=2".to_string(),
        "model.n_head=12".into(),
        "model.n_embd=48".into(),
        "model.seq_len=48".into(),
        "model.vocab_size=259".into(),
        "data.symbols=16".into(),
        "train.batch_size=4".into(),
        format!("train.steps={STEPS}"),
        "train.eval_every=0".into(),
        "optimizer.warmup_steps=2".into(),
        format!("train.out_dir={}", out.display()),
        format!("parallel.world_size={}", tp * cp * dp),
        format!("parallel.tp={tp}"),
        format!("parallel.cp={cp}"),
        format!("parallel.cp_comm={comm}"),
        "kernels.threads=1".into(),
        "metrics.progress=never".into(),
    ];
    sets.extend_from_slice(extra);
    sets
}

fn train(dir: &Path, name: &str, layout: Layout, extra: &[String]) -> PathBuf {
    let out = dir.join(name);
    let sets = sets(&out, layout, extra);
    let args: Vec<&str> = ["run"]
        .into_iter()
        .chain(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .collect();
    cptrain_ok(dir, &args);
    out
}

#[test]
fn every_tp_layout_trains_the_single_rank_curve() {
    let dir = tempfile::tempdir().unwrap();
    let reference = train(dir.path(), "ref", (1, 1, 1, "p2p"), &[]);
    let ref_losses = losses(&reference);
    assert!(
        ref_losses[STEPS as usize - 1] < ref_losses[0],
        "the reference learns"
    );
    let ref_weights = checkpoint_weights(&reference, STEPS);
    let micro = ["train.micro_batch_size=1".to_string()];
    let runs: [(Layout, &[String]); 7] = [
        ((2, 1, 1, "p2p"), &[]),
        ((4, 1, 1, "p2p"), &[]),
        ((3, 1, 1, "p2p"), &[]),
        ((2, 2, 1, "p2p"), &micro),
        ((2, 2, 1, "all_gather"), &[]),
        ((2, 1, 2, "p2p"), &[]),
        ((2, 2, 2, "a2a"), &[]),
    ];
    for (layout, extra) in runs {
        for sp in [true, false] {
            let (tp, cp, dp, comm) = layout;
            let micro = if extra.is_empty() { "" } else { "-micro1" };
            let name = format!("tp{tp}-cp{cp}-dp{dp}-{comm}{micro}-sp-{sp}");
            let mut extra = extra.to_vec();
            extra.push(format!("parallel.sequence_parallel={sp}"));
            let out = train(dir.path(), &name, layout, &extra);
            assert_same_training(&name, &out, &ref_losses, &ref_weights, STEPS);
        }
    }
}

/// A run saved at tp = 2 resumes at tp = 1 and at tp = 4 and continues the
/// curve of the run that went on at tp = 2.
#[test]
fn a_checkpoint_saved_at_one_tp_resumes_at_another() {
    let dir = tempfile::tempdir().unwrap();
    let every = ["train.checkpoint_every=5".to_string()];
    let whole = train(dir.path(), "whole", (2, 1, 1, "p2p"), &every);
    let want = losses(&whole);
    for tp in [1, 4] {
        let out = dir.path().join(format!("resume-at-tp{tp}"));
        copy_dir(&whole, &out);
        // Back to the checkpoint of step 5, as if the run had stopped there.
        std::fs::remove_dir_all(out.join(format!("checkpoints/step-{STEPS}"))).unwrap();
        let sets = sets(&out, (tp, 1, 1, "p2p"), &every);
        let args: Vec<&str> = ["run", "--resume"]
            .into_iter()
            .chain(sets.iter().flat_map(|s| ["--set", s.as_str()]))
            .collect();
        cptrain_ok(dir.path(), &args);
        let got = losses(&out);
        assert_eq!(got.len(), want.len(), "tp 2 then {tp}");
        for (step, (a, b)) in got.iter().zip(&want).enumerate() {
            let rel = (a - b).abs() / b.abs();
            assert!(
                rel < 1e-5,
                "tp 2 then {tp}: step {} loss {a} vs {b}",
                step + 1
            );
        }
    }
}

/// Copies the files of `from` (a run's directory) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn shapes_tp_cannot_split_are_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad");
    let bad: [(Layout, &str); 2] = [
        ((5, 1, 1, "p2p"), "not divisible by parallel.tp = 5"),
        ((4, 2, 1, "a2a"), "12 / 4 = 3 heads"),
    ];
    for (layout, message) in bad {
        let sets = sets(&out, layout, &[]);
        let args: Vec<&str> = ["check"]
            .into_iter()
            .chain(sets.iter().flat_map(|s| ["--set", s.as_str()]))
            .collect();
        let result = cptrain(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{layout:?}: {stderr}");
    }
}

/// The activations one rank holds, as `check` prints them (MiB).
fn activation_mib(dir: &Path, layout: Layout, sp: bool) -> f64 {
    let sets = sets(
        &dir.join("check"),
        layout,
        &[format!("parallel.sequence_parallel={sp}")],
    );
    let args: Vec<&str> = ["check"]
        .into_iter()
        .chain(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .collect();
    let out = cptrain_ok(dir, &args);
    let line = out
        .lines()
        .find(|l| l.contains("activations of one micro-batch"))
        .unwrap_or_else(|| panic!("no activations line in\n{out}"));
    let mut words = line.split_whitespace();
    let (value, unit) = (words.next().unwrap(), words.next().unwrap());
    let scale = match unit {
        "KiB" => 1.0 / 1024.0,
        "MiB" => 1.0,
        other => panic!("unit {other} in {line}"),
    };
    value.parse::<f64>().unwrap() * scale
}

/// Tensor parallelism cuts the per-rank activations, and sequence
/// parallelism cuts them further (the residual stream's rows).
#[test]
fn check_shows_activations_falling_with_tp_and_sequence_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let one = activation_mib(dir.path(), (1, 1, 1, "p2p"), true);
    let tp = activation_mib(dir.path(), (2, 1, 1, "p2p"), false);
    let tp_sp = activation_mib(dir.path(), (2, 1, 1, "p2p"), true);
    assert!(
        tp < one && tp_sp < tp,
        "1 rank {one}, tp 2 {tp}, tp 2 + SP {tp_sp}"
    );
}

/// `model.init` (Hugging Face weights) starts a run at any tp from the same
/// weights: the curves at tp = 1 and tp = 4 agree.
#[test]
fn model_init_starts_every_tp_from_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let first = train(dir.path(), "first", (1, 1, 1, "p2p"), &[]);
    let weights = first.join(format!("checkpoints/step-{STEPS}/model.safetensors"));
    let init = [format!("model.init={}", weights.display())];
    let one = losses(&train(dir.path(), "init-tp1", (1, 1, 1, "p2p"), &init));
    let four = losses(&train(dir.path(), "init-tp4", (4, 1, 1, "p2p"), &init));
    assert!(
        one[0] < losses(&first)[0],
        "the run starts from trained weights"
    );
    for (step, (a, b)) in four.iter().zip(&one).enumerate() {
        let rel = (a - b).abs() / b.abs();
        assert!(rel < 1e-5, "step {}: tp 4 {a} vs tp 1 {b}", step + 1);
    }
}

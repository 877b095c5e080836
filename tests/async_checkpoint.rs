//! `train.async_checkpoint`: checkpoints written in the background while
//! training goes on are the checkpoints the training thread would have
//! written, and a run killed while one is being written still resumes
//! bit-exactly.

mod common;

use common::{checkpoint_weights, cptrain_ok, metrics, run_sets, spawn, wait_within};
use std::path::Path;
use std::time::{Duration, Instant};

/// `cptrain run` arguments of a short run into `out` checkpointing every
/// `every` steps and evaluating every 3, plus `extra` keys.
fn run_args(out: &Path, steps: u64, every: u64, extra: &[&str]) -> Vec<String> {
    let every = format!("train.checkpoint_every={every}");
    let keys: Vec<&str> = [every.as_str(), "train.eval_every=3"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let mut args = vec!["run".to_string()];
    args.extend(run_sets(out, steps, &keys));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The metrics fields that do not depend on timing.
fn deterministic(out: &Path) -> Vec<Vec<Option<f64>>> {
    metrics(out)
        .iter()
        .map(|r| {
            [
                "step",
                "loss",
                "lr",
                "grad_norm",
                "tokens",
                "eval_loss",
                "epoch",
            ]
            .iter()
            .map(|k| r.get(*k).and_then(|v| v.as_f64()))
            .collect()
        })
        .collect()
}

/// `trainer_state.json` without what differs between two runs of one
/// configuration: the run id, the time spent, the output directory and the
/// key under test.
fn state_of_run(checkpoint: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(checkpoint.join("trainer_state.json")).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["run"]["run_id"].take();
    state["metrics"]["elapsed_s"].take();
    let train = state["config"]["train"].as_object_mut().unwrap();
    train.remove("out_dir");
    train.remove("async_checkpoint");
    state
}

/// The checkpoint directories of a run, in step order.
fn checkpoint_dirs(out: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn background_checkpoints_are_the_training_threads_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let on = dir.path().join("async");
    let off = dir.path().join("sync");
    cptrain_ok(dir.path(), &strs(&run_args(&on, 7, 2, &[])));
    let sync = ["train.async_checkpoint=false"];
    cptrain_ok(dir.path(), &strs(&run_args(&off, 7, 2, &sync)));

    let dirs = checkpoint_dirs(&on);
    assert_eq!(dirs, ["step-2", "step-4", "step-6", "step-7"]);
    assert_eq!(dirs, checkpoint_dirs(&off));
    for name in &dirs {
        let (a, b) = (
            on.join("checkpoints").join(name),
            off.join("checkpoints").join(name),
        );
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "config.json",
            "DONE",
        ] {
            assert!(
                std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap(),
                "{name}/{file} differs between the background and the synchronous write"
            );
        }
        assert_eq!(
            state_of_run(&a),
            state_of_run(&b),
            "{name}/trainer_state.json"
        );
    }
    assert_eq!(deterministic(&on).len(), 7);
    assert_eq!(deterministic(&on), deterministic(&off), "metrics.jsonl");
}

/// The steps whose checkpoints process `pid` is writing: its
/// `.tmp-step-N-<pid>` directories (those of killed processes stay behind).
fn writes_in_flight(out: &Path, pid: u32) -> Vec<u64> {
    let suffix = format!("-{pid}");
    std::fs::read_dir(out.join("checkpoints"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let step = name.strip_prefix(".tmp-step-")?.strip_suffix(&suffix)?;
                    step.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The newest complete checkpoint's step (0: none).
fn newest_done(out: &Path) -> u64 {
    std::fs::read_dir(out.join("checkpoints"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("DONE").is_file())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// kill -9 the moment a background checkpoint write is seen in flight
/// (its temporary directory exists and is still there after the kill),
/// after each run has completed at least one checkpoint of its own, three
/// times, resuming after each: the run ends with the uninterrupted run's
/// weights and losses, bit for bit.
#[cfg(unix)]
#[test]
fn kill_9_during_a_background_write_resumes_bit_exactly() {
    const STEPS: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let killed = dir.path().join("killed");
    let shape = [
        "model.n_embd=128",
        "model.n_layer=2",
        "train.overwrite=true",
    ];
    cptrain_ok(dir.path(), &strs(&run_args(&whole, STEPS, 1, &shape)));

    let finished = || {
        killed
            .join(format!("checkpoints/step-{STEPS}/DONE"))
            .is_file()
    };
    let mut mid_write_kills = 0;
    for _attempt in 0..30 {
        if finished() {
            break;
        }
        let mut args = run_args(&killed, STEPS, 1, &shape);
        let start = newest_done(&killed);
        if start > 0 {
            args.insert(1, "--resume".to_string());
        }
        let mut child = spawn(dir.path(), &strs(&args));
        if mid_write_kills >= 3 {
            assert!(
                wait_within(child, Duration::from_secs(120))
                    .status
                    .success()
            );
            continue;
        }
        let until = Instant::now() + Duration::from_secs(120);
        // The second checkpoint of this run: the first one is complete.
        let target = |steps: Vec<u64>| steps.iter().any(|&s| s >= start + 2);
        while !target(writes_in_flight(&killed, child.id()))
            && child.try_wait().unwrap().is_none()
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        if child.try_wait().unwrap().is_some() {
            continue; // the run finished first
        }
        let pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        let left = writes_in_flight(&killed, pid);
        if target(left.clone()) {
            mid_write_kills += 1;
            let trained = metrics(&killed).len();
            eprintln!(
                "resumed at {start}, killed while writing step {left:?}, {trained} step records"
            );
        }
    }
    assert!(
        mid_write_kills >= 1,
        "no kill landed during a checkpoint write"
    );
    assert!(finished(), "the killed run was resumed to its end");
    assert_eq!(
        checkpoint_weights(&whole, STEPS),
        checkpoint_weights(&killed, STEPS),
        "the final weights equal the uninterrupted run's, bit for bit"
    );
    assert_eq!(deterministic(&whole), deterministic(&killed));
}

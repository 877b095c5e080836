//! Helpers shared by the black-box tests: run the real binary, read its files.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::{Command, Output};

/// `cptrain` with `args` in `dir` (its working directory), with a clean
/// environment for the variables the CLI reads.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cptrain"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("CPTRAIN_HUGE_PAGES")
        .env("RUST_BACKTRACE", "0");
    command
}

/// Runs `cptrain` with `args` in `dir`.
pub fn cptrain(dir: &Path, args: &[&str]) -> Output {
    command(dir, args)
        .output()
        .expect("the cptrain binary runs")
}

/// Runs `cptrain` and asserts success; returns stdout.
pub fn cptrain_ok(dir: &Path, args: &[&str]) -> String {
    let out = cptrain(dir, args);
    assert!(
        out.status.success(),
        "cptrain {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The records of `<out_dir>/metrics.jsonl`.
pub fn metrics(out_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out_dir.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The `loss` of every step.
pub fn losses(out_dir: &Path) -> Vec<f64> {
    metrics(out_dir)
        .iter()
        .map(|r| r["loss"].as_f64().expect("loss"))
        .collect()
}

/// The flat weights of the checkpoint of `step`.
pub fn checkpoint_weights(out_dir: &Path, step: u64) -> Vec<(String, Vec<f32>)> {
    let path = out_dir
        .join("checkpoints")
        .join(format!("step-{step}"))
        .join("model.safetensors");
    let bytes = std::fs::read(&path).expect("model.safetensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let mut tensors: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, data)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// `cptrain` started in the background with piped stderr.
pub fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    command(dir, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the cptrain binary starts")
}

/// Waits until `<out_dir>/metrics.jsonl` holds at least `records` lines;
/// panics after `limit`, or at once with its stderr if `child` exits.
pub fn wait_for_records(
    child: &mut std::process::Child,
    out_dir: &Path,
    records: usize,
    limit: std::time::Duration,
) {
    let started = std::time::Instant::now();
    let file = out_dir.join("metrics.jsonl");
    while std::fs::read_to_string(&file).map_or(0, |t| t.lines().count()) < records {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                std::io::Read::read_to_string(&mut stderr, &mut err).expect("stderr");
            }
            panic!("cptrain exited ({status}) before {records} records:\n{err}");
        }
        assert!(
            started.elapsed() < limit,
            "{} did not reach {records} records within {limit:?}",
            file.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Sends `signal` (e.g. "-INT") to `child` with `kill`.
pub fn send_signal(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {}", child.id());
}

/// Waits for `child` at most `limit`; kills it and panics when it takes longer.
pub fn wait_within(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("cptrain did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// `--set` arguments for each `key=value`.
pub fn sets(pairs: &[String]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect()
}

/// `--set`s of a short run into `out` (no startup matmul probe), `extra`
/// keys last (a key given twice takes its last value).
pub fn run_sets(out: &Path, steps: u64, extra: &[&str]) -> Vec<String> {
    let mut pairs = vec![
        "model.seq_len=32".to_string(),
        format!("train.steps={steps}"),
        "train.eval_every=5".into(),
        "train.keep_last=0".into(),
        format!("train.out_dir={}", out.display()),
        "metrics.progress=never".into(),
        "metrics.peak_gflops=100".into(),
    ];
    pairs.extend(extra.iter().map(|s| s.to_string()));
    sets(&pairs)
}

/// `head` followed by `tail`, as the argument list of a command.
pub fn with<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(tail.iter().map(String::as_str))
        .collect()
}

/// Every file under `dir` (its path relative to `dir`) with its bytes; the
/// run lock `.cptrain.lock` aside.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with(".cptrain.lock") {
                let bytes = std::fs::read(&path).expect("a readable file");
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                files.insert(relative, bytes);
            }
        }
    }
    files
}

/// Asserts that the run in `out` trained the reference's loss curve
/// (`ref_losses`) and ended with its weights (`ref_weights`, the checkpoint
/// of `steps`); prints the worst differences.
pub fn assert_same_training(
    name: &str,
    out: &Path,
    ref_losses: &[f64],
    ref_weights: &[(String, Vec<f32>)],
    steps: u64,
) {
    let curve = losses(out);
    assert_eq!(curve.len(), ref_losses.len(), "{name}");
    let mut worst = (0.0f64, 0.0f32);
    for (step, (a, b)) in curve.iter().zip(ref_losses).enumerate() {
        // f32 math summed in a different order (ranks, chunks, online
        // softmax merges, TP partial products): agreement to ~1e-7 relative
        // is typical; 1e-5 leaves room without hiding a wrong token or
        // position.
        let rel = (a - b).abs() / b.abs();
        worst.0 = worst.0.max(rel);
        assert!(
            rel < 1e-5,
            "{name}: step {} loss {a} vs {b} (rel {rel:e})",
            step + 1
        );
    }
    // After 10 AdamW steps the weights agree closely: AdamW divides by
    // sqrt(v), so a ~1e-7 relative gradient difference moves a weight by
    // about that fraction of lr per step; 1e-4 absolute (lr = 3e-3, 10
    // steps) bounds that with margin, while any real error (a wrong chunk, a
    // missing gradient) moves weights by ~lr = 3e-3 or more.
    let weights = checkpoint_weights(out, steps);
    assert_eq!(weights.len(), ref_weights.len(), "{name}: tensors");
    for ((name_a, a), (name_b, b)) in weights.iter().zip(ref_weights) {
        assert_eq!(
            (name_a, a.len()),
            (name_b, b.len()),
            "{name}: tensor shapes"
        );
        let max = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{name}: {name_a} differs by {max:e}");
        worst.1 = worst.1.max(max);
    }
    eprintln!(
        "{name}: max loss rel diff {:.1e}, max weight abs diff {:.1e}",
        worst.0, worst.1
    );
}

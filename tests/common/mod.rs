//! Helpers shared by the black-box tests: run the real binary, read its files.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cptrain` with `args` in `dir` (its working directory), with a clean
/// environment for the variables the CLI reads.
pub fn cptrain(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cptrain"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("CPTRAIN_HUGE_PAGES")
        .env("RUST_BACKTRACE", "0")
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

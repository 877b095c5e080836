//! Parity with an independent PyTorch GPT-2 (`tests/torch/gpt2_steps.py`):
//! the same weights, tokens and AdamW settings give the same losses and the
//! same weights after a few steps. Runs where `import torch` works (the
//! interpreter is `$CPTRAIN_TORCH_PYTHON`, else `python3`); elsewhere it
//! prints SKIPPED and passes.

mod common;

use common::{checkpoint_weights, cptrain_ok, losses};
use cptrain::checkpoint::save_weights;
use cptrain::model::{ModelConfig, ParamLayout, init_params};
use std::io::Write;
use std::process::{Command, Stdio};

fn python() -> Option<String> {
    let python = std::env::var("CPTRAIN_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import torch, safetensors, numpy"])
        .stderr(Stdio::null())
        .status();
    probe.is_ok_and(|s| s.success()).then_some(python)
}

#[test]
fn training_matches_pytorch() {
    let Some(python) = python() else {
        eprintln!("SKIPPED training_matches_pytorch: no python with torch, safetensors and numpy");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = ModelConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 32,
        vocab_size: 64,
        seq_len: 16,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    };
    let (steps, batch) = (4u64, 4usize);
    let init = dir.path().join("init.safetensors");
    save_weights(&init, &ParamLayout::gpt2(&model), &init_params(&model, 7)).unwrap();
    // 40 windows of pseudo-random tokens.
    let tokens: Vec<u8> = (0..(40 * 16 + 1) as u32)
        .flat_map(|i| ((i.wrapping_mul(2654435761) >> 7) % 64).to_le_bytes()[..2].to_vec())
        .collect();
    let token_file = dir.path().join("tokens.bin");
    std::fs::write(&token_file, tokens).unwrap();

    let out = dir.path().join("run");
    let sets = [
        format!("model.init={}", init.display()),
        "model.n_layer=2".into(),
        "model.n_head=4".into(),
        "model.n_embd=32".into(),
        "model.vocab_size=64".into(),
        "model.seq_len=16".into(),
        "data.source=tokens".into(),
        format!("data.path={}", token_file.display()),
        "data.val_fraction=0".into(),
        format!("data.val_path={}", token_file.display()),
        format!("train.steps={steps}"),
        format!("train.batch_size={batch}"),
        format!("train.out_dir={}", out.display()),
        "optimizer.warmup_steps=2".into(),
        "optimizer.grad_clip=0.5".into(),
        "metrics.progress=never".into(),
    ];
    let mut args = vec!["run"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    cptrain_ok(dir.path(), &args);

    let torch_out = dir.path().join("torch.safetensors");
    let spec = serde_json::json!({
        "init": init, "tokens": token_file, "out": torch_out,
        "n_layer": 2, "n_head": 4, "seq_len": 16, "batch_size": batch, "steps": steps,
        "optimizer": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2, "beta1": 0.9,
                      "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 0.5},
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torch/gpt2_steps.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the PyTorch reference failed");
    let reference: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let torch_losses: Vec<f64> = reference["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();

    // f32 in both, different summation orders and libm: ~1e-7 relative is
    // typical; 1e-5 still catches any wrong term (those move the loss by %).
    let ours = losses(&out);
    assert_eq!(ours.len(), torch_losses.len());
    let mut worst_loss = 0.0f64;
    for (step, (a, b)) in ours.iter().zip(&torch_losses).enumerate() {
        let rel = (a - b).abs() / b.abs();
        worst_loss = worst_loss.max(rel);
        assert!(rel < 1e-5, "step {}: cptrain {a} vs torch {b}", step + 1);
    }
    let bytes = std::fs::read(&torch_out).unwrap();
    let torch_file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut worst = 0.0f32;
    for (name, ours) in checkpoint_weights(&out, steps) {
        let theirs: Vec<f32> = torch_file
            .tensor(&name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let max = ours
            .iter()
            .zip(&theirs)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        worst = worst.max(max);
        // AdamW amplifies f32 rounding differences of tiny gradients up to a
        // fraction of lr (3e-3) per step; a real mismatch (a wrong formula)
        // moves weights by about lr per step.
        assert!(max < 2e-4, "{name} differs from PyTorch by {max:e}");
    }
    eprintln!(
        "PyTorch parity: {steps} steps, max loss rel diff {worst_loss:e}, max weight diff {worst:e}"
    );
}

//! `cptrain generate` and `cptrain eval` on a run trained by the binary:
//! text streams out, seeded samples repeat, the evaluation reproduces the
//! run's own eval_loss and writes nothing, and mistakes name their flag or
//! file.

mod common;

use common::{cptrain, cptrain_ok, metrics, snapshot};
use std::path::Path;

/// Trains `steps` steps on the bytes of a small text with `extra` settings;
/// returns the run's stdout.
fn train(dir: &Path, steps: u64, extra: &[&str]) -> String {
    let text: String = (0..400)
        .map(|i| {
            [
                "the cat sat on the mat. ",
                "a dog ran to the sun. ",
                "où est-il ? ",
            ][i % 3]
        })
        .collect();
    std::fs::write(dir.join("text.txt"), text).unwrap();
    let mut args = vec!["run".to_string()];
    let sets = [
        "data.source=text".to_string(),
        "data.path=text.txt".into(),
        "model.vocab_size=256".into(),
        "model.seq_len=32".into(),
        format!("train.steps={steps}"),
        "train.eval_every=10".into(),
        "train.eval_batches=1".into(),
        "train.out_dir=run".into(),
        "metrics.progress=never".into(),
    ];
    for set in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
        args.push("--set".into());
        args.push(set.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cptrain_ok(dir, &args)
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn a_trained_checkpoint_generates_text_and_evaluates_to_its_eval_loss() {
    let dir = tempfile::tempdir().unwrap();
    // Two ranks splitting each sequence (cp = 2): eval runs on one process.
    let out = train(
        dir.path(),
        20,
        &[
            "parallel.world_size=2",
            "parallel.cp=2",
            "train.sample_every=10",
            "train.sample_prompt=the cat",
        ],
    );
    assert!(out.contains("step 10 sample: \"the cat\" → \""), "{out}");
    assert!(out.contains("step 20 sample: "), "{out}");
    let before = snapshot(&dir.path().join("run"));
    let ckpt = "run/checkpoints/step-20";

    let sample = |extra: &[&str]| {
        let mut args = vec!["generate", "--checkpoint", ckpt, "--prompt", "the "];
        args.extend_from_slice(extra);
        let output = cptrain(dir.path(), &args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (
            String::from_utf8(output.stdout).expect("UTF-8 on stdout"),
            stderr,
        )
    };
    let (text, stderr) = sample(&[
        "--max-new-tokens",
        "12",
        "--seed",
        "5",
        "--num-samples",
        "2",
    ]);
    let samples: Vec<&str> = text.split("\n---------------\n").collect();
    assert_eq!(samples.len(), 2, "{text}");
    for s in &samples {
        assert!(s.starts_with("the ") && s.trim_end().len() > 4, "{s:?}");
    }
    assert!(
        stderr.contains("[sample 2/2: 12 new tokens, stopped: --max-new-tokens reached]"),
        "{stderr}"
    );
    assert_eq!(
        sample(&[
            "--max-new-tokens",
            "12",
            "--seed",
            "5",
            "--num-samples",
            "2"
        ])
        .0,
        text
    );
    // Greedy runs until the sequence fills model.seq_len = 32 tokens.
    let (greedy, stderr) = sample(&["--temperature", "0"]);
    assert!(
        stderr.contains("28 new tokens, stopped: the context is full"),
        "{stderr}"
    );
    assert_eq!(sample(&["--temperature", "0", "--top-k", "3"]).0, greedy);

    // The run's last evaluation: the same windows on the run's layout
    // (cp = 2, restored from the checkpoint), then on others.
    let report = json(&cptrain_ok(
        dir.path(),
        &["eval", "--checkpoint", ckpt, "--json"],
    ));
    assert_eq!(report["ranks"], "world_size = 2 (dp = 1, cp = 2, p2p)");
    let layouts: [&[&str]; 4] = [
        &["parallel.world_size=1", "parallel.cp=1"],
        &["parallel.world_size=2", "parallel.cp=1"],
        &["parallel.world_size=4", "parallel.cp=2"],
        &["parallel.world_size=4", "parallel.cp=2", "parallel.tp=2"],
    ];
    for layout in layouts {
        let mut args = vec!["eval", "--checkpoint", ckpt, "--json"];
        for &set in layout {
            args.extend(["--set", set]);
        }
        let other = json(&cptrain_ok(dir.path(), &args));
        let (a, b) = (
            report["loss"].as_f64().unwrap(),
            other["loss"].as_f64().unwrap(),
        );
        // The same products summed in another order (per rank, per chunk,
        // per TP shard).
        assert!((a - b).abs() <= 1e-6 * a, "{layout:?}: {b} vs {a}");
        assert_eq!(other["tokens"], report["tokens"], "{layout:?}");
        assert_eq!(other["bytes"], report["bytes"], "{layout:?}");
    }
    let records = metrics(&dir.path().join("run"));
    let eval_loss = records.last().unwrap()["eval_loss"].as_f64().unwrap();
    let loss = report["loss"].as_f64().unwrap();
    assert!(
        (loss - eval_loss).abs() < 1e-5 * eval_loss,
        "eval {loss} vs the run's {eval_loss}"
    );
    assert!((report["perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-9);
    // Byte-level text: every target is one byte.
    let bpb = report["bits_per_byte"].as_f64().unwrap();
    assert!((bpb - loss / std::f64::consts::LN_2).abs() < 1e-9);
    // train.eval_batches (1) × train.batch_size (16) × seq_len (32) targets.
    assert_eq!(report["tokens"], 16 * 32);
    assert_eq!(report["step"], 20);

    // A whole file: every whole batch of its windows once.
    let report = json(&cptrain_ok(
        dir.path(),
        &[
            "eval",
            "--checkpoint",
            "run",
            "--data",
            "text.txt",
            "--json",
        ],
    ));
    let tokens = report["tokens"].as_u64().unwrap();
    assert_eq!(tokens, report["sequences"].as_u64().unwrap() * 32);
    assert!(report["loss"].as_f64().unwrap().is_finite());
    let table = cptrain_ok(
        dir.path(),
        &["eval", "--checkpoint", ckpt, "--batches", "1"],
    );
    assert!(
        table.contains("evaluated     16 sequences, 512 target tokens"),
        "{table}"
    );

    assert!(
        before == snapshot(&dir.path().join("run")),
        "generate/eval changed the run's files"
    );
}

#[test]
fn a_hugging_face_directory_generates_what_its_checkpoint_does() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path(), 2, &[]);
    let hf = dir.path().join("hf");
    std::fs::create_dir(&hf).unwrap();
    std::fs::copy(
        dir.path().join("run/checkpoints/step-2/model.safetensors"),
        hf.join("model.safetensors"),
    )
    .unwrap();
    let config = r#"{"model_type": "gpt2", "activation_function": "gelu_new", "n_layer": 2,
        "n_head": 4, "n_embd": 64, "n_positions": 32, "vocab_size": 256}"#;
    std::fs::write(hf.join("config.json"), config).unwrap();
    let greedy = |model: &str| {
        let args = [
            "generate",
            "--checkpoint",
            model,
            "--prompt",
            "a",
            "--temperature",
            "0",
        ];
        cptrain_ok(dir.path(), &args)
    };
    assert_eq!(greedy("hf"), greedy("run/checkpoints/step-2"));

    std::fs::write(hf.join("config.json"), config.replace("gelu_new", "relu")).unwrap();
    let out = cptrain(dir.path(), &["generate", "--checkpoint", "hf"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("activation_function = \"relu\"; this model uses gelu_new"),
        "{stderr}"
    );
}

#[test]
fn mistakes_name_the_flag_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path(), 1, &[]);
    let ckpt = "run/checkpoints/step-1";
    let long_prompt = "x".repeat(32);
    let cases: [(&[&str], &str); 6] = [
        (
            &["generate", "--checkpoint", "nowhere"],
            "nowhere is not a model directory",
        ),
        (
            &["eval", "--checkpoint", "nowhere"],
            "nowhere is not a model directory",
        ),
        (
            &["generate", "--checkpoint", ckpt, "--top-p", "1.5"],
            "--top-p = 1.5 must be in (0, 1]",
        ),
        (
            &["generate", "--checkpoint", ckpt, "--temperature", "-1"],
            "--temperature = -1",
        ),
        (
            &["generate", "--checkpoint", ckpt, "--prompt", &long_prompt],
            "--prompt is 32 tokens, but the model's context is model.seq_len = 32",
        ),
        (
            &["eval", "--checkpoint", ckpt, "--data", "missing.bin"],
            "missing.bin",
        ),
    ];
    for (args, expected) in cases {
        let out = cptrain(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// A run trained with bf16 products evaluates to its own eval_loss: `eval`
/// runs the products at the run's `kernels.precision`. Skipped (with the
/// reason printed) on a CPU that refuses bf16.
#[test]
fn a_bf16_run_evaluates_to_its_eval_loss() {
    let dir = tempfile::tempdir().unwrap();
    let probe = cptrain(dir.path(), &["check", "--set", "kernels.precision=bf16"]);
    if !probe.status.success() {
        eprintln!(
            "skipped: {}",
            String::from_utf8_lossy(&probe.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
        return;
    }
    train(dir.path(), 10, &["kernels.precision=bf16"]);
    let ckpt = "run/checkpoints/step-10";
    let report = json(&cptrain_ok(
        dir.path(),
        &["eval", "--checkpoint", ckpt, "--json"],
    ));
    let loss = report["loss"].as_f64().unwrap();
    let records = metrics(&dir.path().join("run"));
    let eval_loss = records.last().unwrap()["eval_loss"].as_f64().unwrap();
    // The same bf16 products on the same windows: only summation order may
    // differ (f64 sums of f32 terms).
    assert!(
        (loss - eval_loss).abs() < 1e-5 * eval_loss,
        "eval {loss} vs the run's {eval_loss}"
    );
    // In f32 the products round differently: a visibly different loss.
    let f32 = json(&cptrain_ok(
        dir.path(),
        &[
            "eval",
            "--checkpoint",
            ckpt,
            "--json",
            "--set",
            "kernels.precision=f32",
        ],
    ));
    assert_ne!(f32["loss"].as_f64().unwrap(), loss);
}

//! Hugging Face `transformers` opens a cptrain checkpoint unchanged, and a
//! model it saves is a `model.init` (`tests/hf/roundtrip.py`). Runs where
//! Python imports `torch` and `transformers` (the interpreter is
//! `$CPTRAIN_HF_PYTHON`, else `python3`; `.ci/hf` installs them in a venv);
//! elsewhere it prints why it skipped.
//!
//! The checkpoint uses both keys that make the tables differ from the run's
//! shape: `model.n_positions = 64` over `seq_len = 32`, and
//! `model.vocab_padding = 64` (50257 → 50304 rows in memory, 50257 saved).

mod common;

use common::{cptrain_ok, losses};
use cptrain::inference::TrainedModel;
use cptrain::kernels::{CpuKernels, IGNORE_TARGET, Kernels, Threads};
use cptrain::model::{Activations, Batch, Gpt};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const TEXT: &str = "Hello world, the cat sat on the mat. It's 2024!";

fn python() -> Result<String, String> {
    let python = std::env::var("CPTRAIN_HF_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import torch, transformers"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "{python} cannot import torch and transformers ({}); run .ci/hf or set \
                 CPTRAIN_HF_PYTHON",
                stderr.lines().last().unwrap_or("")
            ))
        }
        Err(e) => Err(format!("{python} does not start: {e}")),
    }
}

fn corpus(dir: &Path) {
    std::fs::create_dir(dir.join("corpus")).unwrap();
    let words = ["the", "cat", "sat", "on", "a", "mat", "and", "ran", "home"];
    for doc in 0..8 {
        let text: Vec<&str> = (0..300).map(|i| words[(i * 5 + doc) % 9]).collect();
        let path = dir.join(format!("corpus/doc{doc}.txt"));
        std::fs::write(path, text.join(" ") + ".\n").unwrap();
    }
}

fn run(dir: &Path, out: &str, steps: u64, init: Option<&str>) -> Vec<f64> {
    let mut sets = vec![
        "data.source=tokens".to_string(),
        "data.path=data".into(),
        "data.tokenizer=gpt2".into(),
        "model.n_layer=1".into(),
        "model.n_head=2".into(),
        "model.n_embd=32".into(),
        "model.seq_len=32".into(),
        "model.vocab_padding=64".into(),
        format!("train.steps={steps}"),
        "train.batch_size=4".into(),
        "train.eval_batches=1".into(),
        format!("train.out_dir={out}"),
        "metrics.progress=never".into(),
    ];
    match init {
        Some(init) => sets.push(format!("model.init={init}")),
        None => sets.push("model.n_positions=64".into()),
    }
    let mut args = vec!["run"];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    cptrain_ok(dir, &args);
    losses(&dir.join(out))
}

/// cptrain's logits `[n, vocab_size]` and mean next-token loss on `tokens`.
fn cptrain_logits(checkpoint: &Path, tokens: &[u32]) -> (Vec<f32>, f64) {
    let trained = TrainedModel::open(checkpoint).unwrap();
    let cfg = &trained.model;
    let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::new(Threads::new(1).unwrap()));
    let attention = cptrain::attention::LocalAttention::new(kernels.clone());
    use cptrain::attention::Attention as _;
    let n = tokens.len();
    let layout = attention.qkv_layout();
    let mut acts = Activations::new(&*kernels, cfg, 1, n, layout).unwrap();
    let positions: Vec<usize> = (0..n).collect();
    let mut targets = tokens[1..].to_vec();
    targets.push(IGNORE_TARGET);
    let batch = Batch {
        tokens,
        targets: &targets,
        positions: &positions,
    };
    let loss = Gpt::new(cfg.clone())
        .forward(
            &*kernels,
            &attention,
            (&trained.params).into(),
            batch,
            &mut acts,
        )
        .unwrap();
    let logits = acts
        .logits()
        .unwrap()
        .chunks_exact(cfg.padded_vocab())
        .flat_map(|row| row[..cfg.vocab_size].to_vec())
        .collect();
    (logits, loss.mean())
}

#[test]
fn transformers_opens_a_checkpoint_and_its_save_is_a_model_init() {
    let python = match python() {
        Ok(python) => python,
        Err(why) => {
            eprintln!("SKIPPED hf_roundtrip: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let prepare = [
        "prepare",
        "corpus",
        "--out",
        "data",
        "--tokenizer",
        "gpt2",
        "--val-fraction",
        "0.25",
    ];
    cptrain_ok(dir.path(), &prepare);
    run(dir.path(), "run", 3, None);
    let checkpoint = dir.path().join("run/checkpoints/step-3");

    let tokens =
        cptrain::tokenizer::Tokenizer::encode(&cptrain::tokenizer::Gpt2Tokenizer::new(), TEXT);
    let spec = serde_json::json!({
        "checkpoint": checkpoint,
        "text": TEXT,
        "tokens": tokens,
        "logits_out": dir.path().join("hf_logits.bin"),
        "save_to": dir.path().join("hf_saved"),
    });
    let mut child = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/hf/roundtrip.py"
        ))
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
    assert!(output.status.success(), "tests/hf/roundtrip.py failed");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["vocab_size"], 50257,
        "the real rows, not the padding"
    );
    assert_eq!(report["n_positions"], 64);
    assert_eq!(report["wpe_rows"], 64);

    let theirs: Vec<f32> = std::fs::read(dir.path().join("hf_logits.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (ours, our_loss) = cptrain_logits(&checkpoint, &tokens);
    assert_eq!(ours.len(), theirs.len());
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // The bound: f32 in both, other kernels and summation orders.
    assert!(worst < 1e-4, "logits differ by up to {worst:e}");
    let their_loss = report["loss"].as_f64().unwrap();
    assert!(
        (our_loss - their_loss).abs() < 1e-5 * their_loss,
        "loss {our_loss} vs transformers {their_loss}"
    );

    // The saved model as model.init starts exactly where the checkpoint does:
    // the same f32 weights, so the same first loss bit for bit.
    let from_hf = run(dir.path(), "from_hf", 1, Some("hf_saved"));
    let from_checkpoint = run(dir.path(), "from_ckpt", 1, Some("run/checkpoints/step-3"));
    assert_eq!(from_hf, from_checkpoint);
    eprintln!(
        "HF round trip: logits within {worst:e}, loss {our_loss} vs {their_loss}, \
         first loss from the saved model {}",
        from_hf[0]
    );
}

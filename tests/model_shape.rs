//! The model keys that change the parameter table without changing the
//! math: `model.n_positions` (rows of `wpe` past `seq_len`, kept from a
//! Hugging Face model and saved back) and `model.vocab_padding` (rows of
//! `wte` past `vocab_size`, never predicted and never saved).

mod common;

use common::{checkpoint_weights, cptrain, cptrain_ok, losses, metrics};
use cptrain::checkpoint::{hf_files, save_weights};
use cptrain::model::{ModelConfig, ParamLayout, init_params};
use std::path::Path;

const WIDTH: usize = 32;

fn model(seq_len: usize, n_positions: Option<usize>) -> ModelConfig {
    ModelConfig {
        n_layer: 1,
        n_head: 2,
        n_embd: WIDTH,
        vocab_size: 256,
        seq_len,
        init: None,
        n_positions,
        vocab_padding: 1,
    }
}

/// A Hugging Face directory (`config.json`, `model.safetensors`) holding a
/// model with `n_positions` rows of `wpe`; returns its parameters.
fn hf_dir(dir: &Path, n_positions: usize) -> Vec<f32> {
    let cfg = model(n_positions, None);
    let params = init_params(&cfg, 7);
    std::fs::create_dir_all(dir).unwrap();
    save_weights(
        &dir.join("model.safetensors"),
        &ParamLayout::gpt2(&cfg),
        &params,
    )
    .unwrap();
    for (name, text) in hf_files(&cfg, &cptrain::tokenizer::ByteTokenizer) {
        std::fs::write(dir.join(name), text).unwrap();
    }
    params
}

fn text_file(dir: &Path) {
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    std::fs::write(dir.join("text.txt"), text).unwrap();
}

fn args<'a>(sets: &'a [String], first: &[&'a str]) -> Vec<&'a str> {
    let mut args = first.to_vec();
    for set in sets {
        args.extend(["--set", set.as_str()]);
    }
    args
}

fn tensor<'a>(tensors: &'a [(String, Vec<f32>)], name: &str) -> &'a [f32] {
    &tensors.iter().find(|(n, _)| n == name).expect(name).1
}

/// A Hugging Face model with `n_positions = 32` trained at `seq_len = 16`:
/// `model.n_positions` follows the directory, every row of `wpe` is saved
/// back, and rows 16..32, which no sequence reaches, have a zero gradient
/// and moments, so AdamW changes them only by its decoupled weight decay:
/// after step `t`, `p ← p·f32(1 − lr_t·wd)` bit for bit (the Adam term is
/// `step_size · 0 / (0 + eps) = 0`). Rows 0..16 train.
#[test]
fn positions_past_seq_len_are_kept_and_only_decayed() {
    let dir = tempfile::tempdir().unwrap();
    let imported = hf_dir(&dir.path().join("hf"), 32);
    text_file(dir.path());
    let weight_decay = 0.1;
    let sets: Vec<String> = [
        "data.source=text",
        "data.path=text.txt",
        "model.n_layer=1",
        "model.n_head=2",
        &format!("model.n_embd={WIDTH}"),
        "model.seq_len=16",
        "model.init=hf",
        "train.steps=4",
        "train.batch_size=4",
        "train.eval_batches=1",
        "train.out_dir=run",
        "metrics.progress=never",
        "optimizer.lr=0.01",
        "optimizer.warmup_steps=2",
        &format!("optimizer.weight_decay={weight_decay}"),
    ]
    .map(String::from)
    .to_vec();
    let config = cptrain_ok(dir.path(), &args(&sets, &["config"]));
    assert!(
        config.contains("model.n_positions = 32") && config.contains("model.n_positions of"),
        "{config}"
    );
    cptrain_ok(dir.path(), &args(&sets, &["run"]));

    let saved = checkpoint_weights(&dir.path().join("run"), 4);
    let wpe = tensor(&saved, "transformer.wpe.weight");
    assert_eq!(wpe.len(), 32 * WIDTH, "all 32 rows of wpe are saved");
    let layout = ParamLayout::gpt2(&model(32, None));
    let start = &imported[layout.get("transformer.wpe.weight").unwrap().range()];
    let lrs: Vec<f64> = metrics(&dir.path().join("run"))
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs.len(), 4);
    let mut decayed = start.to_vec();
    for lr in &lrs {
        let factor = (1.0 - lr * weight_decay) as f32;
        decayed.iter_mut().for_each(|p| *p *= factor);
    }
    let (trained_rows, kept_rows) = wpe.split_at(16 * WIDTH);
    assert_eq!(kept_rows, &decayed[16 * WIDTH..], "rows 16..32: decay only");
    assert_ne!(kept_rows, &start[16 * WIDTH..], "the decay is visible");
    let trained = trained_rows
        .iter()
        .zip(&decayed)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        trained > 15 * WIDTH,
        "rows 0..16 train ({trained} of {} changed beyond decay)",
        16 * WIDTH
    );

    let step = dir.path().join("run/checkpoints/step-4");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(step.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["n_positions"], 32);
    // The checkpoint is itself a model.init of 32 positions, and resumes.
    let mut again = sets.clone();
    again.retain(|s| !s.starts_with("model.init") && !s.starts_with("train.out_dir"));
    again.push(format!("model.init={}", step.display()));
    again.push("train.out_dir=run2".into());
    again.push("train.steps=1".into());
    cptrain_ok(dir.path(), &args(&again, &["run"]));
    let mut more = sets.clone();
    more.push("train.steps=5".into());
    cptrain_ok(dir.path(), &args(&more, &["run", "--resume"]));
}

#[test]
fn a_position_table_that_does_not_fit_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    hf_dir(&dir.path().join("hf"), 32);
    text_file(dir.path());
    let base = [
        "data.source=text",
        "data.path=text.txt",
        "model.n_layer=1",
        "model.n_head=2",
        &format!("model.n_embd={WIDTH}"),
        "model.seq_len=16",
        "train.batch_size=4",
        "train.eval_batches=1",
    ]
    .map(String::from);
    let cases: [(&str, &str); 3] = [
        (
            "model.n_positions=8",
            "model.n_positions = 8 is less than model.seq_len = 16",
        ),
        (
            "model.init=hf",
            "", // fits: follows the directory (32 rows)
        ),
        (
            "model.init=hf/model.safetensors",
            "", // fits: follows the file's wpe
        ),
    ];
    for (set, expected) in cases {
        let mut sets = base.to_vec();
        sets.push(set.into());
        let out = cptrain(dir.path(), &args(&sets, &["check"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if expected.is_empty() {
            assert!(out.status.success(), "{set}: {stderr}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{set}: {stderr}");
            assert!(stderr.contains(expected), "{set}: {stderr}");
        }
    }
    let mut sets = base.to_vec();
    sets.extend(["model.init=hf".into(), "model.n_positions=24".into()]);
    let out = cptrain(dir.path(), &args(&sets, &["check"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("n_positions = 32, but model.n_positions = 24"),
        "{stderr}"
    );
    sets.retain(|s| s != "model.init=hf");
    sets.push("model.init=hf/model.safetensors".into());
    let out = cptrain(dir.path(), &args(&sets, &["check"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has 32 positions, but model.n_positions = 24"),
        "{stderr}"
    );
}

/// `model.vocab_padding = 64` on a 16-token vocabulary: `wte` has 64 rows
/// in memory, the 48 padding ids get −∞ logits (so exactly 0 probability
/// and gradient) and zero rows, and the checkpoint holds the 16 real rows.
/// The loss curve is the unpadded one up to f32 rounding: the real logits
/// and the softmax sums are the same numbers, but the output head's
/// backward sums over 64 instead of 16 vocabulary rows (the extra terms are
/// exact zeros, yet the matrix kernel may block the sum differently), so
/// the weights can differ in the last bits after the first update.
/// Tolerance 1e-5 relative, the parity tests' bound for reordered f32 sums.
#[test]
fn a_padded_vocabulary_trains_the_unpadded_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &str, padding: usize| {
        let sets: Vec<String> = [
            "train.steps=30".to_string(),
            "train.eval_every=10".into(),
            format!("train.out_dir={out}"),
            format!("model.vocab_padding={padding}"),
            "metrics.progress=never".into(),
        ]
        .to_vec();
        cptrain_ok(dir.path(), &args(&sets, &["run"]));
        losses(&dir.path().join(out))
    };
    let plain = run("plain", 1);
    let padded = run("padded", 64);
    assert_eq!(plain.len(), 30);
    for (step, (a, b)) in plain.iter().zip(&padded).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs(),
            "step {}: {a} unpadded vs {b} padded",
            step + 1
        );
    }
    let saved = checkpoint_weights(&dir.path().join("padded"), 30);
    // 16 real rows of model.n_embd = 64 (the default).
    assert_eq!(tensor(&saved, "transformer.wte.weight").len(), 16 * 64);
    let state = dir.path().join("padded/checkpoints/step-30");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], 16);
    // Loading pads again: eval and a resume read the 16-row file.
    let report = cptrain_ok(dir.path(), &["eval", "--checkpoint", "padded", "--json"]);
    assert!(report.contains("\"loss\""), "{report}");
}

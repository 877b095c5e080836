//! The newcomer's path, end to end: text files → `cptrain prepare` (GPT-2's
//! tokenizer) → `cptrain run` → `cptrain eval` → `cptrain generate` →
//! `cptrain export`, and the exported directory as `model.init`.

mod common;

use common::{cptrain_ok, losses, metrics, sets};

/// A small corpus with plenty of repetition, so 30 steps visibly learn.
fn write_corpus(dir: &std::path::Path) {
    let words = [
        "the",
        "model",
        "learns",
        "to",
        "copy",
        "long",
        "sequences",
        "across",
        "ranks",
    ];
    for doc in 0..12 {
        let text: Vec<String> = (0..400)
            .map(|i| words[(i * 7 + doc) % words.len()].to_string())
            .collect();
        std::fs::write(dir.join(format!("doc{doc:02}.txt")), text.join(" ") + ".\n").unwrap();
    }
}

#[test]
fn text_becomes_a_model_that_evaluates_generates_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    write_corpus(&corpus);
    let prepared = cptrain_ok(
        dir.path(),
        &[
            "prepare",
            "corpus",
            "--out",
            "data",
            "--tokenizer",
            "gpt2",
            "--val-fraction",
            "0.25",
        ],
    );
    assert!(
        prepared.contains("gpt2 tokenizer, vocabulary 50257"),
        "{prepared}"
    );
    let run = |out: &str, steps: u64, extra: &[&str]| {
        let mut keys = vec![
            "data.source=tokens".to_string(),
            "data.path=data".into(),
            "data.tokenizer=gpt2".into(),
            "model.seq_len=32".into(),
            format!("train.steps={steps}"),
            "train.eval_every=10".into(),
            "train.eval_batches=2".into(),
            format!("train.out_dir={out}"),
            "metrics.progress=never".into(),
            "metrics.peak_gflops=100".into(),
            "optimizer.warmup_steps=5".into(),
        ];
        keys.extend(extra.iter().map(|s| s.to_string()));
        let args = sets(&keys);
        let mut all = vec!["run"];
        all.extend(args.iter().map(String::as_str));
        cptrain_ok(dir.path(), &all);
    };
    run("run", 30, &[]);
    let curve = losses(&dir.path().join("run"));
    assert!(curve[29] < curve[0] - 1.0, "the loss falls: {curve:?}");

    let eval = cptrain_ok(dir.path(), &["eval", "--checkpoint", "run", "--json"]);
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let last_eval = metrics(&dir.path().join("run"))[29]["eval_loss"]
        .as_f64()
        .unwrap();
    let loss = eval["loss"].as_f64().unwrap();
    assert!(
        (loss - last_eval).abs() <= 1e-5 * last_eval,
        "{loss} vs {last_eval}"
    );

    let text = cptrain_ok(
        dir.path(),
        &[
            "generate",
            "--checkpoint",
            "run",
            "--prompt",
            "the model",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0",
        ],
    );
    assert!(
        text.starts_with("the model") && text.len() > "the model".len(),
        "{text}"
    );

    cptrain_ok(dir.path(), &["export", "--checkpoint", "run", "--to", "hf"]);
    for file in [
        "model.safetensors",
        "config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
    ] {
        assert!(dir.path().join("hf").join(file).is_file(), "{file}");
    }
    // The exported directory and the checkpoint's weights file start the same run.
    run("from_dir", 1, &["model.init=hf"]);
    run(
        "from_file",
        1,
        &["model.init=run/checkpoints/step-30/model.safetensors"],
    );
    assert_eq!(
        losses(&dir.path().join("from_dir")),
        losses(&dir.path().join("from_file"))
    );
}

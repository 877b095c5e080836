//! The command line as a user meets it: the inspection commands, and one
//! clear error (exit code 1, no panic) for each kind of bad input.

mod common;

use common::{cptrain, cptrain_ok};
use cptrain::checkpoint::save_weights;
use cptrain::model::{ModelConfig, ParamLayout, init_params};
use std::path::Path;

fn model(vocab_size: usize, n_embd: usize) -> ModelConfig {
    ModelConfig {
        n_layer: 2,
        n_head: 4,
        n_embd,
        vocab_size,
        seq_len: 64,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    }
}

/// Files the error cases point at.
fn fixtures(dir: &Path) {
    // u16 tokens with an id (300) above the default vocabulary (16).
    let tokens: Vec<u8> = (0..1000u16)
        .flat_map(|i| if i == 500 { 300u16 } else { i % 16 }.to_le_bytes())
        .collect();
    std::fs::write(dir.join("big_ids.bin"), tokens).unwrap();
    std::fs::write(dir.join("odd.bin"), [1u8, 2, 3]).unwrap();
    // GPT-2 weights of a wider model than the default (n_embd 32, not 64).
    let wide = model(16, 32);
    let layout = ParamLayout::gpt2(&wide);
    save_weights(
        &dir.join("wide.safetensors"),
        &layout,
        &init_params(&wide, 1),
    )
    .unwrap();
    std::fs::write(dir.join("bad.toml"), "[model]\nn_layer = \"two\"\n").unwrap();
    std::fs::write(dir.join("broken.toml"), "[model\nn_layer = 2\n").unwrap();
}

#[test]
fn bad_input_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    // (arguments, what the message must contain)
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["check", "--set", "modle.n_layer=3"],
            &["`modle`", "Did you mean `model`?"],
        ),
        (
            &["check", "--set", "model.n_layers=3"],
            &["Did you mean `model.n_layer`?"],
        ),
        (
            &["check", "--set", "model.n_layer=abc"],
            &["model.n_layer", "expected usize", "--set"],
        ),
        (
            &["check", "--config", "bad.toml"],
            &["model.n_layer", "bad.toml"],
        ),
        (
            &["check", "--config", "broken.toml"],
            &["broken.toml", "TOML"],
        ),
        (&["check", "--config", "missing.toml"], &["missing.toml"]),
        (&["check", "--profile", "nope"], &["`nope`", "cp4", "long"]),
        (
            &["check", "--set", "model.n_head=3"],
            &["model.n_embd = 64", "model.n_head = 3"],
        ),
        (
            &[
                "check",
                "--set",
                "parallel.world_size=4",
                "--set",
                "parallel.cp=4",
                "--set",
                "model.seq_len=60",
            ],
            &["model.seq_len = 60", "multiple of 8"],
        ),
        (
            &[
                "check",
                "--set",
                "parallel.world_size=3",
                "--set",
                "parallel.cp=3",
                "--set",
                "parallel.cp_comm=a2a",
                "--set",
                "model.seq_len=48",
            ],
            &[
                "`a2a`",
                "model.n_head = 4, not divisible by parallel.cp = 3",
            ],
        ),
        (
            &[
                "check",
                "--set",
                "parallel.world_size=6",
                "--set",
                "parallel.cp=4",
            ],
            &["parallel.world_size = 6"],
        ),
        (&["check", "--set", "data.source=tokens"], &["data.path"]),
        (
            &[
                "check",
                "--set",
                "data.source=tokens",
                "--set",
                "data.path=nope.bin",
            ],
            &["nope.bin"],
        ),
        (
            &[
                "check",
                "--set",
                "data.source=tokens",
                "--set",
                "data.path=odd.bin",
            ],
            &["odd.bin"],
        ),
        (
            &[
                "check",
                "--set",
                "data.source=tokens",
                "--set",
                "data.path=big_ids.bin",
            ],
            &["big_ids.bin", "300", "vocab_size"],
        ),
        (
            &["check", "--set", "data.source=csv"],
            &["data.source", "csv"],
        ),
        (
            &["check", "--set", "model.init=nope.safetensors"],
            &["model.init", "nope.safetensors"],
        ),
        (
            &["check", "--set", "model.init=wide.safetensors"],
            &["model.init", "transformer.wte.weight"],
        ),
        (
            &["run", "--set", "optimizer.lr=-1", "--set", "train.steps=1"],
            &["optimizer.lr"],
        ),
        (
            &["check", "--set", "optimizer.schedule=step"],
            &["Set `optimizer.schedule` to one of `constant`, `cosine`, `linear`, `wsd`"],
        ),
        (
            &["check", "--set", "optimizer.decay_fraction=1.5"],
            &["optimizer.decay_fraction = 1.5", "0 < decay_fraction <= 1"],
        ),
        (
            &[
                "check",
                "--set",
                "metrics.trace_steps=2",
                "--set",
                "metrics.trace_start=0",
            ],
            &["metrics.trace_start = 0", "numbered from 1"],
        ),
        (
            &[
                "run",
                "--set",
                "metrics.trace_steps=2",
                "--set",
                "metrics.trace_start=9",
                "--set",
                "train.steps=5",
            ],
            &["metrics.trace_start = 9", "train.steps = 5"],
        ),
    ];
    for (args, expected) in cases {
        let out = cptrain(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} must fail with exit 1: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        for text in *expected {
            assert!(
                stderr.contains(text),
                "{args:?}: expected `{text}` in:\n{stderr}"
            );
        }
    }
}

#[test]
fn check_prints_the_grid_and_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain_ok(
        dir.path(),
        &[
            "check",
            "--profile",
            "cp4",
            "--set",
            "parallel.world_size=8",
        ],
    );
    assert!(out.contains("world 8 = tp 1 x cp 4 x dp 2"), "{out}");
    assert!(out.contains("cp     [0, 1, 2, 3] [4, 5, 6, 7]"), "{out}");
    assert!(
        out.contains("rank 1   cp_rank 1 dp_rank 0 tokens 8..16 48..56"),
        "{out}"
    );
    assert!(out.contains("16 tokens/rank"), "{out}");
    assert!(out.contains("MiB activations"), "{out}");
    assert!(
        out.contains("parameters, gradients and the state of optimizer \"adamw\" (f32)"),
        "{out}"
    );
    assert!(!dir.path().join("runs").exists(), "check writes nothing");
}

#[test]
fn config_shows_each_values_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.toml"), "[train]\nsteps = 7\n").unwrap();
    let out = common::cptrain(
        dir.path(),
        &[
            "config",
            "--config",
            "mine.toml",
            "--set",
            "model.n_layer=3",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{stdout}"))
            .to_string()
    };
    assert!(line("model.n_layer").contains("--set"), "{stdout}");
    assert!(line("train.steps").contains("mine.toml"), "{stdout}");
    assert!(line("model.n_embd").contains("default.toml"), "{stdout}");
}

#[test]
fn components_says_why_each_was_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain_ok(dir.path(), &["components", "--set", "data.source=text"]);
    assert!(out.contains("text (dyn DataSource"), "{out}");
    assert!(out.contains("found \"text\""), "{out}");
    assert!(out.contains("p2p (dyn Attention, scope rank)"), "{out}");
}

/// The line of `cptrain config` starting with `key` when the environment
/// variable `var` is `value`.
fn config_line_with_env(var: &str, value: &str, key: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cptrain"))
        .args(["config"])
        .env(var, value)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with(key));
    line.unwrap_or_else(|| panic!("no {key} in {stdout}"))
        .to_string()
}

#[test]
fn environment_variables_override_files() {
    let line = config_line_with_env("CPTRAIN__TRAIN__STEPS", "42", "train.steps");
    assert!(
        line.contains("42") && line.contains("CPTRAIN__TRAIN__STEPS"),
        "{line}"
    );
}

/// `CPTRAIN__APP__PROFILES` activates profiles like `--profile` does.
#[test]
fn app_profiles_in_the_environment_activates_a_profile() {
    let line = config_line_with_env("CPTRAIN__APP__PROFILES", "cp4", "parallel.cp ");
    assert!(
        line.contains("= 4") && line.contains("profile `cp4`"),
        "{line}"
    );
}

/// A built-in component is turned off by name from the configuration.
#[test]
fn appctx_exclude_turns_a_component_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain_ok(
        dir.path(),
        &[
            "components",
            "--set",
            r#"appctx.exclude=["console_metrics"]"#,
        ],
    );
    let excluded = out
        .split("Excluded components:")
        .nth(1)
        .unwrap_or_else(|| panic!("no excluded section in {out}"));
    assert!(excluded.contains("console_metrics"), "{out}");
    assert!(excluded.contains("excluded by `appctx.exclude`"), "{out}");
}

/// Each built-in output is a component that can be turned off: without the
/// console and JSONL sinks and the peak probe, a run trains, checkpoints and
/// prints no step line, and writes no metrics file.
#[test]
fn a_run_without_its_metrics_sinks_still_trains_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain_ok(
        dir.path(),
        &[
            "run",
            "--set",
            "train.steps=2",
            "--set",
            r#"appctx.exclude=["console_metrics","jsonl_metrics","machine_peak"]"#,
        ],
    );
    assert!(!out.contains("step 1/2"), "{out}");
    let run = dir.path().join("runs/default");
    assert!(!run.join("metrics.jsonl").exists());
    assert!(run.join("checkpoints/step-2/DONE").is_file());
}

/// `CPTRAIN_HUGE_PAGES` picks how the binary's allocator places large
/// buffers: each mode checks a run, a value it does not know is one error
/// naming the variable and the choices.
#[test]
fn each_huge_page_mode_runs_and_a_bad_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |mode: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cptrain"))
            .args(["check"])
            .env("CPTRAIN_HUGE_PAGES", mode)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for mode in ["all", "large", "off"] {
        let out = run(mode);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run("yes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .contains("CPTRAIN_HUGE_PAGES=\"yes\": expected `all` (the default), `large` or `off`"),
        "{stderr}"
    );
}

#[test]
fn bench_times_steps_and_shows_where_the_time_goes() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain_ok(
        dir.path(),
        &[
            "bench",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--set",
            "model.seq_len=32",
        ],
    );
    for text in [
        "optimizer adamw",
        "tokens/s",
        "GFLOP/s",
        "bwd GFLOP/s",
        "mfu",
        "attention",
        "optimizer",
        "lm_head",
    ] {
        assert!(out.contains(text), "`{text}` in:\n{out}");
    }
    assert!(!dir.path().join("runs").exists(), "bench writes nothing");
    assert!(!out.contains("note:"), "{out}");
    let ranks = cptrain_ok(
        dir.path(),
        &["bench", "--steps", "1", "--warmup", "0", "--no-profile"]
            .into_iter()
            .chain([
                "--set",
                "model.seq_len=32",
                "--set",
                "parallel.world_size=2",
            ])
            .collect::<Vec<_>>(),
    );
    assert!(
        ranks.contains("note: bench times one rank")
            && ranks.contains("metrics.phase_profile=true")
            && ranks.contains("metrics.trace_steps=2"),
        "{ranks}"
    );
}

/// `cptrain bench` times the optimizer `optimizer.kind` selects, so a name
/// no linked crate registers is refused with the names that exist.
#[test]
fn bench_uses_the_configured_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain(
        dir.path(),
        &["bench", "--steps", "1", "--set", "optimizer.kind=lion"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("lion") && stderr.contains("`adamw`"),
        "{stderr}"
    );
}

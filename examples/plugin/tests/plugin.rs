//! The example plugin's components, selected by `plugin.toml` alone, run in
//! the cptrain command line that links the plugin crate.

use std::path::Path;
use std::process::Command;

/// Layers per the embedded default config; each rank calls attention once
/// forward and once backward per layer and micro-batch.
const N_LAYER: u64 = 2;

/// Runs the plugin's binary in `dir` with `args`.
fn plugin_binary(dir: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cptrain-with-plugin"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("CPTRAIN__DATA__SOURCE")
        .output()
        .expect("the plugin's binary runs")
}

/// Runs the plugin's binary in `dir` with `plugin.toml` and `sets`; returns stdout.
fn run_with_plugin(dir: &Path, command: &str, sets: &[String]) -> String {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin.toml");
    let mut args = vec![
        command.to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    for set in sets {
        args.extend(["--set".to_string(), set.clone()]);
    }
    let out = plugin_binary(dir, &args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The settings of a short run in `out` at `world_size = cp`.
fn short_run(out: &Path, cp: usize, cp_comm: &str) -> Vec<String> {
    vec![
        format!("train.out_dir={}", out.display()),
        format!("tsv_metrics.path={}", out.join("steps.tsv").display()),
        "train.steps=5".into(),
        "train.eval_every=0".into(),
        "train.eval_batches=0".into(),
        format!("model.n_layer={N_LAYER}"),
        format!("parallel.world_size={cp}"),
        format!("parallel.cp={cp}"),
        format!("parallel.cp_comm={cp_comm}"),
    ]
}

/// The losses of `<out>/metrics.jsonl`, the trainer's own sink.
fn jsonl_losses(out: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            record["loss"].as_f64().unwrap()
        })
        .collect()
}

/// The (step, loss, attention calls) rows of the plugin's TSV file.
fn tsv_rows(out: &Path) -> Vec<(u64, f64, String)> {
    let text = std::fs::read_to_string(out.join("steps.tsv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step\tloss\tlr\tattention_calls"));
    lines
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            (
                cells[0].parse().unwrap(),
                cells[1].parse().unwrap(),
                cells[3].to_string(),
            )
        })
        .collect()
}

/// At cp = 2 and cp = 1 the plugin's strategy runs (its calls counted by
/// rank, layer and direction), trains the same losses bit for bit as the
/// built-in ring it wraps, and the plugin's sink writes every step.
#[test]
fn the_plugin_source_strategy_and_sink_run_selected_by_config() {
    let dir = tempfile::tempdir().unwrap();
    for cp in [2_usize, 1] {
        let counted = dir.path().join(format!("counted-cp{cp}"));
        run_with_plugin(dir.path(), "run", &short_run(&counted, cp, "counted"));
        let rows = tsv_rows(&counted);
        assert_eq!(rows.len(), 5, "cp {cp}: {rows:?}");
        let losses = jsonl_losses(&counted);
        for (i, (step, loss, calls)) in rows.iter().enumerate() {
            assert_eq!(*step, i as u64 + 1);
            // serde_json's default parser may round the last bit of a float.
            let agree = (loss - losses[i]).abs() <= 1e-15 * loss.abs();
            assert!(agree, "TSV {loss} vs metrics.jsonl {}", losses[i]);
            assert_eq!(
                calls.parse::<u64>().unwrap(),
                step * cp as u64 * N_LAYER * 2,
                "cp {cp}, step {step}: one forward and one backward per rank and layer"
            );
        }
        assert!(losses[4] < losses[0], "cp {cp}: {losses:?}");

        let builtin = dir.path().join(format!("p2p-cp{cp}"));
        run_with_plugin(dir.path(), "run", &short_run(&builtin, cp, "p2p"));
        assert_eq!(
            jsonl_losses(&builtin),
            losses,
            "cp {cp}: the same math as p2p"
        );
        let rows = tsv_rows(&builtin);
        assert!(
            rows.iter().all(|(_, _, calls)| calls.is_empty()),
            "{rows:?}"
        );
    }
}

/// `cptrain eval` takes the strategy `parallel.cp_comm` selects among the
/// linked components, as a run does: the run's `counted` evaluates its
/// checkpoint at cp = 2 to the very loss of the built-in ring it wraps.
#[test]
fn eval_runs_the_plugins_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counted");
    // The default (synthetic) data: eval opens the built-in sources.
    let mut args = vec!["run".to_string()];
    for set in short_run(&out, 2, "counted") {
        args.extend(["--set".to_string(), set]);
    }
    args.extend(["--set", "train.checkpoint_every=5"].map(String::from));
    let run = plugin_binary(dir.path(), &args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let eval = |extra: &[&str]| {
        let mut args = ["eval", "--checkpoint", &out.display().to_string(), "--json"]
            .map(String::from)
            .to_vec();
        args.extend(["--batches", "2"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let output = plugin_binary(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}:\n{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        report
    };
    let counted = eval(&[]);
    assert_eq!(counted["ranks"], "world_size = 2 (dp = 1, cp = 2, counted)");
    let ring = eval(&["--set", "parallel.cp_comm=p2p"]);
    assert!(counted["loss"].as_f64().unwrap() > 0.0, "{counted}");
    assert_eq!(counted["loss"], ring["loss"], "the same math as p2p");
    let out_dir = out.display().to_string();
    let unknown = [
        "eval",
        "--checkpoint",
        &out_dir,
        "--batches",
        "1",
        "--set",
        "parallel.cp_comm=nope",
    ];
    let refused = plugin_binary(dir.path(), &unknown.map(String::from));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("`counted`, `p2p`"), "{stderr}");
}

/// `check` validates the plugin's wiring and sections like the built-ins',
/// and `components` says each was chosen by configuration.
#[test]
fn check_and_components_see_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_plugin(dir.path(), "check", &[]);
    for name in ["sequence", "tsv_metrics", "attention_calls"] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    let out = run_with_plugin(dir.path(), "components", &[]);
    assert!(out.contains("counted"), "{out}");
    assert!(out.contains("sequence"), "{out}");
}

/// `check` opens the plugin's data source as a run does: its description
/// is printed, and a value only the source itself refuses fails `check`.
#[test]
fn check_opens_the_plugins_data_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_plugin(dir.path(), "check", &[]);
    assert!(
        out.contains("data       arithmetic sequences of stride 5 over"),
        "{out}"
    );
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin.toml");
    let args = ["check", "--config", &config.display().to_string()]
        .into_iter()
        .chain(["--set", "sequence.stride=0"])
        .map(String::from)
        .collect::<Vec<_>>();
    let refused = plugin_binary(dir.path(), &args);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("sequence.stride = 0 must be in 1..model.vocab_size"),
        "{stderr}"
    );
}

/// A key of the plugin's section while another data source is chosen is
/// refused, naming the component that would read it and why it is off.
#[test]
fn a_key_only_an_inactive_plugin_reads_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["check", "--set", "sequence.stride=3"].map(String::from);
    let out = plugin_binary(dir.path(), &args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No active component reads `sequence.stride`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("data.source == sequence: found \"synthetic\""),
        "{stderr}"
    );
}

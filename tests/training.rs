//! Training runs as a user starts them: the default job learns, a resumed
//! run continues exactly, and SIGINT saves a checkpoint to resume from.

mod common;

use common::{checkpoint_weights, cptrain, cptrain_ok, losses, metrics};
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn the_default_job_learns_the_copy_task() {
    let dir = tempfile::tempdir().unwrap();
    cptrain_ok(dir.path(), &["run", "--set", "metrics.progress=never"]);
    let out = dir.path().join("runs/default");
    let curve = losses(&out);
    assert_eq!(curve.len(), 200);
    // The loss counts only the copied half, whose tokens are uniform over 16
    // symbols: chance is ln 16 = 2.77. A model that copies is near 0; 0.1
    // means the right symbol gets > 90% probability on average.
    assert!(curve[0] > 2.5, "starts at chance: {}", curve[0]);
    let last = curve[curve.len() - 1];
    assert!(last < 0.1, "the copy task is learned: final loss {last}");
    let records = metrics(&out);
    let eval = records[199]["eval_loss"]
        .as_f64()
        .expect("eval at the last step");
    assert!(eval < 0.1, "held-out sequences are copied too: {eval}");
    for key in [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens",
        "tokens_per_s",
        "elapsed_s",
    ] {
        assert!(records[0].get(key).is_some(), "metrics.jsonl has `{key}`");
    }
    assert!(out.join("checkpoints/step-200/DONE").exists());
    assert!(out.join("config.toml").exists());
}

fn short_run(out: &Path, steps: u64, checkpoint_every: u64) -> Vec<String> {
    [
        "model.seq_len=32".to_string(),
        format!("train.steps={steps}"),
        format!("train.checkpoint_every={checkpoint_every}"),
        "train.eval_every=5".into(),
        "train.keep_last=0".into(),
        format!("train.out_dir={}", out.display()),
        "metrics.progress=never".into(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect()
}

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(tail.iter().map(String::as_str))
        .collect()
}

/// The fields of a metrics record that do not depend on timing.
fn deterministic(record: &serde_json::Value) -> Vec<Option<f64>> {
    ["step", "loss", "lr", "grad_norm", "tokens", "eval_loss"]
        .iter()
        .map(|k| record.get(*k).and_then(|v| v.as_f64()))
        .collect()
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let split = dir.path().join("split");
    cptrain_ok(dir.path(), &args(&["run"], &short_run(&whole, 20, 0)));
    cptrain_ok(dir.path(), &args(&["run"], &short_run(&split, 20, 10)));
    // Continue from step 10 as if the run had died there: the metrics of
    // steps 11..20 are rewritten, and must come out bit for bit the same.
    let step10 = split.join("checkpoints/step-10");
    let resume = short_run(&split, 20, 10);
    let step10 = step10.display().to_string();
    cptrain_ok(dir.path(), &args(&["run", "--resume", &step10], &resume));

    let a: Vec<_> = metrics(&whole).iter().map(deterministic).collect();
    let b: Vec<_> = metrics(&split).iter().map(deterministic).collect();
    assert_eq!(a.len(), 20);
    assert_eq!(
        a, b,
        "the resumed run's metrics equal the uninterrupted run's"
    );
    assert_eq!(
        checkpoint_weights(&whole, 20),
        checkpoint_weights(&split, 20),
        "and so do the final weights, bit for bit"
    );
}

/// A resumed run traces the window's steps it runs: none when the window
/// came before it (with a warning), the rest when it started before it.
#[test]
fn a_resumed_run_traces_only_the_steps_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    cptrain_ok(dir.path(), &args(&["run"], &short_run(&out, 4, 0)));
    let step4 = out.join("checkpoints/step-4").display().to_string();
    let resume = |trace_start: u64| {
        let mut tail = short_run(&out, 6, 0);
        for set in [
            format!("metrics.trace_start={trace_start}"),
            "metrics.trace_steps=2".to_string(),
        ] {
            tail.extend(["--set".to_string(), set]);
        }
        let output = cptrain(dir.path(), &args(&["run", "--resume", &step4], &tail));
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = resume(2);
    assert!(
        stderr.contains("no trace is written"),
        "steps 2-3 ran before step 5:\n{stderr}"
    );
    assert!(!out.join("trace.json").exists());

    resume(4);
    let steps = traced_steps(&read_trace(&out), 0);
    assert_eq!(steps, ["step 5"], "of steps 4-5, the resumed run runs 5");
}

#[cfg(unix)]
#[test]
fn sigint_finishes_the_step_saves_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let stopped = dir.path().join("stopped");
    const STEPS: u64 = 400;
    cptrain_ok(dir.path(), &args(&["run"], &short_run(&whole, STEPS, 0)));

    // Traced from step 2 to the end: the stop falls inside the window.
    let mut traced_run = short_run(&stopped, STEPS, 0);
    for set in ["metrics.trace_start=2", "metrics.trace_steps=1000"] {
        traced_run.extend(["--set".to_string(), set.to_string()]);
    }
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cptrain"))
        .args(args(&["run"], &traced_run))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let metrics_file = stopped.join("metrics.jsonl");
    while std::fs::read_to_string(&metrics_file).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "training started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(130),
        "a stop on SIGINT exits 130 once saved: {stderr}"
    );
    let done = metrics(&stopped).len() as u64;
    assert!(done < STEPS, "stopped early (after {done} steps)");
    assert!(
        stopped
            .join(format!("checkpoints/step-{done}/DONE"))
            .exists()
    );
    assert!(
        stderr.contains("--resume"),
        "says how to continue: {stderr}"
    );
    // What was traced before the stop is written.
    let expected: Vec<String> = (2..=done).map(|n| format!("step {n}")).collect();
    assert_eq!(traced_steps(&read_trace(&stopped), 0), expected);

    cptrain_ok(
        dir.path(),
        &args(&["run", "--resume"], &short_run(&stopped, STEPS, 0)),
    );
    // A stop that lands during the step's evaluation leaves that record
    // without eval_loss (the step itself is trained and saved); every other
    // field, and every other record, is the uninterrupted run's.
    let b: Vec<_> = metrics(&stopped).iter().map(deterministic).collect();
    let mut a: Vec<_> = metrics(&whole).iter().map(deterministic).collect();
    let eval = 5;
    if b[done as usize - 1][eval].is_none() {
        a[done as usize - 1][eval] = None;
    }
    assert_eq!(a, b);
    assert_eq!(
        checkpoint_weights(&whole, STEPS),
        checkpoint_weights(&stopped, STEPS)
    );
}

#[test]
fn resuming_without_a_checkpoint_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain(dir.path(), &["run", "--resume"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no checkpoint under"), "{stderr}");
    assert!(stderr.contains("without --resume"), "{stderr}");
}

/// `<out>/trace.json`, parsed.
fn read_trace(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("trace.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The names of `pid`'s step slices ("step N"), in order.
fn traced_steps(trace: &serde_json::Value, pid: u64) -> Vec<String> {
    let slices = trace_slices(trace, pid).into_iter();
    slices.filter(|s| s.1 == "step").map(|s| s.0).collect()
}

/// The slices of `pid` in a Chrome trace: (name, category, start, end).
fn trace_slices(trace: &serde_json::Value, pid: u64) -> Vec<(String, String, f64, f64)> {
    trace["traceEvents"]
        .as_array()
        .expect("a traceEvents array")
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == pid)
        .map(|e| {
            let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
            let text = |k: &str| e[k].as_str().unwrap().to_string();
            (text("name"), text("cat"), ts, ts + dur)
        })
        .collect()
}

#[test]
fn the_trace_shows_each_ranks_traced_steps_and_changes_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, trace: bool| {
        let mut tail = short_run(out, 6, 0);
        let mut sets = vec!["parallel.world_size=2", "parallel.cp=2"];
        if trace {
            // Steps 4 and 5; step 5 ends with an evaluation (eval_every = 5).
            sets.extend(["metrics.trace_start=4", "metrics.trace_steps=2"]);
        }
        for set in sets {
            tail.extend(["--set".to_string(), set.to_string()]);
        }
        cptrain_ok(dir.path(), &args(&["run"], &tail))
    };
    let (plain, traced) = (dir.path().join("plain"), dir.path().join("traced"));
    run(&plain, false);
    run(&traced, true);
    let a: Vec<_> = metrics(&plain).iter().map(deterministic).collect();
    let b: Vec<_> = metrics(&traced).iter().map(deterministic).collect();
    assert_eq!(a, b, "tracing changes no loss or gradient");
    assert!(!plain.join("trace.json").exists(), "off by default");
    assert!(
        !traced.join("profile.txt").exists(),
        "a trace does not turn on the phase table"
    );

    let trace = read_trace(&traced);
    for (pid, label) in [(0, "rank 0 (cp 0, dp 0)"), (1, "rank 1 (cp 1, dp 0)")] {
        let named = trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ph"] == "M" && e["pid"] == pid && e["args"]["name"] == label);
        assert!(named, "rank {pid} is a process named `{label}`");
        let slices = trace_slices(&trace, pid);
        let steps: Vec<_> = slices.iter().filter(|s| s.1 == "step").collect();
        let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["step 4", "step 5"], "rank {pid}");
        assert!(steps[0].3 <= steps[1].2, "steps follow each other");
        let phases: Vec<_> = slices
            .iter()
            .filter(|s| s.1 != "step" && s.1 != "wait")
            .collect();
        // 1 µs for rounding in the microsecond times.
        let within = |a: &(String, String, f64, f64), b: &(String, String, f64, f64)| {
            a.2 >= b.2 - 1.0 && a.3 <= b.3 + 1.0
        };
        for phase in &phases {
            // Each phase lies inside one step (the evaluation after step 5
            // is not timed).
            let inside = steps.iter().any(|s| within(phase, s));
            assert!(inside, "rank {pid}: {phase:?} outside {steps:?}");
            assert!(phase.3 >= phase.2);
        }
        // Each wait for the other rank lies inside the phase that waited:
        // attention for the CP group, the update's all-reduces for DP×CP.
        let waits: Vec<_> = slices.iter().filter(|s| s.1 == "wait").collect();
        for wait in &waits {
            let waiter = if wait.0 == "wait (cp)" {
                "attention"
            } else {
                "communication"
            };
            let inside = phases.iter().any(|p| p.0 == waiter && within(wait, p));
            assert!(inside, "rank {pid}: {wait:?} outside every {waiter} slice");
        }
        for group in ["wait (cp)", "wait (dp-cp)"] {
            assert!(waits.iter().any(|w| w.0 == group), "rank {pid}: no {group}");
        }
        // Two steps of the default 2 layers: per step one batch fill, one
        // slice per layer, two all-reduce slices (token count, then
        // gradients and loss) and two optimizer slices (zeroing the
        // gradients, then the update).
        for (name, pass, per_step) in [
            ("data", "forward", 1),
            ("attention", "forward", 2),
            ("attention", "backward", 2),
            ("qkv_matmul", "backward", 2),
            ("communication", "update", 2),
            ("optimizer", "update", 2),
        ] {
            let count = phases.iter().filter(|s| s.0 == name && s.1 == pass).count();
            assert_eq!(count, 2 * per_step, "rank {pid}: `{name}` slices in {pass}");
        }
    }
}

#[test]
fn the_phase_profile_shows_each_ranks_communication_and_changes_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let cp2 = ["parallel.world_size=2", "parallel.cp=2"].map(String::from);
    let run = |out: &Path, profile: bool| {
        let mut tail = short_run(out, 6, 0);
        for set in cp2
            .iter()
            .cloned()
            .chain([format!("metrics.phase_profile={profile}")])
        {
            tail.extend(["--set".to_string(), set]);
        }
        cptrain_ok(dir.path(), &args(&["run"], &tail))
    };
    let (plain, profiled) = (dir.path().join("plain"), dir.path().join("profiled"));
    run(&plain, false);
    let stdout = run(&profiled, true);

    let a: Vec<_> = metrics(&plain).iter().map(deterministic).collect();
    let b: Vec<_> = metrics(&profiled).iter().map(deterministic).collect();
    assert_eq!(a, b, "timing the phases changes no loss or gradient");
    assert!(!plain.join("profile.txt").exists(), "off by default");

    let report = std::fs::read_to_string(profiled.join("profile.txt")).unwrap();
    assert!(
        report.starts_with("per-phase time over 6 training steps, rank 0 of 2:"),
        "{report}"
    );
    assert!(
        stdout.contains(&report),
        "shown after the summary:\n{stdout}"
    );
    let row = |name: &str| -> Vec<f64> {
        let line = report
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("a `{name}` row in:\n{report}"));
        line.split_whitespace()
            .filter_map(|w| w.trim_end_matches('%').parse().ok())
            .collect()
    };
    for phase in ["data", "attention", "optimizer", "mlp_fc_matmul"] {
        assert!(row(phase)[..3].iter().sum::<f64>() > 0.0, "{phase}");
    }
    // Product phases get forward and backward GFLOP/s, the others "-".
    assert!(report.contains("fwd GFLOP/s  bwd GFLOP/s"), "{report}");
    for phase in ["attention", "mlp_fc_matmul", "qkv_matmul"] {
        let rates = &row(phase)[4..];
        assert!(
            rates.len() == 2 && rates.iter().all(|&r| r > 0.0),
            "{phase}: {rates:?}"
        );
    }
    assert_eq!(row("layernorm").len(), 4, "no rate without products");
    // The ring's waits inside attention may all be hidden behind compute;
    // the gradient all-reduce between the ranks never is.
    let comm = row("communication");
    assert!(comm[2] > 0.0, "the gradient all-reduce: {comm:?}");
    for rank in ["0", "1"] {
        let line = row(rank);
        assert_eq!(line.len(), 4, "rank, total, communication, share: {line:?}");
        assert!(line[2] > 0.0 && line[2] < line[1], "rank {rank}: {line:?}");
    }
}

/// Shuffled file data (the default for `text` and `tokens`): each epoch
/// visits every window in its own order, the metrics carry the epoch, a
/// resumed run continues mid-epoch exactly, and a CP layout sees the same
/// global batches (the same loss curve).
#[test]
fn shuffled_epochs_resume_exactly_and_every_layout_sees_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..3000u32)
        .map(|i| b'a' + ((i * i + 3 * i) % 26) as u8)
        .collect();
    std::fs::write(dir.path().join("train.txt"), &text).unwrap();
    let keys = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut keys: Vec<String> = [
            "data.source=text",
            "data.path=train.txt",
            "model.seq_len=32",
            "train.steps=12",
            "train.eval_every=4",
            "train.eval_batches=1",
            "metrics.progress=never",
            "metrics.peak_gflops=100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        keys.push(format!("train.out_dir={}", out.display()));
        keys.extend(extra.iter().map(|s| s.to_string()));
        keys.into_iter()
            .flat_map(|s| ["--set".to_string(), s])
            .collect()
    };
    let whole = dir.path().join("whole");
    cptrain_ok(dir.path(), &args(&["run"], &keys(&whole, &[])));
    let epochs: Vec<u64> = metrics(&whole)
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs.first(), Some(&0));
    assert!(epochs.last().unwrap() >= &2, "several epochs: {epochs:?}");
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]));

    let split = dir.path().join("split");
    cptrain_ok(
        dir.path(),
        &args(&["run"], &keys(&split, &["train.checkpoint_every=7"])),
    );
    let step7 = split.join("checkpoints/step-7").display().to_string();
    cptrain_ok(
        dir.path(),
        &args(&["run", "--resume", &step7], &keys(&split, &[])),
    );
    let a: Vec<_> = metrics(&whole).iter().map(deterministic).collect();
    let b: Vec<_> = metrics(&split).iter().map(deterministic).collect();
    assert_eq!(a, b, "resumed mid-epoch, the run continues the same order");

    let cp2 = dir.path().join("cp2");
    let layout = ["parallel.world_size=2", "parallel.cp=2"];
    cptrain_ok(dir.path(), &args(&["run"], &keys(&cp2, &layout)));
    for (one, two) in losses(&whole).iter().zip(losses(&cp2)) {
        assert!((one - two).abs() <= 1e-5 * one.abs(), "{one} vs {two}");
    }
    let unshuffled = dir.path().join("unshuffled");
    cptrain_ok(
        dir.path(),
        &args(&["run"], &keys(&unshuffled, &["data.shuffle=false"])),
    );
    assert_ne!(losses(&whole), losses(&unshuffled), "the order matters");
}

//! `cptrain plot` and `metrics.csv` as a user meets them: real short runs,
//! their files, the pictures drawn from them, and one clear error for each
//! kind of bad run directory.

mod common;

use common::{cptrain, cptrain_ok};
use cptrain::metrics::{CSV_COLUMNS, StepRecord, parse_csv_row};
use std::path::Path;

/// Trains 6 steps into `dir/name` with `schedule`, evaluating at steps 3
/// and 6, writing metrics.csv too; returns stdout.
fn short_run(dir: &Path, name: &str, schedule: &str) -> String {
    let out_dir = format!("train.out_dir={name}");
    let schedule = format!("optimizer.schedule={schedule}");
    cptrain_ok(
        dir,
        &[
            "run",
            "--set",
            &out_dir,
            "--set",
            &schedule,
            "--set",
            "optimizer.warmup_steps=0",
            "--set",
            "train.steps=6",
            "--set",
            "train.eval_every=3",
            "--set",
            "metrics.csv=true",
            "--set",
            "metrics.peak_gflops=100",
        ],
    )
}

/// Asserts that `<out_dir>/metrics.csv` holds exactly what metrics.jsonl
/// holds (written back as JSON, its records give the same lines); returns
/// its records.
fn csv_matches_jsonl(out_dir: &Path) -> Vec<StepRecord> {
    let jsonl = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    let records = csv_records(out_dir);
    let from_csv: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(from_csv, jsonl.lines().collect::<Vec<_>>());
    records
}

/// The records of `<out_dir>/metrics.csv`, after checking its header.
fn csv_records(out_dir: &Path) -> Vec<StepRecord> {
    let text = std::fs::read_to_string(out_dir.join("metrics.csv")).expect("metrics.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(CSV_COLUMNS.join(",").as_str()));
    lines.map(|l| parse_csv_row(l).expect("a row")).collect()
}

/// Width and height from the IHDR chunk of a PNG file, after its signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn two_runs_are_drawn_over_each_other_with_a_legend() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = short_run(dir.path(), "run-const", "constant");
    assert!(
        stdout.contains("curves: cptrain plot run-const (writes run-const/plot.png"),
        "{stdout}"
    );
    short_run(dir.path(), "run-linear", "linear");

    // metrics.csv holds what metrics.jsonl holds, and the schedules are the
    // chosen ones.
    let lrs = |name: &str| -> Vec<f64> {
        let records = csv_matches_jsonl(&dir.path().join(name));
        assert_eq!(records.len(), 6);
        records.iter().map(|r| r.lr).collect()
    };
    assert!(lrs("run-const").iter().all(|&lr| lr == 3e-3));
    assert!(lrs("run-linear").windows(2).all(|w| w[1] < w[0]));

    let stdout = cptrain_ok(dir.path(), &["plot", "run-const", "run-linear/"]);
    assert!(
        stdout.contains("wrote run-const/plot.png and run-const/plot.svg"),
        "{stdout}"
    );
    let png = std::fs::read(dir.path().join("run-const/plot.png")).unwrap();
    assert_eq!(png_size(&png), cptrain::plot::FIGURE_SIZE);
    assert!(png.len() > 20_000, "a blank picture? {} bytes", png.len());
    let svg = std::fs::read_to_string(dir.path().join("run-const/plot.svg")).unwrap();
    // Every legend entry and panel title is a text element of its own.
    let texts: Vec<&str> = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim()))
        .collect();
    for text in [
        "run-const",
        "run-linear",
        "run-const eval",
        "run-linear eval",
        "learning rate",
        "tokens/s",
    ] {
        assert!(texts.contains(&text), "`{text}` missing from {texts:?}");
    }

    cptrain_ok(
        dir.path(),
        &["plot", "run-linear", "--out", "figures/lr.png"],
    );
    assert!(dir.path().join("figures/lr.png").is_file());
    assert!(dir.path().join("figures/lr.svg").is_file());
}

/// The run is resumed from its step-4 checkpoint after it finished step 8,
/// as if it had died there: metrics.csv drops the rows after step 4, as
/// metrics.jsonl does, and the two files still agree.
#[test]
fn a_resumed_run_keeps_metrics_csv_in_step_with_metrics_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let args = |head: &[&'static str]| {
        let mut args = head.to_vec();
        for set in [
            "train.out_dir=run",
            "train.steps=8",
            "train.checkpoint_every=4",
            "train.keep_last=0",
            "metrics.csv=true",
            "metrics.peak_gflops=100",
        ] {
            args.extend(["--set", set]);
        }
        args
    };
    cptrain_ok(dir.path(), &args(&["run"]));
    cptrain_ok(
        dir.path(),
        &args(&["run", "--resume", "run/checkpoints/step-4"]),
    );
    let steps: Vec<u64> = csv_matches_jsonl(&dir.path().join("run"))
        .iter()
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn a_bad_run_directory_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let record = r#"{"step":1,"loss":2.5,"lr":0.001,"grad_norm":0.5,"tokens":64,"tokens_per_s":640.0,"elapsed_s":0.1,"step_time_s":0.1}"#;
    let runs = [
        ("no-metrics", None),
        ("empty", Some(String::new())),
        ("corrupt", Some(format!("{record}\nnot json\n{record}\n"))),
    ];
    for (name, contents) in runs {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        if let Some(text) = contents {
            std::fs::write(dir.path().join(name).join("metrics.jsonl"), text).unwrap();
        }
    }
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["plot", "missing"],
            &["missing is not a directory", "train.out_dir"],
        ),
        (
            &["plot", "no-metrics"],
            &["no-metrics/metrics.jsonl does not exist"],
        ),
        (
            &["plot", "empty"],
            &["empty/metrics.jsonl has no step records"],
        ),
        (
            &["plot", "corrupt"],
            &["corrupt/metrics.jsonl:2 is not a metrics record"],
        ),
    ];
    for (args, expected) in cases {
        let out = cptrain(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for text in expected {
            assert!(
                stderr.contains(text),
                "{args:?}: expected `{text}` in {stderr}"
            );
        }
    }
    let usage = cptrain(dir.path(), &["plot"]);
    assert_eq!(usage.status.code(), Some(2), "no RUN_DIR is a usage error");
}

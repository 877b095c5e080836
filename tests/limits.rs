//! Bounded resources, as a user meets them: configurations the machine
//! cannot hold and inputs that are not what they claim are refused, by
//! `check` and by `run` alike, with one error naming the key or the file,
//! before anything large is allocated or read, and never with a panic.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Peak resident memory a refusal may reach (the binary and its allocator).
const REFUSAL_RSS_BYTES: u64 = 200 << 20;

/// Longer than any refusal takes; past it the child is killed and the test fails.
const WATCHDOG: Duration = Duration::from_secs(120);

/// What a finished `cptrain` child did.
struct Outcome {
    code: Option<i32>,
    stderr: String,
    peak_rss_bytes: u64,
}

/// Runs `cptrain args` in `dir` and measures the child's own peak RSS
/// (`wait4`'s resource usage of that child alone).
#[allow(
    clippy::zombie_processes,
    reason = "wait4 reaps the child, and gives its resource usage"
)]
fn cptrain_measured(dir: &Path, args: &[&str]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cptrain"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("CPTRAIN_HUGE_PAGES")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the cptrain binary runs");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).ok();
        text
    });
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: `rusage` is plain old data; all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped; the pointers are valid.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4 failed for cptrain {args:?}");
        if reaped == pid {
            break;
        }
        if started.elapsed() > WATCHDOG {
            child.kill().ok();
            panic!("cptrain {args:?} was still running after {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Outcome {
        code,
        stderr: reader.join().expect("stderr reader"),
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
    }
}

/// Asserts a clean refusal: exit code 1, no panic, every `expected`
/// fragment in the message, and a small peak RSS.
fn assert_refused(dir: &Path, args: &[&str], expected: &[&str]) {
    let out = cptrain_measured(dir, args);
    assert_eq!(out.code, Some(1), "{args:?} must exit 1:\n{}", out.stderr);
    assert!(
        !out.stderr.contains("panicked"),
        "{args:?} panicked:\n{}",
        out.stderr
    );
    for text in expected {
        assert!(
            out.stderr.contains(text),
            "{args:?}: expected `{text}` in:\n{}",
            out.stderr
        );
    }
    assert!(
        out.peak_rss_bytes < REFUSAL_RSS_BYTES,
        "{args:?} reached {} MiB before refusing",
        out.peak_rss_bytes >> 20
    );
}

/// `(key=value, what the refusal names)`: sizes no machine holds, and an
/// evaluation longer than the validation data.
const OVERSIZED: [(&str, &[&str]); 4] = [
    (
        "model.n_embd=1000000",
        &[
            "does not fit in memory",
            "model.n_embd = 1000000",
            "available",
        ],
    ),
    (
        "model.seq_len=10000000",
        &["does not fit in memory", "model.seq_len = 10000000"],
    ),
    (
        "train.batch_size=1000000000000",
        &["does not fit in memory", "train.batch_size = 1000000000000"],
    ),
    (
        "train.eval_batches=1000000000",
        &[
            "train.eval_batches = 1000000000",
            "validation windows",
            "at most",
        ],
    ),
];

#[test]
fn oversized_runs_are_refused_by_check_and_run_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for (set, expected) in OVERSIZED {
        assert_refused(dir.path(), &["check", "--set", set], expected);
        assert_refused(
            dir.path(),
            &["run", "--set", set, "--set", "train.out_dir=out"],
            expected,
        );
    }
}

/// Files that are not what `model.init` or `data.path` must be are refused
/// before they are read: a device that never ends, a directory, a FIFO
/// (opening it would block), a safetensors header longer than its file.
#[test]
fn inputs_are_checked_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let fifo = std::ffi::CString::new(dir.path().join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut header = (1u64 << 40).to_le_bytes().to_vec();
    header.extend_from_slice(b"{}");
    std::fs::write(dir.path().join("short.safetensors"), header).unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--set", "model.init=/dev/zero"],
            &[
                "model.init = /dev/zero",
                "a character device, not a regular file",
            ],
        ),
        (
            &["--set", "model.init=folder"],
            &["model.init = folder", "a directory without config.json"],
        ),
        (
            &["--set", "model.init=pipe"],
            &["model.init = pipe", "a FIFO, not a regular file"],
        ),
        (
            &["--set", "model.init=short.safetensors"],
            &[
                "short.safetensors",
                "header of 1099511627776 bytes",
                "holds 10 bytes",
            ],
        ),
        (
            &["--set", "data.source=tokens", "--set", "data.path=folder"],
            &[
                "data.path = folder",
                "a directory without train-*.bin shards",
            ],
        ),
    ];
    for (sets, expected) in cases {
        let args: Vec<&str> = ["check"].iter().chain(sets).copied().collect();
        assert_refused(dir.path(), &args, expected);
    }
}

/// No value of a key, of any length or size, makes the binary panic: it is
/// accepted or refused with exit code 1.
#[test]
fn no_config_value_panics() {
    let dir = tempfile::tempdir().unwrap();
    let long = "7".repeat(70_000);
    let integer_keys = [
        "model.n_layer",
        "model.n_head",
        "model.n_embd",
        "model.vocab_size",
        "model.seq_len",
        "train.steps",
        "train.batch_size",
        "train.micro_batch_size",
        "train.eval_every",
        "train.eval_batches",
        "train.keep_last",
        "parallel.world_size",
        "parallel.tp",
        "parallel.cp",
        "parallel.dp",
        "kernels.threads",
        "metrics.trace_steps",
        "metrics.trace_start",
        "data.symbols",
        "optimizer.warmup_steps",
    ];
    for key in integer_keys {
        for value in ["0", "4294967296", "18446744073709551615", long.as_str()] {
            let set = format!("{key}={value}");
            let out = cptrain_measured(dir.path(), &["check", "--set", &set]);
            assert!(
                matches!(out.code, Some(0 | 1)) && !out.stderr.contains("panicked"),
                "check --set {key}=<{} characters>: {:?}\n{}",
                value.len(),
                out.code,
                out.stderr
            );
        }
    }
    let set = format!("train.out_dir={long}");
    let out = cptrain_measured(dir.path(), &["config", "--set", &set]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// What `run` would refuse before training, `check` refuses too: a device
/// no rank context can wire, and an empty output directory.
#[test]
fn check_refuses_what_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 2] = [
        (
            "kernels.device=cuda",
            &["the context of rank 0", "kernels.device", "\"cuda\""],
        ),
        ("train.out_dir=", &["train.out_dir is empty"]),
    ];
    for (set, expected) in cases {
        assert_refused(dir.path(), &["check", "--set", set], expected);
        let out = common::cptrain(dir.path(), &["run", "--set", set]);
        assert_eq!(out.status.code(), Some(1), "run --set {set}");
    }
    assert!(
        !dir.path().join("metrics.jsonl").exists(),
        "an empty train.out_dir writes nothing into the working directory"
    );
}

/// Command-line values out of range are clap errors (exit code 2) naming
/// the flag.
#[test]
fn flags_out_of_range_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["check", "--profile", "../../x"], "--profile <NAME>"),
        (&["check", "--profile", "a/b"], "plain name"),
        (&["bench", "--steps", "0"], "--steps <STEPS>"),
    ];
    for (args, expected) in cases {
        let out = common::cptrain(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

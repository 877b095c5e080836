//! "The backend is invisible to the math": `cptrain run` on 4 MPI processes
//! trains the loss curve of the `local` backend's 4 thread-ranks, for
//! cp = 4 and cp = 2 × dp = 2 with every `parallel.cp_comm`, and for
//! tp = 4, tp = 2 × cp = 2 and tp = 2 × dp = 2; and on device memory
//! (cuda-emu), staged through the devices' staging memory, for
//! tp = 2 × cp = 2 (ring messages, TP collectives, gradient all-reduce).
//!
//! Needs the `cptrain` binary built with `--features mpi`, named by
//! `CPTRAIN_BIN` (`.ci/mpi` builds it), and `mpirun`; without them the test
//! is skipped with the reason printed, unless `CPTRAIN_REQUIRE_MPI=1`.
#![cfg(feature = "mpi")]

mod support;

use std::path::Path;
use std::process::Command;

use support::tools;

const STEPS: usize = 10;

/// The `--set` arguments of a 4-rank run (without `train.out_dir`).
fn settings(tp: usize, cp: usize, cp_comm: &str, backend: &str, threads: usize) -> Vec<String> {
    support::settings(&[
        "model.n_layer=2".to_string(),
        "model.n_head=4".into(),
        "model.n_embd=32".into(),
        "model.seq_len=32".into(),
        "train.batch_size=8".into(),
        format!("train.steps={STEPS}"),
        "train.eval_every=0".into(),
        "optimizer.warmup_steps=2".into(),
        "parallel.world_size=4".into(),
        format!("parallel.tp={tp}"),
        format!("parallel.cp={cp}"),
        format!("parallel.cp_comm={cp_comm}"),
        format!("parallel.backend={backend}"),
        // One kernel thread per rank in both backends, so only the transport differs.
        format!("kernels.threads={threads}"),
        "metrics.progress=never".into(),
    ])
}

fn run_ok(mut command: Command, what: &str) {
    let output = command
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .output()
        .expect("the command starts");
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn losses(out: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            record["loss"].as_f64().expect("a loss")
        })
        .collect()
}

/// `trace.json` holds steps 2 and 3 of each of the 4 ranks, each rank a
/// process of its own, with its phases and its waits on each of `groups`.
fn assert_traced_steps(out: &Path, name: &str, groups: &[&str]) {
    let text = std::fs::read_to_string(out.join("trace.json")).expect("trace.json");
    let trace: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    for rank in 0..4u64 {
        let mine = || events.iter().filter(move |e| e["pid"] == rank);
        let steps: Vec<_> = mine()
            .filter(|e| e["cat"] == "step")
            .map(|e| e["name"].as_str().expect("a name"))
            .collect();
        assert_eq!(steps, ["step 2", "step 3"], "{name}: rank {rank}");
        let attention = mine().filter(|e| e["name"] == "attention").count();
        // 2 steps × 2 layers × forward and backward.
        assert_eq!(attention, 8, "{name}: rank {rank}'s attention slices");
        // Every blocking MPI call is a wait slice of its group.
        for &group in groups {
            let waits = mine().filter(|e| e["name"] == group).count();
            assert!(waits > 0, "{name}: rank {rank} has no `{group}` slice");
        }
    }
}

/// Runs layout `(tp, cp, cp_comm)` on `device` with 4 thread-ranks of the
/// `local` backend and with 4 MPI processes, and checks that the MPI run
/// trains the same curve and traces every process's steps.
fn check_layout(
    (cptrain, mpirun): (&Path, &Path),
    dir: &Path,
    (tp, cp, cp_comm): (usize, usize, &str),
    device: &str,
) {
    let dp = 4 / (tp * cp);
    let name = format!("{device}-tp{tp}-cp{cp}-dp{dp}-{cp_comm}");
    // The groups with more than one rank, whose waits the trace shows.
    let groups: Vec<&str> = [
        (tp, "wait (tp)"),
        (cp, "wait (cp)"),
        (cp * dp, "wait (dp-cp)"),
    ]
    .into_iter()
    .filter(|&(size, _)| size > 1)
    .map(|(_, group)| group)
    .collect();
    let on_device = |backend, threads| {
        let mut args = settings(tp, cp, cp_comm, backend, threads);
        args.extend(support::settings(&[format!("kernels.device={device}")]));
        args
    };
    let local_out = dir.join(format!("{name}-local"));
    let mut local = Command::new(cptrain);
    local.arg("run").args(on_device("local", 4)).args([
        "--set".into(),
        format!("train.out_dir={}", local_out.display()),
    ]);
    run_ok(local, &format!("{name} local"));

    // All processes share one out_dir, as on a cluster with a shared
    // filesystem: only rank 0's process writes into it.
    let mpi_out = dir.join(format!("{name}-mpi"));
    let mut mpi = support::mpirun(mpirun, 4);
    mpi.arg(cptrain).arg("run").args(on_device("mpi", 1)).args([
        "--set".into(),
        format!("train.out_dir={}", mpi_out.display()),
        // A timeline of steps 2 and 3, gathered from every process.
        "--set".into(),
        "metrics.trace_steps=2".into(),
    ]);
    run_ok(mpi, &format!("{name} mpi"));

    assert_traced_steps(&mpi_out, &name, &groups);
    let (expected, actual) = (losses(&local_out), losses(&mpi_out));
    assert_eq!(actual.len(), STEPS, "{name}: one record per step");
    assert_eq!(expected.len(), STEPS, "{name}: one record per step");
    for (step, (a, b)) in actual.iter().zip(&expected).enumerate() {
        // MPI sums the gradient all-reduce in its own order (pairwise
        // vs the local backend's rank order): f32 rounding differs at
        // ~1e-7 relative; 1e-5 leaves room without hiding a wrong block.
        let rel = (a - b).abs() / b.abs();
        assert!(
            rel < 1e-5,
            "{name}: step {} loss {a} (mpi) vs {b} (local), rel {rel:e}",
            step + 1
        );
    }
}

#[test]
fn four_mpi_processes_train_the_local_backend_curve() {
    let Some((cptrain, mpirun)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    // (tp, cp, cp_comm): every strategy at cp = 4 and at cp = 2 × dp = 2,
    // and tensor parallelism alone, with CP and with DP.
    let mut layouts: Vec<(usize, usize, &str)> = Vec::new();
    for cp in [4, 2] {
        for cp_comm in ["p2p", "all_gather", "a2a"] {
            layouts.push((1, cp, cp_comm));
        }
    }
    layouts.extend([(4, 1, "p2p"), (2, 2, "p2p"), (2, 1, "p2p")]);
    for layout in layouts {
        check_layout((&cptrain, &mpirun), dir.path(), layout, "cpu");
    }
}

/// Device memory under MPI (cuda-emu, the CUDA path on the host): the
/// ring's messages, the TP collectives and the DP gradient all-reduce
/// stage through each device's staging memory (page-locked on a GPU),
/// and train the curve the local backend trains device to device. Needs
/// the binary built with `--features mpi,cuda` (`.ci/mpi` builds it so).
#[test]
fn mpi_processes_with_device_memory_train_the_local_backend_curve() {
    let Some((cptrain, mpirun)) = tools() else {
        return;
    };
    let probe = Command::new(&cptrain)
        .args(["check", "--set", "kernels.device=cuda-emu"])
        .output()
        .expect("the binary starts");
    if !probe.status.success() {
        let reason = String::from_utf8_lossy(&probe.stderr).into_owned();
        assert!(
            std::env::var_os("CPTRAIN_REQUIRE_MPI").is_none(),
            "CPTRAIN_REQUIRE_MPI is set but the binary cannot run cuda-emu: {reason}"
        );
        eprintln!("skipped: the binary cannot run cuda-emu: {reason}");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    // tp 2 × cp 2: the ring's messages, the TP collectives, and the
    // gradient all-reduce over the CP group.
    check_layout((&cptrain, &mpirun), dir.path(), (2, 2, "p2p"), "cuda-emu");
}

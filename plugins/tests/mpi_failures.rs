//! One failing rank ends the whole MPI job, quickly, and says why:
//! `cptrain run` on 4 processes where one process cannot start (its data
//! file is missing) or stops (SIGSTOP) in the middle of training.
//!
//! Needs `CPTRAIN_BIN` and `mpirun` (see `support::tools`). Each job runs
//! under a deadline; a job still running at its deadline is killed and the
//! test fails.
#![cfg(feature = "mpi")]

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use support::tools;

/// The requirement: a rank that fails at startup ends the job within this,
/// counted from the launch (instead of the others waiting for
/// `parallel.timeout_s` = 300 s).
const STARTUP_FAILURE_ENDS_JOB: Duration = Duration::from_secs(15);

/// A job that runs longer than this (with a 3 s `parallel.timeout_s` on one
/// rank, 30 s on the others) is hung: the test kills it and fails.
const HUNG: Duration = Duration::from_secs(120);

/// Runs the rest of the command line after writing the process id to
/// `$CPTRAIN_TEST_PIDS/<rank>` (`exec` keeps the id). Rank 2's process gets
/// `CPTRAIN__DATA__PATH=$CPTRAIN_TEST_MISSING` when that is set, and rank
/// `$CPTRAIN_TEST_OBSERVER`'s `CPTRAIN__PARALLEL__TIMEOUT_S=3`.
const PER_RANK: &str = r#"echo $$ > "$CPTRAIN_TEST_PIDS/$OMPI_COMM_WORLD_RANK"
if [ "$OMPI_COMM_WORLD_RANK" = 2 ] && [ -n "$CPTRAIN_TEST_MISSING" ]; then
    export CPTRAIN__DATA__PATH="$CPTRAIN_TEST_MISSING"
fi
if [ "$OMPI_COMM_WORLD_RANK" = "$CPTRAIN_TEST_OBSERVER" ]; then
    export CPTRAIN__PARALLEL__TIMEOUT_S=3
fi
exec "$@""#;

/// A 4-process `cptrain run` writing into `dir`, its output in
/// `dir/stdout` and `dir/stderr`.
fn job(mpirun: &Path, cptrain: &Path, dir: &Path, settings: &[&str]) -> Command {
    let pids = dir.join("pids");
    std::fs::create_dir_all(&pids).expect("a pid directory");
    let out = format!("train.out_dir={}", dir.join("out").display());
    let mut command = support::mpirun(mpirun, 4);
    command
        .args(["sh", "-c", PER_RANK, "sh"])
        .arg(cptrain)
        .arg("run")
        .args(support::settings(&[
            "model.n_layer=2",
            "model.n_head=4",
            "model.n_embd=32",
            "model.seq_len=32",
            "train.batch_size=8",
            "train.eval_every=0",
            "parallel.backend=mpi",
            "parallel.world_size=4",
            "kernels.threads=1",
            "metrics.progress=never",
            "metrics.peak_gflops=100",
            &out,
        ]))
        .args(support::settings(settings))
        .env("CPTRAIN_TEST_PIDS", &pids)
        .stdout(File::create(dir.join("stdout")).expect("a stdout file"))
        .stderr(File::create(dir.join("stderr")).expect("a stderr file"));
    command
}

/// Waits for `child` until `deadline`; past it, ends the job (SIGTERM to
/// mpirun, which ends its processes, then SIGKILL) and returns `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("a waitable mpirun") {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    signal("TERM", child.id());
    let grace = Instant::now() + Duration::from_secs(10);
    while Instant::now() < grace && child.try_wait().expect("waitable").is_none() {
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `kill -<name> <pid>`; false when it could not be sent.
fn signal(name: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_default()
}

/// Rank 2's data file does not exist; the others' does. Rank 2 fails while
/// its context starts, before any collective: it prints the error, then
/// aborts the job, and mpirun ends the three others, which would otherwise
/// wait for it for `parallel.timeout_s` (300 s).
#[test]
fn a_missing_data_file_on_one_rank_ends_the_job_within_15_s() {
    let Some((cptrain, mpirun)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("train.txt");
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(2000);
    std::fs::write(&data, text).expect("the data file");
    let missing = dir.path().join("only-rank-2-looks-here.txt");
    let mut command = job(
        &mpirun,
        &cptrain,
        dir.path(),
        &[
            "data.source=text",
            "model.vocab_size=256",
            "train.steps=5",
            "parallel.cp=4",
        ],
    );
    command
        .env("CPTRAIN__DATA__PATH", &data)
        .env("CPTRAIN_TEST_MISSING", &missing);
    let started = Instant::now();
    let mut child = command.spawn().expect("mpirun starts");
    let status = wait_until(&mut child, started + STARTUP_FAILURE_ENDS_JOB);
    let stderr = read(dir.path().join("stderr"));
    let status = status.unwrap_or_else(|| {
        panic!("the job still ran {STARTUP_FAILURE_ENDS_JOB:?} after its launch:\n{stderr}")
    });
    eprintln!("the job ended {:?} after its launch", started.elapsed());
    assert!(!status.success(), "the job succeeded:\n{stderr}");
    let error = format!("cannot read data.path = {}", missing.display());
    let abort = "cptrain mpi: rank 2 is exiting with status 1 after the error above; aborting \
                 the MPI job (MPI_Abort)";
    let (Some(error_at), Some(abort_at)) = (stderr.find(&error), stderr.find(abort)) else {
        panic!("expected `{error}` then `{abort}` in:\n{stderr}");
    };
    assert!(error_at < abort_at, "the error comes first:\n{stderr}");
}

/// Rank 2 is stopped (SIGSTOP) while the job trains, with cp = 4 (a ring
/// of point-to-point messages over all 4 ranks) and with cp = 2 × dp = 2
/// (rings of 2, then the gradient all-reduce over all 4). One *observer*
/// rank times out first (3 s; the others have 30 s): whether it waits for
/// rank 2 directly (its ring neighbour), through another rank, or in a
/// collective, its message names rank 2 as the rank holding the job up.
///
/// One rank times out by design: with equal deadlines several ranks time
/// out together, and Open MPI resumes the stopped process (SIGCONT) to kill
/// it once the first has aborted, so a rank still asking for progress then
/// may hear from rank 2 after all.
#[test]
fn a_stopped_rank_is_named_by_the_timeout_message() {
    let Some((cptrain, mpirun)) = tools() else {
        return;
    };
    let held_up = "held up by rank 2, which did not answer the progress query";
    for (cp, observer) in [(4, 0), (4, 1), (4, 3), (2, 0), (2, 3)] {
        let message = stop_rank_2(&cptrain, &mpirun, cp, observer);
        let expected = format!("timed out on rank {observer} after 3s waiting for rank(s) [");
        assert!(
            message.contains(&expected) && message.contains(held_up),
            "cp = {cp}: expected `{expected}` and `{held_up}` in: {message}"
        );
    }
}

/// Stops rank 2 once training is under way; returns the message of
/// `observer`, the rank with the short deadline.
fn stop_rank_2(cptrain: &Path, mpirun: &Path, cp: usize, observer: usize) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cp_setting = format!("parallel.cp={cp}");
    let mut command = job(
        mpirun,
        cptrain,
        dir.path(),
        &["train.steps=100000", &cp_setting],
    );
    command
        .env("CPTRAIN__PARALLEL__TIMEOUT_S", "30")
        .env("CPTRAIN_TEST_OBSERVER", observer.to_string());
    let deadline = Instant::now() + HUNG;
    let mut child = command.spawn().expect("mpirun starts");
    // Training is under way once rank 0 has written a step's metrics.
    let metrics = dir.path().join("out").join("metrics.jsonl");
    let pid_file = dir.path().join("pids").join("2");
    let pid = loop {
        let pid: Option<u32> = read(pid_file.clone()).trim().parse().ok();
        if let (Some(pid), false) = (pid, read(metrics.clone()).is_empty()) {
            break pid;
        }
        let exited = child.try_wait().expect("waitable").is_some();
        assert!(
            !exited && Instant::now() < deadline,
            "cp = {cp}: the job did not start training (exited: {exited}):\n{}",
            read(dir.path().join("stderr"))
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        signal("STOP", pid),
        "rank 2 (pid {pid}) could not be stopped"
    );
    let stopped = Instant::now();
    let status = wait_until(&mut child, deadline);
    // Open MPI resumes and kills the stopped process; make sure it is gone.
    signal("KILL", pid);
    let stderr = read(dir.path().join("stderr"));
    let status =
        status.unwrap_or_else(|| panic!("cp = {cp}: the job hung after the stop:\n{stderr}"));
    let took = stopped.elapsed();
    assert!(!status.success(), "cp = {cp}: the job succeeded:\n{stderr}");
    let failed = format!("rank {observer} failed: ");
    let message = (stderr.lines())
        .find(|line| line.starts_with(&failed))
        .unwrap_or_else(|| panic!("cp = {cp}: no `{failed}` line in:\n{stderr}"));
    eprintln!("cp = {cp}: the job ended {took:?} after the stop:\n{message}");
    message.to_string()
}

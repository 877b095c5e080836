//! The `mpi` backend as a job: the self-test driver alone (a world of one,
//! no mpirun needed) and under `mpirun --oversubscribe -np 2`, `-np 3` (the
//! `nccl` backend's id exchange) and `-np 4`.
//! Where OpenMPI's launcher is not installed (`mpirun`; a world of one also
//! needs its `orted` daemon) the cases that start MPI are skipped with the
//! reason printed, unless `CPTRAIN_REQUIRE_MPI=1`, which `.ci/mpi` sets
//! after installing OpenMPI, turns the skip into a failure.
#![cfg(feature = "mpi")]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cptrain::parallel::ParallelConfig;
use cptrain_plugins::{MpiError, mpi_backend};

const SELFTEST: &str = env!("CARGO_BIN_EXE_cptrain-mpi-selftest");

/// A job that takes longer than this is hung: the test fails instead.
const JOB_LIMIT: Duration = Duration::from_secs(180);

fn mpirun() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("mpirun"))
        .find(|candidate| candidate.is_file())
}

/// A command for `program` without the MPI variables of this process: the
/// in-process tests start MPI as a singleton, which exports variables
/// (`OMPI_*`, `PMIX_*`) that would make a child mpirun believe it runs
/// inside that job.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if ["OMPI_", "PMIX_", "OPAL_", "ORTE_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(&key);
        }
    }
    command
}

/// Runs `command` to completion (killing it after [`JOB_LIMIT`]).
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the self-test starts");
    let started = Instant::now();
    while child.try_wait().expect("waitable child").is_none() {
        if started.elapsed() > JOB_LIMIT {
            child.kill().expect("killable child");
            panic!("{command:?} did not finish within {JOB_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    child
        .wait_with_output()
        .expect("the output of the self-test")
}

/// `mpirun`, or `None` after printing why the case is skipped.
fn launcher() -> Option<PathBuf> {
    let found = mpirun();
    if found.is_none() {
        let reason = "`mpirun` is not on PATH; install OpenMPI (apt-get install openmpi-bin \
                      libopenmpi-dev libclang-dev) or run .ci/mpi";
        assert!(
            std::env::var_os("CPTRAIN_REQUIRE_MPI").is_none(),
            "CPTRAIN_REQUIRE_MPI is set but {reason}"
        );
        eprintln!("skipped: {reason}");
    }
    found
}

/// The self-test in `mode` on `np` processes (`None` without mpirun).
fn job(np: usize, mode: &str) -> Option<Output> {
    let mpirun = launcher()?;
    let mut mpirun = command(mpirun);
    mpirun
        .args(["--oversubscribe", "-np", &np.to_string(), SELFTEST, mode])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Nothing under mpirun may need rank 0's address.
        .env_remove("MASTER_ADDR")
        .env_remove("MASTER_PORT");
    Some(run(mpirun))
}

/// The self-test in `mode` as a world of one (`None` without OpenMPI).
fn alone(mode: &str) -> Option<Output> {
    launcher()?;
    let mut selftest = command(SELFTEST);
    selftest.arg(mode);
    Some(run(selftest))
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every operation gives the hand-computed result at every world size.
#[test]
fn selftest_passes_alone_and_on_2_and_4_processes() {
    let Some(single) = alone("check") else {
        return;
    };
    let (stdout, stderr) = text(&single);
    assert!(single.status.success(), "alone: {stdout}\n{stderr}");
    assert!(stdout.contains("selftest OK: 1 rank(s)"), "{stdout}");
    for np in [2, 4] {
        let Some(output) = job(np, "check") else {
            return;
        };
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "np={np}: {stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("selftest OK: {np} rank(s)")),
            "{stdout}"
        );
    }
}

/// Under mpirun the `nccl` backend's id travels by MPI broadcast: on 2 and
/// 3 processes, with no MASTER_ADDR or MASTER_PORT, every rank gets the 128
/// bytes that rank 0 made (the self-test's fake id: rank 0 makes the even
/// bytes 0, 2, ..., 254; any other rank would make odd ones), and the job
/// ends cleanly (MPI finalized).
#[test]
fn the_nccl_id_reaches_every_rank_by_mpi_broadcast() {
    let rank0_id: String = (0..128u32).map(|i| format!("{:02x}", 2 * i)).collect();
    for np in [2, 3] {
        let Some(output) = job(np, "id-exchange") else {
            return;
        };
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "np={np}: {stdout}\n{stderr}");
        let mut got: Vec<&str> = (stdout.lines())
            .filter(|line| line.starts_with("rank "))
            .collect();
        got.sort_unstable();
        let expected: Vec<String> = (0..np).map(|r| format!("rank {r} id {rank0_id}")).collect();
        assert_eq!(got, expected, "np={np}: {stderr}");
    }
}

/// A rank that describes another job than rank 0's is refused before any
/// id is made, with a message naming the rank and both jobs, and the job
/// ends non-zero.
#[test]
fn a_rank_of_another_job_is_refused_naming_both_jobs() {
    let Some(output) = job(3, "id-mismatch") else {
        return;
    };
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "the mismatch passed: {stdout}");
    let expected = "the MPI broadcast of rank 0's id was refused: rank 2 belongs to another job \
                    (\"selftest job B\"; rank 0's is \"selftest job A\")";
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!stdout.contains(" id "), "a rank got an id: {stdout}");
}

/// A rank that never joins leaves the others with a timeout naming the
/// operation, group and missing peers, and the rank holding the job up;
/// the job then ends non-zero.
#[test]
fn a_missing_peer_times_out_and_ends_the_job() {
    let silent = "which did not answer the progress query";
    let cases = [
        (
            2,
            "timeout-collective",
            format!(
                "all_reduce #0 on group `world` [0, 1] timed out on rank 1 after 2s waiting for \
                 rank(s) [0]; held up by rank 0, {silent}"
            ),
        ),
        (
            4,
            "timeout-recv",
            format!(
                "recv #0 on group `world` [0, 1, 2, 3] timed out on rank 3 after 2s waiting for \
                 rank(s) [0]; held up by rank 0, {silent}"
            ),
        ),
    ];
    for (np, mode, expected) in cases {
        let Some(output) = job(np, mode) else {
            return;
        };
        let (stdout, stderr) = text(&output);
        assert!(
            !output.status.success(),
            "np={np} {mode} succeeded: {stdout}"
        );
        assert!(stderr.contains(&expected), "np={np} {mode}: {stderr}");
        assert!(
            stderr.contains("aborting the MPI job (MPI_Abort)"),
            "{stderr}"
        );
    }
}

/// Rank 2 hangs outside MPI; rank 3 waits for it in a receive, ranks 0 and
/// 1 in an all-reduce that also needs rank 3. Whichever times out names
/// rank 2 as the rank holding the job up, not only its own missing peers.
#[test]
fn a_hung_rank_is_named_by_whichever_rank_times_out() {
    let Some(output) = job(4, "stall") else {
        return;
    };
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "stall succeeded: {stdout}");
    let timeouts: Vec<&str> = (stderr.lines())
        .filter(|line| line.contains(" timed out on rank "))
        .collect();
    assert!(!timeouts.is_empty(), "no timeout reported: {stderr}");
    let world = "group `world` [0, 1, 2, 3]";
    let held_up = "held up by rank 2, which did not answer the progress query";
    for line in timeouts {
        let expected = if line.contains("timed out on rank 3") {
            format!(
                "recv #0 on {world} timed out on rank 3 after 2s waiting for rank(s) [2]; {held_up}"
            )
        } else {
            format!(
                "after 2s waiting for rank(s) [2, 3]; {held_up}: stopped, dead, or busy outside \
                 communication; rank 3 waits for [2] in recv #0 on {world}"
            )
        };
        assert!(line.contains(&expected), "expected `{expected}` in: {line}");
    }
}

/// Alone, a receive nobody sends returns the timeout (nothing to abort).
#[test]
fn alone_a_receive_without_sender_times_out() {
    let Some(output) = alone("timeout-recv") else {
        return;
    };
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("recv #0 on group `world` [0] timed out on rank 0 after 2s"),
        "{stderr}"
    );
}

/// The configuration must match the job that mpirun started.
#[test]
fn config_errors_name_the_key_and_the_fix() {
    // Checked before MPI starts.
    let cases: [(ParallelConfig, &str); 2] = [
        (
            ParallelConfig {
                timeout_s: 0.0,
                ..ParallelConfig::default()
            },
            "parallel.timeout_s = 0 is not a positive",
        ),
        (
            ParallelConfig {
                timeout_s: f64::NAN,
                ..ParallelConfig::default()
            },
            "parallel.timeout_s = NaN is not a positive",
        ),
    ];
    for (cfg, expected) in cases {
        let error: MpiError = mpi_backend(&cfg).err().expect("a config error");
        assert!(error.to_string().contains(expected), "{error}");
    }
    if launcher().is_none() {
        return;
    }
    let four = ParallelConfig {
        world_size: 4,
        ..ParallelConfig::default()
    };
    let error = mpi_backend(&four).err().expect("a world of one, not four");
    let expected =
        "parallel.world_size = 4 but mpirun started 1 process(es); launch with `mpirun -np 4";
    assert!(error.to_string().contains(expected), "{error}");
    let backend = mpi_backend(&ParallelConfig::default()).expect("a world of one");
    assert_eq!((backend.name(), backend.world_size()), ("mpi", 1));
    assert_eq!(backend.local_ranks(), [0]);
}

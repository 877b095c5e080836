//! `cptrain launch` through the binary: children of the same binary get
//! their rank, their output comes back prefixed with it, and a failing
//! child's exit status ends the launch naming the rank.

mod common;

use common::cptrain;

/// Two ranks run `cptrain config`: every line comes back with its rank's
/// prefix, and the launch succeeds.
#[test]
fn launch_runs_every_rank_and_prefixes_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain(
        dir.path(),
        &[
            "launch",
            "--nproc",
            "2",
            "--master-port",
            "0",
            "--",
            "config",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rank in 0..2 {
        let prefix = format!("[rank {rank}] ");
        let lines = stdout.lines().filter(|l| l.starts_with(&prefix)).count();
        assert!(lines > 10, "rank {rank} printed {lines} lines:\n{stdout}");
    }
    assert!(
        stdout.lines().all(|l| l.starts_with("[rank ")),
        "unprefixed output:\n{stdout}"
    );
}

/// A child that fails (here on an unknown command, exit 2) ends the
/// launch with its exit status and a message naming its rank.
#[test]
fn a_failing_child_fails_the_launch_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = cptrain(
        dir.path(),
        &[
            "launch",
            "--nproc",
            "2",
            "--master-port",
            "0",
            "--",
            "no-such-command",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cptrain launch: rank ") && last.contains("exited with status 2"),
        "{stderr}"
    );
}

/// Without a command after `--` (or without --nproc) it is a usage error.
#[test]
fn launch_needs_a_command_and_a_count() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["launch", "--nproc", "2"][..], &["launch", "--", "run"]] {
        let out = cptrain(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

//! What the end-to-end MPI tests share: finding the `cptrain` binary and
//! `mpirun`, and the `mpirun` command line they start it with.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `(cptrain, mpirun)`, or `None` after printing why the test is skipped.
///
/// Needs the `cptrain` binary built with `--features mpi` (`mpi,cuda` for
/// the cuda-emu test), named by `CPTRAIN_BIN` (`.ci/mpi` builds it), and
/// `mpirun`; without them the test is skipped, unless
/// `CPTRAIN_REQUIRE_MPI=1` turns the skip into a failure.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let cptrain = std::env::var_os("CPTRAIN_BIN").map(PathBuf::from);
    let mpirun = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("mpirun"))
            .find(|candidate| candidate.is_file())
    });
    let reason = match (&cptrain, &mpirun) {
        (None, _) => {
            "CPTRAIN_BIN is not set (cargo build --release --features mpi, then \
                      CPTRAIN_BIN=target/release/cptrain)"
        }
        (_, None) => "`mpirun` is not on PATH (apt-get install openmpi-bin)",
        _ => return cptrain.zip(mpirun),
    };
    assert!(
        std::env::var_os("CPTRAIN_REQUIRE_MPI").is_none(),
        "CPTRAIN_REQUIRE_MPI is set but {reason}"
    );
    eprintln!("skipped: {reason}");
    None
}

/// `mpirun --oversubscribe -np <np>`, allowed to run as root, with a quiet
/// Rust runtime.
pub fn mpirun(mpirun: &Path, np: usize) -> Command {
    let mut command = Command::new(mpirun);
    command
        .args(["--oversubscribe", "-np", &np.to_string()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG");
    command
}

/// `--set` arguments, one per `key=value`.
pub fn settings<S: AsRef<str>>(pairs: &[S]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|pair| ["--set".to_string(), pair.as_ref().to_string()])
        .collect()
}

//! `parallel.backend = "nccl"` through the `cptrain` binary on a machine
//! without NCCL or a GPU: `check` and `run` exit 1 naming what is missing,
//! never a panic; a binary built without the feature names the build
//! command. Run with `cargo test --features nccl --test nccl` for the first.

mod common;

use common::cptrain;

/// Without libnccl or a driver, `check` and `run` exit 1 with one message
/// naming the missing libraries and how to get them. (Skipped where NCCL
/// and a GPU are usable.)
#[cfg(feature = "nccl")]
#[test]
fn nccl_without_the_libraries_is_one_clear_error() {
    if cptrain_plugins::nccl::probe(None).is_ok() {
        eprintln!("skipped: this machine has NCCL and a GPU");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for command in ["check", "run"] {
        let out = cptrain(dir.path(), &[command, "--set", "parallel.backend=nccl"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        assert!(
            stderr.contains("parallel.backend = \"nccl\" cannot run on this machine"),
            "{command}: {stderr}"
        );
        let names_what = ["libnccl.so.2", "libcuda.so.1", "no GPU"];
        assert!(
            names_what.iter().any(|what| stderr.contains(what)),
            "{command}: {stderr}"
        );
    }
}

/// A binary built without the `nccl` feature says how to build one.
#[cfg(not(feature = "nccl"))]
#[test]
fn without_the_feature_the_error_names_the_build_command() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["check", "run"] {
        let out = cptrain(dir.path(), &[command, "--set", "parallel.backend=nccl"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("cargo build --release --features nccl"),
            "{command}: {stderr}"
        );
    }
}

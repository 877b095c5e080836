//! The emulator itself: launch checks, and NVRTC compiling every source.
#![cfg(feature = "cuda")]

use cptrain_plugins::cuda::launch::LaunchConfig;
use cptrain_plugins::cuda::sources::SOURCES;
use cptrain_plugins::cuda::{CudaError, emu, nvrtc};

/// A block over CUDA's 1024 threads and an unknown kernel are errors that
/// name the kernel, not crashes.
#[test]
fn bad_launches_are_reported() {
    let config = LaunchConfig {
        grid: [1, 1, 1],
        block: [2048, 1, 1],
        shared_bytes: 0,
    };
    let (x, n, f) = (std::ptr::null_mut::<f32>(), 0i64, 1.0f32);
    let mut params = [
        &raw const x as *mut _,
        &raw const n as *mut _,
        &raw const f as *mut _,
    ];
    // SAFETY: the arguments match `scale_values`, which touches nothing for n = 0.
    let err = unsafe { emu::launch("scale_values", &config, &mut params) }.unwrap_err();
    assert!(
        err.to_string()
            .contains("`scale_values`: launch configuration out of CUDA's limits"),
        "{err}"
    );
    let err = unsafe { emu::launch("no_such_kernel", &config, &mut params) }.unwrap_err();
    assert!(matches!(err, CudaError::Emulation { ref kernel, .. } if kernel == "no_such_kernel"));
}

/// The build found every source and its kernels.
#[test]
fn every_source_declares_kernels() {
    assert!(SOURCES.len() >= 10, "{SOURCES:?}");
    for s in SOURCES {
        assert!(!s.kernels.is_empty(), "{} defines no kernel", s.file);
        assert!(
            !s.self_contained().contains("#include"),
            "{} keeps an include",
            s.file
        );
    }
}

/// Every source compiles with NVRTC for sm_80 and sm_90, and the PTX
/// defines each kernel. Skipped (with the reason printed) when the NVRTC
/// library is missing, unless CPTRAIN_REQUIRE_NVRTC=1 (`.ci/nvrtc`).
#[test]
fn every_source_compiles_with_nvrtc() {
    if !nvrtc::available() {
        let required = std::env::var("CPTRAIN_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CPTRAIN_REQUIRE_NVRTC=1 but {}",
            CudaError::NvrtcMissing
        );
        eprintln!("skipped: {}", CudaError::NvrtcMissing);
        return;
    }
    for arch in nvrtc::ARCHS {
        let ptx = nvrtc::compile_all(arch).unwrap_or_else(|e| panic!("{e}"));
        for (source, ptx) in SOURCES.iter().zip(ptx) {
            let text = ptx.to_src();
            assert!(
                text.contains(&format!(".target {arch}")),
                "{} for {arch}",
                source.file
            );
            for k in source.kernels {
                assert!(
                    text.contains(&format!(".entry {k}(")),
                    "{k} missing from {}",
                    source.file
                );
            }
        }
    }
}

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

/// Whether NVRTC can be loaded; without it a test is skipped (with the
/// reason printed), unless CPTRAIN_REQUIRE_NVRTC=1 (`.ci/nvrtc`) makes that
/// a failure.
fn nvrtc_or_skip() -> bool {
    if nvrtc::available() {
        return true;
    }
    let required = std::env::var("CPTRAIN_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "CPTRAIN_REQUIRE_NVRTC=1 but {}",
        CudaError::NvrtcMissing
    );
    eprintln!("skipped: {}", CudaError::NvrtcMissing);
    false
}

/// A GPU gets machine code of its own major version, for the newest minor
/// not above its own (an A10 of 8.6 runs sm_86, an 8.7 Orin sm_86 too),
/// and PTX of the newest architecture when the library predates it.
#[test]
fn each_gpu_gets_cubin_of_its_architecture_or_ptx_when_newer() {
    use nvrtc::Target::{Cubin, Ptx};
    let supported = [75, 80, 86, 89, 90, 100, 120];
    let cases = [
        ((8, 0), Cubin("sm_80".into())),
        ((8, 6), Cubin("sm_86".into())),
        ((8, 7), Cubin("sm_86".into())),
        ((9, 0), Cubin("sm_90".into())),
        ((12, 1), Cubin("sm_120".into())),
        ((13, 0), Ptx("sm_120".into())),
    ];
    for (capability, target) in cases {
        assert_eq!(
            nvrtc::target_for(capability, &supported),
            target,
            "{capability:?}"
        );
    }
}

/// Every source compiles into machine code for the data-centre and
/// workstation architectures (A100, A10/RTX 30, L40/RTX 40, H100/H200):
/// an ELF image that defines each kernel.
#[test]
fn every_source_compiles_to_cubin() {
    if !nvrtc_or_skip() {
        return;
    }
    let supported = nvrtc::supported_archs().unwrap();
    assert!(
        supported.contains(&80) && supported.contains(&90),
        "{supported:?}"
    );
    for arch in ["sm_80", "sm_86", "sm_89", "sm_90"] {
        for source in SOURCES {
            let cubin = nvrtc::compile_cubin(source, arch).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&cubin[..4], b"\x7fELF", "{} for {arch}", source.file);
            for k in source.kernels {
                let defined = cubin.windows(k.len()).any(|w| w == k.as_bytes());
                assert!(defined, "{k} missing from {} for {arch}", source.file);
            }
        }
    }
}

/// Every source compiles with NVRTC into PTX for sm_80 and sm_90 (the
/// fallback for GPUs newer than the library), and the PTX defines each
/// kernel.
#[test]
fn every_source_compiles_with_nvrtc() {
    if !nvrtc_or_skip() {
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

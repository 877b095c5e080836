//! Run-time compilation of the kernel sources with NVRTC, through `cudarc`
//! (the library is loaded when first used, so the build needs no CUDA).
//!
//! Options are written once, in `options`: the target architecture, and
//! otherwise NVRTC's defaults, which are IEEE-accurate division and square
//! root, no flush-to-zero, and FMA contraction on (`--fmad=true`, as nvcc).
//! `--use_fast_math` stays off: `__expf`-style approximations would move the
//! results further from the CPU kernels than the tests allow.

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

use super::CudaError;
use super::sources::{KernelSource, SOURCES};

/// The architectures every source is compiled for: A100 (`sm_80`) and
/// H100/H200 (`sm_90`).
pub const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

/// Whether the NVRTC library can be loaded. `cudarc` panics on first use
/// when it cannot, so this is checked before anything else.
pub fn available() -> bool {
    // SAFETY: only tries to dlopen the library under its candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The compile options of every source.
fn options(source: &KernelSource, arch: &'static str) -> CompileOptions {
    CompileOptions {
        arch: Some(arch),
        name: Some(source.file.to_string()),
        options: vec!["--std=c++17".to_string()],
        ..Default::default()
    }
}

/// Compiles one source for `arch` into PTX.
pub fn compile(source: &'static KernelSource, arch: &'static str) -> Result<Ptx, CudaError> {
    if !available() {
        return Err(CudaError::NvrtcMissing);
    }
    cudarc::nvrtc::compile_ptx_with_opts(source.self_contained(), options(source, arch)).map_err(
        |e| CudaError::Compile {
            file: source.file,
            arch,
            log: match e {
                CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
                other => format!("{other:?}"),
            },
        },
    )
}

/// Compiles every source for `arch`, in [`SOURCES`] order.
pub fn compile_all(arch: &'static str) -> Result<Vec<Ptx>, CudaError> {
    SOURCES.iter().map(|s| compile(s, arch)).collect()
}

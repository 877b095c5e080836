//! Run-time compilation of the kernel sources with NVRTC, through `cudarc`
//! (the library is loaded when first used, so the build needs no CUDA).
//!
//! A GPU loads machine code (CUBIN) compiled for its own architecture, so
//! the driver neither compiles PTX at startup nor checks the PTX version
//! against its own; PTX for `sm_90` is the fallback for a GPU newer than
//! the NVRTC library knows.
//!
//! Options are written once, in `options`: the target architecture, and
//! otherwise NVRTC's defaults, which are IEEE-accurate division and square
//! root, no flush-to-zero, and FMA contraction on (`--fmad=true`, as nvcc).
//! `--use_fast_math` stays off: `__expf`-style approximations would move the
//! results further from the CPU kernels than the tests allow.

use std::ffi::CString;

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx, result, sys};

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

/// Options besides the architecture, for every source.
const STD: &str = "--std=c++17";

/// The compile options of every source, for PTX of `arch`.
fn options(source: &KernelSource, arch: &str) -> CompileOptions {
    CompileOptions {
        name: Some(source.file.to_string()),
        options: vec![format!("--gpu-architecture={arch}"), STD.to_string()],
        ..Default::default()
    }
}

/// What a GPU loads: machine code for one architecture, or PTX its driver
/// compiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// CUBIN for this architecture (`sm_90`).
    Cubin(String),
    /// PTX for this architecture.
    Ptx(String),
}

/// What to compile for a GPU of compute capability `capability` (`(9, 0)`)
/// when NVRTC supports the architectures `supported` (`90` for sm_90): CUBIN
/// for the newest supported architecture of the GPU's major version not
/// above the GPU (such machine code runs on the later minor versions), else
/// PTX for the newest supported architecture (a GPU newer than the library).
pub fn target_for(capability: (i32, i32), supported: &[i32]) -> Target {
    let (major, minor) = capability;
    let own = supported
        .iter()
        .filter(|&&a| a / 10 == major && a % 10 <= minor)
        .max();
    match own {
        Some(a) => Target::Cubin(format!("sm_{a}")),
        None => Target::Ptx(format!(
            "sm_{}",
            supported.iter().max().copied().unwrap_or(90)
        )),
    }
}

/// The architectures the loaded NVRTC library compiles for (`90` for sm_90).
pub fn supported_archs() -> Result<Vec<i32>, CudaError> {
    if !available() {
        return Err(CudaError::NvrtcMissing);
    }
    let failed = |e: result::NvrtcError| CudaError::Compile {
        file: "(none)",
        arch: "(listing the supported architectures)".into(),
        log: e.to_string(),
    };
    let mut count = 0;
    // SAFETY: NVRTC writes the count, then that many integers.
    unsafe {
        sys::nvrtcGetNumSupportedArchs(&mut count)
            .result()
            .map_err(failed)?;
        let mut archs = vec![0; usize::try_from(count).unwrap_or(0)];
        sys::nvrtcGetSupportedArchs(archs.as_mut_ptr())
            .result()
            .map_err(failed)?;
        Ok(archs)
    }
}

/// Compiles one source into machine code (CUBIN) for `arch` (`sm_80`,
/// `sm_86`, `sm_90`, ...), which GPUs of that architecture load without a
/// JIT step.
pub fn compile_cubin(source: &'static KernelSource, arch: &str) -> Result<Vec<u8>, CudaError> {
    if !available() {
        return Err(CudaError::NvrtcMissing);
    }
    let failed = |log: String| CudaError::Compile {
        file: source.file,
        arch: arch.to_string(),
        log,
    };
    let text = CString::new(source.self_contained()).map_err(|e| failed(e.to_string()))?;
    let name = CString::new(source.file).map_err(|e| failed(e.to_string()))?;
    let program = result::create_program(&text, Some(&name)).map_err(|e| failed(e.to_string()))?;
    let options = [format!("--gpu-architecture={arch}"), STD.to_string()];
    // SAFETY: `program` was created above and is destroyed once, below;
    // `text` and `name` outlive it.
    unsafe {
        let compiled = match result::compile_program(program, &options) {
            Ok(()) => cubin_of(program).map_err(|e| failed(e.to_string())),
            Err(e) => Err(failed(
                program_log(program).unwrap_or_else(|| e.to_string()),
            )),
        };
        let _ = result::destroy_program(program);
        compiled
    }
}

/// The CUBIN of a compiled `program`.
///
/// # Safety
///
/// `program` must be a live, successfully compiled NVRTC program.
unsafe fn cubin_of(program: sys::nvrtcProgram) -> Result<Vec<u8>, result::NvrtcError> {
    let mut size = 0_usize;
    // SAFETY: per the caller; NVRTC writes the size, then `size` bytes.
    unsafe {
        sys::nvrtcGetCUBINSize(program, &mut size).result()?;
        let mut cubin = vec![0_u8; size];
        sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast()).result()?;
        Ok(cubin)
    }
}

/// NVRTC's log of `program`, when it has one.
///
/// # Safety
///
/// `program` must be a live NVRTC program.
unsafe fn program_log(program: sys::nvrtcProgram) -> Option<String> {
    // SAFETY: per the caller.
    let log = unsafe { result::get_program_log(program) }.ok()?;
    let bytes: Vec<u8> = log
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Compiles one source for `arch` into PTX.
pub fn compile(source: &'static KernelSource, arch: &str) -> Result<Ptx, CudaError> {
    if !available() {
        return Err(CudaError::NvrtcMissing);
    }
    cudarc::nvrtc::compile_ptx_with_opts(source.self_contained(), options(source, arch)).map_err(
        |e| CudaError::Compile {
            file: source.file,
            arch: arch.to_string(),
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

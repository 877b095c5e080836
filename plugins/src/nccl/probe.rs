//! What this machine lacks to run the `nccl` backend, found without calling
//! `cudarc` (which panics when a library cannot be loaded).

use super::NcclError;
use crate::cuda::CudaError;

/// The NCCL runtime's file name (the soname of every NCCL 2 release).
const SONAME: &str = "libnccl.so.2";

/// Checks that NCCL and the CUDA driver load and that GPU `gpu` (any GPU
/// with `None`) exists; every missing piece is named, with how to get it.
/// Returns the number of GPUs.
pub fn probe(gpu: Option<usize>) -> Result<usize, NcclError> {
    let mut missing = Vec::new();
    if let Err(problem) = nccl_library() {
        missing.push(problem);
    }
    let gpus = crate::cuda::device::driver_probe(gpu);
    match &gpus {
        Err(CudaError::Unavailable(problem)) => missing.push(problem.clone()),
        Err(other) => missing.push(other.to_string()),
        Ok(_) => {}
    }
    match gpus {
        Ok(count) if missing.is_empty() => Ok(count),
        _ => Err(NcclError::Unavailable(missing.join("; and "))),
    }
}

/// `cudarc` looks NCCL up as `libnccl.so` (and CUDA-versioned names), not
/// as its soname `libnccl.so.2`, which is all the pip wheel ships.
fn nccl_library() -> Result<(), String> {
    // SAFETY: only tries to dlopen the library under cudarc's candidate names.
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        return Ok(());
    }
    // SAFETY: loading NCCL runs no code of ours; its initializers are benign.
    let versioned = unsafe { libloading::Library::new(SONAME) }.is_ok();
    Err(if versioned {
        format!(
            "{SONAME} loads but libnccl.so does not, and that is the name the NCCL binding \
             opens: link it next to the library (ln -s {SONAME} <its directory>/libnccl.so) \
             and keep that directory on LD_LIBRARY_PATH"
        )
    } else {
        format!(
            "the NCCL library ({SONAME}) cannot be loaded: pip install nvidia-nccl-cu12 (then \
             `ln -s libnccl.so.2 libnccl.so` in site-packages/nvidia/nccl/lib and put that \
             directory on LD_LIBRARY_PATH) or install the system package (libnccl2 and \
             libnccl-dev)"
        )
    })
}

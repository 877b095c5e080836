//! The bridge to the C++ emulator: launches a kernel by name.

use std::ffi::{c_int, c_void};

use super::super::CudaError;
use super::super::launch::LaunchConfig;

/// `emu::Launch` in `cuda_emu.h`.
#[repr(C)]
struct EmuLaunch {
    grid: [u32; 3],
    block: [u32; 3],
    shared_bytes: u64,
}

type Launcher = unsafe extern "C" fn(*const EmuLaunch, *mut *mut c_void) -> c_int;

include!(concat!(env!("OUT_DIR"), "/cuda_emu_launchers.rs"));

/// Runs `kernel` to completion on the host.
///
/// # Safety
/// `params` must hold one pointer per kernel argument, in order, each to a
/// value of exactly the argument's C type (`i32` for `int`, `i64` for `long
/// long`, a `#[repr(C)]` struct for a struct, a pointer for a pointer), and
/// every buffer a pointer argument designates must be valid for all the
/// accesses the kernel makes under `config`.
pub unsafe fn launch(
    kernel: &str,
    config: &LaunchConfig,
    params: &mut [*mut c_void],
) -> Result<(), CudaError> {
    let problem = |problem| {
        Err(CudaError::Emulation {
            kernel: kernel.to_string(),
            problem,
        })
    };
    let Some(&(_, launcher)) = LAUNCHERS.iter().find(|(name, _)| *name == kernel) else {
        return problem("no such kernel in the emulation build");
    };
    let emu_launch = EmuLaunch {
        grid: config.grid,
        block: config.block,
        shared_bytes: u64::from(config.shared_bytes),
    };
    // SAFETY: the caller upholds the parameter contract.
    match unsafe { launcher(&emu_launch, params.as_mut_ptr()) } {
        0 => Ok(()),
        1 => problem("launch configuration out of CUDA's limits (threads, grid or shared memory)"),
        2 => problem(
            "threads wait at barriers the others never reach \
             (a divergent __syncthreads or warp shuffle)",
        ),
        _ => problem("unknown emulator status"),
    }
}

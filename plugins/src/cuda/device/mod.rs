//! The CUDA device behind `cptrain::kernels::Kernels`: `CudaKernels`,
//! written once over a `Launcher`, and the
//! two devices made from it: the GPU ([`gpu_kernels`]) and cuda-emu
//! ([`emulated_kernels`]).

mod kernels;
mod memory;
mod pinned;

use std::sync::Arc;

use cptrain::device::DeviceMemory;
use cptrain::kernels::{Kernels, Precision};

use kernels::CudaKernels;
use memory::CudaMemory;

use super::CudaError;
pub use super::driver::driver_probe;
use super::driver::{GpuLauncher, probe};
use super::emu::Emulator;

/// cuda-emu: the CUDA kernels and their host orchestration, run by the
/// emulator on host memory, with the model's products at `precision`.
pub fn emulated_kernels(precision: Precision) -> Arc<dyn Kernels> {
    Arc::new(CudaKernels::new(
        "cuda-emu".into(),
        Box::new(Emulator),
        precision,
    ))
}

/// The kernels of GPU `gpu`, with the model's products at `precision`
/// (`tf32`: cuBLAS may round the inputs of f32 products to TF32). Checks the
/// machine first ([`gpu_probe`]), so it never panics.
pub fn gpu_kernels(
    gpu: usize,
    precision: Precision,
    tf32: bool,
) -> Result<Arc<dyn Kernels>, CudaError> {
    probe(Some(gpu))?;
    let launcher = GpuLauncher::open(gpu, tf32)?;
    Ok(Arc::new(CudaKernels::new(
        format!("cuda:{gpu}"),
        Box::new(launcher),
        precision,
    )))
}

/// Bytes `memory` (of a `cuda` or `cuda-emu` device) has copied to and
/// from the host so far; `None` for other memory. Tests use it to tell
/// device-to-device exchanges from ones staged through the host.
pub fn host_traffic_bytes(memory: &dyn DeviceMemory) -> Option<u64> {
    let memory = memory.as_any().downcast_ref::<CudaMemory>()?;
    Some(memory.host_traffic_bytes())
}

/// Blocks of staging memory (`DeviceMemory::staging`: page-locked on a
/// GPU) `memory` keeps for reuse now; `None` for memory other than a
/// `cuda` or `cuda-emu` device's. Tests use it to see that an exchange
/// staged through that memory.
pub fn staging_blocks_kept(memory: &dyn DeviceMemory) -> Option<usize> {
    let memory = memory.as_any().downcast_ref::<CudaMemory>()?;
    Some(memory.staging_blocks_kept())
}

/// The index of the GPU whose memory `memory` is (`kernels.device =
/// "cuda"`); `None` for any other memory. A backend that runs on that GPU
/// (NCCL) may work on its addresses directly.
pub fn gpu_of(memory: &dyn DeviceMemory) -> Option<usize> {
    let memory = memory.as_any().downcast_ref::<CudaMemory>()?;
    let gpu = memory.launcher().as_any().downcast_ref::<GpuLauncher>()?;
    Some(gpu.ordinal())
}

/// What this machine lacks to run the `cuda` device on GPU `gpu` (any GPU
/// with `None`): the driver library, a GPU, its compute capability, NVRTC,
/// cuBLAS. Returns the number of GPUs.
pub fn gpu_probe(gpu: Option<usize>) -> Result<usize, CudaError> {
    probe(gpu)
}

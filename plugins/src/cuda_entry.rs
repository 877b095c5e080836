//! The components of `kernels.device = "cuda"` (a GPU) and `"cuda-emu"`
//! (the CUDA kernels emulated on the CPU). They exist in every build, so a
//! binary built without the `cuda` feature fails with instructions instead
//! of "no such device"; with it, a probe registered for `check` and `run`
//! says what the machine lacks before anything is created.

use std::sync::Arc;

use appctx::{Config, Scope, component, on_custom};
use cptrain::components::{MachinePeak, RANK_SCOPE};
use cptrain::kernels::{Kernels, KernelsConfig};
use cptrain::parallel::ParallelConfig;
use cptrain::train::RankInfo;

/// The error text of a binary built without the `cuda` feature.
pub const CUDA_NOT_BUILT: &str = "kernels.device = \"cuda\" (and \"cuda-emu\") needs the `cuda` \
     feature: cargo build --release --features cuda";

/// The condition of both components, as the condition report shows it.
const CUDA_BUILT_IN: &str =
    "the `cuda` cargo feature is built in (cargo build --release --features cuda)";

/// Why a CUDA device could not start.
#[derive(Debug, thiserror::Error)]
pub enum CudaDeviceError {
    /// This binary was built without the `cuda` feature.
    #[error("{CUDA_NOT_BUILT}")]
    NotBuilt,
    /// The device failed to start.
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Cuda(#[from] crate::cuda::CudaError),
}

fn rank_scope() -> Scope {
    Scope::named(RANK_SCOPE)
}

/// The GPU of a rank: `kernels.gpu`, else its local rank: its index in this
/// process with the local backend, else the node-local rank the launcher
/// exports (`OMPI_COMM_WORLD_LOCAL_RANK`, `LOCAL_RANK`), else 0.
pub fn rank_gpu(kernels: &KernelsConfig, parallel: &ParallelConfig, rank: usize) -> usize {
    if let Some(gpu) = kernels.gpu {
        return gpu;
    }
    if parallel.backend == "local" {
        return rank;
    }
    ["OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// `kernels.device = "cuda"`: the rank's GPU ([`rank_gpu`]).
fn cuda(
    kernels: Config<KernelsConfig>,
    parallel: Config<ParallelConfig>,
    info: Arc<RankInfo>,
) -> Result<Arc<dyn Kernels>, CudaDeviceError> {
    #[cfg(feature = "cuda")]
    {
        let gpu = rank_gpu(&kernels, &parallel, info.rank);
        let device = crate::cuda::device::gpu_kernels(gpu, kernels.precision, kernels.tf32)?;
        Ok(device)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (kernels, parallel, info);
        Err(CudaDeviceError::NotBuilt)
    }
}
component!(
    cuda,
    select = "kernels.device",
    scope = rank_scope(),
    when = on_custom(CUDA_BUILT_IN, |_| cfg!(feature = "cuda"))
);

/// `kernels.device = "cuda-emu"`: the CUDA kernels in the emulator (tests).
fn cuda_emu(kernels: Config<KernelsConfig>) -> Result<Arc<dyn Kernels>, CudaDeviceError> {
    #[cfg(feature = "cuda")]
    {
        Ok(crate::cuda::device::emulated_kernels(kernels.precision))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = kernels;
        Err(CudaDeviceError::NotBuilt)
    }
}
component!(
    cuda_emu,
    name = "cuda-emu",
    select = "kernels.device",
    scope = rank_scope(),
    when = on_custom(CUDA_BUILT_IN, |_| cfg!(feature = "cuda"))
);

/// GPUs the job computes on: one per rank ([`rank_gpu`]), except that
/// `kernels.gpu` pins every rank of a process to one.
#[cfg(feature = "cuda")]
fn job_gpus(kernels: &KernelsConfig, parallel: &ParallelConfig) -> usize {
    match kernels.gpu {
        Some(_) => parallel.processes(),
        None => parallel.world_size,
    }
}

/// MFU's reference on `kernels.device = "cuda"` when `metrics.peak_gflops`
/// is unset: the matmul rate of rank 0's GPU at `kernels.precision`,
/// measured at startup, times the job's GPUs ([`job_gpus`]).
fn gpu_peak(
    kernels: Config<KernelsConfig>,
    parallel: Config<ParallelConfig>,
) -> Result<Arc<MachinePeak>, CudaDeviceError> {
    #[cfg(feature = "cuda")]
    {
        let gpu = rank_gpu(&kernels, &parallel, 0);
        let one = crate::cuda::peak::measure_gflops(gpu, kernels.precision, kernels.tf32)?;
        Ok(Arc::new(MachinePeak {
            gflops: one * job_gpus(&kernels, &parallel) as f64,
            measured: true,
        }))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (kernels, parallel);
        Err(CudaDeviceError::NotBuilt)
    }
}
component!(
    gpu_peak,
    when = on_custom(
        "kernels.device == cuda, metrics.peak_gflops unset, the `cuda` feature built in",
        |env| cfg!(feature = "cuda")
            && env.get_string("kernels.device").as_deref() == Some("cuda")
            && !env.contains("metrics.peak_gflops")
    )
);

/// `check` and `run` with `kernels.device = "cuda"`: the driver library,
/// the GPU (`kernels.gpu`, or any), its compute capability, NVRTC, cuBLAS.
#[cfg(feature = "cuda")]
fn probe_cuda(kernels: &KernelsConfig) -> Result<(), String> {
    crate::cuda::device::gpu_probe(kernels.gpu)
        .map(drop)
        .map_err(|e| e.to_string())
}
#[cfg(feature = "cuda")]
inventory::submit! {
    cptrain::kernels::DeviceProbe {
        device: "cuda",
        own_memory: true,
        probe: probe_cuda,
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    use super::*;

    /// The GPU peak counts each GPU the job uses once.
    #[test]
    fn the_peak_counts_the_jobs_gpus() {
        let parallel = |backend: &str| ParallelConfig {
            backend: backend.into(),
            world_size: 4,
            ..ParallelConfig::default()
        };
        let pinned = KernelsConfig {
            gpu: Some(0),
            ..KernelsConfig::default()
        };
        let (own, local) = (KernelsConfig::default(), parallel("local"));
        assert_eq!(job_gpus(&own, &local), 4, "rank r on GPU r");
        assert_eq!(job_gpus(&pinned, &local), 1, "every rank on GPU 0");
        assert_eq!(job_gpus(&pinned, &parallel("nccl")), 4, "a GPU per process");
    }
}

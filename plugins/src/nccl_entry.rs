//! The entry point the composition root registers for `parallel.backend =
//! "nccl"`. It exists in every build, so a binary built without the `nccl`
//! feature fails with instructions instead of "no such backend"; with it, a
//! probe registered for `check` and `run` says what the machine lacks
//! (libnccl, the driver, a GPU) before anything is created.

use std::sync::Arc;

use appctx::{Config, component, on_custom};
use cptrain::kernels::KernelsConfig;
use cptrain::parallel::{Backend, ParallelConfig};

/// The error text of a binary built without the `nccl` feature.
pub const NCCL_NOT_BUILT: &str = "parallel.backend = \"nccl\" needs the `nccl` feature: cargo \
     build --release --features nccl";

/// The condition of the `nccl` component, as the condition report shows it.
const NCCL_BUILT_IN: &str =
    "the `nccl` cargo feature is built in (cargo build --release --features nccl)";

/// Why the `nccl` backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum NcclBackendError {
    /// This binary was built without the `nccl` feature.
    #[error("{NCCL_NOT_BUILT}")]
    NotBuilt,
    /// The backend failed to start.
    #[cfg(feature = "nccl")]
    #[error(transparent)]
    Nccl(#[from] crate::nccl::NcclError),
}

/// `parallel.backend = "nccl"`: this process's rank on the GPU
/// `kernels.gpu`, else its local rank's.
fn nccl(
    parallel: Config<ParallelConfig>,
    kernels: Config<KernelsConfig>,
) -> Result<Arc<dyn Backend>, NcclBackendError> {
    #[cfg(feature = "nccl")]
    {
        Ok(Arc::new(crate::nccl::NcclBackend::new(
            &parallel,
            kernels.gpu,
        )?))
    }
    #[cfg(not(feature = "nccl"))]
    {
        let _ = (parallel, kernels);
        Err(NcclBackendError::NotBuilt)
    }
}
component!(
    nccl,
    select = "parallel.backend",
    when = on_custom(NCCL_BUILT_IN, |_| cfg!(feature = "nccl"))
);

/// `check` and `run` with `parallel.backend = "nccl"`: libnccl, the CUDA
/// driver and a GPU.
#[cfg(feature = "nccl")]
fn probe_nccl(_: &ParallelConfig) -> Result<(), String> {
    crate::nccl::probe(None)
        .map(drop)
        .map_err(|e| e.to_string())
}
#[cfg(feature = "nccl")]
inventory::submit! {
    cptrain::parallel::BackendProbe {
        backend: "nccl",
        probe: probe_nccl,
    }
}

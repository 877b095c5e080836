//! Optional cptrain components, each behind a cargo feature.
//!
//! Components that need system libraries live here, so that the default build
//! needs none of them: the `mpi` backend (OpenMPI), the CUDA device and the
//! `nccl` backend (loaded at run time).
//! The binary links this crate from its composition root (`src/lib.rs`), which
//! is what makes `inventory` see the components registered here.
//!
//! - [`mpi_backend`]: the `parallel.backend = "mpi"` backend (feature `mpi`;
//!   without it the function returns [`MpiError::NotBuilt`]).
//! - `cuda`: the CUDA device (`kernels.device = "cuda"` and `"cuda-emu"`):
//!   its kernels, their NVRTC compilation and CPU emulation, and the
//!   `Kernels` implementation over both (feature `cuda`; see `docs/cuda.md`;
//!   without it the components fail with [`CUDA_NOT_BUILT`]).
//! - `nccl`: the `parallel.backend = "nccl"` backend, one process per GPU
//!   (feature `nccl`, which implies `cuda`; without it the component fails
//!   with [`NCCL_NOT_BUILT`]).
//! - [`launch`]: launching one process per GPU (`cptrain launch`), the
//!   launchers' environment variables and the TCP rendezvous (every build).

mod cuda_entry;
pub mod launch;
mod mpi_entry;
mod nccl_entry;

appctx::module!(pub MODULE, name = "cptrain-plugins", requires = ["cptrain"]);
pub use cuda_entry::{CUDA_NOT_BUILT, CudaDeviceError, rank_gpu};
pub use mpi_entry::{MPI_NOT_BUILT, MpiError, mpi_backend};
pub use nccl_entry::{NCCL_NOT_BUILT, NcclBackendError};

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "nccl")]
pub mod nccl;
#[cfg(feature = "mpi")]
pub use mpi_backend::{MpiBackend, MpiGroup};

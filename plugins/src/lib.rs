//! Optional cptrain components, each behind a cargo feature.
//!
//! Components that need system libraries live here, so that the default build
//! needs none of them; today that is the `mpi` backend (OpenMPI).
//! The binary links this crate from its composition root (`src/lib.rs`), which
//! is what makes `inventory` see the components registered here.
//!
//! - [`mpi_backend`]: the `parallel.backend = "mpi"` backend (feature `mpi`;
//!   without it the function returns [`MpiError::NotBuilt`]).
//! - [`cuda`]: the CUDA kernels, their NVRTC compilation and their CPU
//!   emulation (feature `cuda`; see `docs/cuda.md`).

mod mpi_entry;
pub use mpi_entry::{MPI_NOT_BUILT, MpiError, mpi_backend};

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "mpi")]
mod mpi_backend;
#[cfg(feature = "mpi")]
pub use mpi_backend::{MpiBackend, MpiGroup};

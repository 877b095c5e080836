//! The entry point the composition root registers for `parallel.backend =
//! "mpi"`. It exists in every build, so a binary built without the `mpi`
//! feature fails with instructions instead of "no such backend".

use std::sync::Arc;
#[cfg(feature = "mpi")]
use std::time::Duration;

use appctx::{Config, component, on_custom};
use cptrain::parallel::{Backend, ParallelConfig};

/// The error text of a binary built without the `mpi` feature.
pub const MPI_NOT_BUILT: &str = "parallel.backend = \"mpi\" needs the `mpi` feature: cargo build \
     --release --features mpi; install OpenMPI: apt-get install openmpi-bin libopenmpi-dev \
     libclang-dev";

/// The condition of the `mpi` component, as the condition report shows it.
const MPI_BUILT_IN: &str = "the `mpi` cargo feature is built in (cargo build --release --features \
     mpi, after apt-get install openmpi-bin libopenmpi-dev libclang-dev)";

/// Why the MPI backend could not start.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MpiError {
    /// This binary was built without the `mpi` feature.
    #[error("{MPI_NOT_BUILT}")]
    NotBuilt,
    /// `parallel.timeout_s` is not a positive number of seconds.
    #[error(
        "parallel.timeout_s = {value} is not a positive, finite number of seconds; \
         set e.g. parallel.timeout_s = 300"
    )]
    InvalidTimeout {
        /// The configured value.
        value: f64,
    },
    /// `MPI_Init_thread` returned an error code.
    #[error(
        "MPI initialization failed with error code {code}; start the job with mpirun \
         (or run a single process without it)"
    )]
    Init {
        /// The MPI error code.
        code: i32,
    },
    /// The MPI library cannot serialize calls from several threads.
    #[error(
        "the MPI library provides thread level {provided}, below MPI_THREAD_SERIALIZED, which \
         the mpi backend needs (its handles may be waited on from any thread); use an MPI \
         built with thread support (Debian's OpenMPI is)"
    )]
    ThreadLevel {
        /// The level MPI provided.
        provided: i32,
    },
    /// mpirun started a different number of processes than configured.
    #[error(
        "parallel.world_size = {configured} but mpirun started {launched} process(es); launch \
         with `mpirun -np {configured} ...` or set parallel.world_size = {launched}"
    )]
    WorldSizeMismatch {
        /// `parallel.world_size`.
        configured: usize,
        /// The MPI world size.
        launched: usize,
    },
}

/// The backend for `parallel.backend = "mpi"`: one rank per MPI process.
///
/// Checks that `cfg.world_size` equals the number of processes mpirun
/// started and uses `cfg.timeout_s` as the deadline of every operation.
/// Without the `mpi` feature it returns [`MpiError::NotBuilt`].
pub fn mpi_backend(cfg: &ParallelConfig) -> Result<Arc<dyn Backend>, MpiError> {
    #[cfg(feature = "mpi")]
    {
        let timeout = Duration::try_from_secs_f64(cfg.timeout_s)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or(MpiError::InvalidTimeout {
                value: cfg.timeout_s,
            })?;
        let backend = crate::MpiBackend::new(timeout)?;
        let launched = backend.world_size();
        if launched != cfg.world_size {
            return Err(MpiError::WorldSizeMismatch {
                configured: cfg.world_size,
                launched,
            });
        }
        Ok(Arc::new(backend))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = cfg;
        Err(MpiError::NotBuilt)
    }
}

/// The `mpi` choice of `parallel.backend`. Registered in every build, but
/// active only with the feature: a binary without it fails in `prepare()`
/// (so `cptrain check` too), and the condition report says how to build it.
fn mpi_component(parallel: Config<ParallelConfig>) -> Result<Arc<dyn Backend>, MpiError> {
    mpi_backend(&parallel)
}
component!(
    mpi_component,
    name = "mpi",
    select = "parallel.backend",
    when = on_custom(MPI_BUILT_IN, |_| cfg!(feature = "mpi"))
);

#[cfg(all(test, not(feature = "mpi")))]
mod tests {
    use super::*;

    /// Without the feature, asking for the backend says how to get it.
    #[test]
    fn without_the_feature_the_error_says_how_to_enable_it() {
        let error = mpi_backend(&ParallelConfig::default())
            .err()
            .expect("not built");
        let text = error.to_string();
        assert!(
            text.contains("cargo build --release --features mpi"),
            "{text}"
        );
        assert!(text.contains("apt-get install openmpi-bin libopenmpi-dev libclang-dev"));
    }
}

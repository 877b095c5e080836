//! Starting a job of one process per GPU, and its processes finding each
//! other: pure Rust, built in every configuration and tested on the CPU.
//!
//! - [`LaunchEnv`]: rank, world size, local rank and rank 0's address from
//!   torchrun's variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//!   `MASTER_ADDR`, `MASTER_PORT`) or Open MPI's (`OMPI_COMM_WORLD_*`).
//! - [`IdExchange`]: how rank 0 hands every other rank an opaque blob
//!   (NCCL's unique id), after checking that they form one job: by MPI
//!   broadcast under mpirun when the `mpi` feature is built in, else over
//!   the TCP [`rendezvous`].
//! - [`launch`]: `cptrain launch --nproc N -- run ...`, N processes on this
//!   machine with those variables set.

mod env;
mod exchange;
#[cfg(feature = "mpi")]
mod mpi_broadcast;
pub mod rendezvous;
mod spawn;
mod wire;

pub use env::{DEFAULT_MASTER_PORT, LaunchEnv, LaunchEnvError, Launcher, Master};
pub use exchange::{IdExchange, IdExchangeError};
pub use rendezvous::{RendezvousError, RendezvousServer};
pub use spawn::{LaunchError, LaunchSpec, LineSink, Stream, launch, print_lines};
pub use wire::Hello;

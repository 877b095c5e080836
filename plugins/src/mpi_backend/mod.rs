//! The `mpi` backend: ranks are processes started by `mpirun`, groups are
//! MPI communicators, and every wait is a polled non-blocking operation so
//! that it can give up at the configured deadline.

mod backend;
mod core;
mod create;
mod element;
mod group;
mod p2p;
mod poll;
mod runtime;

pub use backend::MpiBackend;
pub use group::MpiGroup;

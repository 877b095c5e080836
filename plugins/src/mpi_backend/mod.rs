//! The `mpi` backend: ranks are processes started by `mpirun`, groups are
//! MPI communicators, and every wait is a polled non-blocking operation so
//! that it can give up at the configured deadline. A wait that times out
//! asks the other processes how far they got, to name the rank that holds
//! the job up (`inquiry.rs`).

mod backend;
mod core;
mod create;
mod element;
mod group;
mod inquiry;
mod p2p;
mod poll;
mod progress;
mod runtime;

pub use backend::MpiBackend;
pub use group::MpiGroup;

//! The `nccl` backend (feature `nccl`): one rank per process and GPU, groups
//! as NCCL communicators split from the world's, collectives on a
//! communication stream of the rank's GPU. Design: `docs/nccl.md`.
//!
//! - [`probe`]: what the machine lacks (libnccl, the driver, a GPU),
//!   checked before `cudarc` is called, because `cudarc` panics when a
//!   library is missing.
//! - `comm`: a raw communicator (init, split, abort, asynchronous errors).
//! - `watchdog`: ends the process when a host-blocking NCCL call outlives
//!   `parallel.timeout_s`.
//! - [`NcclBackend`]: the launch environment, the rendezvous of NCCL's
//!   unique id, the world communicator and the cache of split groups.
//! - `group`: [`cptrain::parallel::ProcessGroup`] over one communicator.
//! - `p2p`: its point-to-point messages, sent from and received into the
//!   GPU's memory where they are for it.
//! - `views`: its collectives on the GPU's memory itself, without host copies.

mod backend;
mod comm;
mod error;
mod group;
mod p2p;
mod probe;
mod views;
mod watchdog;

pub use backend::NcclBackend;
pub use error::NcclError;
pub use probe::probe;

//! The parallel runtime: rank grid, process groups and sequence sharding.
//!
//! - [`ParallelGrid`]: which rank belongs to which TP / CP / DP group.
//! - [`ProcessGroup`]: the communicator contract; [`LocalWorld`] implements
//!   it for ranks that are threads of one process, and [`run_ranks`] runs a
//!   closure on every such rank.
//! - [`BackendProbe`]: a backend plugin's check of the machine, run by
//!   `check` and `run`.
//! - [`find_holdup`]: which rank a timed-out wait really waits for.
//! - [`staged`]: collectives of device memory through the host, for
//!   backends that move host memory only.
//! - [`zigzag_ranges`]: the load-balanced split of a sequence over CP ranks.

mod backend;
mod comm;
mod config;
mod cp_layout;
mod grid;
mod holdup;
mod launch;
mod local;
mod probe;
pub mod staged;
mod stats;
mod wait_log;
mod zigzag;

pub use backend::{Backend, LocalBackend, RankError};
pub use comm::{CommError, GroupInfo, Op, ProcessGroup, RecvHandle, ReduceOp, SendHandle};
pub use config::ParallelConfig;
pub use cp_layout::ZigzagLayout;
pub use grid::{Axis, GridError, GridSpec, GroupKind, ParallelGrid, RankCoords};
pub use holdup::{Activity, Holdup, Wait, find_holdup};
pub use launch::{RankFailure, RunError, run_ranks};
pub use local::{AbortCause, LocalGroup, LocalWorld};
pub use probe::{BackendProbe, probe_backend};
pub use stats::CommStats;
pub use wait_log::{WaitLog, WaitSpan};
pub use zigzag::{ZigzagError, zigzag_ranges};

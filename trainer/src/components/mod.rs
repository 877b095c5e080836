//! cptrain's built-in appctx components. Each is a plain function whose
//! parameters are its dependencies; configuration picks the providers
//! (`parallel.backend`, `data.source`, `kernels.device`, `parallel.cp_comm`),
//! and a plugin crate can add providers under new names.
//!
//! Two scopes: the process-level context (configuration, plan, data, start
//! weights, metrics sinks, the trainer runner) and one child context per rank
//! (scope [`RANK_SCOPE`]: its process groups, kernels, attention and trainer).

mod process;
mod rank;
mod sections;

pub use process::MachinePeak;

/// The scope of the per-rank child contexts.
pub const RANK_SCOPE: &str = "rank";

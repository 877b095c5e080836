use crate::launch::{IdExchangeError, LaunchEnvError, Launcher};

/// Why the `nccl` backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum NcclError {
    /// The machine lacks a library or a GPU; the text lists what.
    #[error("parallel.backend = \"nccl\" cannot run on this machine: {0}")]
    Unavailable(String),
    /// `parallel.timeout_s` is not a positive number of seconds.
    #[error(
        "parallel.timeout_s = {0} is not a positive, finite number of seconds; set e.g. \
         parallel.timeout_s = 300"
    )]
    InvalidTimeout(f64),
    /// A launcher variable is missing or wrong.
    #[error("parallel.backend = \"nccl\": {0}")]
    Env(#[from] LaunchEnvError),
    /// The launcher started another number of processes than configured.
    #[error(
        "parallel.world_size = {configured} but the launcher ({launcher:?}) started \
         {launched} process(es); set parallel.world_size = {launched}, or launch \
         {configured}: cptrain launch --nproc {configured} -- run ..."
    )]
    WorldSizeMismatch {
        /// `parallel.world_size`.
        configured: usize,
        /// The launcher's world size.
        launched: usize,
        /// Which variables said so.
        launcher: Launcher,
    },
    /// The exchange of NCCL's unique id failed.
    #[error("parallel.backend = \"nccl\": {0}")]
    IdExchange(#[from] IdExchangeError),
    /// A CUDA driver or NCCL call failed.
    #[error("{call} failed on rank {rank}: {message}")]
    Call {
        /// What was called.
        call: String,
        /// This process's rank.
        rank: usize,
        /// The library's error.
        message: String,
    },
}

//! [`BackendProbe`]: a backend plugin's check that this machine can run it,
//! made by `check` and `run` before any context is built (the backend
//! itself is created only by `run`).

use super::ParallelConfig;

/// Registered by a backend plugin with `inventory::submit!`: for
/// `parallel.backend = backend`, `probe` says what this machine lacks (a
/// library, a GPU), so `cptrain check` finds it as `run` would.
pub struct BackendProbe {
    /// The `parallel.backend` value it checks.
    pub backend: &'static str,
    /// `Err` names what is missing.
    pub probe: fn(&ParallelConfig) -> Result<(), String>,
}

inventory::collect!(BackendProbe);

/// Runs the probes registered for `cfg.backend` (none for `local`).
pub fn probe_backend(cfg: &ParallelConfig) -> Result<(), String> {
    inventory::iter::<BackendProbe>
        .into_iter()
        .filter(|p| p.backend == cfg.backend)
        .try_for_each(|p| (p.probe)(cfg))
}

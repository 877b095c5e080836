//! [`DeviceProbe`]: a device plugin's check that this machine can run it,
//! made by `check` and `run` before any context is built.

use super::KernelsConfig;

/// Registered by a device plugin with `inventory::submit!`: for
/// `kernels.device = device`, `probe` says what this machine lacks to run
/// it (a driver library, a GPU), so `cptrain check` finds it as `run` would.
pub struct DeviceProbe {
    /// The `kernels.device` value it checks.
    pub device: &'static str,
    /// `Err` names what is missing.
    pub probe: fn(&KernelsConfig) -> Result<(), String>,
}

inventory::collect!(DeviceProbe);

/// Runs the probes registered for `cfg.device` (none for `cpu`).
pub fn probe_device(cfg: &KernelsConfig) -> Result<(), String> {
    inventory::iter::<DeviceProbe>
        .into_iter()
        .filter(|p| p.device == cfg.device)
        .try_for_each(|p| (p.probe)(cfg))
}

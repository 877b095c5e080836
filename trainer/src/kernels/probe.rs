//! [`DeviceProbe`]: a device plugin's check that this machine can run it,
//! made by `check` and `run` before any context is built.

use super::KernelsConfig;

/// Registered by a device plugin with `inventory::submit!`: for
/// `kernels.device = device`, `probe` says what this machine lacks to run
/// it (a driver library, a GPU), so `cptrain check` finds it as `run` would.
pub struct DeviceProbe {
    /// The `kernels.device` value it checks.
    pub device: &'static str,
    /// Whether the device computes in memory of its own (a GPU's), so the
    /// training state does not count against the host's memory.
    pub own_memory: bool,
    /// `Err` names what is missing.
    pub probe: fn(&KernelsConfig) -> Result<(), String>,
}

inventory::collect!(DeviceProbe);

/// Whether `kernels.device` computes in memory of its own (see
/// [`DeviceProbe::own_memory`]); the CPU and devices without a probe use the
/// host's.
pub fn device_has_own_memory(cfg: &KernelsConfig) -> bool {
    inventory::iter::<DeviceProbe>
        .into_iter()
        .any(|p| p.device == cfg.device && p.own_memory)
}

/// Runs the probes registered for `cfg.device` (none for `cpu`).
pub fn probe_device(cfg: &KernelsConfig) -> Result<(), String> {
    inventory::iter::<DeviceProbe>
        .into_iter()
        .filter(|p| p.device == cfg.device)
        .try_for_each(|p| (p.probe)(cfg))
}

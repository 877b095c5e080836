//! The memory of a device other than the host, as device plugins provide it.

use std::fmt;

/// A position in a device's own address space (a CUDA device pointer, for
/// example). The trainer never dereferences it; only the [`DeviceMemory`]
/// that handed it out does.
pub type DeviceAddress = u64;

/// What buffers in a device's memory need from that device: freeing, and
/// copies to and from the host. Addresses and lengths count `f32` values
/// from an address this memory allocated.
pub trait DeviceMemory: Send + Sync + fmt::Debug {
    /// The device, for messages (`cuda:0`).
    fn name(&self) -> &str;

    /// Returns `len` values at `addr` to the device.
    fn free(&self, addr: DeviceAddress, len: usize);

    /// Copies `dst.len()` values at `src` into `dst`, waiting for the work
    /// already queued on the device to finish first.
    fn read(&self, src: DeviceAddress, dst: &mut [f32]) -> Result<(), DeviceError>;

    /// Copies `src` to the device at `dst`.
    fn write(&self, src: &[f32], dst: DeviceAddress) -> Result<(), DeviceError>;
}

/// A device operation that failed (out of memory, a lost device, a failed
/// launch), with the device's own words.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{device}: {message}")]
pub struct DeviceError {
    /// The device, as [`DeviceMemory::name`] gives it.
    pub device: String,
    /// What went wrong.
    pub message: String,
}

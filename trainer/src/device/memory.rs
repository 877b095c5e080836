//! The memory of a device other than the host, as device plugins provide it.

use std::any::Any;
use std::fmt;

use super::Buffer;
#[cfg(doc)]
use super::HostMemory;

/// A position in a device's own address space (a CUDA device pointer, for
/// example). The trainer never dereferences it; only the [`DeviceMemory`]
/// that handed it out does.
pub type DeviceAddress = u64;

/// What buffers in a device's memory need from that device: freeing,
/// copies to and from the host and between devices, and waiting for the
/// device. Addresses and lengths count `f32` values from an address this
/// memory allocated.
pub trait DeviceMemory: Send + Sync + fmt::Debug {
    /// The device, for messages (`cuda:0`).
    fn name(&self) -> &str;

    /// The memory as [`Any`], so that a device can recognise memories of
    /// its own kind in [`DeviceMemory::copy_from`].
    fn as_any(&self) -> &dyn Any;

    /// Returns `len` values at `addr` to the device.
    fn free(&self, addr: DeviceAddress, len: usize);

    /// Copies `dst.len()` values at `src` into `dst`, waiting for the work
    /// already queued on the device to finish first.
    fn read(&self, src: DeviceAddress, dst: &mut [f32]) -> Result<(), DeviceError>;

    /// Copies `src` to the device at `dst`.
    fn write(&self, src: &[f32], dst: DeviceAddress) -> Result<(), DeviceError>;

    /// Waits until the work already queued on the device has finished, so
    /// that another thread or device may read what it wrote.
    fn synchronize(&self) -> Result<(), DeviceError>;

    /// Host memory for `len` values on their way between this device and
    /// another process (a backend that moves host memory only), contents
    /// undefined. By default an ordinary vector; a GPU hands out
    /// page-locked memory ([`HostMemory`]), kept in a pool for reuse.
    fn staging(&self, len: usize) -> Result<Buffer, DeviceError> {
        Ok(Buffer::from(vec![0.0; len]))
    }

    /// Copies `len` values at `src` of `source` (this memory or another) to
    /// `dst`, queued after this device's work. `source` must hold the values
    /// already ([`DeviceMemory::synchronize`]d), and must keep them until this
    /// memory is synchronized. By default the values pass through host
    /// memory; a device that reaches `source` directly (a peer GPU)
    /// overrides this.
    fn copy_from(
        &self,
        dst: DeviceAddress,
        source: &dyn DeviceMemory,
        src: DeviceAddress,
        len: usize,
    ) -> Result<(), DeviceError> {
        copy_through_host(self, dst, source, src, len)
    }
}

/// [`DeviceMemory::copy_from`] through host memory: `source` read into a
/// host buffer, written to `dst` of `memory`.
pub fn copy_through_host(
    memory: &(impl DeviceMemory + ?Sized),
    dst: DeviceAddress,
    source: &dyn DeviceMemory,
    src: DeviceAddress,
    len: usize,
) -> Result<(), DeviceError> {
    let mut staged = vec![0.0; len];
    source.read(src, &mut staged)?;
    memory.write(&staged, dst)
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

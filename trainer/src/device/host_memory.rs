//! [`HostMemory`]: host memory a device hands out for staging.

use std::ops::DerefMut;

/// Host memory a device provides for values on their way between it and
/// other processes ([`DeviceMemory::staging`](super::DeviceMemory::staging)):
/// on a GPU, page-locked memory, which its copies reach at the bus's full
/// speed (from pageable memory the driver first copies through a
/// page-locked buffer of its own). Returned to its device when dropped.
pub trait HostMemory: DerefMut<Target = [f32]> + Send {}

impl<T: DerefMut<Target = [f32]> + Send> HostMemory for T {}

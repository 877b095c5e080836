//! [`Buffer`]: `f32` values owned by one device.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::{DeviceAddress, DeviceError, DeviceMemory, Slice, SliceMut};

/// `f32` values owned by one device: host memory for the CPU, or an
/// allocation in a device's own memory, freed when the buffer drops.
pub struct Buffer {
    repr: Repr,
}

enum Repr {
    Host(Vec<f32>),
    Device {
        memory: Arc<dyn DeviceMemory>,
        addr: DeviceAddress,
        len: usize,
    },
}

impl Buffer {
    /// Takes ownership of `len` values at `addr` of `memory`, to be freed
    /// through it on drop.
    ///
    /// # Safety
    /// `memory` must have allocated `len` values at `addr` for this buffer
    /// alone.
    pub unsafe fn on_device(
        memory: Arc<dyn DeviceMemory>,
        addr: DeviceAddress,
        len: usize,
    ) -> Self {
        Buffer {
            repr: Repr::Device { memory, addr, len },
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Host(v) => v.len(),
            Repr::Device { len, .. } => *len,
        }
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only view of every value.
    pub fn view(&self) -> Slice<'_> {
        match &self.repr {
            Repr::Host(v) => Slice::from(v.as_slice()),
            // SAFETY: the buffer owns the allocation and is borrowed shared.
            Repr::Device { memory, addr, len } => unsafe {
                Slice::on_device(&**memory, *addr, *len)
            },
        }
    }

    /// A writable view of every value.
    pub fn view_mut(&mut self) -> SliceMut<'_> {
        match &mut self.repr {
            Repr::Host(v) => SliceMut::from(v.as_mut_slice()),
            // SAFETY: the buffer owns the allocation and is borrowed exclusively.
            Repr::Device { memory, addr, len } => unsafe {
                SliceMut::on_device(&**memory, *addr, *len)
            },
        }
    }

    /// The values in host memory, when the buffer is there.
    pub fn host(&self) -> Option<&[f32]> {
        match &self.repr {
            Repr::Host(v) => Some(v),
            Repr::Device { .. } => None,
        }
    }

    /// The values in host memory, writable, when the buffer is there.
    pub fn host_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.repr {
            Repr::Host(v) => Some(v),
            Repr::Device { .. } => None,
        }
    }

    /// The values on the host: borrowed when the buffer is host memory,
    /// copied from the device otherwise (checkpoints, samples, reports).
    pub fn to_host(&self) -> Result<Cow<'_, [f32]>, DeviceError> {
        match &self.repr {
            Repr::Host(v) => Ok(Cow::Borrowed(v)),
            Repr::Device { memory, addr, len } => {
                let mut values = vec![0.0; *len];
                memory.read(*addr, &mut values)?;
                Ok(Cow::Owned(values))
            }
        }
    }

    /// The values as a host vector: the buffer's own memory when it is on
    /// the host (no copy), a copy from the device otherwise.
    pub fn into_host(mut self) -> Result<Vec<f32>, DeviceError> {
        match &mut self.repr {
            Repr::Host(v) => Ok(std::mem::take(v)),
            Repr::Device { .. } => Ok(self.to_host()?.into_owned()),
        }
    }

    /// Overwrites every value with `values` from the host (same length).
    pub fn copy_from_host(&mut self, values: &[f32]) -> Result<(), DeviceError> {
        self.view_mut().copy_from(Slice::from(values))
    }
}

impl From<Vec<f32>> for Buffer {
    fn from(values: Vec<f32>) -> Self {
        Buffer {
            repr: Repr::Host(values),
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Repr::Device { memory, addr, len } = &self.repr {
            memory.free(*addr, *len);
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Host(v) => write!(f, "Buffer(host, {} values)", v.len()),
            Repr::Device { memory, addr, len } => {
                write!(f, "Buffer({}, {len} values at {addr:#x})", memory.name())
            }
        }
    }
}

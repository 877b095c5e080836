//! [`Buffer`]: `f32` values owned by one device.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::{DeviceAddress, DeviceError, DeviceMemory, HostMemory, Slice, SliceMut};

/// `f32` values owned by one device: host memory for the CPU, or an
/// allocation in a device's own memory, freed when the buffer drops. Host
/// memory a device handed out ([`HostMemory`]: a message staged through
/// page-locked memory) is host memory too.
pub struct Buffer {
    repr: Repr,
}

enum Repr {
    Host(Vec<f32>),
    Staged(Box<dyn HostMemory>),
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

    /// Values in host memory a device handed out, returned to it on drop.
    pub fn in_host_memory(memory: Box<dyn HostMemory>) -> Self {
        Buffer {
            repr: Repr::Staged(memory),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Host(v) => v.len(),
            Repr::Staged(m) => m.len(),
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
            Repr::Staged(m) => Slice::from(&***m),
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
            Repr::Staged(m) => SliceMut::from(&mut ***m),
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
            Repr::Staged(m) => Some(m),
            Repr::Device { .. } => None,
        }
    }

    /// The values in host memory, writable, when the buffer is there.
    pub fn host_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.repr {
            Repr::Host(v) => Some(v),
            Repr::Staged(m) => Some(m),
            Repr::Device { .. } => None,
        }
    }

    /// The values on the host: borrowed when the buffer is host memory,
    /// copied from the device otherwise (checkpoints, samples, reports).
    pub fn to_host(&self) -> Result<Cow<'_, [f32]>, DeviceError> {
        match &self.repr {
            Repr::Host(v) => Ok(Cow::Borrowed(v)),
            Repr::Staged(m) => Ok(Cow::Borrowed(m)),
            Repr::Device { memory, addr, len } => {
                let mut values = vec![0.0; *len];
                memory.read(*addr, &mut values)?;
                Ok(Cow::Owned(values))
            }
        }
    }

    /// The values as a host vector: the buffer's own memory when it is one
    /// (no copy), a copy otherwise.
    pub fn into_host(self) -> Result<Vec<f32>, DeviceError> {
        match self.into_vec() {
            Ok(values) => Ok(values),
            Err(buffer) => Ok(buffer.to_host()?.into_owned()),
        }
    }

    /// The buffer's own host vector, when it is one; the buffer back
    /// otherwise.
    pub fn into_vec(mut self) -> Result<Vec<f32>, Buffer> {
        match &mut self.repr {
            Repr::Host(v) => Ok(std::mem::take(v)),
            _ => Err(self),
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
            Repr::Staged(m) => write!(f, "Buffer(staging, {} values)", m.len()),
            Repr::Device { memory, addr, len } => {
                write!(f, "Buffer({}, {len} values at {addr:#x})", memory.name())
            }
        }
    }
}

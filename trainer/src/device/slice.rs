//! Borrowed views of a [`Buffer`](super::Buffer) or of host memory: what
//! kernels read ([`Slice`]) and write ([`SliceMut`]).

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Range;

use super::{DeviceAddress, DeviceError, DeviceMemory};

/// Device memory seen through a view: the memory that owns it, where the
/// view starts and how many values it holds.
#[derive(Clone, Copy, Debug)]
struct DeviceSpan<'a> {
    memory: &'a dyn DeviceMemory,
    addr: DeviceAddress,
    len: usize,
}

impl<'a> DeviceSpan<'a> {
    fn range(self, r: Range<usize>) -> Self {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "range {r:?} out of a view of {} values",
            self.len
        );
        DeviceSpan {
            addr: self.addr + (r.start * size_of::<f32>()) as DeviceAddress,
            len: r.len(),
            ..self
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Repr<'a> {
    Host(&'a [f32]),
    Device(DeviceSpan<'a>),
}

/// A read-only view of `f32` values on some device.
#[derive(Clone, Copy, Debug)]
pub struct Slice<'a> {
    repr: Repr<'a>,
}

/// A writable view of `f32` values on some device.
#[derive(Debug)]
pub struct SliceMut<'a> {
    repr: ReprMut<'a>,
}

#[derive(Debug)]
enum ReprMut<'a> {
    Host(&'a mut [f32]),
    /// The lifetime ties the view to the exclusive borrow of its buffer.
    Device(DeviceSpan<'a>, PhantomData<&'a mut [f32]>),
}

impl<'a> Slice<'a> {
    /// A view of device memory: `len` values from `addr`.
    ///
    /// # Safety
    /// `memory` must have allocated `len` values at `addr`, and nothing may
    /// write them while the view lives.
    pub unsafe fn on_device(memory: &'a dyn DeviceMemory, addr: DeviceAddress, len: usize) -> Self {
        Slice {
            repr: Repr::Device(DeviceSpan { memory, addr, len }),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self.repr {
            Repr::Host(s) => s.len(),
            Repr::Device(d) => d.len,
        }
    }

    /// Whether the view holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values `r` of this view.
    pub fn range(self, r: Range<usize>) -> Self {
        let repr = match self.repr {
            Repr::Host(s) => Repr::Host(&s[r]),
            Repr::Device(d) => Repr::Device(d.range(r)),
        };
        Slice { repr }
    }

    /// The first `mid` values and the rest.
    pub fn split_at(self, mid: usize) -> (Self, Self) {
        let len = self.len();
        (self.range(0..mid), self.range(mid..len))
    }

    /// The values, when they are in host memory.
    pub fn host(self) -> Option<&'a [f32]> {
        match self.repr {
            Repr::Host(s) => Some(s),
            Repr::Device(_) => None,
        }
    }

    /// The values on the host: borrowed when the view is host memory,
    /// copied from the device otherwise.
    pub fn to_host(self) -> Result<Cow<'a, [f32]>, DeviceError> {
        match self.repr {
            Repr::Host(s) => Ok(Cow::Borrowed(s)),
            Repr::Device(d) => {
                let mut values = vec![0.0; d.len];
                d.memory.read(d.addr, &mut values)?;
                Ok(Cow::Owned(values))
            }
        }
    }

    /// The values in host memory, for kernels that run on the host.
    ///
    /// Panics when the view is device memory: a kernel set was handed
    /// another device's buffer, a wiring bug rather than a user error.
    pub fn expect_host(self) -> &'a [f32] {
        match self.repr {
            Repr::Host(s) => s,
            Repr::Device(d) => panic!("a host kernel was given memory of {}", d.memory.name()),
        }
    }

    /// The device address and the memory that owns it, when the view is
    /// device memory.
    pub fn device(self) -> Option<(&'a dyn DeviceMemory, DeviceAddress)> {
        match self.repr {
            Repr::Host(_) => None,
            Repr::Device(d) => Some((d.memory, d.addr)),
        }
    }

    /// Waits until the device holding the view has finished the work
    /// queued on it (nothing to wait for in host memory).
    pub fn synchronize(self) -> Result<(), DeviceError> {
        match self.repr {
            Repr::Host(_) => Ok(()),
            Repr::Device(d) => d.memory.synchronize(),
        }
    }
}

impl<'a> From<&'a [f32]> for Slice<'a> {
    fn from(values: &'a [f32]) -> Self {
        Slice {
            repr: Repr::Host(values),
        }
    }
}

impl<'a> From<&'a Vec<f32>> for Slice<'a> {
    fn from(values: &'a Vec<f32>) -> Self {
        Slice::from(values.as_slice())
    }
}

impl<'a> SliceMut<'a> {
    /// A writable view of device memory: `len` values from `addr`.
    ///
    /// # Safety
    /// `memory` must have allocated `len` values at `addr`, and nothing else
    /// may read or write them while the view lives.
    pub unsafe fn on_device(memory: &'a dyn DeviceMemory, addr: DeviceAddress, len: usize) -> Self {
        SliceMut {
            repr: ReprMut::Device(DeviceSpan { memory, addr, len }, PhantomData),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.repr {
            ReprMut::Host(s) => s.len(),
            ReprMut::Device(d, _) => d.len,
        }
    }

    /// Whether the view holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A shorter-lived writable view of the same values.
    pub fn reborrow(&mut self) -> SliceMut<'_> {
        let repr = match &mut self.repr {
            ReprMut::Host(s) => ReprMut::Host(s),
            ReprMut::Device(d, _) => ReprMut::Device(*d, PhantomData),
        };
        SliceMut { repr }
    }

    /// A read-only view of the same values.
    pub fn as_slice(&self) -> Slice<'_> {
        let repr = match &self.repr {
            ReprMut::Host(s) => Repr::Host(s),
            ReprMut::Device(d, _) => Repr::Device(*d),
        };
        Slice { repr }
    }

    /// The values `r` of this view.
    pub fn range(self, r: Range<usize>) -> Self {
        let repr = match self.repr {
            ReprMut::Host(s) => ReprMut::Host(&mut s[r]),
            ReprMut::Device(d, _) => ReprMut::Device(d.range(r), PhantomData),
        };
        SliceMut { repr }
    }

    /// The first `mid` values and the rest, both writable.
    pub fn split_at(self, mid: usize) -> (Self, Self) {
        match self.repr {
            ReprMut::Host(s) => {
                let (a, b) = s.split_at_mut(mid);
                (a.into(), b.into())
            }
            ReprMut::Device(d, _) => {
                let (a, b) = (d.range(0..mid), d.range(mid..d.len));
                let view = |span| SliceMut {
                    repr: ReprMut::Device(span, PhantomData),
                };
                (view(a), view(b))
            }
        }
    }

    /// The values, when they are in host memory.
    pub fn host(self) -> Option<&'a mut [f32]> {
        match self.repr {
            ReprMut::Host(s) => Some(s),
            ReprMut::Device(..) => None,
        }
    }

    /// The values in host memory, for kernels that run on the host; panics
    /// like [`Slice::expect_host`].
    pub fn expect_host(self) -> &'a mut [f32] {
        match self.repr {
            ReprMut::Host(s) => s,
            ReprMut::Device(d, _) => {
                panic!("a host kernel was given memory of {}", d.memory.name())
            }
        }
    }

    /// The device address and the memory that owns it, when the view is
    /// device memory.
    pub fn device(&self) -> Option<(&'a dyn DeviceMemory, DeviceAddress)> {
        match &self.repr {
            ReprMut::Host(_) => None,
            ReprMut::Device(d, _) => Some((d.memory, d.addr)),
        }
    }

    /// Overwrites the values with `src`'s (same length), wherever either
    /// lives: host to host, between the host and a device, or from one
    /// device's memory to another's ([`DeviceMemory::copy_from`], queued on
    /// this view's device; synchronize it before `src` changes).
    pub fn copy_from(&mut self, src: Slice<'_>) -> Result<(), DeviceError> {
        assert_eq!(src.len(), self.len(), "copy between views of other lengths");
        match (&mut self.repr, src.repr) {
            (ReprMut::Host(dst), Repr::Host(src)) => dst.copy_from_slice(src),
            (ReprMut::Host(dst), Repr::Device(s)) => s.memory.read(s.addr, dst)?,
            (ReprMut::Device(d, _), Repr::Host(src)) => d.memory.write(src, d.addr)?,
            (ReprMut::Device(d, _), Repr::Device(s)) => {
                (d.memory).copy_from(d.addr, s.memory, s.addr, s.len)?
            }
        }
        Ok(())
    }
}

impl<'a> From<&'a mut [f32]> for SliceMut<'a> {
    fn from(values: &'a mut [f32]) -> Self {
        SliceMut {
            repr: ReprMut::Host(values),
        }
    }
}

impl<'a> From<&'a mut Vec<f32>> for SliceMut<'a> {
    fn from(values: &'a mut Vec<f32>) -> Self {
        SliceMut::from(values.as_mut_slice())
    }
}

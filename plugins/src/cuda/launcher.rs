//! [`Launcher`]: what the host orchestration of the kernels ([`ops`](super::ops))
//! needs from a device, with two implementations: the GPU through the CUDA
//! driver and cuBLAS (`driver`), and cuda-emu ([`Emulator`](super::emu::Emulator)),
//! whose device memory is host memory.
//!
//! Device memory is named by [`Span`]s: an address in the launcher's
//! address space and a count of `f32` values. Scratch buffers of other
//! element types (token ids, partial sums, bucket indices) are [`Scratch`]
//! allocations, freed when dropped, in stream order.

use std::alloc::Layout;
use std::any::Any;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::CudaError;
use super::gemm::{GemmInputs, Sgemm};
use super::launch::LaunchConfig;

/// A device that runs the kernels: its memory, kernel launches and GEMMs.
///
/// Every operation is queued in order on one stream; only [`Launcher::read`]
/// waits for the queued work. Addresses are what [`Launcher::alloc`]
/// returned, plus offsets.
pub trait Launcher: Send + Sync {
    /// `bytes` bytes of device memory, 256-byte aligned, contents undefined
    /// (never called with 0).
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError>;

    /// Like [`Launcher::alloc`], for memory another party (a backend) will
    /// write at once, from its own stream: usable by any stream on return,
    /// without waiting for the work queued here. The GPU allocates on its
    /// transfer stream and waits for that stream alone; by default (the
    /// emulator, whose allocations are immediate) [`Launcher::alloc`].
    fn alloc_beside(&self, bytes: usize) -> Result<u64, CudaError> {
        self.alloc(bytes)
    }

    /// Returns an allocation of `bytes` bytes at `addr` (queued after the
    /// work already queued, so kernels still reading it are safe).
    ///
    /// # Safety
    /// `addr` must come from [`Launcher::alloc`] with the same `bytes`, and be
    /// freed once.
    unsafe fn free(&self, addr: u64, bytes: usize);

    /// `bytes` bytes of zeroed host memory for staging, aligned for any
    /// value: page-locked on the GPU (`cuMemHostAlloc`), so copies between
    /// it and the device need no staging by the driver. By default
    /// ordinary host memory (the emulator's device memory is host memory).
    fn alloc_host(&self, bytes: usize) -> Result<NonNull<u8>, CudaError> {
        // SAFETY: the layout has a non-zero size (the callers' contract).
        let ptr = unsafe { std::alloc::alloc_zeroed(host_layout(bytes)?) };
        NonNull::new(ptr).ok_or(CudaError::OutOfMemory { bytes })
    }

    /// Returns host memory from [`Launcher::alloc_host`].
    ///
    /// # Safety
    /// `ptr` must come from [`Launcher::alloc_host`] with the same `bytes`,
    /// and be freed once, when nothing reads or writes it any more.
    unsafe fn free_host(&self, ptr: NonNull<u8>, bytes: usize) {
        if let Ok(layout) = host_layout(bytes) {
            // SAFETY: allocated by the default `alloc_host` with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }

    /// Copies `src` to the device at `dst`; `src` may be dropped on return
    /// unless it is page-locked memory of [`Launcher::alloc_host`], which
    /// must be kept until the launcher is synchronized.
    ///
    /// # Safety
    /// `dst..dst + src.len()` must be device memory of this launcher.
    unsafe fn write(&self, src: &[u8], dst: u64) -> Result<(), CudaError>;

    /// Waits for the queued work, then copies `dst.len()` bytes at `src`.
    ///
    /// # Safety
    /// `src..src + dst.len()` must be device memory of this launcher.
    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), CudaError>;

    /// Waits for the queued work.
    fn synchronize(&self) -> Result<(), CudaError>;

    /// The launcher as [`Any`], to recognise another launcher of its kind.
    fn as_any(&self) -> &dyn Any;

    /// Copies `bytes` bytes at `src` of `source`'s memory to `dst`, queued
    /// after this launcher's work; `Ok(false)`, copying nothing, when
    /// `source` is not a launcher of this kind.
    ///
    /// # Safety
    /// `src..src + bytes` must be memory of `source` whose values are
    /// written (its work synchronized) and kept until this launcher is
    /// synchronized; `dst..dst + bytes` must be memory of this launcher.
    unsafe fn copy_from(
        &self,
        source: &dyn Launcher,
        src: u64,
        dst: u64,
        bytes: usize,
    ) -> Result<bool, CudaError>;

    /// A new allocation of `bytes` bytes holding a copy of `src` of
    /// `source`'s memory (a message another rank sent); `Ok(None)`,
    /// allocating nothing, when `source` is not a launcher of this kind.
    /// Returns once the copy is done, so `source` may free `src`; later
    /// work of this launcher may use the allocation, which
    /// [`Launcher::free`] returns.
    ///
    /// By default the copy is queued after this launcher's work and waited
    /// for with it. The GPU copies on a transfer stream of its own instead,
    /// so the kernels already queued (the attention of a ring step) run
    /// while the next block arrives, and the host waits for the copy alone.
    ///
    /// # Safety
    /// `src..src + bytes` must be memory of `source` whose values are
    /// written (its work synchronized) and kept until this returns.
    unsafe fn fetch(
        &self,
        source: &dyn Launcher,
        src: u64,
        bytes: usize,
    ) -> Result<Option<u64>, CudaError> {
        let dst = self.alloc(bytes)?;
        // SAFETY: `dst` was just allocated with `bytes` bytes; `src` is the
        // caller's contract.
        let copied = unsafe { self.copy_from(source, src, dst, bytes) }
            .and_then(|copied| self.synchronize().map(|()| copied));
        match copied {
            Ok(true) => Ok(Some(dst)),
            other => {
                // SAFETY: allocated above, not handed out.
                unsafe { self.free(dst, bytes) };
                other.map(|_| None)
            }
        }
    }

    /// Sets `bytes` bytes at `dst` to zero.
    ///
    /// # Safety
    /// `dst..dst + bytes` must be device memory of this launcher.
    unsafe fn zero(&self, dst: u64, bytes: usize) -> Result<(), CudaError>;

    /// Launches `kernel` with cuLaunchKernel-style `params`.
    ///
    /// # Safety
    /// `params` must hold one pointer per kernel argument, in order, each to
    /// a value of exactly the argument's C type (a `u64` address for a
    /// pointer), and every address must be valid for all the accesses the
    /// kernel makes under `config`.
    unsafe fn launch(
        &self,
        kernel: &'static str,
        config: &LaunchConfig,
        params: &mut [*mut c_void],
    ) -> Result<(), CudaError>;

    /// The column-major product `g` on the matrices at `a` and `b`, whose
    /// elements are `inputs`, into the f32 matrix at `c`.
    ///
    /// # Safety
    /// The addresses must hold the matrices `g` describes.
    unsafe fn gemm(
        &self,
        g: &Sgemm,
        inputs: GemmInputs,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<(), CudaError>;
}

/// The layout of the default [`Launcher::alloc_host`]'s blocks.
fn host_layout(bytes: usize) -> Result<Layout, CudaError> {
    Layout::from_size_align(bytes, 64).map_err(|_| CudaError::OutOfMemory { bytes })
}

/// `len` `f32` values of device memory at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Address of the first value.
    pub addr: u64,
    /// Number of values.
    pub len: usize,
}

impl Span {
    /// A span over host memory: device memory of the emulator only.
    pub fn host(values: &[f32]) -> Self {
        Span {
            addr: values.as_ptr() as u64,
            len: values.len(),
        }
    }

    /// A span over writable host memory: device memory of the emulator only.
    pub fn host_mut(values: &mut [f32]) -> Self {
        Span {
            addr: values.as_mut_ptr() as u64,
            len: values.len(),
        }
    }
}

/// Element types of scratch buffers: plain values without padding.
pub trait Plain: Copy + Default + 'static {}
impl Plain for f32 {}
impl Plain for f64 {}
impl Plain for u32 {}
impl Plain for i32 {}
impl Plain for i64 {}

fn bytes_of<T: Plain>(values: &[T]) -> &[u8] {
    // SAFETY: `Plain` types have no padding and any bytes are valid `u8`s.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), size_of_val(values)) }
}

/// A device buffer of `len` values of `T` owned by one operation, freed on
/// drop (in stream order, after the kernels that use it).
pub struct Scratch<'d, T: Plain> {
    dev: &'d dyn Launcher,
    addr: u64,
    len: usize,
    kind: PhantomData<T>,
}

impl<'d, T: Plain> Scratch<'d, T> {
    /// `len` zeros.
    pub fn zeroed(dev: &'d dyn Launcher, len: usize) -> Result<Self, CudaError> {
        let s = Self::uninit(dev, len)?;
        if len > 0 {
            // SAFETY: the allocation holds `len` values.
            unsafe { dev.zero(s.addr, len * size_of::<T>())? };
        }
        Ok(s)
    }

    /// A copy of `values`.
    pub fn from_host(dev: &'d dyn Launcher, values: &[T]) -> Result<Self, CudaError> {
        let s = Self::uninit(dev, values.len())?;
        if !values.is_empty() {
            // SAFETY: the allocation holds `values.len()` values.
            unsafe { dev.write(bytes_of(values), s.addr)? };
        }
        Ok(s)
    }

    /// `len` values of undefined contents, for an output a kernel writes
    /// whole.
    pub fn uninit(dev: &'d dyn Launcher, len: usize) -> Result<Self, CudaError> {
        let addr = if len == 0 {
            0
        } else {
            dev.alloc(len * size_of::<T>())?
        };
        Ok(Scratch {
            dev,
            addr,
            len,
            kind: PhantomData,
        })
    }

    /// The device address of the first value.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The address of value `i`.
    pub fn addr_at(&self, i: usize) -> u64 {
        self.addr + (i * size_of::<T>()) as u64
    }

    /// Waits for the queued work and copies the values to the host.
    pub fn to_host(&self) -> Result<Vec<T>, CudaError> {
        let mut values = vec![T::default(); self.len];
        if self.len > 0 {
            // SAFETY: `Plain` values take any bytes; the allocation holds
            // `len` values.
            unsafe {
                let bytes = std::slice::from_raw_parts_mut(
                    values.as_mut_ptr().cast::<u8>(),
                    size_of_val(values.as_slice()),
                );
                self.dev.read(self.addr, bytes)?;
            }
        }
        Ok(values)
    }
}

impl Scratch<'_, f32> {
    /// The whole buffer as a [`Span`].
    pub fn span(&self) -> Span {
        Span {
            addr: self.addr,
            len: self.len,
        }
    }
}

impl<T: Plain> Drop for Scratch<'_, T> {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated by `uninit` with this size, freed once.
            unsafe { self.dev.free(self.addr, self.len * size_of::<T>()) };
        }
    }
}

/// Builds a kernel parameter array from local variables: a pointer to each.
macro_rules! params {
    ($($v:ident),* $(,)?) => {
        [$(std::ptr::addr_of!($v) as *mut std::ffi::c_void),*]
    };
}
pub(crate) use params;

//! [`CudaMemory`]: a [`Launcher`]'s memory as the trainer's
//! [`DeviceMemory`], and the device's sticky error.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cptrain::device::{Buffer, DeviceAddress, DeviceError, DeviceMemory, copy_through_host};

use super::pinned::PinnedPool;
use crate::cuda::CudaError;
use crate::cuda::launcher::Launcher;

/// The memory of one device (`cuda:N` or `cuda-emu`), and the first error
/// its work met. Like a CUDA context, the device stops at its first error:
/// later work is skipped, and every call that can report an error (an
/// allocation, a copy to or from the host) reports that one.
pub struct CudaMemory {
    name: String,
    launcher: Arc<dyn Launcher>,
    /// Host memory for staging ([`DeviceMemory::staging`]).
    pinned: Arc<PinnedPool>,
    failed: Mutex<Option<DeviceError>>,
    /// Bytes of buffers held now, and the most held at once.
    held: AtomicU64,
    peak: AtomicU64,
    /// Bytes copied between this device and the host.
    host_traffic: AtomicU64,
}

impl CudaMemory {
    /// The memory of `launcher`, called `name` in messages.
    pub fn new(name: String, launcher: Box<dyn Launcher>) -> Self {
        let launcher: Arc<dyn Launcher> = Arc::from(launcher);
        CudaMemory {
            name,
            pinned: PinnedPool::new(launcher.clone()),
            launcher,
            failed: Mutex::new(None),
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            host_traffic: AtomicU64::new(0),
        }
    }

    /// Counts a new buffer of `bytes`.
    pub fn note_alloc(&self, bytes: usize) {
        let held = self.held.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        self.peak.fetch_max(held, Ordering::Relaxed);
    }

    /// The most bytes of buffers held at once so far (kernels' short-lived
    /// scratch not counted).
    pub fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Blocks of staging memory kept for reuse now.
    pub fn staging_blocks_kept(&self) -> usize {
        self.pinned.kept()
    }

    /// Bytes copied between this device and the host so far, through
    /// [`DeviceMemory::read`] and [`DeviceMemory::write`] (uploads,
    /// downloads, and exchanges that pass through the host).
    pub fn host_traffic_bytes(&self) -> u64 {
        self.host_traffic.load(Ordering::Relaxed)
    }

    fn count_host_traffic(&self, bytes: usize) {
        self.host_traffic.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The launcher that runs this device's work.
    pub fn launcher(&self) -> &dyn Launcher {
        &*self.launcher
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, Option<DeviceError>> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device's first error, if it met one.
    pub fn first_error(&self) -> Option<DeviceError> {
        self.failed().clone()
    }

    /// `error` as the trainer's [`DeviceError`] of this device.
    pub fn device_error(&self, error: &CudaError) -> DeviceError {
        DeviceError {
            device: self.name.clone(),
            message: error.to_string(),
        }
    }

    /// Runs `work` unless the device already failed; keeps (and logs) its
    /// error as the device's first. `None` when it did not run or failed.
    pub fn run<T>(&self, work: impl FnOnce(&dyn Launcher) -> Result<T, CudaError>) -> Option<T> {
        if self.failed().is_some() {
            return None;
        }
        match work(self.launcher()) {
            Ok(value) => Some(value),
            Err(error) => {
                let error = self.device_error(&error);
                tracing::error!("{error}; the device stops here, later results are NaN");
                self.failed().get_or_insert(error);
                None
            }
        }
    }

    /// Like [`CudaMemory::run`], returning the device's error instead.
    pub fn try_run<T>(
        &self,
        work: impl FnOnce(&dyn Launcher) -> Result<T, CudaError>,
    ) -> Result<T, DeviceError> {
        match self.run(work) {
            Some(value) => Ok(value),
            None => Err(self.first_error().unwrap_or_else(|| DeviceError {
                device: self.name.clone(),
                message: "failed".into(),
            })),
        }
    }

    /// `len` values (not zero) of this memory, contents undefined, usable by
    /// another stream at once ([`Launcher::alloc_beside`]: on the GPU, not
    /// waiting for this device's queued kernels).
    pub fn alloc_beside(&self, len: usize) -> Result<DeviceAddress, DeviceError> {
        let bytes = len * size_of::<f32>();
        let addr = self.try_run(|dev| dev.alloc_beside(bytes))?;
        self.note_alloc(bytes);
        Ok(addr)
    }

    /// A new allocation of this memory holding a copy of `len` values at
    /// `src` of `source` ([`Launcher::fetch`]: on the GPU, a transfer
    /// stream that does not wait for this device's queued kernels);
    /// `Ok(None)` when `source` is memory of another kind of launcher.
    /// `source`'s values must be written and kept until this returns.
    pub fn fetch(
        &self,
        source: &CudaMemory,
        src: DeviceAddress,
        len: usize,
    ) -> Result<Option<DeviceAddress>, DeviceError> {
        let bytes = len * size_of::<f32>();
        // SAFETY: `src` holds `len` values of `source`, written and kept
        // (this method's contract).
        let fetched = self.try_run(|dev| unsafe { dev.fetch(source.launcher(), src, bytes) })?;
        if fetched.is_some() {
            self.note_alloc(bytes);
        }
        Ok(fetched)
    }
}

impl fmt::Debug for CudaMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CudaMemory({})", self.name)
    }
}

impl DeviceMemory for CudaMemory {
    fn name(&self) -> &str {
        &self.name
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn free(&self, addr: DeviceAddress, len: usize) {
        if len > 0 {
            // SAFETY: buffers of this memory come from `CudaKernels::alloc`,
            // which allocated `len` values at `addr`; each is freed once.
            unsafe { self.launcher.free(addr, len * size_of::<f32>()) };
            let bytes = (len * size_of::<f32>()) as u64;
            self.held.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    fn read(&self, src: DeviceAddress, dst: &mut [f32]) -> Result<(), DeviceError> {
        if dst.is_empty() {
            return Ok(());
        }
        self.count_host_traffic(size_of_val(dst));
        self.try_run(|dev| {
            // SAFETY: any bytes are valid f32 values; `src` holds `dst.len()`
            // values (the DeviceMemory contract).
            unsafe {
                let bytes =
                    std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), size_of_val(dst));
                dev.read(src, bytes)
            }
        })
    }

    fn write(&self, src: &[f32], dst: DeviceAddress) -> Result<(), DeviceError> {
        if src.is_empty() {
            return Ok(());
        }
        self.count_host_traffic(size_of_val(src));
        self.try_run(|dev| {
            // SAFETY: `dst` holds `src.len()` values (the DeviceMemory contract).
            unsafe {
                let bytes = std::slice::from_raw_parts(src.as_ptr().cast::<u8>(), size_of_val(src));
                dev.write(bytes, dst)
            }
        })
    }

    fn synchronize(&self) -> Result<(), DeviceError> {
        self.try_run(|dev| dev.synchronize())
    }

    /// From the device's pool of page-locked blocks. Allocating one does not
    /// stop the device when it fails.
    fn staging(&self, len: usize) -> Result<Buffer, DeviceError> {
        if len == 0 {
            return Ok(Buffer::from(Vec::new()));
        }
        let staging = self.pinned.take(len).map_err(|e| self.device_error(&e))?;
        Ok(Buffer::in_host_memory(Box::new(staging)))
    }

    /// Device to device when `source` is memory of a launcher of the same
    /// kind (a GPU, the same or a peer, or another emulated device),
    /// through the host otherwise. A failure of `source`'s kernel set is
    /// its own rank's to report: its memory is still read.
    fn copy_from(
        &self,
        dst: DeviceAddress,
        source: &dyn DeviceMemory,
        src: DeviceAddress,
        len: usize,
    ) -> Result<(), DeviceError> {
        let Some(peer) = source.as_any().downcast_ref::<CudaMemory>() else {
            return copy_through_host(self, dst, source, src, len);
        };
        if len == 0 {
            return Ok(());
        }
        let bytes = len * size_of::<f32>();
        // SAFETY: `src` holds `len` values of `peer`, written and kept
        // (the DeviceMemory contract); `dst` holds `len` values of this memory.
        let copied =
            self.try_run(|dev| unsafe { dev.copy_from(peer.launcher(), src, dst, bytes) })?;
        if copied {
            return Ok(());
        }
        copy_through_host(self, dst, source, src, len)
    }
}

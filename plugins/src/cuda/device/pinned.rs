//! [`PinnedPool`]: a device's staging memory (page-locked on a GPU), kept
//! for reuse, since allocating page-locked memory costs far more than a
//! copy through it.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cuda::CudaError;
use crate::cuda::launcher::Launcher;

/// Free blocks kept at most; a block returned beyond them is freed.
const KEPT_BLOCKS: usize = 8;

/// A block of host memory from [`Launcher::alloc_host`].
struct Block {
    ptr: NonNull<u8>,
    /// Capacity in `f32` values.
    capacity: usize,
}

// SAFETY: a block is plain host memory owned by one holder at a time.
unsafe impl Send for Block {}

/// The staging memory of one device: blocks from its launcher, handed out
/// as [`Staging`] and returned to the pool when it drops.
pub struct PinnedPool {
    launcher: Arc<dyn Launcher>,
    free: Mutex<Vec<Block>>,
}

impl PinnedPool {
    /// An empty pool of `launcher`'s host memory.
    pub fn new(launcher: Arc<dyn Launcher>) -> Arc<Self> {
        Arc::new(PinnedPool {
            launcher,
            free: Mutex::new(Vec::new()),
        })
    }

    fn free(&self) -> MutexGuard<'_, Vec<Block>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `len` values (not zero) of staging memory: the smallest kept block
    /// that holds them, or a new block of at least `len` values (rounded
    /// up to a power of two, so that sizes that vary a little reuse one).
    pub fn take(self: &Arc<Self>, len: usize) -> Result<Staging, CudaError> {
        let reused = {
            let mut free = self.free();
            let fitting = (free.iter().enumerate())
                .filter(|(_, b)| b.capacity >= len)
                .min_by_key(|(_, b)| b.capacity)
                .map(|(i, _)| i);
            fitting.map(|i| free.swap_remove(i))
        };
        let block = match reused {
            Some(block) => block,
            None => {
                let capacity = len.next_power_of_two();
                let ptr = self.launcher.alloc_host(capacity * size_of::<f32>())?;
                Block { ptr, capacity }
            }
        };
        Ok(Staging {
            pool: self.clone(),
            block: Some(block),
            len,
        })
    }

    /// Keeps `block` for reuse, or frees the smallest block when the pool
    /// holds enough already.
    fn give_back(&self, block: Block) {
        let mut free = self.free();
        free.push(block);
        if free.len() > KEPT_BLOCKS {
            let smallest = (free.iter().enumerate())
                .min_by_key(|(_, b)| b.capacity)
                .map(|(i, _)| i);
            if let Some(i) = smallest {
                let block = free.swap_remove(i);
                drop(free);
                self.release(block);
            }
        }
    }

    fn release(&self, block: Block) {
        // SAFETY: from `alloc_host` with this size; nobody holds it.
        unsafe {
            (self.launcher).free_host(block.ptr, block.capacity * size_of::<f32>());
        }
    }

    /// Blocks kept for reuse now (tests).
    pub fn kept(&self) -> usize {
        self.free().len()
    }
}

impl Drop for PinnedPool {
    fn drop(&mut self) {
        for block in std::mem::take(&mut *self.free()) {
            self.release(block);
        }
    }
}

/// `len` values of a pool's staging memory, returned to the pool on drop.
pub struct Staging {
    pool: Arc<PinnedPool>,
    block: Option<Block>,
    len: usize,
}

impl Staging {
    fn block(&self) -> &Block {
        self.block
            .as_ref()
            .expect("a staging block is held until drop")
    }
}

impl Deref for Staging {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: the block holds at least `len` initialized values (zeroed
        // when allocated, written since) and is this staging's alone.
        unsafe { std::slice::from_raw_parts(self.block().ptr.as_ptr().cast(), self.len) }
    }
}

impl DerefMut for Staging {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as above, borrowed exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.block().ptr.as_ptr().cast(), self.len) }
    }
}

impl Drop for Staging {
    /// Returns the block once the device's queued work is done: a copy from
    /// page-locked memory to the device runs after the call that queued it
    /// returned (from pageable memory the driver stages it first), and must
    /// not read the block after its next user wrote it. A block whose
    /// device failed is not reused.
    fn drop(&mut self) {
        if let Some(block) = self.block.take()
            && self.pool.launcher.synchronize().is_ok()
        {
            self.pool.give_back(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::cuda::emu::Emulator;
    use crate::cuda::gemm::{GemmInputs, Sgemm};
    use crate::cuda::launch::LaunchConfig;

    /// The emulator, counting its synchronizations, which fail on demand.
    #[derive(Default)]
    struct Syncs {
        count: AtomicUsize,
        fail: AtomicBool,
    }

    impl Launcher for Syncs {
        fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
            Emulator.alloc(bytes)
        }
        unsafe fn free(&self, addr: u64, bytes: usize) {
            // SAFETY: the caller's contract, passed on.
            unsafe { Emulator.free(addr, bytes) }
        }
        unsafe fn write(&self, src: &[u8], dst: u64) -> Result<(), CudaError> {
            // SAFETY: the caller's contract, passed on.
            unsafe { Emulator.write(src, dst) }
        }
        unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), CudaError> {
            // SAFETY: the caller's contract, passed on.
            unsafe { Emulator.read(src, dst) }
        }
        fn synchronize(&self) -> Result<(), CudaError> {
            self.count.fetch_add(1, Ordering::Relaxed);
            match self.fail.load(Ordering::Relaxed) {
                true => Err(CudaError::Unavailable("lost".into())),
                false => Ok(()),
            }
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        unsafe fn copy_from(
            &self,
            _: &dyn Launcher,
            _: u64,
            _: u64,
            _: usize,
        ) -> Result<bool, CudaError> {
            Ok(false)
        }
        unsafe fn zero(&self, dst: u64, bytes: usize) -> Result<(), CudaError> {
            // SAFETY: the caller's contract, passed on.
            unsafe { Emulator.zero(dst, bytes) }
        }
        unsafe fn launch(
            &self,
            _: &'static str,
            _: &LaunchConfig,
            _: &mut [*mut c_void],
        ) -> Result<(), CudaError> {
            unreachable!("no kernels here")
        }
        unsafe fn gemm(
            &self,
            _: &Sgemm,
            _: GemmInputs,
            _: u64,
            _: u64,
            _: u64,
        ) -> Result<(), CudaError> {
            unreachable!("no products here")
        }
    }

    #[test]
    fn a_block_returns_only_after_the_device_synchronized() {
        let launcher = Arc::new(Syncs::default());
        let pool = PinnedPool::new(launcher.clone());
        drop(pool.take(10).unwrap());
        assert_eq!(launcher.count.load(Ordering::Relaxed), 1);
        assert_eq!(pool.kept(), 1);
        // A device that fails to synchronize may still be copying: its block
        // is never handed out again.
        let held = pool.take(10).unwrap();
        launcher.fail.store(true, Ordering::Relaxed);
        drop(held);
        assert_eq!(pool.kept(), 0);
    }

    fn address(staging: &Staging) -> usize {
        staging.as_ptr() as usize
    }

    #[test]
    fn blocks_are_reused_smallest_first_and_bounded() {
        let pool = PinnedPool::new(Arc::new(Emulator));
        let (mut small, large) = (pool.take(100).unwrap(), pool.take(1000).unwrap());
        assert_eq!((small.len(), large.len()), (100, 1000));
        assert!(small.iter().all(|&v| v == 0.0), "new blocks are zeroed");
        small.fill(7.0);
        let (small_at, large_at) = (address(&small), address(&large));
        drop((small, large));
        assert_eq!(pool.kept(), 2);
        // 120 fits the 128-value block of the first take, not the larger one.
        let again = pool.take(120).unwrap();
        assert_eq!((address(&again), again.len()), (small_at, 120));
        let big = pool.take(900).unwrap();
        assert_eq!(address(&big), large_at);
        assert_eq!(pool.kept(), 0);
        drop((again, big));
        let many: Vec<Staging> = (0..KEPT_BLOCKS + 3)
            .map(|_| pool.take(10).unwrap())
            .collect();
        drop(many);
        assert_eq!(pool.kept(), KEPT_BLOCKS);
    }
}

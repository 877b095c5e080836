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
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            self.pool.give_back(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::emu::Emulator;

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

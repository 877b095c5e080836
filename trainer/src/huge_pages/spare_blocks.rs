//! Freed huge-page blocks, kept for the next request of the same size.
//!
//! Some libraries allocate a scratch buffer on every call: the `gemm` crate
//! packs its operands into a fresh buffer per product, a few MiB for the
//! larger layers. Unmapping such a block on free and mapping a new one on
//! the next call costs a page fault and the kernel zeroing a whole 2 MiB
//! page each time (on the small benchmark model, about 30 per training step
//! on two threads), plus a TLB shootdown on the other threads. Keeping a
//! few freed blocks and handing one back to the next request of the same
//! mapped length avoids all of that; blocks past [`MAX_BLOCKS`] or
//! [`MAX_BYTES`] are unmapped as before.
//!
//! Zeroed requests take kept blocks as well, cleared with a `memset`: a
//! buffer made with `vec![0.0; n]` on every call (the context-parallel
//! strategies' exchange buffers) then costs no page faults either, which
//! took all_gather and a2a at cp = 2 on the long profile from 127 and 226
//! page faults per step to 62 and 142, and +2-5 % tokens/s.
//!
//! Kept blocks can add to the peak memory: a block kept after one phase of
//! a step sits beside the live buffers of the next. Zeroed requests that
//! find no block of their length, which is how programs allocate their
//! lasting buffers, therefore first unmap kept blocks of as many bytes
//! ([`release`]); plain requests do not (that cascaded: each miss evicted
//! blocks the next request wanted). Measured on the long-sequence profile
//! (T = 8192, cp = 2, two thread-ranks): peak RSS 276 MiB without kept
//! blocks, 317 MiB keeping them, 296 MiB with the release; the small
//! benchmark model keeps all of its gain.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Most blocks kept at once.
const MAX_BLOCKS: usize = 16;

/// Most bytes kept at once, over all blocks.
const MAX_BYTES: usize = 64 << 20;

/// Kept blocks: address and mapped length; a zero address is a free slot.
struct SpareBlocks {
    blocks: [(usize, usize); MAX_BLOCKS],
    bytes: usize,
}

impl SpareBlocks {
    const fn new() -> Self {
        SpareBlocks {
            blocks: [(0, 0); MAX_BLOCKS],
            bytes: 0,
        }
    }

    fn take(&mut self, len: usize) -> Option<*mut u8> {
        let slot = self
            .blocks
            .iter_mut()
            .find(|(addr, kept)| *addr != 0 && *kept == len)?;
        let addr = std::mem::replace(&mut slot.0, 0);
        self.bytes -= len;
        Some(addr as *mut u8)
    }

    /// Removes kept blocks until they add up to `len` bytes or none is
    /// left; returns them (zero addresses are empty entries).
    fn evict(&mut self, len: usize) -> [(usize, usize); MAX_BLOCKS] {
        let mut evicted = [(0, 0); MAX_BLOCKS];
        let mut freed = 0;
        for (slot, out) in self.blocks.iter_mut().zip(&mut evicted) {
            if freed >= len {
                break;
            }
            if slot.0 != 0 {
                *out = std::mem::take(slot);
                freed += out.1;
            }
        }
        self.bytes -= freed;
        evicted
    }

    fn keep(&mut self, ptr: *mut u8, len: usize) -> bool {
        if self.bytes + len > MAX_BYTES {
            return false;
        }
        let Some(slot) = self.blocks.iter_mut().find(|(addr, _)| *addr == 0) else {
            return false;
        };
        *slot = (ptr as usize, len);
        self.bytes += len;
        true
    }
}

/// The process's kept blocks.
static SPARE: Mutex<SpareBlocks> = Mutex::new(SpareBlocks::new());

fn spare() -> MutexGuard<'static, SpareBlocks> {
    // Nothing panics while the lock is held; a poisoned lock would still
    // hold consistent data.
    SPARE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A kept block of exactly `len` mapped bytes, if there is one. Its bytes
/// are whatever its last user left there.
pub(super) fn take(len: usize) -> Option<*mut u8> {
    spare().take(len)
}

/// Hands kept blocks adding up to at least `len` bytes (or all of them) to
/// `unmap`, outside the lock: called before a zeroed request that found no
/// kept block maps `len` fresh bytes.
pub(super) fn release(len: usize, unmap: impl Fn(*mut u8, usize)) {
    let evicted = spare().evict(len);
    for (addr, kept) in evicted {
        if addr != 0 {
            unmap(addr as *mut u8, kept);
        }
    }
}

/// Keeps the block at `ptr` of `len` mapped bytes for a later [`take`].
/// Returns false, keeping nothing, when that would pass the limits: the
/// caller then unmaps the block.
pub(super) fn keep(ptr: *mut u8, len: usize) -> bool {
    spare().keep(ptr, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fake addresses, never dereferenced.
    #[test]
    fn blocks_come_back_by_exact_length_within_the_limits() {
        let mut spare = SpareBlocks::new();
        let (len, other) = (3 << 20, 5 << 20);
        let (a, b) = (0x1000_0000 as *mut u8, 0x2000_0000 as *mut u8);
        assert!(spare.keep(a, len));
        assert!(spare.keep(b, len));
        assert_eq!(
            spare.take(other),
            None,
            "a different length is not handed out"
        );
        let first = spare.take(len).unwrap();
        let second = spare.take(len).unwrap();
        let mut got = [first, second];
        got.sort();
        assert_eq!(got, [a, b], "each kept block comes back once");
        assert_eq!(spare.take(len), None);
        assert_eq!(spare.bytes, 0);
    }

    #[test]
    fn eviction_frees_at_least_the_bytes_asked_for() {
        let mut spare = SpareBlocks::new();
        let fake = |i: usize| ((i + 1) << 24) as *mut u8;
        for (i, len) in [2 << 20, 4 << 20, 2 << 20].into_iter().enumerate() {
            assert!(spare.keep(fake(i), len));
        }
        let freed = |evicted: [(usize, usize); MAX_BLOCKS]| -> usize {
            evicted
                .iter()
                .filter(|(a, _)| *a != 0)
                .map(|(_, l)| l)
                .sum()
        };
        let first = freed(spare.evict(5 << 20));
        assert!(first >= 5 << 20, "{first}");
        assert_eq!(spare.bytes, (8 << 20) - first);
        assert_eq!(freed(spare.evict(100 << 20)), (8 << 20) - first, "the rest");
        assert_eq!(spare.bytes, 0);
        assert_eq!(freed(spare.evict(1)), 0, "nothing left");
    }

    #[test]
    fn blocks_past_the_count_or_byte_limit_are_refused() {
        let mut spare = SpareBlocks::new();
        let fake = |i: usize| ((i + 1) << 24) as *mut u8;
        assert!(
            !spare.keep(fake(0), MAX_BYTES + 4096),
            "over the byte limit"
        );
        for i in 0..MAX_BLOCKS {
            assert!(spare.keep(fake(i), 4096), "block {i}");
        }
        assert!(!spare.keep(fake(MAX_BLOCKS), 4096), "over the count limit");
        assert!(spare.take(4096).is_some());
        assert!(spare.keep(fake(MAX_BLOCKS), 4096), "a freed slot is reused");
    }
}

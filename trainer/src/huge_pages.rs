//! [`HugePageAlloc`]: large allocations on transparent huge pages.

use std::alloc::{GlobalAlloc, Layout, System};

/// A global allocator that backs large allocations with transparent huge
/// pages.
///
/// A training step streams through every activation buffer several times;
/// with 4 KiB pages each pass walks thousands of TLB entries. On Linux,
/// every allocation of at least 2 MiB starts on a 2 MiB boundary and is
/// marked `MADV_HUGEPAGE` before its first touch, so the kernel backs its
/// whole 2 MiB pages with huge pages whenever
/// `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` or `always`
/// (PyTorch does the same for its large CPU tensors). Sizes are not rounded
/// up, so no memory is added: the tail short of a whole huge page keeps
/// 4 KiB pages. Smaller allocations, and every allocation on other systems,
/// go straight to [`System`]. Measured effect in docs/performance.md.
///
/// A library cannot choose the allocator of the program it is linked into;
/// the `cptrain` binary and the benchmarks opt in with
///
/// ```
/// #[global_allocator]
/// static ALLOC: cptrain::HugePageAlloc = cptrain::HugePageAlloc;
/// # fn main() { let v = vec![0u8; 3 << 20]; assert_eq!(v[123], 0); }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HugePageAlloc;

/// The transparent huge page size on x86-64 and most aarch64 kernels;
/// allocations from this size up are given huge pages.
const HUGE_PAGE: usize = 2 << 20;

/// The layout a large request is served with: the same size, aligned to a
/// huge page. `None` for requests that stay on ordinary pages.
fn huge_layout(layout: Layout) -> Option<Layout> {
    if !cfg!(target_os = "linux") || layout.size() < HUGE_PAGE {
        return None;
    }
    Layout::from_size_align(layout.size(), layout.align().max(HUGE_PAGE)).ok()
}

/// Asks the kernel for huge pages over `len` bytes at `ptr`. Failure (THP
/// off, an old kernel) leaves ordinary pages, which is only slower.
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    // SAFETY: the range is one block this allocator just obtained; the
    // advice changes how its pages are backed, never their contents.
    unsafe { libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _len: usize) {}

// SAFETY: every block comes from `System` with a layout at least as large
// and as aligned as the one requested, and goes back to `System` with the
// same layout (`huge_layout` is a function of the requested layout alone).
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(huge) = huge_layout(layout) else {
            // SAFETY: forwarded from the caller.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: `huge` has a non-zero size.
        let ptr = unsafe { System.alloc(huge) };
        if !ptr.is_null() {
            advise_huge_pages(ptr, huge.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if huge_layout(layout).is_none() {
            // SAFETY: forwarded from the caller.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // Advise before the zeroing touches the pages, so they are huge
        // from their first fault.
        // SAFETY: forwarded from the caller.
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            // SAFETY: the block holds at least `layout.size()` bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout, i.e. from
        // `System` with the layout computed here again.
        unsafe { System.dealloc(ptr, huge_layout(layout).unwrap_or(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (all calls): forwarded from the caller; a new block is
        // filled from the old one before the old one is freed.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            if huge_layout(layout).is_none() && huge_layout(new_layout).is_none() {
                return System.realloc(ptr, layout, new_size);
            }
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_start_on_a_huge_page_and_keep_their_size() {
        let small = Layout::from_size_align(HUGE_PAGE - 1, 8).unwrap();
        assert_eq!(huge_layout(small), None);
        let large = Layout::from_size_align(3 * HUGE_PAGE + 5, 64).unwrap();
        if cfg!(target_os = "linux") {
            let huge = huge_layout(large).unwrap();
            assert_eq!((huge.size(), huge.align()), (3 * HUGE_PAGE + 5, HUGE_PAGE));
        }
    }

    #[test]
    fn blocks_keep_their_contents_through_every_size_change() {
        let a = HugePageAlloc;
        let layout = Layout::from_size_align(1000, 16).unwrap();
        // Small → huge → larger huge → small, checking the bytes each time.
        let sizes = [1000, 3 << 20, 5 << 20, 700];
        // SAFETY: each block is used within its size and freed once, with
        // the layout it was last given.
        unsafe {
            let mut ptr = a.alloc_zeroed(layout);
            assert!(!ptr.is_null());
            assert!((0..1000).all(|i| *ptr.add(i) == 0));
            for i in 0..1000 {
                *ptr.add(i) = (i % 251) as u8;
            }
            let mut old = layout;
            for &size in &sizes[1..] {
                ptr = a.realloc(ptr, old, size);
                assert!(!ptr.is_null());
                assert!((0..700).all(|i| *ptr.add(i) == (i % 251) as u8));
                if size >= HUGE_PAGE {
                    assert_eq!(ptr as usize % HUGE_PAGE, 0, "huge blocks are aligned");
                }
                old = Layout::from_size_align(size, 16).unwrap();
            }
            a.dealloc(ptr, old);
            let zeroed = Layout::from_size_align(4 << 20, 8).unwrap();
            let z = a.alloc_zeroed(zeroed);
            assert!((0..4 << 20).step_by(4093).all(|i| *z.add(i) == 0));
            a.dealloc(z, zeroed);
        }
    }
}

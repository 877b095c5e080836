//! [`HugePageAlloc`]: large allocations on transparent huge pages.

use std::alloc::{GlobalAlloc, Layout, System};

#[cfg(target_os = "linux")]
mod spare_blocks;

/// A global allocator that backs large allocations with transparent huge
/// pages.
///
/// A training step streams through every activation buffer several times;
/// with 4 KiB pages each pass walks thousands of TLB entries. On Linux,
/// large allocations get anonymous mappings of their own that start on a
/// 2 MiB boundary and are marked `MADV_HUGEPAGE`, so the kernel backs them
/// with 2 MiB pages whenever `/sys/kernel/mm/transparent_hugepage/enabled`
/// is `madvise` or `always` (PyTorch does the same for its large CPU
/// tensors). Fresh mappings read as zero without being touched, so pages a
/// program never writes cost no memory. A freed block is kept (up to 16
/// blocks, 64 MiB in all) and handed to the next allocation of the same
/// mapped size, so a buffer a library allocates on every call faults its
/// pages in once, not on every call. Zeroed allocations take a kept block
/// too, cleared; when none fits, they unmap as many kept bytes before
/// mapping fresh memory (what keeping blocks costs in peak memory is
/// measured in `spare_blocks`). Smaller allocations, and
/// every allocation on other systems, go straight to [`System`].
///
/// `CPTRAIN_HUGE_PAGES` chooses which allocations ([`HugePages`]):
///
/// * `all` (default): from 1 MiB up, rounded up to whole huge pages. A
///   block of 1-2 MiB then takes 2 MiB once touched: the tiny benchmark
///   model trains about 12 % faster than with `large`, for 17-21 MiB more
///   RSS, but a process running several ranks whose buffers are that size
///   can take up to 1.5x the memory (docs/performance.md).
/// * `large`: from 2 MiB up, not rounded: the tail short of a whole huge
///   page keeps 4 KiB pages, so no memory is added.
/// * `off`: everything from [`System`].
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

/// The transparent huge page size on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// The environment variable that picks the [`HugePages`] mode.
pub const HUGE_PAGES_VAR: &str = "CPTRAIN_HUGE_PAGES";

/// [`HUGE_PAGES_VAR`] for `getenv`, which the allocator calls because it
/// must not allocate (a test checks the two agree).
const HUGE_PAGES_VAR_C: &std::ffi::CStr = c"CPTRAIN_HUGE_PAGES";

/// Which allocations [`HugePageAlloc`] puts on huge pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HugePages {
    /// From 1 MiB up, sizes rounded up to whole huge pages.
    #[default]
    All,
    /// From 2 MiB up, sizes kept.
    Large,
    /// None.
    Off,
}

/// `CPTRAIN_HUGE_PAGES` holds a value other than `all`, `large` or `off`.
#[derive(Debug, thiserror::Error)]
#[error("{HUGE_PAGES_VAR}={value:?}: expected `all` (the default), `large` or `off`")]
pub struct HugePagesError {
    /// The value found.
    pub value: String,
}

impl HugePages {
    /// The mode for a value of `CPTRAIN_HUGE_PAGES` (`None`: unset).
    pub fn parse(value: Option<&str>) -> Result<Self, HugePagesError> {
        match value {
            None | Some("all") => Ok(HugePages::All),
            Some("large") => Ok(HugePages::Large),
            Some("off") => Ok(HugePages::Off),
            Some(other) => Err(HugePagesError {
                value: other.to_owned(),
            }),
        }
    }

    /// The mode `CPTRAIN_HUGE_PAGES` asks for; programs call this at start
    /// to report a bad value (the allocator itself falls back to `all`).
    pub fn from_env() -> Result<Self, HugePagesError> {
        match std::env::var(HUGE_PAGES_VAR) {
            Ok(value) => Self::parse(Some(&value)),
            Err(std::env::VarError::NotPresent) => Self::parse(None),
            Err(std::env::VarError::NotUnicode(value)) => Err(HugePagesError {
                value: value.to_string_lossy().into_owned(),
            }),
        }
    }

    /// The smallest allocation this mode gives huge pages.
    fn min_size(self) -> usize {
        match self {
            HugePages::All => 1 << 20,
            HugePages::Large => HUGE_PAGE,
            HugePages::Off => usize::MAX,
        }
    }
}

/// The mode, read from the environment once: without allocating, as the
/// allocator runs before (and inside) everything else.
fn mode() -> HugePages {
    use std::sync::atomic::{AtomicU8, Ordering};
    const UNREAD: u8 = u8::MAX;
    static MODE: AtomicU8 = AtomicU8::new(UNREAD);
    let modes = [HugePages::All, HugePages::Large, HugePages::Off];
    match MODE.load(Ordering::Relaxed) {
        UNREAD => {
            let found = env_mode();
            let index = modes.iter().position(|&m| m == found).unwrap_or(0);
            MODE.store(index as u8, Ordering::Relaxed);
            found
        }
        index => modes[usize::from(index)],
    }
}

#[cfg(target_os = "linux")]
fn env_mode() -> HugePages {
    // SAFETY: the name is NUL-terminated. getenv races only with writers
    // of the environment, and nothing here writes it (Rust's `set_var` is
    // `unsafe` and unused in this code base).
    let value = unsafe { libc::getenv(HUGE_PAGES_VAR_C.as_ptr()) };
    if value.is_null() {
        return HugePages::default();
    }
    // SAFETY: getenv returns a NUL-terminated string.
    let value = unsafe { std::ffi::CStr::from_ptr(value) };
    // Matched by hand: `parse` would allocate its error, inside the
    // allocator.
    match value.to_bytes() {
        b"large" => HugePages::Large,
        b"off" => HugePages::Off,
        _ => HugePages::All,
    }
}

#[cfg(not(target_os = "linux"))]
fn env_mode() -> HugePages {
    HugePages::Off
}

/// Whether a request gets a huge-page mapping of its own.
fn is_huge(layout: Layout) -> bool {
    cfg!(target_os = "linux") && layout.size() >= mode().min_size() && layout.align() <= HUGE_PAGE
}

#[cfg(target_os = "linux")]
mod mapping {
    use super::HUGE_PAGE;

    /// Bytes mapped for a `size`-byte block: whole huge pages in mode
    /// `all`, else whole pages of the system.
    fn mapped_len(size: usize) -> usize {
        if super::mode() == super::HugePages::All {
            return size.next_multiple_of(HUGE_PAGE);
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        size.next_multiple_of(usize::try_from(page).unwrap_or(4096).max(1))
    }

    /// A huge-page aligned block of at least `size` bytes marked
    /// `MADV_HUGEPAGE`, or null: a kept block of the same mapped length
    /// ([`spare_blocks`](super::spare_blocks)) if there is one, with the
    /// bytes its last user left, else a fresh mapping.
    pub(super) fn map(size: usize) -> *mut u8 {
        super::spare_blocks::take(mapped_len(size)).unwrap_or_else(|| fresh(size))
    }

    /// A block as [`map`] gives with its first `size` bytes zero: a kept
    /// block of the same mapped length, cleared (a buffer made with
    /// `vec![0.0; n]` on every call then faults nothing in), else a fresh
    /// mapping. Zeroed requests are also how programs allocate their lasting
    /// buffers (activations, state), so before a fresh mapping kept blocks
    /// of as many bytes are unmapped: what was kept while they were freed
    /// does not stay on top of them.
    pub(super) fn map_zeroed(size: usize) -> *mut u8 {
        let len = mapped_len(size);
        if let Some(block) = super::spare_blocks::take(len) {
            // SAFETY: a kept block is a whole mapping of `len` ≥ `size`
            // bytes that nothing else uses.
            unsafe { block.write_bytes(0, size) };
            return block;
        }
        super::spare_blocks::release(len, |ptr, kept| {
            // SAFETY: a kept block is a whole mapping nothing uses.
            unsafe { libc::munmap(ptr.cast(), kept) };
        });
        fresh(size)
    }

    /// A fresh zeroed, huge-page aligned mapping of at least `size` bytes
    /// marked `MADV_HUGEPAGE`, or null.
    fn fresh(size: usize) -> *mut u8 {
        let len = mapped_len(size);
        let Some(total) = len.checked_add(HUGE_PAGE) else {
            return std::ptr::null_mut();
        };
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let start = base as usize;
        let head = start.next_multiple_of(HUGE_PAGE) - start;
        let tail = total - head - len;
        // SAFETY: the head and tail are page-aligned parts of the mapping
        // just made, outside the block handed out. Advice failure (THP off,
        // an old kernel) leaves ordinary pages, which is only slower.
        unsafe {
            if head > 0 {
                libc::munmap(base, head);
            }
            if tail > 0 {
                libc::munmap(base.cast::<u8>().add(head + len).cast(), tail);
            }
            let block = base.cast::<u8>().add(head);
            libc::madvise(block.cast(), len, libc::MADV_HUGEPAGE);
            block
        }
    }

    /// Frees a block [`map`] or [`map_zeroed`] returned for `size` bytes:
    /// keeps it for a later [`map`] of the same length while the spare
    /// blocks have room, else unmaps it.
    ///
    /// # Safety
    /// `ptr` must come from `map(size)` or `map_zeroed(size)` and not be
    /// used afterwards.
    pub(super) unsafe fn unmap(ptr: *mut u8, size: usize) {
        let len = mapped_len(size);
        if !super::spare_blocks::keep(ptr, len) {
            // SAFETY: forwarded from the caller.
            unsafe { libc::munmap(ptr.cast(), len) };
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod mapping {
    pub(super) fn map(_size: usize) -> *mut u8 {
        unreachable!("huge-page mappings are only made on Linux")
    }

    pub(super) fn map_zeroed(_size: usize) -> *mut u8 {
        unreachable!("huge-page mappings are only made on Linux")
    }

    pub(super) unsafe fn unmap(_ptr: *mut u8, _size: usize) {
        unreachable!("huge-page mappings are only made on Linux")
    }
}

// SAFETY: large blocks are mappings of their own, at least `size` bytes,
// aligned to 2 MiB (≥ the requested alignment), unmapped only in `dealloc`;
// everything else is `System`'s, with the caller's layout.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            mapping::map(layout.size())
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // A fresh anonymous mapping reads as zero; leaving it untouched
            // keeps unwritten pages out of the resident set.
            mapping::map_zeroed(layout.size())
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout, so from the
        // same branch.
        unsafe {
            if is_huge(layout) {
                mapping::unmap(ptr, layout.size());
            } else {
                System.dealloc(ptr, layout);
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (all calls): forwarded from the caller; a new block is
        // filled from the old one before the old one is freed.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            if !is_huge(layout) && !is_huge(new_layout) {
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
    fn only_large_blocks_with_ordinary_alignment_get_mappings() {
        let layout = |size, align| Layout::from_size_align(size, align).unwrap();
        if mode() != HugePages::Off {
            assert!(!is_huge(layout(mode().min_size() - 1, 8)));
        }
        let linux_and_on = cfg!(target_os = "linux") && mode() != HugePages::Off;
        assert_eq!(is_huge(layout(3 * HUGE_PAGE + 5, 64)), linux_and_on);
        assert!(!is_huge(layout(3 * HUGE_PAGE, 2 * HUGE_PAGE)));
    }

    #[test]
    fn modes_parse_and_bad_values_name_the_variable() {
        assert_eq!(HugePages::parse(None).unwrap(), HugePages::All);
        assert_eq!(HugePages::parse(Some("large")).unwrap(), HugePages::Large);
        assert_eq!(HugePages::parse(Some("off")).unwrap(), HugePages::Off);
        let message = HugePages::parse(Some("yes")).unwrap_err().to_string();
        assert!(message.contains("CPTRAIN_HUGE_PAGES=\"yes\""), "{message}");
        assert!(message.contains("`large`"), "{message}");
        assert_eq!(HugePages::Off.min_size(), usize::MAX);
        assert_eq!(HUGE_PAGES_VAR_C.to_str(), Ok(HUGE_PAGES_VAR));
    }

    /// The tests below share the process's kept blocks: one at a time.
    static ALLOCATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A freed block comes back, as its last user left it, for a plain
    /// request of its size, and cleared for a zeroed one.
    #[test]
    fn freed_blocks_are_reused_and_cleared_for_zeroed_requests() {
        let _serial = ALLOCATOR.lock().unwrap_or_else(|e| e.into_inner());
        let a = HugePageAlloc;
        let layout = Layout::from_size_align((7 << 20) + 12345, 64).unwrap();
        if !is_huge(layout) {
            return; // Not Linux, or CPTRAIN_HUGE_PAGES=off: System's blocks.
        }
        let last = layout.size() - 1;
        // SAFETY: each block is used within its size and freed once.
        unsafe {
            let dirty = a.alloc(layout);
            assert!(!dirty.is_null());
            dirty.write_bytes(0xAB, layout.size());
            a.dealloc(dirty, layout);
            let reused = a.alloc(layout);
            assert_eq!(reused, dirty, "the kept block is handed back");
            assert_eq!(*reused.add(last), 0xAB);
            a.dealloc(reused, layout);
            let zeroed = a.alloc_zeroed(layout);
            assert_eq!(zeroed, dirty, "zeroed requests reuse it too");
            assert!(
                (0..layout.size())
                    .step_by(4093)
                    .all(|i| *zeroed.add(i) == 0)
            );
            assert_eq!(*zeroed.add(last), 0);
            a.dealloc(zeroed, layout);
        }
    }

    #[test]
    fn blocks_keep_their_contents_through_every_size_change() {
        let _serial = ALLOCATOR.lock().unwrap_or_else(|e| e.into_inner());
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
                if is_huge(Layout::from_size_align(size, 16).unwrap()) {
                    assert_eq!(ptr as usize % HUGE_PAGE, 0, "huge blocks are aligned");
                }
                old = Layout::from_size_align(size, 16).unwrap();
            }
            a.dealloc(ptr, old);
            let zeroed = Layout::from_size_align(4 << 20, 8).unwrap();
            let z = a.alloc_zeroed(zeroed);
            assert!((0..4 << 20).step_by(4093).all(|i| *z.add(i) == 0));
            z.add((4 << 20) - 1).write(7);
            a.dealloc(z, zeroed);
        }
    }
}

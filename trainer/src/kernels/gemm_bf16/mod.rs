//! Matrix products with bf16 operands and f32 accumulation, on AVX512-BF16.
//!
//! The operands are f32 views ([`MatRef`]) rounded to bf16 (nearest even)
//! while they are packed, so a caller keeps f32 master copies and needs no
//! separate bf16 copy; the products accumulate in f32 and write f32, as
//! PyTorch's autocast computes a bf16 matmul. The rounding, not the
//! accumulation, sets the error: see the bound in the tests.
//!
//! # Why own kernels (measured 2026-12, AMD EPYC family 26 (Zen 5), AVX512-BF16)
//!
//! `gemm` 0.19 multiplies `f32`, `f64`, `c32`, `c64` and IEEE `f16`, not
//! bf16; its `f16` path on x86 converts to f32 while packing and runs the
//! f32 kernels, so it cannot beat them. No maintained Rust crate wraps a
//! bf16 GEMM for x86 without a system BLAS (OpenBLAS's `sbgemm`, oneDNN and
//! MKL are C libraries). The kernels here follow the usual blocked layout
//! (Goto/BLIS): `k` in blocks of [`KC`], `b` packed into column panels of
//! 64 per block, `a` packed per [`MC`] rows, and a register tile of 6 × 64
//! on `vdpbf16ps`, which does 32 multiply-adds per instruction where an f32
//! FMA does 16. The block sizes were chosen on the measuring machine among
//! `KC` 192-1024 and `MC` 48-96 (the host's noise, ±15 %, was larger than
//! most differences; more `k` per block, hence fewer passes over `c`, was
//! the one clear gain on the large products, with prefetching the tile's
//! `c`, +10-20 % there).
//!
//! The kernels are chosen at run time: [`Bf16Gemm::new`] checks the CPU and
//! is the only way to obtain the handle that runs them.

#[cfg(target_arch = "x86_64")]
mod microkernel;
#[cfg(target_arch = "x86_64")]
mod pack;
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;

use super::gemm::MatRef;

/// Steps of `k` per packed block (even, so only the last block can be odd).
/// Every block after the first reads and rewrites the whole block of `c`,
/// which on the large products comes from memory: 768 makes the products
/// over `d_in = 768` (GPT-2 124M) one pass. A packed panel of `b`,
/// `KC × 64` bf16, is 96 KiB and sits in L2; the tile's 6 rows of `a`
/// (9 KiB) sit in L1.
const KC: usize = 768;
/// Rows of `a` per packed block (a multiple of the tile's 6 rows): 96 × 768
/// bf16 is 144 KiB of L2.
const MC: usize = 96;
/// Columns of `b` per packed block: 768 × 1024 bf16 is 1.5 MiB (L2 and L3).
const NC: usize = 1024;

/// The CPU features the bf16 kernels need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf16Features {
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions (the packing's 16-bit shuffles).
    pub avx512bw: bool,
    /// AVX512-BF16: `vdpbf16ps` and the rounding conversions.
    pub avx512bf16: bool,
}

impl Bf16Features {
    /// What this CPU has (all false on other architectures).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Bf16Features {
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx512bw: std::arch::is_x86_feature_detected!("avx512bw"),
                avx512bf16: std::arch::is_x86_feature_detected!("avx512bf16"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Bf16Features {
            avx512f: false,
            avx512bw: false,
            avx512bf16: false,
        }
    }

    /// The names of the features the kernels need and these lack.
    fn missing(self) -> Vec<&'static str> {
        [
            ("AVX-512F", self.avx512f),
            ("AVX-512BW", self.avx512bw),
            ("AVX512-BF16", self.avx512bf16),
        ]
        .into_iter()
        .filter(|&(_, has)| !has)
        .map(|(name, _)| name)
        .collect()
    }
}

/// The bf16 kernels cannot run on this CPU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bf16 matrix products need an x86-64 CPU with AVX-512F, AVX-512BW and AVX512-BF16 \
     (the vdpbf16ps instruction); this one lacks {}: use f32 products on it",
    missing.join(", ")
)]
pub struct Bf16Unsupported {
    missing: Vec<&'static str>,
}

/// Whether CPUs with `features` run the bf16 kernels.
pub(super) fn check(features: Bf16Features) -> Result<(), Bf16Unsupported> {
    let missing = features.missing();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Bf16Unsupported { missing })
    }
}

/// A handle to the bf16 kernels, which exists only on a CPU that runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf16Gemm {
    _checked: (),
}

impl Bf16Gemm {
    /// The kernels, if this CPU has the features they need.
    pub fn new() -> Result<Self, Bf16Unsupported> {
        check(Bf16Features::detect())?;
        Ok(Bf16Gemm { _checked: () })
    }

    /// `c = a·b + beta·c` on the calling thread, with `a` and `b` rounded to
    /// bf16 and f32 accumulation; `c` is dense row-major `[a.rows, b.cols]`
    /// and is not read when `beta` is 0.
    pub fn gemm_serial(self, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        assert_eq!(b.rows, k, "inner dimensions differ");
        assert_eq!(c.len(), m * n, "output buffer is not a.rows × b.cols");
        assert!(a.extent() <= a.data.len() && b.extent() <= b.data.len());
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            c.iter_mut()
                .for_each(|x| *x = if beta == 0.0 { 0.0 } else { *x * beta });
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only where `check` passed on this CPU; the
        // asserts above keep every view inside its slice.
        unsafe {
            blocked(a, b, beta, c)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no Bf16Gemm exists off x86-64")
    }
}

impl Bf16Gemm {
    /// Rounds `x` to bf16 exactly as the products round their operands
    /// (`vcvtne2ps2bf16`: nearest even, subnormal inputs to signed zero,
    /// NaN quieted), two values to a word of `words` (see
    /// [`Bf16Buffer`](crate::device::Bf16Buffer)), on the calling thread.
    pub fn round(self, x: &[f32], words: &mut [u32]) {
        assert_eq!(words.len(), x.len().div_ceil(2), "words for another length");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only where `check` passed on this CPU; the
        // lengths match (asserted above).
        unsafe {
            pack::convert_run(x.as_ptr(), x.len(), words.as_mut_ptr())
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no Bf16Gemm exists off x86-64")
    }
}

/// The blocked product behind [`Bf16Gemm::gemm_serial`].
///
/// # Safety
/// The CPU must have the [`Bf16Features`]; the views must lie inside their
/// slices, `c` be `a.rows × b.cols`, and no dimension be 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn blocked(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
    use std::cell::RefCell;

    use microkernel::{CTile, MR, NR};

    thread_local! {
        /// Packed blocks of `a` and `b`, kept between calls.
        static PACKED: RefCell<(AlignedWords, AlignedWords)> =
            const { RefCell::new((AlignedWords::new(), AlignedWords::new())) };
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    PACKED.with_borrow_mut(|(a_buf, b_buf)| {
        let a_buf = a_buf.get(pack::a_len(MC, KC, MR));
        let b_buf = b_buf.get(pack::b_len(KC, NC));
        for j0 in (0..n).step_by(NC) {
            let cols = NC.min(n - j0);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let pairs = kc.div_ceil(2);
                // SAFETY: the blocks lie inside the views, the buffers
                // hold the lengths `pack` asks for, and the CPU has the
                // features (this function's contract).
                unsafe { pack::pack_b(b, (k0, kc), (j0, cols), b_buf) };
                let beta = if k0 == 0 { beta } else { 1.0 };
                for i0 in (0..m).step_by(MC) {
                    let rows = MC.min(m - i0);
                    // SAFETY: as for `pack_b`.
                    let panel = unsafe { pack::pack_a(a, (i0, rows), (k0, kc), MR, a_buf) };
                    for (q, b_panel) in b_buf
                        .chunks_exact(pairs * NR)
                        .take(cols.div_ceil(NR))
                        .enumerate()
                    {
                        let j = j0 + q * NR;
                        for r in (0..rows).step_by(MR) {
                            let tile = CTile {
                                ptr: c[(i0 + r) * n + j..].as_mut_ptr(),
                                row_stride: n,
                                rows: MR.min(rows - r),
                                cols: NR.min(n - j),
                                beta,
                            };
                            let a_rows = microkernel::APanel {
                                ptr: panel.ptr.wrapping_add(r * panel.row_stride),
                                ..panel
                            };
                            // SAFETY: the packed panels hold `pairs` pairs
                            // for MR rows and NR columns; the tile is inside `c`.
                            unsafe { microkernel::tile(pairs, a_rows, b_panel.as_ptr(), tile) };
                        }
                    }
                }
            }
        }
    });
}

/// A zero-initialised word buffer whose slices start on a 64-byte line, so
/// the kernel's loads of packed panels never straddle two lines.
#[cfg(target_arch = "x86_64")]
struct AlignedWords(Vec<u32>);

#[cfg(target_arch = "x86_64")]
impl AlignedWords {
    const fn new() -> Self {
        AlignedWords(Vec::new())
    }

    /// `len` words starting on a 64-byte boundary.
    fn get(&mut self, len: usize) -> &mut [u32] {
        const LINE_WORDS: usize = 16;
        if self.0.len() < len + LINE_WORDS {
            self.0.resize(len + LINE_WORDS, 0);
        }
        let skip = self.0.as_ptr().align_offset(64).min(LINE_WORDS);
        &mut self.0[skip..skip + len]
    }
}

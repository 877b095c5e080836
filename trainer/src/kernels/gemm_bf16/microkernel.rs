//! The register-tile kernel: an `MR × NR` block of `c` from packed bf16
//! panels, on `vdpbf16ps`.
//!
//! `vdpbf16ps acc, a, b` treats each 32-bit lane of `a` and `b` as a pair of
//! bf16 values and adds `a.lo·b.lo + a.hi·b.hi` to the f32 lane of `acc`:
//! one instruction does 32 multiply-adds where an f32 FMA does 16. The
//! operands are therefore packed as *pairs* of consecutive `k`: a 32-bit
//! word holds `(x[k], x[k+1])` for an even `k`.
//!
//! The tile is 6 rows × 64 columns: 24 zmm accumulators, 4 loads of `b` and
//! 6 broadcasts of `a` per pair of `k`, in the 32 registers AVX-512 has.

use std::arch::x86_64::*;

/// Rows of `c` one kernel call computes.
pub const MR: usize = 6;
/// Columns of `c` one kernel call computes (4 vectors of 16 f32).
pub const NR: usize = 64;
/// f32 lanes in a zmm register.
const LANES: usize = 16;
const VECS: usize = NR / LANES;

/// Where the kernel reads its `a` pairs: pair `p` of row `r` is the word at
/// `ptr + r·row_stride + p·pair_stride` (in 32-bit words).
#[derive(Clone, Copy, Debug)]
pub struct APanel {
    pub ptr: *const u32,
    pub row_stride: usize,
    pub pair_stride: usize,
}

/// Where the kernel writes: `rows × cols` (at most `MR × NR`) of a row-major
/// f32 matrix with `row_stride` elements between rows, as
/// `c = tile + beta·c` (`c` is not read when `beta` is 0).
#[derive(Clone, Copy, Debug)]
pub struct CTile {
    pub ptr: *mut f32,
    pub row_stride: usize,
    pub rows: usize,
    pub cols: usize,
    pub beta: f32,
}

/// Computes one tile over `pairs` pairs of `k`. `b` is a packed panel:
/// pair `p` is the `NR` words at `b + p·NR`, column `j` at word `j`.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16. `a` must be readable at
/// every row `< MR` and pair `< pairs` (rows past `c.rows` are read, not
/// used), `b` for `pairs · NR` words, and `c`'s `rows × cols` elements must
/// be writable (and readable unless `beta` is 0).
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn tile(pairs: usize, a: APanel, b: *const u32, c: CTile) {
    // The tile's lines of `c` are fetched while the products run: on large
    // outputs they come from memory, and the stores would wait for them.
    for r in 0..c.rows {
        for first in (0..c.cols).step_by(LANES) {
            // SAFETY: the address is inside the caller's tile (a prefetch
            // does not fault anyway).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(c.ptr.add(r * c.row_stride + first).cast()) };
        }
    }
    let mut acc = [[_mm512_setzero_ps(); VECS]; MR];
    for p in 0..pairs {
        // SAFETY: within the panels by the caller's contract.
        unsafe {
            let bp = b.add(p * NR);
            let bv: [__m512bh; VECS] = std::array::from_fn(|j| {
                std::mem::transmute(_mm512_loadu_si512(bp.add(j * LANES).cast()))
            });
            let ap = a.ptr.add(p * a.pair_stride);
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*ap.add(r * a.row_stride) as i32));
                for (acc_v, &b_v) in acc_row.iter_mut().zip(&bv) {
                    *acc_v = _mm512_dpbf16_ps(*acc_v, av, b_v);
                }
            }
        }
    }
    let beta = _mm512_set1_ps(c.beta);
    for (r, acc_row) in acc.iter().enumerate().take(c.rows) {
        for (j, &acc_v) in acc_row.iter().enumerate() {
            let first = j * LANES;
            if first >= c.cols {
                break;
            }
            let mask: __mmask16 = if c.cols - first >= LANES {
                !0
            } else {
                (1 << (c.cols - first)) - 1
            };
            // SAFETY: the masked lanes are inside the caller's tile.
            unsafe {
                let dst = c.ptr.add(r * c.row_stride + first);
                let out = if c.beta == 0.0 {
                    acc_v
                } else {
                    _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask, dst), acc_v)
                };
                _mm512_mask_storeu_ps(dst, mask, out);
            }
        }
    }
}

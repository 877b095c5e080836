//! Packing f32 operands into the bf16 pair words the micro-kernel reads,
//! rounding to nearest even on the way (`vcvtne2ps2bf16`).
//!
//! A word holds `(x[k], x[k+1])` for an even `k`, the first in its low half.
//! An odd `k` count is padded with a zero, in both operands, so the padding
//! adds `0·0`. Every view the parallel drivers pass has a unit stride along
//! its rows or its columns ([`MatRef`] builds no other), and each of the four
//! cases is one of two vector loops: a contiguous run along `k`
//! ([`convert_run`]) or two contiguous runs at consecutive `k`
//! interleaved ([`interleave`]).

use std::arch::x86_64::*;

use super::microkernel::{APanel, NR};
use crate::kernels::gemm::MatRef;

const LANES: usize = 16;

/// Packs rows `i0..i0 + rows` and columns `k0..k0 + kc` of `a` into `dst`
/// (at least [`a_len`] words) and says where the kernel finds each pair.
/// Rows up to the next multiple of `mr` are left as they are: the kernel
/// reads them and its stores drop them.
///
/// # Safety
/// The CPU must have AVX-512F/BW and AVX512-BF16; the block must lie inside
/// `a`, and `dst` must hold [`a_len`]`(rows, kc, mr)` words.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn pack_a(
    a: MatRef<'_>,
    (i0, rows): (usize, usize),
    (k0, kc): (usize, usize),
    mr: usize,
    dst: &mut [u32],
) -> APanel {
    let pairs = kc.div_ceil(2);
    let src = a.data.as_ptr();
    if a.col_stride == 1 {
        // Rows contiguous along k: one run per row, rows `pairs` words apart.
        for i in 0..rows {
            // SAFETY: row i0 + i, columns k0..k0 + kc, are inside `a`;
            // `dst` holds `pairs` words at row i.
            unsafe {
                convert_run(
                    src.add((i0 + i) * a.row_stride + k0),
                    kc,
                    dst[i * pairs..].as_mut_ptr(),
                )
            };
        }
        APanel {
            ptr: dst.as_ptr(),
            row_stride: pairs,
            pair_stride: 1,
        }
    } else {
        // Columns contiguous along the rows: interleave two columns per pair.
        debug_assert_eq!(a.row_stride, 1, "a view with no unit stride");
        let stride = rows.next_multiple_of(mr);
        for p in 0..pairs {
            let k = k0 + 2 * p;
            // SAFETY: columns k and k + 1 (when < k0 + kc), rows
            // i0..i0 + rows, are inside `a`; `dst` holds `stride` words at p.
            unsafe {
                interleave(
                    src.add(k * a.col_stride + i0 * a.row_stride),
                    (2 * p + 1 < kc).then(|| src.add((k + 1) * a.col_stride + i0 * a.row_stride)),
                    rows,
                    dst[p * stride..].as_mut_ptr(),
                )
            };
        }
        APanel {
            ptr: dst.as_ptr(),
            row_stride: 1,
            pair_stride: stride,
        }
    }
}

/// Words [`pack_a`] needs for a block of `rows × kc`.
pub fn a_len(rows: usize, kc: usize, mr: usize) -> usize {
    rows.next_multiple_of(mr) * kc.div_ceil(2)
}

/// Packs rows `k0..k0 + kc` and columns `j0..j0 + cols` of `b` into panels
/// of [`NR`] columns: panel `q`, pair `p`, column `j` at word
/// `(q·pairs + p)·NR + j`. Columns past `cols` in the last panel are left as
/// they are.
///
/// # Safety
/// As [`pack_a`], with `dst` holding [`b_len`]`(kc, cols)` words.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn pack_b(
    b: MatRef<'_>,
    (k0, kc): (usize, usize),
    (j0, cols): (usize, usize),
    dst: &mut [u32],
) {
    let pairs = kc.div_ceil(2);
    let src = b.data.as_ptr();
    for (q, panel) in dst[..b_len(kc, cols)]
        .chunks_exact_mut(pairs * NR)
        .enumerate()
    {
        let j = j0 + q * NR;
        let width = NR.min(j0 + cols - j);
        if b.col_stride == 1 {
            // Rows contiguous along the columns: interleave two rows per pair.
            for p in 0..pairs {
                let k = k0 + 2 * p;
                // SAFETY: rows k and k + 1 (when < k0 + kc), columns
                // j..j + width, are inside `b`; the panel holds NR words at p.
                unsafe {
                    interleave(
                        src.add(k * b.row_stride + j),
                        (2 * p + 1 < kc).then(|| src.add((k + 1) * b.row_stride + j)),
                        width,
                        panel[p * NR..].as_mut_ptr(),
                    )
                };
            }
        } else {
            // Columns contiguous along k: one run per column, scattered.
            debug_assert_eq!(b.row_stride, 1, "a view with no unit stride");
            let mut run = [0u32; super::KC / 2];
            for c in 0..width {
                // SAFETY: column j + c, rows k0..k0 + kc, is inside `b`, and
                // `run` holds KC / 2 >= pairs words.
                unsafe { convert_run(src.add((j + c) * b.col_stride + k0), kc, run.as_mut_ptr()) };
                for (p, &word) in run[..pairs].iter().enumerate() {
                    panel[p * NR + c] = word;
                }
            }
        }
    }
}

/// Words [`pack_b`] needs for a block of `kc × cols`.
pub fn b_len(kc: usize, cols: usize) -> usize {
    cols.div_ceil(NR) * kc.div_ceil(2) * NR
}

/// `dst[p] = (x[2p], x[2p + 1])` for the `len` contiguous `x` (a zero
/// after an odd `len`): `len.div_ceil(2)` words.
///
/// # Safety
/// AVX-512F/BW and AVX512-BF16; `x` readable for `len` floats, `dst`
/// writable for `len.div_ceil(2)` words.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn convert_run(x: *const f32, len: usize, dst: *mut u32) {
    let mut i = 0;
    while i < len {
        let left = len - i;
        // SAFETY: the masks keep loads below `len` and stores below
        // `len.div_ceil(2)` words.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask(left), x.add(i));
            let hi = _mm512_maskz_loadu_ps(mask(left.saturating_sub(LANES)), x.add(i + LANES));
            // Lower 16 bf16 from `lo`, upper from `hi`: consecutive k.
            let words: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_mask_storeu_epi32(dst.add(i / 2).cast(), mask(left.div_ceil(2)), words);
        }
        i += 2 * LANES;
    }
}

/// `dst[i] = (x0[i], x1[i])` for `i < len`, with `x1` zero when absent.
///
/// # Safety
/// AVX-512F/BW and AVX512-BF16; `x0` and `x1` readable for `len` floats,
/// `dst` writable for `len` words.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave(x0: *const f32, x1: Option<*const f32>, len: usize, dst: *mut u32) {
    // 16-bit lane 2i takes x0[i] (lane i of the conversion), 2i + 1 takes
    // x1[i] (lane 16 + i).
    let order = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    );
    let mut i = 0;
    while i < len {
        let m = mask(len - i);
        // SAFETY: the mask keeps loads and stores below `len`.
        unsafe {
            let v0 = _mm512_maskz_loadu_ps(m, x0.add(i));
            let v1 = match x1 {
                Some(x1) => _mm512_maskz_loadu_ps(m, x1.add(i)),
                None => _mm512_setzero_ps(),
            };
            let halves: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(v1, v0));
            _mm512_mask_storeu_epi32(
                dst.add(i).cast(),
                m,
                _mm512_permutexvar_epi16(order, halves),
            );
        }
        i += LANES;
    }
}

/// The first `min(n, 16)` lanes.
fn mask(n: usize) -> __mmask16 {
    if n >= LANES { !0 } else { (1 << n) - 1 }
}

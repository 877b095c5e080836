//! Register-blocked small matrix products for the attention block kernel.
//!
//! Every product inside a flash-attention tile has the form
//! `C[i][j] (+)= Σ_k A(i, k) · B[k][j]` with `B` rows contiguous in `j`:
//! `A` is read one scalar at a time (broadcast) through a row stride and a
//! `k` stride, so a transposed `A` (`Pᵀ`, `dSᵀ`) costs no copy, and `B` is a
//! row-major operand (`V`, `K`, `Q`, `dO`) or a key tile transposed once per
//! slab by [`pack_transposed_tiles`]. A block of rows × `W` output values
//! stays in registers for the whole `k` loop (8 rows on AVX-512, 4 on AVX2);
//! LLVM vectorizes the `W` loop for the ISA the caller was compiled for
//! (`W` = 32 on AVX-512, 16 on AVX2). Nothing is packed per call and nothing
//! is allocated.
//!
//! [`block_rows`] lets the caller shrink the `k` range and the column range
//! per block of `R` rows, which is how masked (causal) parts of a tile are
//! skipped.

use std::ops::Range;

use super::lanes::{LANES, Lanes};
#[cfg(test)]
use super::simd::Unfused;

/// Rows of `C` computed together (twice as many on AVX-512).
const R: usize = 4;
/// Narrowest vector block; column counts of packed tiles are multiples of it.
pub(super) const MIN_W: usize = LANES;

/// Left operand: `A(i, k) = data[i·row_stride + k·k_stride]`.
#[derive(Clone, Copy)]
pub(super) struct Lhs<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub k_stride: usize,
}

/// Right operand: `B[k][j] = data[k·row_stride + j]`.
#[derive(Clone, Copy)]
pub(super) struct Rhs<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
}

/// Output: `C[i][j] = data[i·row_stride + j]`, overwritten or accumulated.
pub(super) struct Out<'a> {
    pub data: &'a mut [f32],
    pub row_stride: usize,
    pub accumulate: bool,
}

/// Bounds of one product: `rows` rows of `C`; every block's `k` range ends
/// by `k_max` and its column count is at most `cols_max`.
#[derive(Clone, Copy)]
pub(super) struct Bounds {
    pub rows: usize,
    pub k_max: usize,
    pub cols_max: usize,
}

/// `C (+)= A·B` over `bounds.rows` rows, in blocks of up to [`R`] rows.
/// `extent(first, last)` gives, for the block of rows `first..=last`, the
/// `k` range to sum over and the range of columns to write (its start a
/// multiple of [`MIN_W`]); other columns of those rows are left untouched
/// (with an empty `k` range and `accumulate == false` the columns are set
/// to 0).
///
/// `M` must be an ISA the CPU has ([`Lanes`]): the per-ISA callers
/// dispatch on the CPU first.
#[inline(always)]
pub(super) fn block_rows<M: Lanes, const W: usize>(
    a: Lhs,
    b: Rhs,
    c: Out,
    bounds: Bounds,
    extent: impl Fn(usize, usize) -> (Range<usize>, Range<usize>),
) {
    let Bounds {
        rows,
        k_max,
        cols_max,
    } = bounds;
    if rows == 0 || cols_max == 0 {
        return;
    }
    // Every access below stays inside these extents (checked once here).
    if k_max > 0 {
        assert!(
            (rows - 1) * a.row_stride + (k_max - 1) * a.k_stride < a.data.len(),
            "lhs too short"
        );
        assert!(
            (k_max - 1) * b.row_stride + cols_max <= b.data.len(),
            "rhs too short"
        );
    }
    assert!(
        (rows - 1) * c.row_stride + cols_max <= c.data.len(),
        "out too short"
    );
    // AVX-512 has 32 vector registers: 8 rows × up to two vectors keep 16
    // independent accumulators in flight for its two FMA pipes (4 rows
    // leave the pipes waiting on FMA latency; measured 7 % slower on the
    // attention of head width 32). AVX2's 16 registers fit 4 rows.
    let rows_per_block = if W > MIN_W { 2 * R } else { R };
    let mut i = 0;
    while i < rows {
        let take = rows_per_block.min(rows - i);
        let (k, cols) = extent(i, i + take - 1);
        assert!(k.end <= k_max && k.start <= k.end);
        assert!(cols.end <= cols_max && cols.start <= cols.end);
        assert!(
            cols.start.is_multiple_of(MIN_W),
            "columns start off a vector"
        );
        let at = BlockAt {
            a: a.data[i * a.row_stride..].as_ptr(),
            a_rs: a.row_stride,
            a_ks: a.k_stride,
            b: b.data.as_ptr(),
            b_rs: b.row_stride,
            c: c.data[i * c.row_stride..].as_mut_ptr(),
            c_rs: c.row_stride,
            accumulate: c.accumulate,
            k,
        };
        // SAFETY: rows i..i+take, k in k.start..k.end ≤ k_max and columns
        // below cols.end ≤ cols_max are inside the extents asserted above.
        unsafe { rows_block::<M, W>(&at, take, cols) };
        i += take;
    }
}

/// `take` rows from `at`: 8 at once when `take` is 8, else blocks of [`R`]
/// and single rows.
///
/// # Safety
/// As for [`row_block`], for rows `0..take`.
#[inline(always)]
unsafe fn rows_block<M: Lanes, const W: usize>(at: &BlockAt, take: usize, cols: Range<usize>) {
    const R2: usize = 2 * R;
    // SAFETY (all calls): forwarded from the caller.
    unsafe {
        if take == R2 {
            return row_block::<M, R2, W>(at, cols);
        }
        let mut r = 0;
        while r < take {
            let from_r = BlockAt {
                a: at.a.add(r * at.a_rs),
                c: at.c.add(r * at.c_rs),
                k: at.k.clone(),
                ..*at
            };
            if r + R <= take {
                row_block::<M, R, W>(&from_r, cols.clone());
                r += R;
            } else {
                row_block::<M, 1, W>(&from_r, cols.clone());
                r += 1;
            }
        }
    }
}

/// Raw view of one block of rows (see [`block_rows`] for the checks).
struct BlockAt {
    a: *const f32,
    a_rs: usize,
    a_ks: usize,
    b: *const f32,
    b_rs: usize,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    k: Range<usize>,
}

/// Columns `cols` of `RR` rows: `W`-wide blocks, then one 16-wide block
/// when `W` is wider, then a scalar tail.
///
/// # Safety
/// Rows `0..RR`, the `k` range and columns `cols` must be in bounds, and
/// the CPU must have `M`'s ISA.
#[inline(always)]
unsafe fn row_block<M: Lanes, const RR: usize, const W: usize>(at: &BlockAt, cols: Range<usize>) {
    let (mut j, cols) = (cols.start, cols.end);
    while j + W <= cols {
        // SAFETY: forwarded from the caller.
        unsafe { micro::<M, RR, W>(at, j, W) };
        j += W;
    }
    if W > MIN_W && j + MIN_W <= cols {
        // SAFETY: as above.
        unsafe { micro::<M, RR, MIN_W>(at, j, MIN_W) };
        j += MIN_W;
    }
    if j < cols {
        // SAFETY: as above; `micro` touches only `cols - j` columns.
        unsafe { micro::<M, RR, MIN_W>(at, j, cols - j) };
    }
}

/// `RR × width` outputs at column `j` (`width ≤ WW`; `width == WW` is the
/// vector case, its accumulators in [`Lanes`] values), accumulated in
/// registers over the `k` range.
///
/// # Safety
/// As for [`row_block`], with `j + width ≤ cols`.
#[inline(always)]
unsafe fn micro<M: Lanes, const RR: usize, const WW: usize>(at: &BlockAt, j: usize, width: usize) {
    // SAFETY (both): forwarded from the caller.
    unsafe {
        if width == WW {
            full_width::<M, RR, WW>(at, j);
        } else {
            partial_width::<M, RR, WW>(at, j, width);
        }
    }
}

/// [`micro`] of a whole `WW` (16 or 32 columns: one or two [`Lanes`] per
/// row).
///
/// # Safety
/// As for [`micro`], with `width == WW`.
#[inline(always)]
unsafe fn full_width<M: Lanes, const RR: usize, const WW: usize>(at: &BlockAt, j: usize) {
    const { assert!(WW == LANES || WW == 2 * LANES) };
    let vectors = WW / LANES;
    // SAFETY (the lanes' operations): the caller runs this ISA's code only
    // on a CPU that has it; pointer arithmetic: in bounds per its contract.
    unsafe {
        let mut acc = [[M::zero(); 2]; RR];
        for k in at.k.clone() {
            let b = at.b.add(k * at.b_rs + j);
            let b0 = M::load(b);
            let b1 = if vectors == 2 {
                M::load(b.add(LANES))
            } else {
                M::zero()
            };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a = *at.a.add(r * at.a_rs + k * at.a_ks);
                acc_r[0] = M::fma(a, b0, acc_r[0]);
                if vectors == 2 {
                    acc_r[1] = M::fma(a, b1, acc_r[1]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let c = at.c.add(r * at.c_rs + j);
            for (v, &x) in acc_r[..vectors].iter().enumerate() {
                let c = c.add(v * LANES);
                let x = if at.accumulate {
                    M::add(M::load(c), x)
                } else {
                    x
                };
                M::store(c, x);
            }
        }
    }
}

/// [`micro`] of a `width < WW` tail, in scalars.
///
/// # Safety
/// As for [`micro`].
#[inline(always)]
unsafe fn partial_width<M: Lanes, const RR: usize, const WW: usize>(
    at: &BlockAt,
    j: usize,
    width: usize,
) {
    let mut acc = [[0.0f32; WW]; RR];
    // SAFETY (all pointer arithmetic): in bounds per the caller's contract.
    unsafe {
        for k in at.k.clone() {
            let b = std::slice::from_raw_parts(at.b.add(k * at.b_rs + j), width);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a = *at.a.add(r * at.a_rs + k * at.a_ks);
                for (x, &bv) in acc_r.iter_mut().zip(b) {
                    *x = M::mul_add(a, bv, *x);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let c = std::slice::from_raw_parts_mut(at.c.add(r * at.c_rs + j), width);
            if at.accumulate {
                c.iter_mut().zip(acc_r).for_each(|(c, &x)| *c += x);
            } else {
                c.copy_from_slice(&acc_r[..width]);
            }
        }
    }
}

/// Transposes `rows [n, d]` into tiles of `tile` rows: tile `t` is
/// `[d, tile]` at `t·d·tile`, element `(c, j) = rows[(t·tile + j)·d + c]`,
/// zero past row `n`. `packed` is resized (reusing its capacity).
#[inline(always)]
pub(super) fn pack_transposed_tiles(rows: &[f32], d: usize, tile: usize, packed: &mut Vec<f32>) {
    let n = rows.len() / d;
    packed.resize(n.div_ceil(tile) * d * tile, 0.0);
    for (src, dst) in rows.chunks(tile * d).zip(packed.chunks_exact_mut(d * tile)) {
        let keys = src.len() / d;
        let (full_keys, full_cols) = (keys / T8 * T8, d / T8 * T8);
        for j in (0..full_keys).step_by(T8) {
            for c in (0..full_cols).step_by(T8) {
                transpose_8x8(&src[j * d + c..], d, &mut dst[c * tile + j..], tile);
            }
            for c in full_cols..d {
                for jj in j..j + T8 {
                    dst[c * tile + jj] = src[jj * d + c];
                }
            }
        }
        for (c, dst_row) in dst.chunks_exact_mut(tile).enumerate() {
            for jj in full_keys..keys {
                dst_row[jj] = src[jj * d + c];
            }
            dst_row[keys..].fill(0.0);
        }
    }
}

/// Side of the blocks [`pack_transposed_tiles`] moves through registers.
const T8: usize = 8;

/// `dst[c·dst_stride + j] = src[j·src_stride + c]` for `j, c < 8`: eight
/// contiguous loads, eight contiguous stores (no strided scalar traffic).
#[inline(always)]
fn transpose_8x8(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    let mut block = [[0.0f32; T8]; T8];
    for (j, row) in block.iter_mut().enumerate() {
        row.copy_from_slice(&src[j * src_stride..][..T8]);
    }
    for c in 0..T8 {
        let out = &mut dst[c * dst_stride..][..T8];
        for (j, x) in out.iter_mut().enumerate() {
            *x = block[j][c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain triple loop in f64 over the same operands.
    fn reference(a: Lhs, b: Rhs, rows: usize, k: Range<usize>, cols: usize) -> Vec<f64> {
        let mut c = vec![0.0; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                c[i * cols + j] = k
                    .clone()
                    .map(|kk| {
                        f64::from(a.data[i * a.row_stride + kk * a.k_stride])
                            * f64::from(b.data[kk * b.row_stride + j])
                    })
                    .sum();
            }
        }
        c
    }

    fn values(seed: usize, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919 % 97) as f32 - 48.0) / 37.0)
            .collect()
    }

    /// Transposed and plain `A`, overwrite and accumulate, row counts around
    /// both row blocks (4, and 8 for one-vector columns) and column counts
    /// around both vector widths; f32 sums
    /// of at most 40 terms of size ≤ 1.7² agree with f64 to 1e-5 relative.
    #[test]
    fn products_match_a_plain_f64_loop() {
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (4, 40, 16),
            (9, 17, 33),
            (6, 8, 50),
            (17, 9, 16),
            (8, 3, 13),
        ];
        for (rows, kdim, cols) in shapes {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    let a_data = values(1, rows * kdim);
                    let a = if transposed {
                        Lhs {
                            data: &a_data,
                            row_stride: 1,
                            k_stride: rows,
                        }
                    } else {
                        Lhs {
                            data: &a_data,
                            row_stride: kdim,
                            k_stride: 1,
                        }
                    };
                    let b_data = values(2, kdim * (cols + 3));
                    let b = Rhs {
                        data: &b_data,
                        row_stride: cols + 3,
                    };
                    let start = values(3, rows * cols);
                    let mut c = start.clone();
                    let out = Out {
                        data: &mut c,
                        row_stride: cols,
                        accumulate,
                    };
                    let bounds = Bounds {
                        rows,
                        k_max: kdim,
                        cols_max: cols,
                    };
                    block_rows::<Unfused, 32>(a, b, out, bounds, |_, _| (0..kdim, 0..cols));
                    let want = reference(a, b, rows, 0..kdim, cols);
                    for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                        let w = if accumulate {
                            w + f64::from(start[idx])
                        } else {
                            w
                        };
                        assert!(
                            (f64::from(got) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{rows}x{kdim}x{cols} t={transposed} acc={accumulate} [{idx}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn extents_limit_k_and_columns_per_row_block() {
        let (rows, kdim, cols) = (9, 12, 40);
        let a_data = values(4, rows * kdim);
        let a = Lhs {
            data: &a_data,
            row_stride: kdim,
            k_stride: 1,
        };
        let b_data = values(5, kdim * cols);
        let b = Rhs {
            data: &b_data,
            row_stride: cols,
        };
        let mut c = vec![f32::NAN; rows * cols];
        let out = Out {
            data: &mut c,
            row_stride: cols,
            accumulate: false,
        };
        let bounds = Bounds {
            rows,
            k_max: kdim,
            cols_max: cols,
        };
        // Block of rows f..=l: k in f..l+2, columns from 0 or 16 (every
        // other block) to l+23.
        let extent = |f: usize, l: usize| {
            let start = 16 * (f / R % 2);
            (f..(l + 2).min(kdim), start..(l + 23).min(cols))
        };
        block_rows::<Unfused, 16>(a, b, out, bounds, extent);
        for first in (0..rows).step_by(R) {
            let last = (first + R - 1).min(rows - 1);
            let (k, written) = extent(first, last);
            let want = reference(a, b, rows, k, cols);
            for i in first..=last {
                for j in 0..cols {
                    let got = c[i * cols + j];
                    if written.contains(&j) {
                        assert!(
                            (f64::from(got) - want[i * cols + j]).abs() < 1e-5,
                            "({i},{j})"
                        );
                    } else {
                        assert!(got.is_nan(), "({i},{j}) outside the extent was written");
                    }
                }
            }
        }
    }

    #[test]
    fn packed_tiles_hold_the_transpose_padded_with_zeros() {
        // Small shapes take the scalar path only; 21 × 19 in tiles of 16 also
        // takes full 8 × 8 blocks with key and column remainders.
        for (n, d, tile) in [(5, 3, 4), (21, 19, 16), (16, 8, 16)] {
            check_packing(n, d, tile);
        }
    }

    fn check_packing(n: usize, d: usize, tile: usize) {
        let rows = values(6, n * d);
        let mut packed = vec![9.0; 1000];
        pack_transposed_tiles(&rows, d, tile, &mut packed);
        let tiles = n.div_ceil(tile);
        assert_eq!(packed.len(), tiles * d * tile);
        for t in 0..tiles {
            for c in 0..d {
                for j in 0..tile {
                    let key = t * tile + j;
                    let want = if key < n { rows[key * d + c] } else { 0.0 };
                    assert_eq!(packed[t * d * tile + c * tile + j], want);
                }
            }
        }
    }
}

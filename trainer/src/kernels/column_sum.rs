//! Column sums of row-major matrices: the bias gradients of linear layers.

use super::simd::simd_dispatch;

/// Columns summed together, held in vector registers across all rows
/// (four AVX-512 registers), so each element is read once and `acc` is
/// written once per block.
const BLOCK: usize = 64;

/// Adds the sums over all `stride`-wide rows of `m` of the `N` columns
/// starting at `first` to `acc`.
#[inline(always)]
fn block_sum<const N: usize>(m: &[f32], stride: usize, first: usize, acc: &mut [f32]) {
    let mut sums = [0.0f32; N];
    for row in m.chunks_exact(stride) {
        let row: &[f32; N] = row[first..first + N].try_into().expect("N columns");
        sums.iter_mut().zip(row).for_each(|(s, &x)| *s += x);
    }
    acc.iter_mut().zip(sums).for_each(|(a, s)| *a += s);
}

simd_dispatch! {
    /// `acc[j] += Σ_rows m[row][first + j]` for the `acc.len()` columns
    /// starting at column `first` of the `stride`-wide rows of `m`.
    pub fn column_sum_into(m: &[f32], stride: usize, first: usize, acc: &mut [f32]) {
        assert!(first + acc.len() <= stride, "columns exceed the row");
        assert!(m.len().is_multiple_of(stride.max(1)), "matrix is not whole rows");
        let mut blocks = acc.chunks_exact_mut(BLOCK);
        let mut col = first;
        for acc in &mut blocks {
            block_sum::<BLOCK>(m, stride, col, acc);
            col += BLOCK;
        }
        for acc in blocks.into_remainder().chunks_mut(16) {
            if acc.len() == 16 {
                block_sum::<16>(m, stride, col, acc);
            } else {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += m.chunks_exact(stride).map(|row| row[col + j]).sum::<f32>();
                }
            }
            col += acc.len();
        }
    }
}

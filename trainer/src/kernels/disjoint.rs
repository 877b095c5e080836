//! One output buffer written by parallel tasks at places no two of them
//! share, such as the column block of one head in rows every head writes.

use std::marker::PhantomData;

use super::heads::copy;

/// A mutable `f32` buffer that parallel tasks write at disjoint places.
///
/// Safe code cannot hand out `&mut` views of interleaved column blocks, so
/// writes go through [`DisjointWrites::scatter_rows`], whose caller promises
/// that no other task touches the same elements during the call. Bounds are
/// always checked.
pub(super) struct DisjointWrites<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: PhantomData<&'a mut [f32]>,
}

// SAFETY: shared between tasks, the type only hands out writes the caller
// guarantees disjoint (see `scatter_rows`), and it borrows the buffer
// mutably for its whole life.
unsafe impl Sync for DisjointWrites<'_> {}

impl<'a> DisjointWrites<'a> {
    /// Takes `buffer` for the tasks' writes.
    pub(super) fn new(buffer: &'a mut [f32]) -> Self {
        DisjointWrites {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
            _buffer: PhantomData,
        }
    }

    /// Row `i` of the contiguous `src` (`width` values a row) goes to
    /// `buffer[offset + i·stride ..][..width]`.
    ///
    /// # Safety
    /// No other task may read or write those elements while the call runs.
    pub(super) unsafe fn scatter_rows(
        &self,
        offset: usize,
        src: &[f32],
        width: usize,
        stride: usize,
    ) {
        let rows = src.len() / width.max(1);
        if rows == 0 || width == 0 {
            return;
        }
        assert!(
            width <= stride && offset + (rows - 1) * stride + width <= self.len,
            "scatter reaches past the buffer"
        );
        for (i, row) in src.chunks_exact(width).enumerate() {
            // SAFETY: in bounds by the assert; the caller rules out any other
            // access to these elements.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset + i * stride), width) };
            copy(dst, row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Threads;

    #[test]
    fn tasks_fill_their_own_column_blocks() {
        let (rows, blocks, width) = (5, 4, 3);
        let stride = blocks * width;
        let mut out = vec![0.0f32; rows * stride];
        let writes = DisjointWrites::new(&mut out);
        Threads::new(3).unwrap().for_each_index(blocks, |b| {
            let src: Vec<f32> = (0..rows * width).map(|i| (b * 100 + i) as f32).collect();
            // SAFETY: block `b` owns columns b·width.. of every row.
            unsafe { writes.scatter_rows(b * width, &src, width, stride) };
        });
        for (i, &x) in out.iter().enumerate() {
            let (row, col) = (i / stride, i % stride);
            let (b, j) = (col / width, col % width);
            assert_eq!(x, (b * 100 + row * width + j) as f32);
        }
    }
}

//! [`Bf16Buffer`]: bf16 values owned by one device, and their views.
//!
//! The values are stored two to a 32-bit word, value `2i` in the low half
//! of word `i` and value `2i + 1` in its high half (an odd count leaves the
//! last high half zero), in an ordinary [`Buffer`] of `len.div_ceil(2)`
//! words. On a little-endian host that is a plain `[u16]` array, and every
//! device keeps its memory management and copies. The words hold bit
//! patterns, not `f32` values: only [`Kernels::round_to_bf16`] writes them
//! and [`Kernels::widen_bf16`] reads them.
//!
//! [`Kernels::round_to_bf16`]: crate::kernels::Kernels::round_to_bf16
//! [`Kernels::widen_bf16`]: crate::kernels::Kernels::widen_bf16

use super::{Buffer, DeviceError, Slice, SliceMut};
use crate::kernels::Kernels;

/// `len` bf16 values owned by one device, two to a word of `words`.
#[derive(Debug)]
pub struct Bf16Buffer {
    words: Buffer,
    len: usize,
}

/// A read-only view of every value of a [`Bf16Buffer`].
#[derive(Clone, Copy, Debug)]
pub struct Bf16Slice<'a> {
    /// The words, `len.div_ceil(2)` of them.
    pub words: Slice<'a>,
    /// Number of bf16 values.
    pub len: usize,
}

/// A writable view of every value of a [`Bf16Buffer`].
#[derive(Debug)]
pub struct Bf16SliceMut<'a> {
    /// The words, `len.div_ceil(2)` of them.
    pub words: SliceMut<'a>,
    /// Number of bf16 values.
    pub len: usize,
}

impl Bf16Buffer {
    /// `len` bf16 zeros in the memory of `kernels`.
    pub fn zeros(kernels: &dyn Kernels, len: usize) -> Result<Self, DeviceError> {
        Ok(Bf16Buffer {
            words: kernels.alloc(Self::words_for(len))?,
            len,
        })
    }

    /// Words that hold `len` bf16 values.
    pub fn words_for(len: usize) -> usize {
        len.div_ceil(2)
    }

    /// Number of bf16 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A read-only view.
    pub fn view(&self) -> Bf16Slice<'_> {
        Bf16Slice {
            words: self.words.view(),
            len: self.len,
        }
    }

    /// A writable view.
    pub fn view_mut(&mut self) -> Bf16SliceMut<'_> {
        Bf16SliceMut {
            words: self.words.view_mut(),
            len: self.len,
        }
    }
}

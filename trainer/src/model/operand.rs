//! [`ProductOperand`]: an activation the backward reads only as an operand
//! of matrix products, kept at the precision those products read.

use crate::device::{Bf16Buffer, Buffer, DeviceError, Slice, SliceMut};
use crate::kernels::{Kernels, Precision};

/// An activation whose every reader after the forward is a matrix product
/// (the LayerNorm outputs entering the qkv and fc products, the GELU output
/// entering the MLP projection: their weight gradients read them again).
///
/// With bf16 products it is kept in bf16, at half the memory: the products
/// round their operands to bf16 anyway, and the rounding is the same, so
/// the backward reads bit for bit what it would have read from an f32 copy.
/// The forward then computes the f32 values into a scratch buffer that the
/// blocks share, and the backward widens them back into it.
#[derive(Debug)]
pub(crate) enum ProductOperand {
    /// Kept as computed.
    F32(Buffer),
    /// Kept rounded to bf16.
    Bf16(Bf16Buffer),
}

impl ProductOperand {
    /// Room for `len` values on the device of `kernels`, kept at
    /// `precision` (that of its products, or f32).
    pub(crate) fn new(
        kernels: &dyn Kernels,
        len: usize,
        precision: Precision,
    ) -> Result<Self, DeviceError> {
        Ok(match precision {
            Precision::F32 => ProductOperand::F32(kernels.alloc(len)?),
            Precision::Bf16 => ProductOperand::Bf16(Bf16Buffer::zeros(kernels, len)?),
        })
    }

    /// `f32` values allocated for `len` values at `precision` (a bf16
    /// buffer holds two to a word; the shared scratch is counted apart).
    pub(crate) fn floats(len: f64, precision: Precision) -> f64 {
        match precision {
            Precision::F32 => len,
            Precision::Bf16 => len / 2.0,
        }
    }

    /// Where the forward writes the values: the buffer itself, or the first
    /// values of `scratch` (then [`ProductOperand::keep`] keeps them).
    pub(crate) fn output<'a>(&'a mut self, scratch: &'a mut Buffer) -> SliceMut<'a> {
        match self {
            ProductOperand::F32(b) => b.view_mut(),
            ProductOperand::Bf16(b) => scratch.view_mut().range(0..b.len()),
        }
    }

    /// After the forward wrote [`ProductOperand::output`]: keeps the values
    /// (rounding them to bf16 from `scratch`) and returns them for the
    /// forward's own product.
    pub(crate) fn keep<'a>(&'a mut self, kernels: &dyn Kernels, scratch: &'a Buffer) -> Slice<'a> {
        match self {
            ProductOperand::F32(b) => b.view(),
            ProductOperand::Bf16(b) => {
                let values = scratch.view().range(0..b.len());
                kernels.round_to_bf16(values, b.view_mut());
                values
            }
        }
    }

    /// The values for the backward's products: the buffer itself, or the
    /// bf16 values widened into `scratch`.
    pub(crate) fn read<'a>(&'a self, kernels: &dyn Kernels, scratch: &'a mut Buffer) -> Slice<'a> {
        match self {
            ProductOperand::F32(b) => b.view(),
            ProductOperand::Bf16(b) => {
                let len = b.len();
                kernels.widen_bf16(b.view(), scratch.view_mut().range(0..len));
                scratch.view().range(0..len)
            }
        }
    }
}

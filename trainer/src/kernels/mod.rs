//! CPU numeric kernels, f32 throughout, free of framework types.
//!
//! Each file holds one concept as plain functions on slices; [`Kernels`] puts
//! them behind one object-safe trait so a device plugin can replace the CPU
//! implementation ([`CpuKernels`]) as a whole. Parallel kernels run on the
//! rank's own [`Threads`], never on rayon's global pool.

mod attention_batched;
mod attention_block;
mod attention_merge;
mod cpu;
mod cross_entropy;
mod gelu;
mod gemm;
mod layernorm;
mod residual;
mod threads;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use attention_batched::{BatchedAttention, Rows, merge_partial_rows};
pub use attention_block::{Mask, attention_block_backward, attention_block_forward};
pub use attention_merge::{clear_partial, merge_partial};
pub use cpu::{CpuKernels, Kernels};
pub use cross_entropy::{
    IGNORE_TARGET, LossSum, TargetOutOfRange, check_targets, cross_entropy_backward,
    cross_entropy_forward,
};
pub use gelu::{gelu_backward, gelu_backward_inplace, gelu_forward};
pub use gemm::{
    MatRef, column_sum_into, gemm, gemm_serial, linear_backward, linear_forward,
    tied_head_backward, tied_head_forward,
};
pub use layernorm::{LAYERNORM_EPS, layernorm_backward, layernorm_forward};
pub use residual::residual_add;
pub use threads::{Threads, ThreadsError};

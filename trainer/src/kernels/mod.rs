//! CPU numeric kernels, f32 throughout, free of framework types.
//!
//! Each file holds one concept as plain functions on slices; [`Kernels`] puts
//! them behind one object-safe trait so a device plugin can replace the CPU
//! implementation ([`CpuKernels`]) as a whole. Parallel kernels run on the
//! rank's own [`Threads`], never on rayon's global pool.
//!
//! # GEMM choice (measured 2026, this project's 2-vCPU Intel Xeon, AVX-512)
//!
//! Release build, best of 7, GFLOP/s; A^T = A read transposed (weight grads).
//!
//! | shape (M×K @ K×N)       | gemm 0.19 1T | matrixmultiply 0.3.11 1T | gemm 2T | mm 2T (own threading) |
//! |-------------------------|-------------:|-------------------------:|--------:|----------------------:|
//! | 2048×128 @ 128×384      | 100-105      | 156-159                  | 103     | 152                   |
//! | 2048×128 @ 128×512      | 99-103       | 141-168                  | 103     | 162                   |
//! | 2048×512 @ 512×128      | 103-106      | 145-147                  | 106     | 150                   |
//! | 128×2048 @ 2048×384 A^T | 82-88        | 129                      | 76      | 132                   |
//! | 2048×256 @ 256×768      | 45-74        | 164                      | 79      | 163                   |
//! | 2048×1024 @ 1024×256    | 104-106      | 109-148                  | 93      | 135                   |
//! | 256×2048 @ 2048×1024 A^T| 70-94        | 70-140                   | 65      | 111                   |
//!
//! `matrixmultiply` wins (its AVX-512 kernel is on by default; `gemm`'s needs
//! nightly). A second thread gives little on this VM, so the default is one
//! GEMM thread per rank; with more, [`gemm`] splits output rows over the
//! rank's pool.

mod attention_batched;
mod attention_block;
mod attention_merge;
mod attention_tile;
mod config;
mod cpu;
mod cross_entropy;
mod fast_math;
mod gelu;
mod gemm;
mod layernorm;
mod residual;
mod rowops;
mod simd;
mod threads;

#[cfg(test)]
mod attention_wide_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod threaded_tests;

pub use attention_batched::{BatchedAttention, Rows, merge_partial_rows};
pub use attention_block::{Mask, attention_block_backward, attention_block_forward};
pub use attention_merge::{clear_partial, merge_partial};
pub use config::KernelsConfig;
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

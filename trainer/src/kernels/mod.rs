//! CPU numeric kernels, f32 throughout, free of framework types.
//!
//! Each file holds one concept as plain functions on slices; [`Kernels`] puts
//! them, with the device's memory, behind one object-safe trait over
//! [`device`](crate::device) buffers, so a device plugin can replace the CPU
//! implementation ([`CpuKernels`]) as a whole. Parallel kernels run on the
//! rank's own [`Threads`], never on a process-wide pool.
//!
//! # GEMM choice (measured 2026-11, this project's 2-vCPU Intel Xeon, AVX-512)
//!
//! Release build, one thread, best of 40 (5 for the 124M shapes), GFLOP/s;
//! A^T / B^T = operand read transposed (weight and input gradients). Same
//! run; MKL (PyTorch) reached 172-182 on the first four shapes.
//!
//! | shape (M×K @ K×N)           | `gemm` 0.19 `x86-v4` | `matrixmultiply` 0.3.11 |
//! |-----------------------------|---------------------:|------------------------:|
//! | 2048×2048 @ 2048×2048       | 155                  | 126                     |
//! | 2048×128 @ 128×384          | 154                  | 133                     |
//! | 2048×512 @ 512×128          | 171                  | 125                     |
//! | 2048×384 @ 384×128 B^T      | 174                  | 131                     |
//! | 128×2048 @ 2048×384 A^T     | 150                  | 151                     |
//! | 512×2048 @ 2048×128 A^T     | 148                  | 133                     |
//! | 2048×1024 @ 1024×256        | 178                  | 146                     |
//! | 4096×768 @ 768×2304         | 131                  | 94                      |
//! | 768×4096 @ 4096×2304 A^T    | 133                  | 101                     |
//!
//! `gemm` with its `x86-v4` feature (AVX-512 kernels; stable Rust since 1.89,
//! chosen at run time) wins by 0-40 %. An earlier measurement without that
//! feature had `gemm` on its AVX2 kernels at 45-106 and `matrixmultiply`
//! ahead. Every call is single-threaded; [`gemm`] splits output rows over
//! the rank's pool, and [`weight_gradient`] splits weight gradients along
//! the token dimension.
//!
//! Products with bf16 operands and f32 accumulation run on the
//! AVX512-BF16 kernels of `gemm_bf16` ([`Bf16Gemm`], 1.5-2.1× these f32
//! rates on a Zen 5 EPYC; the `gemm` crate has no bf16), through the same
//! parallel drivers: each has a `_with` form taking a [`Product`].

mod attention_batched;
mod attention_block;
mod attention_merge;
mod attention_packed;
mod attention_tile;
mod bf16_storage;
mod column_sum;
mod config;
mod cpu;
mod cross_entropy;
mod disjoint;
mod embedding;
mod fast_math;
mod fill_columns;
mod gelu;
mod gemm;
mod gemm_bf16;
mod heads;
mod lanes;
mod layernorm;
mod probe;
mod residual;
mod rowops;
mod runs;
mod set;
mod simd;
mod team;
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
pub use attention_packed::{PackedAttention, PackedQkv};
pub use bf16_storage::{bf16_bits, round_to_bf16, widen_bf16};
pub use config::{KernelsConfig, Precision};
pub use cpu::CpuKernels;
pub use cross_entropy::{
    IGNORE_TARGET, LossSum, TargetOutOfRange, check_targets, cross_entropy_backward,
    cross_entropy_forward,
};
pub use embedding::{NO_TOKEN_ROW, embedding_backward, embedding_forward};
pub use gelu::{bias_gelu_forward, gelu_backward, gelu_backward_from_slope, gelu_forward};
pub use gemm::{
    MatRef, Product, column_sum_into, gemm, gemm_serial, gemm_with, linear_backward,
    linear_backward_with, linear_forward, linear_forward_with, tied_head_backward,
    tied_head_backward_with, tied_head_forward, tied_head_forward_with, weight_gradient,
    weight_gradient_with,
};
pub use gemm_bf16::{Bf16Features, Bf16Gemm, Bf16Unsupported};
pub use heads::HeadLayout;
pub use layernorm::{LAYERNORM_EPS, layernorm_backward, layernorm_forward};
pub use probe::{DeviceProbe, device_has_own_memory, probe_device};
pub use residual::residual_add;
pub use runs::Runs;
pub use set::{Kernels, QkvProjection, adopt_by_copy};
pub use threads::{Threads, ThreadsError};

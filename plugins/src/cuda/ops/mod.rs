//! The host orchestration of the kernels, written once for every
//! [`Launcher`]: one function per operation on device [`Span`]s. Each checks
//! the sizes (an error names the kernel and the buffer), checks token ids
//! and targets on the host, allocates its scratch (partials, loss values,
//! bucket indices), takes the configuration from
//! [`launch`](crate::cuda::launch) and queues the kernels in order. Each
//! mirrors the `cptrain` CPU function of the same name.

mod attention;
mod bf16;
mod columns;
mod cross_entropy;
mod embedding;
mod heads;
mod layernorm;
mod linear;
mod optim;
mod packed;
mod pointwise;
mod values;

pub use attention::{attention_backward, attention_forward, attention_merge};
pub use bf16::{round_to_bf16, widen_bf16};
pub use columns::column_sum_into;
pub use cross_entropy::{cross_entropy_backward, cross_entropy_forward};
pub use embedding::{embedding_backward, embedding_forward};
pub use heads::{merge_heads, split_heads};
pub use layernorm::{layernorm_backward, layernorm_forward};
pub use linear::{linear_backward, linear_forward, tied_head_backward, tied_head_forward};
pub use optim::{adamw_step, scale, sum_of_squares};
pub use packed::{packed_attention_backward, packed_attention_forward};
pub use pointwise::{bias_add, bias_gelu_forward, gelu_backward_from_slope, residual_add};
pub use values::{add_assign, copy, copy_runs, fill, fill_columns};

use crate::cuda::CudaError;
use crate::cuda::launcher::{Launcher, Span};

/// `Ok` when `ok`, else a shape error for `kernel`.
fn ensure(
    kernel: &'static str,
    ok: bool,
    problem: impl FnOnce() -> String,
) -> Result<(), CudaError> {
    if ok {
        Ok(())
    } else {
        Err(CudaError::Shape {
            kernel,
            problem: problem(),
        })
    }
}

/// Checks that `len` is `rows × width` for a buffer called `name`.
fn ensure_len(
    kernel: &'static str,
    name: &str,
    len: usize,
    rows: usize,
    width: usize,
) -> Result<(), CudaError> {
    ensure(kernel, Some(len) == rows.checked_mul(width), || {
        format!("`{name}` has {len} elements, expected {rows} × {width}")
    })
}

/// Rows of a buffer of `len` elements and the given `width`, or an error.
fn rows_of(kernel: &'static str, name: &str, len: usize, width: usize) -> Result<usize, CudaError> {
    ensure(kernel, width > 0 && len.is_multiple_of(width), || {
        format!("`{name}` ({len} elements) is not made of {width}-wide rows")
    })?;
    Ok(len / width)
}

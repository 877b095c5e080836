use cptrain::kernels::{LossSum, check_targets};

use super::super::runtime::{launch, params};
use super::{ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{block_per_row, single_block, to_i32};

/// `cptrain::kernels::cross_entropy_forward`: each row's log-sum-exp into
/// `lse`, and the summed loss of the counted targets (one block adds the
/// per-row losses in a fixed order). A bad target is an error, found
/// before any launch.
pub fn cross_entropy_forward(
    logits: &[f32],
    targets: &[u32],
    lse: &mut [f32],
) -> Result<LossSum, CudaError> {
    const K: &str = "cross_entropy_forward";
    let rows = targets.len();
    ensure_len(K, "lse", lse.len(), rows, 1)?;
    if rows == 0 {
        return Ok(LossSum::default());
    }
    let vocab = rows_of(K, "logits", logits.len(), rows)?;
    check_targets(targets, vocab).map_err(|e| CudaError::Shape {
        kernel: K,
        problem: e.to_string(),
    })?;
    let mut losses = vec![0.0f32; rows];
    let mut result = [0.0f64; 2];
    let (x, t, l, lo, res) = (
        logits.as_ptr(),
        targets.as_ptr(),
        lse.as_mut_ptr(),
        losses.as_mut_ptr(),
        result.as_mut_ptr(),
    );
    let (n, v) = (to_i32(rows, K, "rows")?, to_i32(vocab, K, "vocab")?);
    // SAFETY: argument types match; sizes checked above, `losses` has a
    // value per row and `result` two.
    unsafe {
        launch(K, &block_per_row(rows), &mut params![x, t, l, lo, n, v])?;
        launch("loss_sum", &single_block(), &mut params![lo, t, n, res])?;
    }
    Ok(LossSum {
        sum: result[0],
        count: result[1] as usize,
    })
}

/// `cptrain::kernels::cross_entropy_backward`: logits ← `scale·(softmax −
/// onehot(target))`, zero on ignored rows.
pub fn cross_entropy_backward(
    logits: &mut [f32],
    targets: &[u32],
    lse: &[f32],
    scale: f32,
) -> Result<(), CudaError> {
    const K: &str = "cross_entropy_backward";
    let rows = targets.len();
    ensure_len(K, "lse", lse.len(), rows, 1)?;
    if rows == 0 {
        return Ok(());
    }
    let vocab = rows_of(K, "logits", logits.len(), rows)?;
    check_targets(targets, vocab).map_err(|e| CudaError::Shape {
        kernel: K,
        problem: e.to_string(),
    })?;
    let (x, t, l) = (logits.as_mut_ptr(), targets.as_ptr(), lse.as_ptr());
    let (n, v) = (to_i32(rows, K, "rows")?, to_i32(vocab, K, "vocab")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { launch(K, &block_per_row(rows), &mut params![x, t, l, scale, n, v]) }
}

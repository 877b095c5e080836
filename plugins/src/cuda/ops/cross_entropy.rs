use cptrain::kernels::{LossSum, check_targets};

use super::{Launcher, Span, ensure_len, rows_of};
use crate::cuda::CudaError;
use crate::cuda::launch::{block_per_row, single_block, to_i32};
use crate::cuda::launcher::{Scratch, params};

/// Checks the sizes of the logits and `lse` against `targets`; returns
/// (rows, vocab).
fn check(
    k: &'static str,
    logits: Span,
    targets: &[u32],
    lse: Span,
) -> Result<(usize, usize), CudaError> {
    let rows = targets.len();
    ensure_len(k, "lse", lse.len, rows, 1)?;
    if rows == 0 {
        return Ok((0, 0));
    }
    Ok((rows, rows_of(k, "logits", logits.len, rows)?))
}

/// `cptrain::kernels::cross_entropy_forward`: each row's log-sum-exp into
/// `lse`, and the summed loss of the counted targets (one block adds the
/// per-row losses in a fixed order). A bad target is an error, found
/// before any launch. Waits for the device (the sum comes back).
pub fn cross_entropy_forward(
    dev: &dyn Launcher,
    logits: Span,
    targets: &[u32],
    lse: Span,
) -> Result<LossSum, CudaError> {
    const K: &str = "cross_entropy_forward";
    let (rows, vocab) = check(K, logits, targets, lse)?;
    if rows == 0 {
        return Ok(LossSum::default());
    }
    check_targets(targets, vocab).map_err(|e| CudaError::Shape {
        kernel: K,
        problem: e.to_string(),
    })?;
    let ids = Scratch::from_host(dev, targets)?;
    let losses = Scratch::<f32>::zeroed(dev, rows)?;
    let result = Scratch::<f64>::zeroed(dev, 2)?;
    let (x, t, l, lo, res) = (
        logits.addr,
        ids.addr(),
        lse.addr,
        losses.addr(),
        result.addr(),
    );
    let (n, v) = (to_i32(rows, K, "rows")?, to_i32(vocab, K, "vocab")?);
    // SAFETY: argument types match; sizes checked above, `losses` has a
    // value per row and `result` two.
    unsafe {
        dev.launch(K, &block_per_row(rows), &mut params![x, t, l, lo, n, v])?;
        dev.launch("loss_sum", &single_block(), &mut params![lo, t, n, res])?;
    }
    let result = result.to_host()?;
    Ok(LossSum {
        sum: result[0],
        count: result[1] as usize,
    })
}

/// `cptrain::kernels::cross_entropy_backward`: logits ← `scale·(softmax −
/// onehot(target))`, zero on ignored rows; a target at or above the row
/// width (held by another vocabulary-parallel rank) leaves the softmax.
pub fn cross_entropy_backward(
    dev: &dyn Launcher,
    logits: Span,
    targets: &[u32],
    lse: Span,
    scale: f32,
) -> Result<(), CudaError> {
    const K: &str = "cross_entropy_backward";
    let (rows, vocab) = check(K, logits, targets, lse)?;
    if rows == 0 {
        return Ok(());
    }
    let ids = Scratch::from_host(dev, targets)?;
    let (x, t, l) = (logits.addr, ids.addr(), lse.addr);
    let (n, v) = (to_i32(rows, K, "rows")?, to_i32(vocab, K, "vocab")?);
    // SAFETY: argument types match; sizes checked above.
    unsafe { dev.launch(K, &block_per_row(rows), &mut params![x, t, l, scale, n, v]) }
}

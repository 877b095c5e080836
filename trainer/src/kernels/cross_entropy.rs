//! Fused softmax + cross-entropy over the vocabulary.
//!
//! The forward keeps the logits and saves each row's log-sum-exp; the
//! backward turns the logits into their gradient in place, so the `[rows,
//! vocab]` buffer is the largest activation and exists once.

/// Target id meaning "no loss at this position".
pub const IGNORE_TARGET: u32 = u32::MAX;

/// Summed loss and the number of targets it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSum {
    /// Σ −log p(target) over the counted targets, accumulated in f64.
    pub sum: f64,
    /// Targets that were not [`IGNORE_TARGET`].
    pub count: usize,
}

impl LossSum {
    /// The mean loss (`NaN` when nothing was counted).
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

impl std::ops::AddAssign for LossSum {
    fn add_assign(&mut self, other: Self) {
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// A target id that is neither a token nor [`IGNORE_TARGET`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("target {target} at position {position} is not below the vocabulary size {vocab}")]
pub struct TargetOutOfRange {
    /// Row of the offending target.
    pub position: usize,
    /// Its value.
    pub target: u32,
    /// The vocabulary size.
    pub vocab: usize,
}

/// Checks that every target is a token id or [`IGNORE_TARGET`].
pub fn check_targets(targets: &[u32], vocab: usize) -> Result<(), TargetOutOfRange> {
    match targets
        .iter()
        .position(|&t| t != IGNORE_TARGET && t as usize >= vocab)
    {
        Some(position) => Err(TargetOutOfRange {
            position,
            target: targets[position],
            vocab,
        }),
        None => Ok(()),
    }
}

/// Computes each row's log-sum-exp into `lse` and returns the summed loss of
/// the counted targets. Fails, before touching anything, on a bad target.
pub fn cross_entropy_forward(
    logits: &[f32],
    targets: &[u32],
    lse: &mut [f32],
) -> Result<LossSum, TargetOutOfRange> {
    let rows = targets.len();
    assert_eq!(lse.len(), rows);
    assert!(rows == 0 || logits.len().is_multiple_of(rows));
    let vocab = logits.len().checked_div(rows).unwrap_or(0);
    check_targets(targets, vocab)?;
    let mut loss = LossSum::default();
    for ((row, &t), lse) in logits.chunks_exact(vocab).zip(targets).zip(lse.iter_mut()) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
        *lse = max + sum.ln();
        if t != IGNORE_TARGET {
            loss.sum += f64::from(*lse - row[t as usize]);
            loss.count += 1;
        }
    }
    Ok(loss)
}

/// Replaces the logits by `scale · (softmax − onehot(target))`, zero on
/// ignored rows. `lse` is the forward's; targets were checked by the forward.
pub fn cross_entropy_backward(logits: &mut [f32], targets: &[u32], lse: &[f32], scale: f32) {
    let rows = targets.len();
    assert_eq!(lse.len(), rows);
    let vocab = logits.len().checked_div(rows).unwrap_or(0);
    for ((row, &t), &lse) in logits.chunks_exact_mut(vocab).zip(targets).zip(lse) {
        if t == IGNORE_TARGET {
            row.fill(0.0);
            continue;
        }
        for x in row.iter_mut() {
            *x = scale * (*x - lse).exp();
        }
        row[t as usize] -= scale;
    }
}

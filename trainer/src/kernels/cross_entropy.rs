//! Fused softmax + cross-entropy over the vocabulary.
//!
//! The forward keeps the logits and saves each row's log-sum-exp; the
//! backward turns the logits into their gradient in place, so the `[rows,
//! vocab]` buffer is the largest activation and exists once. Rows are
//! independent; the `_rows` functions do a slice of rows so callers can
//! split them over threads.

use super::rowops::{exp_sum, row_max, scaled_exp};

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
    let vocab = vocab_of(logits, targets);
    assert_eq!(lse.len(), targets.len());
    check_targets(targets, vocab)?;
    row_lse(logits, lse);
    Ok(loss_from_lse(logits, targets, lse))
}

fn vocab_of(logits: &[f32], targets: &[u32]) -> usize {
    let rows = targets.len();
    assert!(rows == 0 || logits.len().is_multiple_of(rows));
    logits.len().checked_div(rows).unwrap_or(0)
}

/// `lse[r] = log Σ_j e^logits[r, j]` for every row (`lse.len()` rows).
pub(crate) fn row_lse(logits: &[f32], lse: &mut [f32]) {
    let vocab = logits.len().checked_div(lse.len()).unwrap_or(0);
    if vocab == 0 {
        return;
    }
    for (row, lse) in logits.chunks_exact(vocab).zip(lse.iter_mut()) {
        let max = row_max(row);
        *lse = max + exp_sum(row, max).ln();
    }
}

/// The summed loss `Σ lse − logit[target]` over counted targets, from the
/// per-row log-sum-exp.
pub(crate) fn loss_from_lse(logits: &[f32], targets: &[u32], lse: &[f32]) -> LossSum {
    let vocab = vocab_of(logits, targets);
    let mut loss = LossSum::default();
    for (r, (&t, &lse)) in targets.iter().zip(lse).enumerate() {
        if t != IGNORE_TARGET {
            loss.sum += f64::from(lse - logits[r * vocab + t as usize]);
            loss.count += 1;
        }
    }
    loss
}

/// Replaces the logits by `scale · (softmax − onehot(target))`, zero on
/// ignored rows. `lse` is the forward's. A target at or above the row width
/// (other than [`IGNORE_TARGET`]) is a counted target held by another
/// vocabulary-parallel rank: its row gets `scale · softmax` alone.
pub fn cross_entropy_backward(logits: &mut [f32], targets: &[u32], lse: &[f32], scale: f32) {
    assert_eq!(lse.len(), targets.len());
    let vocab = vocab_of(logits, targets);
    if vocab == 0 {
        return;
    }
    for ((row, &t), &lse) in logits.chunks_exact_mut(vocab).zip(targets).zip(lse) {
        if t == IGNORE_TARGET {
            row.fill(0.0);
            continue;
        }
        scaled_exp(row, lse, scale);
        if let Some(x) = row.get_mut(t as usize) {
            *x -= scale;
        }
    }
}

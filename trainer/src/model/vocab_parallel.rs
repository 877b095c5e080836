//! The vocabulary-parallel embedding and cross-entropy (Megatron-LM): each
//! TP rank holds the `wte` rows and the logit columns of one block of token
//! ids ([`LocalShape::vocab`]); the full `[N, V]` logits are never gathered.
//!
//! Embedding: a rank looks up only the tokens it holds (the others are
//! [`NO_TOKEN_ROW`]) and the group's sum is the embedding. Loss: each rank's
//! per-row log-sum-exp over its columns is all-gathered (`N` values per
//! rank) and merged, `lse = m + ln Σ_t e^(lse_t − m)`; the target's logit
//! enters through the rank holding it, so the loss sum is
//! `Σ_t own_t + Σ_rows (lse − lse_owner)` where `own_t` is rank `t`'s loss
//! over the rows whose target it holds, against its own `lse_t`. The
//! backward needs only the merged `lse`: `softmax − onehot`, the onehot
//! on the holder alone.

use std::borrow::Cow;

use super::{LocalShape, ModelError, TpGroup};
use crate::device::{Slice, SliceMut};
use crate::kernels::{IGNORE_TARGET, Kernels, LossSum, NO_TOKEN_ROW};
use crate::parallel::ReduceOp;

/// Whether the rank holds every real id at its own index (no tensor
/// parallelism, or a vocabulary within TP rank 0's block).
fn holds_every_id(shape: &LocalShape) -> bool {
    shape.vocab.start == 0 && shape.vocab_holders == 1
}

/// The token ids as this rank's `wte` rows: its own shifted to local rows,
/// the others [`NO_TOKEN_ROW`]. Borrowed when the rank holds every id.
pub(super) fn local_tokens<'a>(shape: &LocalShape, tokens: &'a [u32]) -> Cow<'a, [u32]> {
    if holds_every_id(shape) {
        return Cow::Borrowed(tokens);
    }
    let real = &shape.real_vocab;
    let local = |&t: &u32| match real.contains(&(t as usize)) {
        true => (t as usize - real.start) as u32,
        false => NO_TOKEN_ROW,
    };
    Cow::Owned(tokens.iter().map(local).collect())
}

/// The targets as this rank's forward counts them: its own shifted to local
/// columns, every other one ignored.
fn forward_targets(shape: &LocalShape, targets: &[u32]) -> Vec<u32> {
    let real = &shape.real_vocab;
    let local = |&t: &u32| match t != IGNORE_TARGET && real.contains(&(t as usize)) {
        true => (t as usize - real.start) as u32,
        false => IGNORE_TARGET,
    };
    targets.iter().map(local).collect()
}

/// The targets as this rank's backward reads them: its own shifted to
/// local columns, ignored ones kept, and counted targets another rank holds
/// past the row (softmax only).
fn backward_targets(shape: &LocalShape, targets: &[u32]) -> Vec<u32> {
    let (real, past) = (&shape.real_vocab, shape.vocab_rows() as u32);
    let local = |&t: &u32| match t {
        IGNORE_TARGET => IGNORE_TARGET,
        t if real.contains(&(t as usize)) => (t as usize - real.start) as u32,
        _ => past,
    };
    targets.iter().map(local).collect()
}

/// The vocabulary-parallel loss forward: fills `lse` with every row's
/// log-sum-exp over the whole vocabulary and returns the loss sum over all
/// counted targets (the same on every rank of the group).
pub(super) fn cross_entropy_forward(
    kernels: &dyn Kernels,
    tp: &TpGroup,
    shape: &LocalShape,
    logits: Slice<'_>,
    targets: &[u32],
    mut lse: SliceMut<'_>,
) -> Result<LossSum, ModelError> {
    let own =
        kernels.cross_entropy_forward(logits, &forward_targets(shape, targets), lse.reborrow())?;
    let mine = lse.as_slice().to_host()?.into_owned();
    let (rows, group) = (mine.len(), tp.group());
    let mut all = vec![0.0; rows * group.size()];
    group.all_gather(&mine, &mut all)?;
    let per_rank = shape.vocab_rows();
    let mut merged = vec![0.0f32; rows];
    let mut correction = 0.0f64;
    for (r, (merged, &target)) in merged.iter_mut().zip(targets).enumerate() {
        // Ranks holding only padding have no mass (their lse is not finite).
        let part = |t: usize| f64::from(all[t * rows + r]);
        let max = (0..shape.vocab_holders)
            .map(part)
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..shape.vocab_holders)
            .map(|t| (part(t) - max).exp())
            .sum();
        let row_lse = max + sum.ln();
        *merged = row_lse as f32;
        if target != IGNORE_TARGET {
            correction += row_lse - part(target as usize / per_rank);
        }
    }
    if let Some(host) = lse.reborrow().host() {
        host.copy_from_slice(&merged);
    } else {
        let staged = kernels.upload_vec(merged)?;
        kernels.copy(staged.view(), lse);
    }
    let mut own_sum = [own.sum];
    group.all_reduce_f64(&mut own_sum, ReduceOp::Sum)?;
    Ok(LossSum {
        sum: own_sum[0] + correction,
        count: targets.iter().filter(|&&t| t != IGNORE_TARGET).count(),
    })
}

/// The vocabulary-parallel loss backward: the logits become
/// `scale · (softmax − onehot)` with the merged `lse` of the forward.
pub(super) fn cross_entropy_backward(
    kernels: &dyn Kernels,
    shape: &LocalShape,
    logits: SliceMut<'_>,
    targets: &[u32],
    lse: Slice<'_>,
    scale: f32,
) {
    if holds_every_id(shape) {
        kernels.cross_entropy_backward(logits, targets, lse, scale);
    } else {
        kernels.cross_entropy_backward(logits, &backward_targets(shape, targets), lse, scale);
    }
}

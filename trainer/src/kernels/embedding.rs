//! Token and position embeddings: `x = wte[token] + wpe[position]`.
//!
//! Under tensor parallelism a rank holds only some rows of `wte` (a block of
//! token ids); a token it does not hold is passed as [`NO_TOKEN_ROW`] and
//! contributes zero, and only one rank of the group adds `wpe`, so the sum
//! over the group is the single-rank embedding.

/// A token id meaning "no row of this `wte`": zero in the forward, skipped by
/// the backward.
pub const NO_TOKEN_ROW: u32 = u32::MAX;

/// Row `i` of `out` `[tokens.len(), C]` = `wte[tokens[i]] + wpe[positions[i % len]]`
/// with `len = positions.len()` (the positions of one sequence, repeated for
/// every sequence of the batch). A [`NO_TOKEN_ROW`] token adds nothing, and
/// so does a missing `wpe`.
pub fn embedding_forward(
    tokens: &[u32],
    positions: &[usize],
    wte: &[f32],
    wpe: Option<&[f32]>,
    out: &mut [f32],
) {
    let c = out.len() / tokens.len().max(1);
    for (i, (row, &tok)) in out.chunks_exact_mut(c).zip(tokens).enumerate() {
        let pos = positions[i % positions.len()];
        let te = (tok != NO_TOKEN_ROW).then(|| &wte[tok as usize * c..][..c]);
        let pe = wpe.map(|wpe| &wpe[pos * c..][..c]);
        match (te, pe) {
            (Some(te), Some(pe)) => row
                .iter_mut()
                .zip(te.iter().zip(pe))
                .for_each(|(x, (&a, &b))| *x = a + b),
            (Some(one), None) | (None, Some(one)) => row.copy_from_slice(one),
            (None, None) => row.fill(0.0),
        }
    }
}

/// The backward of [`embedding_forward`]: adds row `i` of `dout` to
/// `dwte[tokens[i]]` (unless it is [`NO_TOKEN_ROW`]) and to
/// `dwpe[positions[i % len]]`.
pub fn embedding_backward(
    dout: &[f32],
    tokens: &[u32],
    positions: &[usize],
    dwte: &mut [f32],
    dwpe: &mut [f32],
) {
    let c = dout.len() / tokens.len().max(1);
    for (i, (row, &tok)) in dout.chunks_exact(c).zip(tokens).enumerate() {
        let pos = positions[i % positions.len()];
        if tok != NO_TOKEN_ROW {
            let te = &mut dwte[tok as usize * c..][..c];
            te.iter_mut().zip(row).for_each(|(w, &d)| *w += d);
        }
        let pe = &mut dwpe[pos * c..][..c];
        pe.iter_mut().zip(row).for_each(|(w, &d)| *w += d);
    }
}

//! Token and position embeddings: `x = wte[token] + wpe[position]`.

/// Row `i` of `out` `[tokens.len(), C]` = `wte[tokens[i]] + wpe[positions[i % len]]`
/// with `len = positions.len()` (the positions of one sequence, repeated for
/// every sequence of the batch).
pub fn embedding_forward(
    tokens: &[u32],
    positions: &[usize],
    wte: &[f32],
    wpe: &[f32],
    out: &mut [f32],
) {
    let c = out.len() / tokens.len().max(1);
    for (i, (row, &tok)) in out.chunks_exact_mut(c).zip(tokens).enumerate() {
        let pos = positions[i % positions.len()];
        let (te, pe) = (&wte[tok as usize * c..][..c], &wpe[pos * c..][..c]);
        row.iter_mut()
            .zip(te.iter().zip(pe))
            .for_each(|(x, (&a, &b))| *x = a + b);
    }
}

/// The backward of [`embedding_forward`]: adds row `i` of `dout` to
/// `dwte[tokens[i]]` and to `dwpe[positions[i % len]]`.
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
        let te = &mut dwte[tok as usize * c..][..c];
        te.iter_mut().zip(row).for_each(|(w, &d)| *w += d);
        let pe = &mut dwpe[pos * c..][..c];
        pe.iter_mut().zip(row).for_each(|(w, &d)| *w += d);
    }
}

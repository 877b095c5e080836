use super::{Launcher, Span, ensure, ensure_len, rows_of};
use crate::cuda::launch::{elementwise, embedding_backward as backward_config, to_i32};
use crate::cuda::launcher::{Scratch, params};
use crate::cuda::{CudaError, RowBuckets};
use cptrain::kernels::NO_TOKEN_ROW;

/// Checks tokens and positions against the tables on the host; returns
/// (rows, len).
fn check(
    k: &'static str,
    tokens: &[u32],
    positions: &[u32],
    wte_rows: usize,
    wpe_rows: usize,
) -> Result<(usize, usize), CudaError> {
    let len = positions.len();
    ensure(k, len > 0 && tokens.len().is_multiple_of(len), || {
        format!(
            "{} tokens are not whole sequences of {len} positions",
            tokens.len()
        )
    })?;
    let bad_token = |&t: &u32| t != NO_TOKEN_ROW && t as usize >= wte_rows;
    if let Some(i) = tokens.iter().position(bad_token) {
        return Err(CudaError::Shape {
            kernel: k,
            problem: format!(
                "token {} at row {i} is not below the vocabulary size {wte_rows}",
                tokens[i]
            ),
        });
    }
    if let Some(i) = positions.iter().position(|&p| p as usize >= wpe_rows) {
        return Err(CudaError::Shape {
            kernel: k,
            problem: format!(
                "position {} at {i} is not below the sequence length {wpe_rows}",
                positions[i]
            ),
        });
    }
    to_i32(tokens.len(), k, "rows")?;
    Ok((tokens.len(), len))
}

/// `out[i] = wte[tokens[i]] + wpe[positions[i % len]]` (the embedding of
/// `cptrain::model::Gpt`), rows `c` wide; a [`NO_TOKEN_ROW`] token and a
/// missing `wpe` add nothing.
pub fn embedding_forward(
    dev: &dyn Launcher,
    tokens: &[u32],
    positions: &[u32],
    wte: Span,
    wpe: Option<Span>,
    out: Span,
    c: usize,
) -> Result<(), CudaError> {
    const K: &str = "embedding_forward";
    let vocab = rows_of(K, "wte", wte.len, c)?;
    let seq = match wpe {
        Some(wpe) => rows_of(K, "wpe", wpe.len, c)?,
        None => usize::MAX,
    };
    let (rows, len) = check(K, tokens, positions, vocab, seq)?;
    ensure_len(K, "out", out.len, rows, c)?;
    let (ids, pos) = (
        Scratch::from_host(dev, tokens)?,
        Scratch::from_host(dev, positions)?,
    );
    // Without `wpe` the kernel reads no table through this address.
    let pe = wpe.map_or(wte.addr, |wpe| wpe.addr);
    let (t, p, te, o) = (ids.addr(), pos.addr(), wte.addr, out.addr);
    let (n, l, ci) = (rows as i32, to_i32(len, K, "len")?, to_i32(c, K, "C")?);
    let has_wpe = i32::from(wpe.is_some());
    // SAFETY: argument types match; sizes and ids checked above.
    unsafe {
        dev.launch(
            K,
            &elementwise(rows * c),
            &mut params![t, p, te, pe, o, n, l, ci, has_wpe],
        )
    }
}

/// The embedding backward: ACCUMULATES row `i` of `grad` into `dwte[tokens[i]]`
/// and `dwpe[positions[i % len]]`, each table row's sum in row order (the
/// CPU's order: bit-identical results, no atomics). The rows are grouped by
/// table row on the host ([`RowBuckets`]).
pub fn embedding_backward(
    dev: &dyn Launcher,
    grad: Span,
    tokens: &[u32],
    positions: &[u32],
    dwte: Span,
    dwpe: Span,
    c: usize,
) -> Result<(), CudaError> {
    const K: &str = "embedding_backward";
    let (vocab, seq) = (
        rows_of(K, "dwte", dwte.len, c)?,
        rows_of(K, "dwpe", dwpe.len, c)?,
    );
    let (rows, len) = check(K, tokens, positions, vocab, seq)?;
    ensure_len(K, "grad", grad.len, rows, c)?;
    // A NO_TOKEN_ROW token has no row to add to: its key is past the table.
    let by_token: Vec<usize> = tokens
        .iter()
        .map(|&t| if t == NO_TOKEN_ROW { vocab } else { t as usize })
        .collect();
    let by_position: Vec<usize> = (0..rows).map(|i| positions[i % len] as usize).collect();
    let ci = to_i32(c, K, "C")?;
    for (keys, table_rows, table) in [(by_token, vocab, dwte), (by_position, seq, dwpe)] {
        let buckets = RowBuckets::new(&keys, table_rows);
        if buckets.keys.is_empty() {
            continue;
        }
        let keys = Scratch::from_host(dev, &buckets.keys)?;
        let starts = Scratch::from_host(dev, &buckets.starts)?;
        let bucket_rows = Scratch::from_host(dev, &buckets.rows)?;
        let (g, k, s, r, out) = (
            grad.addr,
            keys.addr(),
            starts.addr(),
            bucket_rows.addr(),
            table.addr,
        );
        // SAFETY: argument types match; the buckets index rows of `grad`
        // and rows of `table`, both checked above.
        unsafe {
            dev.launch(
                K,
                &backward_config(buckets.keys.len(), c),
                &mut params![g, k, s, r, ci, out],
            )?
        };
    }
    Ok(())
}

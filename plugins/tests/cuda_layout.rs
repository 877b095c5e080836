//! Layout and embedding kernels through cuda-emu against plain references.
#![cfg(feature = "cuda")]

mod cuda;

use cptrain::kernels::HeadLayout;
use cptrain_plugins::cuda::emu::ops;
use cuda::values;

/// Splitting the q columns of a [2, 17, 3·8·3 + 5] buffer into heads moves
/// each value to `[b, h, t, d]`; merging back restores them and leaves the
/// other columns alone.
#[test]
fn split_and_merge_heads_are_inverse_layout_changes() {
    let l = HeadLayout {
        batch: 2,
        len: 17,
        n_head: 3,
        head_dim: 8,
    };
    let (width, col0) = (3 * 24 + 5, 24);
    let src = values(l.batch * l.len * width, 50, 1.0);
    let mut heads = vec![0.0; l.batch * l.n_head * l.len * l.head_dim];
    ops::split_heads(&l, &src, width, col0, &mut heads).unwrap();
    for b in 0..l.batch {
        for h in 0..l.n_head {
            for t in 0..l.len {
                for d in 0..l.head_dim {
                    let want = src[(b * l.len + t) * width + col0 + h * l.head_dim + d];
                    assert_eq!(
                        heads[((b * l.n_head + h) * l.len + t) * l.head_dim + d],
                        want
                    );
                }
            }
        }
    }
    let mut back = vec![7.0; src.len()];
    ops::merge_heads(&l, &heads, &mut back, width, col0).unwrap();
    for (i, (&got, &orig)) in back.iter().zip(&src).enumerate() {
        let col = i % width;
        let inside = (col0..col0 + 24).contains(&col);
        assert_eq!(got, if inside { orig } else { 7.0 }, "element {i}");
    }
    assert!(ops::split_heads(&l, &src, width, width - 10, &mut heads).is_err());
}

/// The embedding forward adds the token and position rows; the backward
/// accumulates each row's gradient into both tables in row order, which
/// is the CPU model's order: bit-equal to the plain loop.
#[test]
fn embedding_matches_the_plain_loops_exactly() {
    let (vocab, seq, c) = (67, 17, 33);
    let positions: Vec<u32> = (0..9).map(|p| p * 2 % 17).collect();
    let tokens: Vec<u32> = (0..27).map(|i| (i * 7 % 5 + i % 3 * 30) as u32).collect();
    let (wte, wpe) = (values(vocab * c, 60, 1.0), values(seq * c, 61, 1.0));
    let mut out = vec![0.0; tokens.len() * c];
    ops::embedding_forward(&tokens, &positions, &wte, Some(&wpe), &mut out, c).unwrap();
    let grad = values(out.len(), 62, 1.0);
    let (mut dwte, mut dwpe) = (values(vocab * c, 63, 1.0), values(seq * c, 64, 1.0));
    let (mut want_te, mut want_pe) = (dwte.clone(), dwpe.clone());
    ops::embedding_backward(&grad, &tokens, &positions, &mut dwte, &mut dwpe, c).unwrap();
    for (i, &t) in tokens.iter().enumerate() {
        let p = positions[i % positions.len()] as usize;
        for j in 0..c {
            assert_eq!(out[i * c + j], wte[t as usize * c + j] + wpe[p * c + j]);
            want_te[t as usize * c + j] += grad[i * c + j];
            want_pe[p * c + j] += grad[i * c + j];
        }
    }
    assert_eq!(dwte, want_te);
    assert_eq!(dwpe, want_pe);
    let bad = [67u32; 9];
    let err = ops::embedding_forward(&bad, &positions, &wte, Some(&wpe), &mut out[..9 * c], c)
        .unwrap_err();
    assert!(err.to_string().contains("token 67"), "{err}");
}

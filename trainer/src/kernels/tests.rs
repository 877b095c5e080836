//! Kernel tests against independent f64 references.
//!
//! Gradients: each kernel's f32 backward is compared with central
//! differences of an independently written f64 forward of the loss
//! `Σ out ∘ r` (r random), so both directions are checked. Tolerance 1e-4
//! relative to the largest gradient: f32 rounding over the short sums here is
//! ~1e-6, a wrong term is O(1).

use super::test_support::{assert_close, central_difference, uniform, wide};
use super::*;

const GRAD_TOL: f64 = 1e-4;

fn ln_ref(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let c = w.len();
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(c) {
        let m = row.iter().sum::<f64>() / c as f64;
        let v = row.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / c as f64;
        let s = 1.0 / (v + 1e-5).sqrt();
        y.extend(
            row.iter()
                .zip(w)
                .zip(b)
                .map(|((x, w), b)| (x - m) * s * w + b),
        );
    }
    y
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn layernorm_matches_f64_reference_and_finite_differences() {
    for (rows, c) in [(3, 7), (5, 16), (1, 1)] {
        let (x, w, b) = (uniform(1, rows * c), uniform(2, c), uniform(3, c));
        let r = wide(&uniform(4, rows * c));
        let (mut y, mut mean, mut rstd) = (vec![0.0; rows * c], vec![0.0; rows], vec![0.0; rows]);
        layernorm_forward(&x, &w, &b, &mut y, &mut mean, &mut rstd);
        assert_close("ln out", &y, &ln_ref(&wide(&x), &wide(&w), &wide(&b)), 1e-5);
        // Accumulation: start the gradients at 1 and expect 1 + gradient.
        let (mut dx, mut dw, mut db) = (vec![1.0; rows * c], vec![1.0; c], vec![1.0; c]);
        let dy: Vec<f32> = r.iter().map(|&v| v as f32).collect();
        layernorm_backward(&dy, &x, &w, &mean, &rstd, &mut dx, &mut dw, &mut db);
        let (xw, ww, bw) = (wide(&x), wide(&w), wide(&b));
        let plus_one = |g: Vec<f64>| g.into_iter().map(|v| v + 1.0).collect::<Vec<_>>();
        let gx = central_difference(|x| dot(&ln_ref(x, &ww, &bw), &r), &xw);
        let gw = central_difference(|w| dot(&ln_ref(&xw, w, &bw), &r), &ww);
        let gb = central_difference(|b| dot(&ln_ref(&xw, &ww, b), &r), &bw);
        assert_close("ln dx", &dx, &plus_one(gx), GRAD_TOL);
        assert_close("ln dw", &dw, &plus_one(gw), GRAD_TOL);
        assert_close("ln db", &db, &plus_one(gb), GRAD_TOL);
    }
}

fn gelu_ref(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

#[test]
fn gelu_matches_f64_reference_and_finite_differences() {
    let x: Vec<f32> = uniform(5, 101).iter().map(|v| v * 6.0).collect();
    let mut y = vec![0.0; x.len()];
    gelu_forward(&x, &mut y);
    let xw = wide(&x);
    assert_close(
        "gelu",
        &y,
        &xw.iter().map(|&v| gelu_ref(v)).collect::<Vec<_>>(),
        1e-6,
    );
    let r = uniform(6, x.len());
    let mut dx = vec![0.0; x.len()];
    gelu_backward(&x, &r, &mut dx);
    let rw = wide(&r);
    let g = central_difference(
        |x| x.iter().zip(&rw).map(|(&x, r)| gelu_ref(x) * r).sum(),
        &xw,
    );
    assert_close("gelu dx", &dx, &g, GRAD_TOL);
}

fn linear_ref(x: &[f64], w: &[f64], b: &[f64], d_in: usize, d_out: usize) -> Vec<f64> {
    let rows = x.len() / d_in;
    let mut y = vec![0.0; rows * d_out];
    for i in 0..rows {
        for o in 0..d_out {
            y[i * d_out + o] = b[o]
                + (0..d_in)
                    .map(|k| x[i * d_in + k] * w[k * d_out + o])
                    .sum::<f64>();
        }
    }
    y
}

#[test]
fn linear_layer_matches_reference_and_accumulates_grads_on_any_thread_count() {
    // Sizes above PARALLEL_MIN_MACS split rows over threads; small ones do not.
    for (rows, d_in, d_out, threads) in [(5, 7, 3, 1), (13, 4, 9, 2), (600, 24, 40, 2)] {
        let threads = Threads::new(threads).unwrap();
        let (x, w, b) = (
            uniform(7, rows * d_in),
            uniform(8, d_in * d_out),
            uniform(9, d_out),
        );
        let mut y = vec![0.0; rows * d_out];
        linear_forward(&threads, &x, &w, Some(&b), &mut y, d_in, d_out);
        let (xw, ww, bw) = (wide(&x), wide(&w), wide(&b));
        assert_close(
            "linear y",
            &y,
            &linear_ref(&xw, &ww, &bw, d_in, d_out),
            1e-5,
        );
        if rows > 100 {
            continue; // finite differences on the small shapes suffice
        }
        let dy = uniform(10, rows * d_out);
        let r = wide(&dy);
        let (mut dx, mut dw, mut db) = (
            vec![5.0; rows * d_in],
            vec![1.0; d_in * d_out],
            vec![1.0; d_out],
        );
        linear_backward(
            &threads,
            &dy,
            &x,
            &w,
            &mut dx,
            &mut dw,
            Some(&mut db),
            d_in,
            d_out,
        );
        let plus_one = |g: Vec<f64>| g.into_iter().map(|v| v + 1.0).collect::<Vec<_>>();
        let gx = central_difference(|x| dot(&linear_ref(x, &ww, &bw, d_in, d_out), &r), &xw);
        let gw = central_difference(|w| dot(&linear_ref(&xw, w, &bw, d_in, d_out), &r), &ww);
        let gb = central_difference(|b| dot(&linear_ref(&xw, &ww, b, d_in, d_out), &r), &bw);
        assert_close("linear dx (overwritten)", &dx, &gx, GRAD_TOL);
        assert_close("linear dw (accumulated)", &dw, &plus_one(gw), GRAD_TOL);
        assert_close("linear db (accumulated)", &db, &plus_one(gb), GRAD_TOL);
    }
}

/// Weight gradients split over threads along the token dimension: every
/// thread count (1 falls back to the row split; 2 and 3 add partials)
/// accumulates `aᵀ·b` onto `c`, and the column sums of `b` onto the bias
/// gradient, to f32 rounding of the f64 results. With k ≈ 700 terms in
/// [-1, 1] the rounding stays near 1e-6 of the largest entry; 1e-5 leaves
/// room without hiding a missed or doubled part.
#[test]
fn weight_gradients_match_the_plain_product_on_any_thread_count() {
    for (k, m, n) in [(700, 24, 40), (701, 33, 17), (9, 5, 3)] {
        let (a, b) = (uniform(31, k * m), uniform(32, k * n));
        let (c0, sums0) = (uniform(33, m * n), uniform(34, n));
        let want: Vec<f64> = (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                let dot: f64 = (0..k)
                    .map(|p| f64::from(a[p * m + i]) * f64::from(b[p * n + j]))
                    .sum();
                f64::from(c0[e]) + dot
            })
            .collect();
        let want_sums: Vec<f64> = (0..n)
            .map(|j| f64::from(sums0[j]) + (0..k).map(|p| f64::from(b[p * n + j])).sum::<f64>())
            .collect();
        for threads in [1, 2, 3] {
            let (mut c, mut sums) = (c0.clone(), sums0.clone());
            weight_gradient(
                &Threads::new(threads).unwrap(),
                MatRef::new(&a, k, m).t(),
                MatRef::new(&b, k, n),
                &mut c,
                Some(&mut sums),
            );
            let what = format!("{k}×{m}×{n}, {threads} threads");
            assert_close(&format!("product {what}"), &c, &want, 1e-5);
            assert_close(&format!("column sums {what}"), &sums, &want_sums, 1e-5);
        }
    }
}

/// Bias gradients: the column split over threads (above the size where it
/// starts) sums each column's rows in order, so every thread count gives
/// the serial result bit for bit, and that result is the f64 sum to f32
/// rounding.
#[test]
fn column_sums_accumulate_and_do_not_depend_on_the_thread_count() {
    for (rows, cols) in [(3, 5), (700, 130), (64, 1100)] {
        let m = uniform(21, rows * cols);
        let start = uniform(22, cols);
        let serial = {
            let mut acc = start.clone();
            column_sum_into(&Threads::single(), &m, &mut acc);
            acc
        };
        for threads in [2, 3] {
            let mut acc = start.clone();
            column_sum_into(&Threads::new(threads).unwrap(), &m, &mut acc);
            assert_eq!(acc, serial, "{rows}×{cols}, {threads} threads");
        }
        let want: Vec<f64> = (0..cols)
            .map(|j| {
                f64::from(start[j]) + (0..rows).map(|i| f64::from(m[i * cols + j])).sum::<f64>()
            })
            .collect();
        // Up to 700 f32 additions of values in [-1, 1]: rounding stays
        // well under 1e-4 relative to the column's magnitude.
        assert_close("column sums", &serial, &want, 1e-4);
    }
}

#[test]
fn tied_head_is_a_linear_layer_with_the_transposed_embedding() {
    let (rows, c, vocab) = (6, 5, 11);
    let threads = Threads::single();
    let (x, wte) = (uniform(11, rows * c), uniform(12, vocab * c));
    let wte_t: Vec<f64> = (0..c * vocab)
        .map(|i| f64::from(wte[(i % vocab) * c + i / vocab]))
        .collect();
    let mut logits = vec![0.0; rows * vocab];
    tied_head_forward(&threads, &x, &wte, &mut logits, c);
    let zero = vec![0.0; vocab];
    assert_close(
        "logits",
        &logits,
        &linear_ref(&wide(&x), &wte_t, &zero, c, vocab),
        1e-5,
    );
    let dl = uniform(13, rows * vocab);
    let (mut dx, mut dwte) = (vec![0.0; rows * c], vec![0.0; vocab * c]);
    tied_head_backward(&threads, &dl, &x, &wte, &mut dx, &mut dwte, c);
    let r = wide(&dl);
    let xw = wide(&x);
    let head = |x: &[f64], wte: &[f64]| -> f64 {
        let mut s = 0.0;
        for i in 0..rows {
            for v in 0..vocab {
                s += r[i * vocab + v] * (0..c).map(|k| x[i * c + k] * wte[v * c + k]).sum::<f64>();
            }
        }
        s
    };
    let wtew = wide(&wte);
    assert_close(
        "head dx",
        &dx,
        &central_difference(|x| head(x, &wtew), &xw),
        GRAD_TOL,
    );
    assert_close(
        "head dwte",
        &dwte,
        &central_difference(|w| head(&xw, w), &wtew),
        GRAD_TOL,
    );
}

fn ce_ref(logits: &[f64], targets: &[u32], vocab: usize) -> f64 {
    logits
        .chunks(vocab)
        .zip(targets)
        .filter(|(_, t)| **t != IGNORE_TARGET)
        .map(|(row, &t)| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln() - row[t as usize]
        })
        .sum()
}

#[test]
fn cross_entropy_sums_counted_targets_and_its_gradient_matches() {
    let vocab = 13;
    let targets = [3, IGNORE_TARGET, 0, 12, IGNORE_TARGET, 7];
    let logits: Vec<f32> = uniform(14, targets.len() * vocab)
        .iter()
        .map(|v| v * 8.0)
        .collect();
    let mut lse = vec![0.0; targets.len()];
    let loss = cross_entropy_forward(&logits, &targets, &mut lse).unwrap();
    assert_eq!(loss.count, 4);
    let lw = wide(&logits);
    assert!((loss.sum - ce_ref(&lw, &targets, vocab)).abs() < 1e-5);
    let scale = 0.25;
    let mut grad = logits.clone();
    cross_entropy_backward(&mut grad, &targets, &lse, scale);
    let g: Vec<f64> = central_difference(|l| ce_ref(l, &targets, vocab), &lw)
        .iter()
        .map(|g| g * f64::from(scale))
        .collect();
    assert_close("ce dlogits", &grad, &g, GRAD_TOL);
}

#[test]
fn a_target_outside_the_vocabulary_is_an_error() {
    let mut lse = vec![0.0; 2];
    let err = cross_entropy_forward(&[0.0; 8], &[1, 4], &mut lse).unwrap_err();
    assert_eq!(
        err,
        TargetOutOfRange {
            position: 1,
            target: 4,
            vocab: 4
        }
    );
    assert!(err.to_string().contains("vocabulary size 4"));
}

#[test]
fn untrained_uniform_logits_give_ln_vocab() {
    let vocab = 50;
    let mut lse = vec![0.0; 3];
    let loss = cross_entropy_forward(&vec![0.25; 3 * vocab], &[0, 1, 49], &mut lse).unwrap();
    assert!((loss.mean() - (vocab as f64).ln()).abs() < 1e-6);
}

/// Naive O(m·n) attention in f64: (out, lse), materialising the scores.
fn attention_ref(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    d: usize,
    scale: f64,
    mask: Mask,
) -> (Vec<f64>, Vec<f64>) {
    let (m, n) = (q.len() / d, k.len() / d);
    let (mut out, mut lse) = (vec![0.0; m * d], vec![f64::NEG_INFINITY; m]);
    for i in 0..m {
        let visible: Vec<usize> = (0..n)
            .filter(|&j| match mask {
                Mask::None => true,
                Mask::Causal => j <= i,
                Mask::CausalBottomRight => (j + m) <= i + n,
            })
            .collect();
        if visible.is_empty() {
            continue;
        }
        let s: Vec<f64> = visible
            .iter()
            .map(|&j| scale * dot(&q[i * d..(i + 1) * d], &k[j * d..(j + 1) * d]))
            .collect();
        let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
        lse[i] = mx + z.ln();
        for (&j, &sj) in visible.iter().zip(&s) {
            let p = (sj - lse[i]).exp();
            for c in 0..d {
                out[i * d + c] += p * v[j * d + c];
            }
        }
    }
    (out, lse)
}

fn assert_lse(actual: &[f32], expected: &[f64]) {
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e == f64::NEG_INFINITY {
            assert_eq!(a, f32::NEG_INFINITY, "lse[{i}] should be −inf");
        } else {
            assert!(
                (f64::from(a) - e).abs() < 1e-5 * (1.0 + e.abs()),
                "lse[{i}]: {a} vs {e}"
            );
        }
    }
}

/// (m, n, d, mask): odd sizes, tile boundaries (tiles are 64), m ≠ n, and
/// bottom-right shapes where early rows see no key at all.
const ATTENTION_CASES: &[(usize, usize, usize, Mask)] = &[
    (13, 13, 7, Mask::Causal),
    (13, 13, 7, Mask::None),
    (13, 13, 7, Mask::CausalBottomRight),
    (9, 20, 5, Mask::None),
    (9, 20, 5, Mask::CausalBottomRight),
    (20, 9, 5, Mask::CausalBottomRight),
    (70, 70, 3, Mask::Causal),
    (65, 130, 3, Mask::CausalBottomRight),
    (1, 1, 1, Mask::Causal),
];

#[test]
fn attention_block_forward_matches_naive_reference() {
    let extra = [
        (64, 64, 16, Mask::Causal),
        (129, 129, 32, Mask::Causal),
        (128, 200, 8, Mask::None),
        (200, 63, 8, Mask::CausalBottomRight),
    ];
    for &(m, n, d, mask) in ATTENTION_CASES.iter().chain(&extra) {
        let (q, k, v) = (uniform(20, m * d), uniform(21, n * d), uniform(22, n * d));
        let q: Vec<f32> = q.iter().map(|x| x * 3.0).collect(); // peaked softmax
        let scale = 1.0 / (d as f32).sqrt();
        let (mut out, mut lse) = (vec![f32::NAN; m * d], vec![f32::NAN; m]);
        attention_block_forward(&q, &k, &v, d, scale, mask, &mut out, &mut lse);
        let (o_ref, lse_ref) =
            attention_ref(&wide(&q), &wide(&k), &wide(&v), d, f64::from(scale), mask);
        assert_close(&format!("out {m}x{n}x{d} {mask:?}"), &out, &o_ref, 1e-5);
        assert_lse(&lse, &lse_ref);
    }
}

#[test]
fn attention_block_backward_matches_finite_differences() {
    for &(m, n, d, mask) in ATTENTION_CASES {
        let (q, k, v) = (uniform(30, m * d), uniform(31, n * d), uniform(32, n * d));
        let dout = uniform(33, m * d);
        let scale = 1.0 / (d as f32).sqrt();
        let (mut out, mut lse) = (vec![0.0; m * d], vec![0.0; m]);
        attention_block_forward(&q, &k, &v, d, scale, mask, &mut out, &mut lse);
        // Accumulation: gradients start at 1.
        let (mut dq, mut dk, mut dv) = (vec![1.0; m * d], vec![1.0; n * d], vec![1.0; n * d]);
        attention_block_backward(
            &q, &k, &v, &out, &lse, &dout, d, scale, mask, &mut dq, &mut dk, &mut dv,
        );
        let (qw, kw, vw, r) = (wide(&q), wide(&k), wide(&v), wide(&dout));
        let s = f64::from(scale);
        let loss = |q: &[f64], k: &[f64], v: &[f64]| dot(&attention_ref(q, k, v, d, s, mask).0, &r);
        let plus_one = |g: Vec<f64>| g.into_iter().map(|v| v + 1.0).collect::<Vec<_>>();
        let what = format!("{m}x{n}x{d} {mask:?}");
        assert_close(
            &format!("dq {what}"),
            &dq,
            &plus_one(central_difference(|q| loss(q, &kw, &vw), &qw)),
            GRAD_TOL,
        );
        assert_close(
            &format!("dk {what}"),
            &dk,
            &plus_one(central_difference(|k| loss(&qw, k, &vw), &kw)),
            GRAD_TOL,
        );
        assert_close(
            &format!("dv {what}"),
            &dv,
            &plus_one(central_difference(|v| loss(&qw, &kw, v), &vw)),
            GRAD_TOL,
        );
    }
}

#[test]
fn merging_partials_over_key_splits_equals_one_softmax_over_all_keys() {
    // Split 40 keys into parts (some empty for some rows via the mask); merge
    // in any order; compare with one call over all keys.
    let (m, n, d) = (12, 40, 6);
    let (q, k, v) = (uniform(40, m * d), uniform(41, n * d), uniform(42, n * d));
    let scale = 0.7;
    let (mut full_o, mut full_lse) = (vec![0.0; m * d], vec![0.0; m]);
    attention_block_forward(&q, &k, &v, d, scale, Mask::None, &mut full_o, &mut full_lse);
    for splits in [vec![0, 40], vec![0, 7, 40], vec![0, 1, 13, 29, 40]] {
        let (mut acc_o, mut acc_lse) = (vec![f32::NAN; m * d], vec![f32::NAN; m]);
        clear_partial(&mut acc_o, &mut acc_lse);
        for w in splits.windows(2).rev() {
            let (j0, j1) = (w[0], w[1]);
            let (mut o, mut lse) = (vec![0.0; m * d], vec![0.0; m]);
            attention_block_forward(
                &q,
                &k[j0 * d..j1 * d],
                &v[j0 * d..j1 * d],
                d,
                scale,
                Mask::None,
                &mut o,
                &mut lse,
            );
            merge_partial(&mut acc_o, &mut acc_lse, &o, &lse);
        }
        assert_close("merged out", &acc_o, &wide(&full_o), 1e-5);
        assert_close("merged lse", &acc_lse, &wide(&full_lse), 1e-5);
    }
    // A −inf partial contributes nothing, and all-(−inf) rows stay 0 / −inf.
    let (mut o, mut lse) = (full_o.clone(), full_lse.clone());
    merge_partial(
        &mut o,
        &mut lse,
        &vec![f32::NAN; m * d],
        &vec![f32::NEG_INFINITY; m],
    );
    assert_eq!((o, lse), (full_o, full_lse));
    let (mut o, mut lse) = (vec![0.0; 2 * d], vec![f32::NEG_INFINITY; 2]);
    merge_partial(&mut o, &mut lse, &vec![0.0; 2 * d], &[f32::NEG_INFINITY; 2]);
    assert!(o.iter().all(|&x| x == 0.0) && lse.iter().all(|&x| x == f32::NEG_INFINITY));
}

#[test]
fn batched_driver_equals_per_slab_calls_including_row_selections() {
    let (slabs, len, d) = (6, 24, 5);
    let threads = Threads::new(2).unwrap();
    let (q, k, v) = (
        uniform(50, slabs * len * d),
        uniform(51, slabs * len * d),
        uniform(52, slabs * len * d),
    );
    let dout = uniform(53, slabs * len * d);
    // Second half of the queries against the first half of the keys, no mask
    // (a "lower" ring step), then the whole slab causal.
    let half = len / 2;
    let cases = [
        (
            Rows {
                per_slab: len,
                start: half,
                count: half,
            },
            Rows {
                per_slab: len,
                start: 0,
                count: half,
            },
            Mask::None,
        ),
        (Rows::all(len), Rows::all(len), Mask::Causal),
    ];
    for (q_rows, kv_rows, mask) in cases {
        let call = BatchedAttention {
            slabs,
            head_dim: d,
            q_rows,
            kv_rows,
            scale: 0.4,
            mask,
        };
        let (mut out, mut lse) = (vec![0.0; q.len()], vec![0.0; slabs * len]);
        call.forward(&threads, &q, &k, &v, &mut out, &mut lse);
        let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
        call.backward(
            &threads, &q, &k, &v, &out, &lse, &dout, &mut dq, &mut dk, &mut dv,
        );
        for s in 0..slabs {
            let qs =
                s * len * d + q_rows.start * d..s * len * d + (q_rows.start + q_rows.count) * d;
            let ks =
                s * len * d + kv_rows.start * d..s * len * d + (kv_rows.start + kv_rows.count) * d;
            let ls = s * len + q_rows.start..s * len + q_rows.start + q_rows.count;
            let (mut o1, mut l1) = (vec![0.0; qs.len()], vec![0.0; ls.len()]);
            attention_block_forward(
                &q[qs.clone()],
                &k[ks.clone()],
                &v[ks.clone()],
                d,
                0.4,
                mask,
                &mut o1,
                &mut l1,
            );
            assert_eq!(&out[qs.clone()], &o1[..]);
            assert_eq!(&lse[ls.clone()], &l1[..]);
            let (mut dq1, mut dk1, mut dv1) = (
                vec![0.0; qs.len()],
                vec![0.0; ks.len()],
                vec![0.0; ks.len()],
            );
            attention_block_backward(
                &q[qs.clone()],
                &k[ks.clone()],
                &v[ks.clone()],
                &o1,
                &l1,
                &dout[qs.clone()],
                d,
                0.4,
                mask,
                &mut dq1,
                &mut dk1,
                &mut dv1,
            );
            assert_eq!(&dq[qs], &dq1[..]);
            assert_eq!(&dk[ks.clone()], &dk1[..]);
            assert_eq!(&dv[ks], &dv1[..]);
        }
    }
}

#[test]
fn merging_into_a_row_selection_touches_only_those_rows() {
    // Accumulator [slabs=3, 8 rows, d=4]; the partial covers rows 4..8 of each
    // slab (an "upper" ring step updates only half 1).
    let (slabs, rows, d) = (3, 8, 4);
    let sel = Rows {
        per_slab: rows,
        start: 4,
        count: 4,
    };
    let (o_acc, lse_acc) = (uniform(60, slabs * rows * d), uniform(61, slabs * rows));
    let (o_part, lse_part) = (uniform(62, slabs * 4 * d), uniform(63, slabs * 4));
    let (mut o, mut lse) = (o_acc.clone(), lse_acc.clone());
    merge_partial_rows(&mut o, &mut lse, sel, &o_part, &lse_part, d);
    for s in 0..slabs {
        let (mut eo, mut el) = (
            o_acc[(s * rows + 4) * d..(s + 1) * rows * d].to_vec(),
            lse_acc[s * rows + 4..(s + 1) * rows].to_vec(),
        );
        merge_partial(
            &mut eo,
            &mut el,
            &o_part[s * 4 * d..(s + 1) * 4 * d],
            &lse_part[s * 4..(s + 1) * 4],
        );
        assert_eq!(&o[(s * rows + 4) * d..(s + 1) * rows * d], &eo[..]);
        assert_eq!(&lse[s * rows + 4..(s + 1) * rows], &el[..]);
        assert_eq!(
            &o[s * rows * d..(s * rows + 4) * d],
            &o_acc[s * rows * d..(s * rows + 4) * d]
        );
    }
}

//! The CPU kernel set split over threads gives the single-thread results.
//!
//! Shapes are large enough that every kernel really splits its rows or
//! elements (above `ELEMENTWISE_MIN_PER_THREAD` per thread). Elementwise and
//! row-wise kernels must match bit for bit (each element is computed by the
//! same code in the same order); LayerNorm's weight gradients are sums of
//! per-part partials, so they may differ by rounding only (1e-5 relative).

use super::test_support::{h, hm, uniform};
use super::*;

fn both() -> [CpuKernels; 2] {
    [
        CpuKernels::new(Threads::single()),
        CpuKernels::new(Threads::new(3).unwrap()),
    ]
}

#[test]
fn elementwise_and_row_kernels_do_not_depend_on_the_thread_count() {
    let (rows, c, vocab) = (301, 256, 517);
    let x = uniform(1, rows * c);
    let y = uniform(2, rows * c);
    let logits = uniform(3, rows * vocab);
    let targets: Vec<u32> = (0..rows)
        .map(|r| {
            if r % 7 == 0 {
                IGNORE_TARGET
            } else {
                (r * 13 % vocab) as u32
            }
        })
        .collect();
    let (w, b) = (uniform(4, c), uniform(5, c));
    let runs = both().map(|k| {
        let (mut pre, mut gelu) = (x.clone(), vec![0.0; x.len()]);
        k.bias_gelu_forward(h(&b), hm(&mut pre), hm(&mut gelu));
        let mut dgelu = y.clone();
        k.gelu_backward(h(&pre), hm(&mut dgelu));
        let mut sum = vec![0.0; x.len()];
        k.residual_add(h(&x), h(&y), h(&w), hm(&mut sum));
        let mut lse = vec![0.0; rows];
        let loss = k
            .cross_entropy_forward(h(&logits), &targets, hm(&mut lse))
            .unwrap();
        let mut dlogits = logits.clone();
        k.cross_entropy_backward(hm(&mut dlogits), &targets, h(&lse), 0.01);
        let (mut ln, mut mean, mut rstd) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
        k.layernorm_forward(
            h(&x),
            h(&w),
            h(&b),
            hm(&mut ln),
            hm(&mut mean),
            hm(&mut rstd),
        );
        let (mut dx, mut dw, mut db) = (y.clone(), vec![0.5; c], vec![0.25; c]);
        k.layernorm_backward(
            h(&y),
            h(&x),
            h(&w),
            h(&mean),
            h(&rstd),
            hm(&mut dx),
            hm(&mut dw),
            hm(&mut db),
        );
        let exact = [pre, gelu, dgelu, sum, lse, dlogits, ln, mean, rstd, dx];
        (exact, loss, dw, db)
    });
    let [(exact1, loss1, dw1, db1), (exact3, loss3, dw3, db3)] = runs;
    for (i, (a, b)) in exact1.iter().zip(&exact3).enumerate() {
        assert!(a == b, "output {i} differs between 1 and 3 threads");
    }
    assert_eq!(loss1, loss3);
    for (a, b) in dw1.iter().zip(&dw3).chain(db1.iter().zip(&db3)) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
    }
}

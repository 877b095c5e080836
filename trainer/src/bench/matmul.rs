//! The machine's large-matmul rate through cptrain's own GEMM, for MFU.

use std::time::Instant;

use crate::kernels::{MatRef, Threads, gemm};

/// Best-of-`reps` GFLOP/s of an `n×n @ n×n` f32 product on `threads`.
pub fn measure_matmul_gflops(threads: &Threads, n: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.25 - 0.75).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) + 1 {
        let t0 = Instant::now();
        gemm(
            threads,
            MatRef::new(&a, n, n),
            MatRef::new(&b, n, n),
            0.0,
            &mut c,
        );
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

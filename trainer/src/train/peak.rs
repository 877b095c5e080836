use std::time::Instant;

use crate::kernels::{MatRef, Threads, gemm};

/// Measures this machine's f32 matrix-multiply rate in GFLOP/s with `threads`
/// (best of a few 512×1024·1024×512 products, about 50 ms in all): the peak
/// that MFU is reported against when `metrics.peak_gflops` is not set.
pub fn measure_matmul_gflops(threads: &Threads) -> f64 {
    let (m, k, n) = (512, 1024, 512);
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let mut c = vec![0.0f32; m * n];
    let flops = 2.0 * (m * k * n) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let started = Instant::now();
        gemm(
            threads,
            MatRef::new(&a, m, k),
            MatRef::new(&b, k, n),
            0.0,
            &mut c,
        );
        best = best.min(started.elapsed().as_secs_f64());
    }
    flops / best / 1e9
}

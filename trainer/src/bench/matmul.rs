//! The machine's large-matmul rate through cptrain's own GEMM, for MFU: f32,
//! or with bf16 operands when the run's products use them.

use std::time::{Duration, Instant};

use crate::kernels::{MatRef, Product, Threads, gemm_with};

/// Products keep running until this much time has passed, however many
/// `reps` asked for: on a shared host a best-of over a few dozen
/// milliseconds can fall entirely inside a pause of the machine (a 1024³
/// rate once came out at 128 instead of ~330 GFLOP/s, and MFU read 111 %).
const MIN_DURATION: Duration = Duration::from_millis(250);

/// Best GFLOP/s of an `n×n @ n×n` product on `product`'s kernel and
/// `threads`, over at least `reps + 1` products (the first warms up) that
/// together take at least 250 ms.
pub fn measure_matmul_gflops(threads: &Threads, product: Product, n: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.25 - 0.75).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    let start = Instant::now();
    let mut done = 0;
    while done <= reps.max(1) || start.elapsed() < MIN_DURATION {
        let t0 = Instant::now();
        gemm_with(
            threads,
            product,
            MatRef::new(&a, n, n),
            MatRef::new(&b, n, n),
            0.0,
            &mut c,
        );
        best = best.min(t0.elapsed().as_secs_f64());
        done += 1;
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

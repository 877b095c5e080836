//! Matrix products, f32 (`gemm` crate) against bf16 operands with f32
//! accumulation (`Bf16Gemm`), on one and two threads (the row split of
//! `gemm_with`), on the trainer's shapes: those of the `kernels` module's
//! GEMM table (tiny, small and GPT-2 124M layers; `ᵀ` marks an operand read
//! transposed, as the backward products read them).
//!
//! `cargo bench -p cptrain --bench gemm`. The counter is the product's
//! floating-point operations (`2·m·k·n`), so divan's `item/s` reads as
//! FLOP/s (`Gitem/s` = GFLOP/s). The bf16 cases are skipped, saying so, on
//! a CPU without AVX512-BF16.

use cptrain::kernels::{Bf16Gemm, MatRef, Product, Threads, gemm_with};
use divan::{Bencher, counter::ItemsCount};

fn main() {
    divan::main();
}

/// `m×k @ k×n`, with whether `a` and `b` are read transposed.
const SHAPES: &[&str] = &[
    "2048x2048@2048x2048",
    "2048x128@128x384",
    "2048x512@512x128",
    "2048x384@384x128ᵀ",
    "128ᵀx2048@2048x384",
    "512ᵀx2048@2048x128",
    "2048x1024@1024x256",
    "4096x768@768x2304",
    "768ᵀx4096@4096x2304",
];

/// `(m, k, n, a transposed, b transposed)` from a [`SHAPES`] name.
fn parse(shape: &str) -> (usize, usize, usize, bool, bool) {
    let (a, b) = shape.split_once('@').expect("m×k@k×n");
    let (m, k) = a.split_once('x').expect("m×k");
    let (_, n) = b.split_once('x').expect("k×n");
    let dim = |s: &str| s.trim_end_matches('ᵀ').parse::<usize>().expect("a size");
    (dim(m), dim(k), dim(n), m.ends_with('ᵀ'), n.ends_with('ᵀ'))
}

/// Runs `product(a, b, c)` on the shape's operands, counting its FLOPs.
fn bench_shape(
    bencher: Bencher,
    shape: &str,
    product: impl Fn(MatRef<'_>, MatRef<'_>, &mut [f32]),
) {
    let (m, k, n, a_t, b_t) = parse(shape);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
        .collect();
    let a = if a_t {
        MatRef::new(&a, k, m).t()
    } else {
        MatRef::new(&a, m, k)
    };
    let b = if b_t {
        MatRef::new(&b, n, k).t()
    } else {
        MatRef::new(&b, k, n)
    };
    let mut c = vec![0.0; m * n];
    bencher
        .counter(ItemsCount::new(2 * m * k * n))
        .bench_local(|| product(a, b, &mut c));
}

/// Kernel threads per product.
const THREADS: &[usize] = &[1, 2];

#[divan::bench(consts = THREADS, args = SHAPES, sample_count = 10, sample_size = 1)]
fn f32_gemm<const T: usize>(bencher: Bencher, shape: &str) {
    let threads = Threads::new(T).expect("kernel threads");
    bench_shape(bencher, shape, |a, b, c| {
        gemm_with(&threads, Product::F32, a, b, 0.0, c)
    });
}

#[divan::bench(consts = THREADS, args = SHAPES, sample_count = 10, sample_size = 1)]
fn bf16<const T: usize>(bencher: Bencher, shape: &str) {
    let threads = Threads::new(T).expect("kernel threads");
    match Bf16Gemm::new() {
        Ok(kernels) => bench_shape(bencher, shape, |a, b, c| {
            gemm_with(&threads, Product::Bf16(kernels), a, b, 0.0, c)
        }),
        Err(e) => eprintln!("bf16 skipped: {e}"),
    }
}

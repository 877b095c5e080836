//! The bf16 kernels against independent references, on shapes that are not
//! multiples of the tile (6 × 64), of the blocks (`MC`, `KC`, `NC`), nor of
//! the pair `vdpbf16ps` consumes (odd `k`), in all four operand layouts.
//!
//! # Tolerances
//!
//! bf16 keeps 8 significant bits; rounding to nearest even gives
//! `x̂ = x(1 + δ)` with `|δ| ≤ u = 2⁻⁸`. A product of rounded operands is
//! `âb̂ = ab(1 + δa)(1 + δb)`, so `|âb̂ − ab| ≤ (2u + u²)|a||b|`, and a sum of
//! `k` of them moves by at most `(2u + u²)·Σ|a||b|` from the exact one.
//! Each side also sums `k` terms in f32 (unit roundoff `2⁻²⁴`), off by at
//! most `γ_k·Σ|a||b|`, `γ_k = k·2⁻²⁴ / (1 − k·2⁻²⁴)`. Hence, against the
//! f32 GEMM on the unrounded operands,
//! `|c_bf16 − c_f32| ≤ (2u + u² + 2γ_k)·Σ_p|a_ip||b_pj|` elementwise.
//!
//! That bound would pass a kernel that rounds towards zero (still within
//! `2u`), so a second reference multiplies the operands rounded by
//! `half::bf16::from_f32` (nearest even) in f64: the kernel may differ from
//! it only by its f32 accumulation, `γ_k·Σ|âb̂|` (plus the final rounding to
//! f32 of the f64 reference, `2⁻²⁴` of the value), far below the `u` that
//! a wrong rounding or a misplaced operand costs.

use half::bf16;

use super::{Bf16Features, Bf16Gemm, KC, MC, NC, check};
use crate::kernels::gemm::{MatRef, gemm_serial};
use crate::kernels::gemm::{Product, gemm_with, weight_gradient_with};
use crate::kernels::test_support::uniform;
use crate::kernels::threads::Threads;

/// The kernels, or `None` (the caller skips, saying so) on a CPU without them.
fn kernels() -> Option<Bf16Gemm> {
    match Bf16Gemm::new() {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// An `m × k` and a `k × n` operand, each stored row-major or transposed,
/// as the trainer's products read them (`xᵀ` and `wᵀ` are transposed views).
struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    a_t: bool,
    b_t: bool,
    m: usize,
    k: usize,
    n: usize,
}

impl Operands {
    fn new((m, k, n): (usize, usize, usize), a_t: bool, b_t: bool, seed: u64) -> Self {
        Operands {
            a: uniform(seed, m * k),
            b: uniform(seed + 1, k * n),
            a_t,
            b_t,
            m,
            k,
            n,
        }
    }

    fn a(&self) -> MatRef<'_> {
        if self.a_t {
            MatRef::new(&self.a, self.k, self.m).t()
        } else {
            MatRef::new(&self.a, self.m, self.k)
        }
    }

    fn b(&self) -> MatRef<'_> {
        if self.b_t {
            MatRef::new(&self.b, self.n, self.k).t()
        } else {
            MatRef::new(&self.b, self.k, self.n)
        }
    }

    /// `(a[i][p], b[p][j])`.
    fn at(&self, i: usize, p: usize, j: usize) -> (f32, f32) {
        let a = if self.a_t {
            self.a[p * self.m + i]
        } else {
            self.a[i * self.k + p]
        };
        let b = if self.b_t {
            self.b[j * self.k + p]
        } else {
            self.b[p * self.n + j]
        };
        (a, b)
    }

    /// `(Σ_p â·b̂ in f64, Σ_p |a·b|)` for element `(i, j)`, with `â`, `b̂`
    /// rounded to bf16 by `half`.
    fn reference(&self, i: usize, j: usize) -> (f64, f64) {
        (0..self.k).fold((0.0, 0.0), |(dot, abs), p| {
            let (a, b) = self.at(i, p, j);
            let rounded = f64::from(bf16::from_f32(a)) * f64::from(bf16::from_f32(b));
            (dot + rounded, abs + f64::from(a).abs() * f64::from(b).abs())
        })
    }

    fn describe(&self) -> String {
        let t = |x: bool| if x { "ᵀ" } else { "" };
        format!(
            "{}×{}{} @ {}×{}{}",
            self.m,
            self.k,
            t(self.a_t),
            self.k,
            self.n,
            t(self.b_t)
        )
    }
}

/// Worst-case f32 summation factor `γ_k`.
fn gamma(k: usize) -> f64 {
    let ku = k as f64 * f64::powi(2.0, -24);
    ku / (1.0 - ku)
}

/// Shapes off every tile and block size: single elements, odd `k` below
/// and above `KC`, rows above `MC`, columns above `NC`.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 3, 5),
    (13, KC + 1, 67),
    (MC + 1, 385, 130),
    (5, 9, NC + 6),
];

#[test]
fn products_match_the_f32_gemm_within_the_bf16_rounding_bound() {
    let Some(kernels) = kernels() else { return };
    let u = f64::powi(2.0, -8);
    for &shape in SHAPES {
        for (a_t, b_t) in [(false, false), (false, true), (true, false), (true, true)] {
            let ops = Operands::new(shape, a_t, b_t, 7);
            let (m, k, n) = shape;
            let mut got = vec![f32::NAN; m * n];
            kernels.gemm_serial(ops.a(), ops.b(), 0.0, &mut got);
            let mut f32_c = vec![0.0; m * n];
            gemm_serial(ops.a(), ops.b(), 0.0, &mut f32_c);
            for e in 0..m * n {
                let (i, j) = (e / n, e % n);
                let (exact, abs) = ops.reference(i, j);
                let vs_f32 = (f64::from(got[e]) - f64::from(f32_c[e])).abs();
                let bound = (2.0 * u + u * u + 2.0 * gamma(k)) * abs;
                assert!(
                    vs_f32 <= bound,
                    "{} [{i},{j}]: bf16 {} vs f32 {} differ by {vs_f32:.3e} > {bound:.3e}",
                    ops.describe(),
                    got[e],
                    f32_c[e]
                );
                let vs_rounded = (f64::from(got[e]) - exact).abs();
                let bound = gamma(k) * abs * (1.0 + u).powi(2) + exact.abs() * f64::powi(2.0, -24);
                assert!(
                    vs_rounded <= bound,
                    "{} [{i},{j}]: bf16 {} vs the rounded operands' f64 product {exact} differ \
                     by {vs_rounded:.3e} > {bound:.3e}",
                    ops.describe(),
                    got[e]
                );
            }
        }
    }
}

/// `beta` scales what `c` held (and 0 ignores it, even a NaN).
#[test]
fn beta_accumulates_onto_c_and_zero_ignores_it() {
    let Some(kernels) = kernels() else { return };
    let ops = Operands::new((8, KC + 9, 70), false, true, 3);
    let fresh = {
        let mut c = vec![f32::NAN; 8 * 70];
        kernels.gemm_serial(ops.a(), ops.b(), 0.0, &mut c);
        c
    };
    assert!(
        fresh.iter().all(|x| x.is_finite()),
        "beta = 0 read the NaNs in c"
    );
    let before = uniform(9, 8 * 70);
    let mut c = before.clone();
    kernels.gemm_serial(ops.a(), ops.b(), 0.5, &mut c);
    for (e, (&got, (&old, &product))) in c.iter().zip(before.iter().zip(&fresh)).enumerate() {
        // k spans two blocks: the kernel adds 0.5·old to the first block's
        // sum s₁ and then the second's s₂, where `fresh` rounded s₁ + s₂:
        // three f32 roundings (half an ulp, 2⁻²⁴ relative, each) of values
        // at most Σ|âb̂| + |old| in size.
        let (i, j) = (e / 70, e % 70);
        let abs = ops.reference(i, j).1 * (1.0 + f64::powi(2.0, -8)).powi(2);
        let want = f64::from(product) + 0.5 * f64::from(old);
        let bound = 3.0 * f64::powi(2.0, -24) * (abs + f64::from(old.abs()));
        assert!(
            (f64::from(got) - want).abs() <= bound,
            "[{e}]: {got} != {want}"
        );
    }
}

/// The row split over threads runs the same kernel on the same blocks of
/// `k`, so it gives the serial result bit for bit; the weight gradient's
/// split along `k` stays within the rounding bound of the serial product.
#[test]
fn parallel_drivers_run_the_bf16_kernel() {
    let Some(kernels) = kernels() else { return };
    let product = Product::Bf16(kernels);
    let (m, k, n) = (130, 517, 131);
    let ops = Operands::new((m, k, n), false, false, 11);
    let mut serial = vec![0.0; m * n];
    kernels.gemm_serial(ops.a(), ops.b(), 0.0, &mut serial);
    for threads in [2, 3] {
        let threads = Threads::new(threads).unwrap();
        let mut split = vec![0.0; m * n];
        gemm_with(&threads, product, ops.a(), ops.b(), 0.0, &mut split);
        assert_eq!(split, serial, "row split on {} threads", threads.count());
        let ops_t = Operands::new((m, k, n), true, false, 11);
        let mut dw = vec![1.0; m * n];
        weight_gradient_with(&threads, product, ops_t.a(), ops_t.b(), &mut dw, None);
        for (e, &got) in dw.iter().enumerate() {
            let (exact, abs) = ops_t.reference(e / n, e % n);
            let bound = 2.0 * gamma(k) * abs + f64::powi(2.0, -23) * (1.0 + exact.abs());
            assert!(
                (f64::from(got) - 1.0 - exact).abs() <= bound,
                "weight gradient [{e}]: {got} vs 1 + {exact}"
            );
        }
    }
}

#[test]
fn cpus_without_the_features_are_refused_by_name() {
    let all = Bf16Features {
        avx512f: true,
        avx512bw: true,
        avx512bf16: true,
    };
    assert_eq!(check(all), Ok(()));
    let no_bf16 = Bf16Features {
        avx512bf16: false,
        ..all
    };
    let message = check(no_bf16).unwrap_err().to_string();
    assert!(
        message.contains("lacks AVX512-BF16:") && message.contains("f32"),
        "{message}"
    );
    let none = Bf16Features {
        avx512f: false,
        avx512bw: false,
        avx512bf16: false,
    };
    let message = check(none).unwrap_err().to_string();
    assert!(
        message.contains("lacks AVX-512F, AVX-512BW, AVX512-BF16:"),
        "{message}"
    );
    // On this CPU the handle exists exactly when the detected features pass.
    assert_eq!(
        Bf16Gemm::new().is_ok(),
        check(Bf16Features::detect()).is_ok()
    );
}

//! Every `Kernels` method of the CUDA device against `CpuKernels`, through
//! the trait, on buffers each device allocated, on odd shapes.
//!
//! The device is cuda-emu; with `CPTRAIN_CUDA_DEVICE_TESTS=1` it is the
//! real GPU 0 (`kernels.device = "cuda"`, `bench/gpu_check.sh`), with
//! tolerances ten times wider: FMA contraction and cuBLAS's blocking round
//! differently from the emulator (built with `-ffp-contract=off`, and
//! summing each GEMM dot product in f64).
#![cfg(feature = "cuda")]

mod cuda;

use std::sync::Arc;

use cptrain::device::{Bf16Buffer, Buffer};
use cptrain::kernels::{
    BatchedAttention, CpuKernels, HeadLayout, IGNORE_TARGET, Kernels, Mask, NO_TOKEN_ROW,
    PackedAttention, Precision, QkvProjection, Rows, Runs, Threads,
};
use cptrain::optim::{AdamWUpdate, DecayMask};
use cptrain::parallel::ZigzagLayout;
use cptrain_plugins::cuda::device::{emulated_kernels, gpu_kernels};
use cuda::{assert_close, values};

/// Relative tolerances on cuda-emu (multiplied by [`Pair::factor`]).
/// Elementwise kernels: the same f32 formula, only libm's last bit may differ.
const POINTWISE: f32 = 1e-6;
/// Row and column reductions in another order than the CPU's (LayerNorm,
/// cross-entropy, bias gradients).
const REDUCTION: f32 = 2e-6;
/// GEMMs: the emulated sgemm rounds each dot product once (f64 sums), the
/// CPU GEMM accumulates in f32 blocks.
const GEMM: f32 = 1e-5;
/// Attention: tiled online softmax against the CPU's blocked kernels.
const ATTENTION: f32 = 2e-5;

/// The device under test and the CPU reference.
struct Pair {
    dev: Arc<dyn Kernels>,
    cpu: CpuKernels,
    factor: f32,
}

impl Pair {
    fn new() -> Self {
        Self::at(Precision::F32, CpuKernels::default())
    }

    /// Both devices with bf16 products, or `None` (the caller skips, saying
    /// so) on a CPU without AVX512-BF16.
    fn bf16() -> Option<Self> {
        match CpuKernels::with_precision(Threads::new(1).unwrap(), Precision::Bf16) {
            Ok(cpu) => Some(Self::at(Precision::Bf16, cpu)),
            Err(e) => {
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    fn at(precision: Precision, cpu: CpuKernels) -> Self {
        let gpu = std::env::var_os("CPTRAIN_CUDA_DEVICE_TESTS").is_some_and(|v| v == "1");
        let dev = if gpu {
            gpu_kernels(0, precision, false)
                .unwrap_or_else(|e| panic!("CPTRAIN_CUDA_DEVICE_TESTS=1: {e}"))
        } else {
            emulated_kernels(precision)
        };
        assert_eq!(dev.product_precision(), precision);
        Pair {
            dev,
            cpu,
            factor: if gpu { 10.0 } else { 1.0 },
        }
    }

    /// `values` on both devices: (cpu, device).
    fn put(&self, values: &[f32]) -> (Buffer, Buffer) {
        (
            self.cpu.upload(values).unwrap(),
            self.dev.upload(values).unwrap(),
        )
    }

    /// `n` seeded values on both devices.
    fn random(&self, n: usize, seed: u64, scale: f32) -> (Buffer, Buffer) {
        self.put(&values(n, seed, scale))
    }

    /// The embedding forward on both devices, each into its `out`.
    fn embed(
        &self,
        (tokens, positions): (&[u32], &[usize]),
        wte: &(Buffer, Buffer),
        wpe: Option<&(Buffer, Buffer)>,
        out: &mut (Buffer, Buffer),
    ) {
        let (cpu_wpe, dev_wpe) = (wpe.map(|w| w.0.view()), wpe.map(|w| w.1.view()));
        let (w, o) = (wte.0.view(), out.0.view_mut());
        self.cpu.embedding_forward(tokens, positions, w, cpu_wpe, o);
        let (w, o) = (wte.1.view(), out.1.view_mut());
        self.dev.embedding_forward(tokens, positions, w, dev_wpe, o);
    }

    /// The embedding backward of `grad` on both devices, each into its tables.
    fn embed_backward(
        &self,
        grad: &(Buffer, Buffer),
        (tokens, positions): (&[u32], &[usize]),
        dwte: &mut (Buffer, Buffer),
        dwpe: &mut (Buffer, Buffer),
    ) {
        let (g, te, pe) = (grad.0.view(), dwte.0.view_mut(), dwpe.0.view_mut());
        self.cpu.embedding_backward(g, tokens, positions, te, pe);
        let (g, te, pe) = (grad.1.view(), dwte.1.view_mut(), dwpe.1.view_mut());
        self.dev.embedding_backward(g, tokens, positions, te, pe);
    }

    /// Asserts that the device's buffer matches the CPU's.
    #[track_caller]
    fn same(&self, what: &str, (cpu, dev): &(Buffer, Buffer), tol: f32) {
        let (want, got) = (cpu.to_host().unwrap(), dev.to_host().unwrap());
        assert_close(what, &got, &want, tol * self.factor);
    }
}

// Odd sizes: 2 sequences of 7 tokens, 3 heads of 5, a 19-token vocabulary,
// a 37-wide hidden layer.
const B: usize = 2;
const T: usize = 7;
const H: usize = 3;
const D: usize = 5;
const C: usize = H * D;
const ROWS: usize = B * T;
const V: usize = 19;
const HIDDEN: usize = 37;

#[test]
fn memory_alloc_upload_zero() {
    let p = Pair::new();
    let dev = &p.dev;
    assert_eq!(&*dev.alloc(5).unwrap().to_host().unwrap(), &[0.0; 5]);
    let held = dev.alloc(1000).unwrap();
    assert!(dev.peak_memory_bytes().unwrap() >= 4000);
    drop(held);
    assert!(dev.alloc(0).unwrap().is_empty());
    let mut b = dev.upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let (_, rest) = b.view_mut().split_at(1);
    dev.fill(rest.range(1..3), 0.0);
    assert_eq!(&*b.to_host().unwrap(), &[1.0, 2.0, 0.0, 0.0]);
    b.copy_from_host(&[5.0, 6.0, 7.0, 8.0]).unwrap();
    assert_eq!(&*b.to_host().unwrap(), &[5.0, 6.0, 7.0, 8.0]);
}

/// Fills (zero and not), column bands, copies and sums: exact on both.
#[test]
fn fills_copies_and_sums() {
    let p = Pair::new();
    let mut x = p.random(ROWS * V, 1, 1.0);
    let y = p.random(ROWS * V, 2, 1.0);
    let (cpu, dev): (&dyn Kernels, &dyn Kernels) = (&p.cpu, &*p.dev);
    for (k, (x, y)) in [(cpu, (&mut x.0, &y.0)), (dev, (&mut x.1, &y.1))] {
        k.add_assign(x.view_mut(), y.view());
        k.fill_columns(x.view_mut(), V, 13..V, f32::NEG_INFINITY);
        let (head, tail) = x.view_mut().split_at(5);
        k.fill(head, -2.5);
        k.copy(y.view().range(0..7), tail.range(3..10));
    }
    p.same("values", &x, 0.0);
    let host = x.1.to_host().unwrap();
    assert!(
        host.chunks(V)
            .skip(1)
            .all(|row| row[13..].iter().all(|v| *v == f32::NEG_INFINITY))
    );
}

/// The CP strategies' block moves: a zigzag placement of every rank's rows
/// (3 ranks, 2 slabs, chunks of 3 rows of width 5) and back, bit for bit,
/// leaving what no run covers untouched.
#[test]
fn runs_copy_the_zigzag_blocks() {
    let p = Pair::new();
    let layout = ZigzagLayout { cp: 3, chunk: 3 };
    let (slabs, width) = (2, D);
    let local = slabs * layout.local_len() * width;
    let blocks = p.random(3 * local, 5, 1.0);
    let mut to_full = Runs::new(layout.chunk * width);
    for rank in 0..3 {
        to_full.extend_shifted(&layout.runs(rank, slabs, width), rank * local, 0);
    }
    let full_len = slabs * layout.seq_len() * width;
    let mut full = p.put(&vec![7.0; full_len + 4]);
    let mut back = p.put(&vec![-1.0; 3 * local]);
    let (cpu, dev): (&dyn Kernels, &dyn Kernels) = (&p.cpu, &*p.dev);
    for (k, (b, f, r)) in [
        (cpu, (&blocks.0, &mut full.0, &mut back.0)),
        (dev, (&blocks.1, &mut full.1, &mut back.1)),
    ] {
        k.copy_runs(b.view(), f.view_mut(), &to_full);
        k.copy_runs(f.view(), r.view_mut(), &to_full.inverse());
    }
    p.same("placed", &full, 0.0);
    p.same("taken back", &back, 0.0);
    assert!(back.1.to_host().unwrap() == blocks.1.to_host().unwrap());
    assert_eq!(full.1.to_host().unwrap()[full_len..], [7.0; 4]);
}

/// The merge of two partial attention results, rows with no keys included.
#[test]
fn attention_results_merge() {
    let p = Pair::new();
    let rows = ROWS;
    let mut out = p.random(rows * D, 1, 1.0);
    let part_out = p.random(rows * D, 2, 1.0);
    let mut lse = p.random(rows, 3, 2.0);
    let mut part = values(rows, 4, 2.0);
    part[3] = f32::NEG_INFINITY;
    let part_lse = p.put(&part);
    let (cpu, dev): (&dyn Kernels, &dyn Kernels) = (&p.cpu, &*p.dev);
    for (k, (o, l, po, pl)) in [
        (cpu, (&mut out.0, &mut lse.0, &part_out.0, &part_lse.0)),
        (dev, (&mut out.1, &mut lse.1, &part_out.1, &part_lse.1)),
    ] {
        k.attention_merge(o.view_mut(), l.view_mut(), po.view(), pl.view());
    }
    p.same("out", &out, POINTWISE);
    p.same("lse", &lse, POINTWISE);
}

#[test]
fn embedding_forward_and_backward() {
    let p = Pair::new();
    let tokens: Vec<u32> = (0..ROWS as u32).map(|i| (i * 7 + 3) % V as u32).collect();
    let positions: Vec<usize> = (0..T).map(|t| (t * 3) % (T + 2)).collect();
    let ids = (&tokens[..], &positions[..]);
    let (wte, wpe) = (p.random(V * C, 1, 1.0), p.random((T + 2) * C, 2, 1.0));
    let mut out = p.random(ROWS * C, 3, 1.0);
    p.embed(ids, &wte, Some(&wpe), &mut out);
    p.same("embedding out", &out, 0.0);
    // Accumulates onto what the tables hold.
    let (mut dwte, mut dwpe) = (p.random(V * C, 4, 1.0), p.random((T + 2) * C, 5, 1.0));
    p.embed_backward(&out, ids, &mut dwte, &mut dwpe);
    // The same row order as the CPU's: bit-equal.
    p.same("dwte", &dwte, 0.0);
    p.same("dwpe", &dwpe, 0.0);
}

/// The vocabulary-parallel forms: tokens another rank holds
/// (`NO_TOKEN_ROW`) add nothing and get no gradient, and a rank other than
/// the first adds no `wpe`.
#[test]
fn embedding_of_a_vocabulary_slice() {
    let p = Pair::new();
    let held = |i: u32| {
        if i.is_multiple_of(3) {
            NO_TOKEN_ROW
        } else {
            i % V as u32
        }
    };
    let tokens: Vec<u32> = (0..ROWS as u32).map(held).collect();
    let positions: Vec<usize> = (0..T).collect();
    let ids = (&tokens[..], &positions[..]);
    let (wte, wpe) = (p.random(V * C, 6, 1.0), p.random(T * C, 7, 1.0));
    let mut out = p.random(ROWS * C, 8, 1.0);
    for wpe in [Some(&wpe), None] {
        p.embed(ids, &wte, wpe, &mut out);
        p.same("embedding out", &out, 0.0);
    }
    // Without wpe, a row of a token held elsewhere is exactly zero.
    let host = out.0.to_host().unwrap();
    assert!(host[..C].iter().all(|&x| x == 0.0));
    let (mut dwte, mut dwpe) = (p.random(V * C, 9, 1.0), p.random(T * C, 10, 1.0));
    let before = dwte.0.to_host().unwrap().into_owned();
    p.embed_backward(&out, ids, &mut dwte, &mut dwpe);
    p.same("dwte", &dwte, 0.0);
    p.same("dwpe", &dwpe, 0.0);
    // Token 0 appears only at rows held elsewhere (multiples of 3 below V):
    // its row of dwte is untouched.
    assert_eq!(dwte.0.to_host().unwrap()[..C], before[..C]);
}

#[test]
fn linear_forward_and_backward() {
    check_linear(&Pair::new());
}

/// With bf16 products both devices round the operands alike (to nearest
/// even) and accumulate in f32, so they agree to the f32 GEMM tolerance;
/// the rounding itself shows as a difference of order bf16's 2⁻⁹ from the
/// f32 products.
#[test]
fn bf16_products_match_the_cpus() {
    let Some(p) = Pair::bf16() else { return };
    check_linear(&p);
    check_tied_head(&p);
    let (x, w) = (p.random(ROWS * C, 10, 1.0), p.random(C * HIDDEN, 11, 0.5));
    let mut out = p.random(ROWS * HIDDEN, 13, 1.0);
    let dev_out = out.1.view_mut();
    p.dev
        .linear_forward(x.1.view(), w.1.view(), None, dev_out, C, HIDDEN);
    let mut f32_out = vec![0.0; ROWS * HIDDEN];
    let (x, w) = (x.0.to_host().unwrap(), w.0.to_host().unwrap());
    CpuKernels::default().linear_forward(
        x.as_ref().into(),
        w.as_ref().into(),
        None,
        f32_out.as_mut_slice().into(),
        C,
        HIDDEN,
    );
    let got = out.1.to_host().unwrap();
    let largest = got
        .iter()
        .zip(&f32_out)
        .map(|(b, f)| (b - f).abs() / (1.0 + f.abs()))
        .fold(0.0, f32::max);
    assert!(
        (1e-4..2e-2).contains(&largest),
        "bf16 against f32 products: {largest}"
    );
}

/// `Kernels::round_to_bf16` and `widen_bf16` through the trait, on buffers
/// each device allocated: the same bits on both, widening exact.
#[test]
fn bf16_buffers_round_and_widen_alike() {
    let p = Pair::new();
    for len in [1, 20, 37] {
        let x = p.random(len, 40, 3.0);
        let mut kept = (
            Bf16Buffer::zeros(&p.cpu, len).unwrap(),
            Bf16Buffer::zeros(&*p.dev, len).unwrap(),
        );
        p.cpu.round_to_bf16(x.0.view(), kept.0.view_mut());
        p.dev.round_to_bf16(x.1.view(), kept.1.view_mut());
        let mut back = p.random(len, 41, 1.0);
        p.cpu.widen_bf16(kept.0.view(), back.0.view_mut());
        p.dev.widen_bf16(kept.1.view(), back.1.view_mut());
        p.same("widened bf16 values", &back, 0.0);
        let (kept_values, x) = (back.0.to_host().unwrap(), x.0.to_host().unwrap());
        assert!(
            kept_values
                .iter()
                .zip(x.iter())
                .all(|(k, v)| (k - v).abs() <= v.abs() / 256.0),
            "within bf16's half unit"
        );
    }
}

/// The linear layer forward (with and without bias) and backward on both
/// devices of `p`.
fn check_linear(p: &Pair) {
    let (x, w, bias) = (
        p.random(ROWS * C, 10, 1.0),
        p.random(C * HIDDEN, 11, 0.5),
        p.random(HIDDEN, 12, 0.5),
    );
    for with_bias in [true, false] {
        let mut out = p.random(ROWS * HIDDEN, 13, 1.0);
        p.cpu.linear_forward(
            x.0.view(),
            w.0.view(),
            with_bias.then(|| bias.0.view()),
            out.0.view_mut(),
            C,
            HIDDEN,
        );
        p.dev.linear_forward(
            x.1.view(),
            w.1.view(),
            with_bias.then(|| bias.1.view()),
            out.1.view_mut(),
            C,
            HIDDEN,
        );
        p.same(&format!("linear out (bias: {with_bias})"), &out, GEMM);
    }
    let dy = p.random(ROWS * HIDDEN, 14, 1.0);
    let mut dx = p.random(ROWS * C, 15, 1.0);
    let (mut dw, mut db) = (p.random(C * HIDDEN, 16, 1.0), p.random(HIDDEN, 17, 1.0));
    p.cpu.linear_backward(
        dy.0.view(),
        x.0.view(),
        w.0.view(),
        dx.0.view_mut(),
        dw.0.view_mut(),
        Some(db.0.view_mut()),
        C,
        HIDDEN,
    );
    p.dev.linear_backward(
        dy.1.view(),
        x.1.view(),
        w.1.view(),
        dx.1.view_mut(),
        dw.1.view_mut(),
        Some(db.1.view_mut()),
        C,
        HIDDEN,
    );
    p.same("linear dx", &dx, GEMM);
    p.same("linear dw (accumulated)", &dw, GEMM);
    p.same("linear db (accumulated)", &db, REDUCTION);
}

#[test]
fn tied_head_forward_and_backward() {
    check_tied_head(&Pair::new());
}

/// The tied output head forward and backward on both devices of `p`.
fn check_tied_head(p: &Pair) {
    let (x, wte) = (p.random(ROWS * C, 20, 1.0), p.random(V * C, 21, 0.5));
    let mut logits = p.random(ROWS * V, 22, 1.0);
    p.cpu
        .tied_head_forward(x.0.view(), wte.0.view(), logits.0.view_mut(), C);
    p.dev
        .tied_head_forward(x.1.view(), wte.1.view(), logits.1.view_mut(), C);
    p.same("logits", &logits, GEMM);
    let dlogits = p.random(ROWS * V, 23, 1.0);
    let (mut dx, mut dwte) = (p.random(ROWS * C, 24, 1.0), p.random(V * C, 25, 1.0));
    p.cpu.tied_head_backward(
        dlogits.0.view(),
        x.0.view(),
        wte.0.view(),
        dx.0.view_mut(),
        dwte.0.view_mut(),
        C,
    );
    p.dev.tied_head_backward(
        dlogits.1.view(),
        x.1.view(),
        wte.1.view(),
        dx.1.view_mut(),
        dwte.1.view_mut(),
        C,
    );
    p.same("head dx", &dx, GEMM);
    p.same("head dwte (accumulated)", &dwte, GEMM);
}

#[test]
fn layernorm_forward_and_backward() {
    let p = Pair::new();
    let (x, w, b) = (
        p.random(ROWS * C, 30, 2.0),
        p.random(C, 31, 1.0),
        p.random(C, 32, 1.0),
    );
    let (mut out, mut mean, mut rstd) = (
        p.random(ROWS * C, 33, 1.0),
        p.random(ROWS, 34, 1.0),
        p.random(ROWS, 35, 1.0),
    );
    p.cpu.layernorm_forward(
        x.0.view(),
        w.0.view(),
        b.0.view(),
        out.0.view_mut(),
        mean.0.view_mut(),
        rstd.0.view_mut(),
    );
    p.dev.layernorm_forward(
        x.1.view(),
        w.1.view(),
        b.1.view(),
        out.1.view_mut(),
        mean.1.view_mut(),
        rstd.1.view_mut(),
    );
    p.same("ln out", &out, REDUCTION);
    p.same("ln mean", &mean, REDUCTION);
    p.same("ln rstd", &rstd, REDUCTION);
    let dout = p.random(ROWS * C, 36, 1.0);
    let (mut dx, mut dw, mut db) = (
        p.random(ROWS * C, 37, 1.0),
        p.random(C, 38, 1.0),
        p.random(C, 39, 1.0),
    );
    p.cpu.layernorm_backward(
        dout.0.view(),
        x.0.view(),
        w.0.view(),
        mean.0.view(),
        rstd.0.view(),
        dx.0.view_mut(),
        dw.0.view_mut(),
        db.0.view_mut(),
    );
    p.dev.layernorm_backward(
        dout.1.view(),
        x.1.view(),
        w.1.view(),
        mean.1.view(),
        rstd.1.view(),
        dx.1.view_mut(),
        dw.1.view_mut(),
        db.1.view_mut(),
    );
    p.same("ln dx (accumulated)", &dx, REDUCTION);
    p.same("ln dw (accumulated)", &dw, REDUCTION);
    p.same("ln db (accumulated)", &db, REDUCTION);
}

#[test]
fn gelu_residual_scale_and_norm() {
    let p = Pair::new();
    let bias = p.random(HIDDEN, 40, 0.5);
    let (mut pre, mut out) = (
        p.random(ROWS * HIDDEN, 41, 3.0),
        p.random(ROWS * HIDDEN, 42, 1.0),
    );
    p.cpu
        .bias_gelu_forward(bias.0.view(), pre.0.view_mut(), out.0.view_mut());
    p.dev
        .bias_gelu_forward(bias.1.view(), pre.1.view_mut(), out.1.view_mut());
    p.same("gelu out", &out, POINTWISE);
    p.same("gelu slope", &pre, POINTWISE);
    let mut grad = p.random(ROWS * HIDDEN, 43, 1.0);
    p.cpu.gelu_backward(pre.0.view(), grad.0.view_mut());
    p.dev.gelu_backward(pre.1.view(), grad.1.view_mut());
    p.same("gelu backward", &grad, POINTWISE);
    let (a, b, rbias) = (
        p.random(ROWS * C, 44, 1.0),
        p.random(ROWS * C, 45, 1.0),
        p.random(C, 46, 1.0),
    );
    let mut sum = p.random(ROWS * C, 47, 1.0);
    p.cpu
        .residual_add(a.0.view(), b.0.view(), rbias.0.view(), sum.0.view_mut());
    p.dev
        .residual_add(a.1.view(), b.1.view(), rbias.1.view(), sum.1.view_mut());
    p.same("residual", &sum, 0.0);
    p.cpu.scale(grad.0.view_mut(), 0.37);
    p.dev.scale(grad.1.view_mut(), 0.37);
    p.same("scale", &grad, POINTWISE);
    // Σx² of the same values, in f64 in another order: equal to about 1e-15.
    let same = p.put(&grad.0.to_host().unwrap());
    let (want, got) = (
        p.cpu.sum_of_squares(same.0.view()),
        p.dev.sum_of_squares(same.1.view()),
    );
    assert!((got - want).abs() <= 1e-12 * want, "Σx²: {got} vs {want}");
    assert_eq!(p.dev.sum_of_squares(grad.1.view().range(0..0)), 0.0);
}

#[test]
fn heads_split_and_merge() {
    let p = Pair::new();
    let layout = HeadLayout {
        batch: B,
        len: T,
        n_head: H,
        head_dim: D,
    };
    let qkv = p.random(ROWS * 3 * C, 50, 1.0);
    let mut heads = p.random(ROWS * C, 51, 1.0);
    p.cpu
        .split_heads(&layout, qkv.0.view(), 3 * C, C, heads.0.view_mut());
    p.dev
        .split_heads(&layout, qkv.1.view(), 3 * C, C, heads.1.view_mut());
    p.same("split", &heads, 0.0);
    // Merging writes columns C..2C only.
    let mut merged = p.random(ROWS * 3 * C, 52, 1.0);
    p.cpu
        .merge_heads(&layout, heads.0.view(), merged.0.view_mut(), 3 * C, 2 * C);
    p.dev
        .merge_heads(&layout, heads.1.view(), merged.1.view_mut(), 3 * C, 2 * C);
    p.same("merge", &merged, 0.0);
}

#[test]
fn cross_entropy_forward_and_backward() {
    let p = Pair::new();
    let mut targets: Vec<u32> = (0..ROWS as u32).map(|i| (i * 5 + 1) % V as u32).collect();
    targets[3] = IGNORE_TARGET;
    let mut logits = p.random(ROWS * V, 60, 4.0);
    let mut lse = p.random(ROWS, 61, 1.0);
    let want = p
        .cpu
        .cross_entropy_forward(logits.0.view(), &targets, lse.0.view_mut())
        .unwrap();
    let got = p
        .dev
        .cross_entropy_forward(logits.1.view(), &targets, lse.1.view_mut())
        .unwrap();
    p.same("lse", &lse, REDUCTION);
    assert_eq!(got.count, want.count);
    let tol = f64::from(REDUCTION * p.factor) * want.sum.abs();
    assert!(
        (got.sum - want.sum).abs() <= tol,
        "loss {} vs {}",
        got.sum,
        want.sum
    );
    p.cpu
        .cross_entropy_backward(logits.0.view_mut(), &targets, lse.0.view(), 0.25);
    p.dev
        .cross_entropy_backward(logits.1.view_mut(), &targets, lse.1.view(), 0.25);
    p.same("dlogits", &logits, REDUCTION);
    // A target past the row width is held by another vocabulary-parallel
    // rank: the row's gradient is the softmax alone, on both.
    let elsewhere: Vec<u32> = targets
        .iter()
        .map(|&t| if t == 1 { V as u32 } else { t })
        .collect();
    let mut logits = p.random(ROWS * V, 62, 4.0);
    p.cpu
        .cross_entropy_forward(logits.0.view(), &targets, lse.0.view_mut())
        .unwrap();
    p.dev
        .cross_entropy_forward(logits.1.view(), &targets, lse.1.view_mut())
        .unwrap();
    p.cpu
        .cross_entropy_backward(logits.0.view_mut(), &elsewhere, lse.0.view(), 0.25);
    p.dev
        .cross_entropy_backward(logits.1.view_mut(), &elsewhere, lse.1.view(), 0.25);
    p.same("dlogits, targets elsewhere", &logits, REDUCTION);
    let row0 = &logits.0.to_host().unwrap()[..V];
    assert_eq!(targets[0], 1, "row 0's target is held elsewhere");
    assert!(row0.iter().all(|&g| g > 0.0), "softmax only: {row0:?}");
    // A target outside the vocabulary is the caller's error on both.
    targets[0] = V as u32;
    let cpu_err = p
        .cpu
        .cross_entropy_forward(logits.0.view(), &targets, lse.0.view_mut())
        .unwrap_err();
    let dev_err = p
        .dev
        .cross_entropy_forward(logits.1.view(), &targets, lse.1.view_mut())
        .unwrap_err();
    assert_eq!(dev_err, cpu_err);
}

#[test]
fn batched_attention_forward_and_backward() {
    let p = Pair::new();
    let (slabs, q_len, kv_len) = (B * H, 9, 11);
    let call = BatchedAttention {
        slabs,
        head_dim: D,
        q_rows: Rows {
            per_slab: q_len,
            start: 2,
            count: 6,
        },
        kv_rows: Rows {
            per_slab: kv_len,
            start: 1,
            count: 9,
        },
        scale: 0.45,
        mask: Mask::CausalBottomRight,
    };
    let (q, k, v) = (
        p.random(slabs * q_len * D, 70, 1.0),
        p.random(slabs * kv_len * D, 71, 1.0),
        p.random(slabs * kv_len * D, 72, 1.0),
    );
    // Rows outside the selection keep what they hold.
    let (mut out, mut lse) = (
        p.random(slabs * q_len * D, 73, 1.0),
        p.random(slabs * q_len, 74, 1.0),
    );
    p.cpu.attention_forward(
        &call,
        q.0.view(),
        k.0.view(),
        v.0.view(),
        out.0.view_mut(),
        lse.0.view_mut(),
    );
    p.dev.attention_forward(
        &call,
        q.1.view(),
        k.1.view(),
        v.1.view(),
        out.1.view_mut(),
        lse.1.view_mut(),
    );
    p.same("attention out", &out, ATTENTION);
    p.same("attention lse", &lse, ATTENTION);
    let dout = p.random(slabs * q_len * D, 75, 1.0);
    let (mut dq, mut dk, mut dv) = (
        p.random(slabs * q_len * D, 76, 1.0),
        p.random(slabs * kv_len * D, 77, 1.0),
        p.random(slabs * kv_len * D, 78, 1.0),
    );
    // The CPU's out and lse on both: the backward alone is compared.
    let (out_h, lse_h) = (out.0.to_host().unwrap(), lse.0.to_host().unwrap());
    let (out, lse) = (p.put(&out_h), p.put(&lse_h));
    p.cpu.attention_backward(
        &call,
        q.0.view(),
        k.0.view(),
        v.0.view(),
        out.0.view(),
        lse.0.view(),
        dout.0.view(),
        dq.0.view_mut(),
        dk.0.view_mut(),
        dv.0.view_mut(),
    );
    p.dev.attention_backward(
        &call,
        q.1.view(),
        k.1.view(),
        v.1.view(),
        out.1.view(),
        lse.1.view(),
        dout.1.view(),
        dq.1.view_mut(),
        dk.1.view_mut(),
        dv.1.view_mut(),
    );
    p.same("attention dq (accumulated)", &dq, ATTENTION);
    p.same("attention dk (accumulated)", &dk, ATTENTION);
    p.same("attention dv (accumulated)", &dv, ATTENTION);
}

#[test]
fn packed_attention_forward_and_backward() {
    let p = Pair::new();
    let call = PackedAttention {
        batch: B,
        len: T,
        n_head: H,
        head_dim: D,
        scale: 0.45,
    };
    let (data, bias) = (p.random(ROWS * 3 * C, 80, 1.0), p.random(3 * C, 81, 0.5));
    let (mut out, mut lse) = (p.random(ROWS * C, 82, 1.0), p.random(ROWS * H, 83, 1.0));

    p.cpu.attention_forward_packed(
        &call,
        qkv((&data.0, &bias.0)),
        out.0.view_mut(),
        lse.0.view_mut(),
    );
    p.dev.attention_forward_packed(
        &call,
        qkv((&data.1, &bias.1)),
        out.1.view_mut(),
        lse.1.view_mut(),
    );
    p.same("packed out", &out, ATTENTION);
    p.same("packed lse", &lse, ATTENTION);
    let dout = p.random(ROWS * C, 84, 1.0);
    let mut dqkv = p.random(ROWS * 3 * C, 85, 1.0);
    let (out_h, lse_h) = (out.0.to_host().unwrap(), lse.0.to_host().unwrap());
    let (out, lse) = (p.put(&out_h), p.put(&lse_h));
    p.cpu.attention_backward_packed(
        &call,
        qkv((&data.0, &bias.0)),
        out.0.view(),
        lse.0.view(),
        dout.0.view(),
        dqkv.0.view_mut(),
    );
    p.dev.attention_backward_packed(
        &call,
        qkv((&data.1, &bias.1)),
        out.1.view(),
        lse.1.view(),
        dout.1.view(),
        dqkv.1.view_mut(),
    );
    p.same("packed dqkv (overwritten)", &dqkv, ATTENTION);
}

#[test]
fn adamw_update_with_decay_ranges() {
    let p = Pair::new();
    let len = 301;
    let mask = DecayMask::new(len, [0..7, 100..250, 297..301]);
    let mut params = p.random(len, 90, 1.0);
    let second_moment: Vec<f32> = values(len, 92, 0.01).iter().map(|x| x.abs()).collect();
    let (mut m, mut v) = (p.random(len, 91, 0.1), p.put(&second_moment));
    let grads = p.random(len, 93, 0.5);
    let update = AdamWUpdate {
        mask: &mask,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        step_size: 0.013,
        bias_correction2_sqrt: 0.31,
        decay_factor: 0.999,
    };
    p.cpu.adamw_update(
        &update,
        params.0.view_mut(),
        grads.0.view(),
        m.0.view_mut(),
        v.0.view_mut(),
    );
    p.dev.adamw_update(
        &update,
        params.1.view_mut(),
        grads.1.view(),
        m.1.view_mut(),
        v.1.view_mut(),
    );
    p.same("adamw params", &params, POINTWISE);
    p.same("adamw m", &m, POINTWISE);
    p.same("adamw v", &v, POINTWISE);
}

/// The packed projection of `data` and `bias`.
fn qkv<'a>((data, bias): (&'a Buffer, &'a Buffer)) -> QkvProjection<'a> {
    QkvProjection {
        data: data.view(),
        bias: bias.view(),
    }
}

/// A view of host memory or of another device is an error, reported by the
/// next call that returns one; the device stops (NaN norms) instead of
/// reading memory it does not own.
#[test]
fn foreign_memory_is_an_error_not_undefined_behaviour() {
    let f32 = Precision::F32;
    let (first, second) = (emulated_kernels(f32), emulated_kernels(f32));
    let mut host = vec![1.0f32; 4];
    first.scale(host.as_mut_slice().into(), 2.0);
    assert_eq!(host, [1.0; 4], "host memory was not touched");
    let err = first.upload(&[1.0]).unwrap_err().to_string();
    assert!(err.contains("was given host memory"), "{err}");
    let empty = first.alloc(0).unwrap();
    assert!(
        first.sum_of_squares(empty.view()).is_nan(),
        "the device stopped"
    );

    let other = second.upload(&[3.0]).unwrap();
    let fresh = emulated_kernels(f32);
    assert!(fresh.sum_of_squares(other.view()).is_nan());
    let err = fresh.alloc(1).unwrap_err().to_string();
    assert!(err.contains("was given memory of cuda-emu"), "{err}");
}

//! The row-major → cuBLAS mapping, run through the emulated column-major
//! `sgemm`, against the trainer's linear and tied-head kernels.
#![cfg(feature = "cuda")]

mod cuda;

use cptrain::kernels::{
    Threads, linear_backward, linear_forward, tied_head_backward, tied_head_forward,
};
use cptrain_plugins::cuda::gemm::{self, Operand, Sgemm, emulated_sgemm};
use cuda::{assert_close, values};

/// Runs `g` reading each operand from its trainer buffer.
fn run(g: &Sgemm, x: &[f32], w: &[f32], dy: &[f32], c: &mut [f32]) {
    let pick = |o| match o {
        Operand::X => x,
        Operand::W => w,
        Operand::Dy => dy,
    };
    emulated_sgemm(g, pick(g.a), pick(g.b), c);
}

/// Odd shapes (7 rows, 33 → 19); outputs that accumulate start nonzero.
/// Tolerance 1e-5 relative: the emulated sgemm sums in f64, the trainer's
/// gemm in f32 over up to 33 terms of order 1.
#[test]
fn linear_layers_map_to_sgemm() {
    let (rows, d_in, d_out) = (7, 33, 19);
    let threads = Threads::single();
    let (x, w, bias) = (
        values(rows * d_in, 1, 1.0),
        values(d_in * d_out, 2, 1.0),
        values(d_out, 3, 1.0),
    );
    let mut want = vec![0.0; rows * d_out];
    linear_forward(&threads, &x, &w, Some(&bias), &mut want, d_in, d_out);
    let mut got: Vec<f32> = bias.iter().copied().cycle().take(rows * d_out).collect();
    run(
        &gemm::linear_forward(rows, d_in, d_out, 1.0),
        &x,
        &w,
        &[],
        &mut got,
    );
    assert_close("out", &got, &want, 1e-5);

    let dy = values(rows * d_out, 4, 1.0);
    let dw0 = values(d_in * d_out, 5, 1.0);
    let (mut dx, mut dw, mut db) = (vec![f32::NAN; rows * d_in], dw0.clone(), vec![0.0; d_out]);
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
    let [dx_call, dw_call] = gemm::linear_backward(rows, d_in, d_out);
    let (mut got_dx, mut got_dw) = (vec![f32::NAN; rows * d_in], dw0);
    run(&dx_call, &x, &w, &dy, &mut got_dx);
    run(&dw_call, &x, &w, &dy, &mut got_dw);
    assert_close("dx", &got_dx, &dx, 1e-5);
    assert_close("dw", &got_dw, &dw, 1e-5);
}

/// The tied head on 7 rows of 33 channels and a 67-token vocabulary.
#[test]
fn tied_head_maps_to_sgemm() {
    let (rows, c, vocab) = (7, 33, 67);
    let threads = Threads::single();
    let (x, wte) = (values(rows * c, 6, 1.0), values(vocab * c, 7, 1.0));
    let mut want = vec![0.0; rows * vocab];
    tied_head_forward(&threads, &x, &wte, &mut want, c);
    let mut got = vec![f32::NAN; rows * vocab];
    run(
        &gemm::tied_head_forward(rows, c, vocab),
        &x,
        &wte,
        &[],
        &mut got,
    );
    assert_close("logits", &got, &want, 1e-5);

    let dl = values(rows * vocab, 8, 1.0);
    let dwte0 = values(vocab * c, 9, 1.0);
    let (mut dx, mut dwte) = (vec![0.0; rows * c], dwte0.clone());
    tied_head_backward(&threads, &dl, &x, &wte, &mut dx, &mut dwte, c);
    let [dx_call, dwte_call] = gemm::tied_head_backward(rows, c, vocab);
    let (mut got_dx, mut got_dwte) = (vec![f32::NAN; rows * c], dwte0);
    run(&dx_call, &x, &wte, &dl, &mut got_dx);
    run(&dwte_call, &x, &wte, &dl, &mut got_dwte);
    assert_close("dx", &got_dx, &dx, 1e-5);
    assert_close("dwte", &got_dwte, &dwte, 1e-5);
}

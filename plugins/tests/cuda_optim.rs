//! Optimizer-side kernels through cuda-emu against `cptrain::optim`.
#![cfg(feature = "cuda")]

mod cuda;

use cptrain::kernels::CpuKernels;
use cptrain::optim::{AdamW, DecayMask, Optimizer, OptimizerConfig, sum_of_squares};
use cptrain_plugins::cuda::emu::ops;
use cptrain_plugins::cuda::launch::AdamWStep;
use cuda::{assert_close, values};

/// Two AdamW steps on 1001 elements with three decayed ranges (one at each
/// end) against `AdamW::step`. Tolerance 1e-6 relative: the same f32
/// formula; only the square root and division may round differently.
#[test]
fn adamw_matches_the_cpu_optimizer() {
    let cfg = OptimizerConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        ..OptimizerConfig::default()
    };
    let len = 1001;
    let decayed = [0..10, 300..700, 990..1001];
    let kernels = CpuKernels::default();
    let mut cpu = AdamW::new(&cfg, DecayMask::new(len, decayed.clone()), &kernels).unwrap();
    let mut want = values(len, 20, 1.0);
    let mut got = want.clone();
    let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
    for (step, lr) in [(1u64, 0.01), (2, 0.02)] {
        let grads = values(len, 20 + step, 0.5);
        cpu.step(
            &kernels,
            want.as_mut_slice().into(),
            grads.as_slice().into(),
            lr,
        );
        ops::adamw_step(
            &mut got,
            &grads,
            &mut m,
            &mut v,
            &decayed,
            AdamWStep::new(&cfg, step, lr),
        )
        .unwrap();
    }
    assert_close("params", &got, &want, 1e-6);
    let state = cpu.state().unwrap();
    assert_close("m", &m, state.slot("exp_avg").unwrap(), 1e-6);
    assert_close("v", &v, state.slot("exp_avg_sq").unwrap(), 1e-6);
    let err = ops::adamw_step(
        &mut got,
        &m.clone(),
        &mut m,
        &mut v,
        &[5..9, 0..3],
        AdamWStep::new(&cfg, 3, 0.1),
    );
    assert!(err.unwrap_err().to_string().contains("not sorted"));
}

/// Sum of squares over 300 001 values (many blocks, a partial last one):
/// within 1e-12 relative of the CPU's f64 sum (another order of f64
/// additions), and bit-equal from run to run. Scaling multiplies exactly.
#[test]
fn sum_of_squares_is_deterministic_and_matches_the_cpu() {
    let x = values(300_001, 30, 3.0);
    let (got, again) = (
        ops::sum_of_squares(&x).unwrap(),
        ops::sum_of_squares(&x).unwrap(),
    );
    let want = sum_of_squares(&x);
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    assert_eq!(got.to_bits(), again.to_bits());
    assert_eq!(ops::sum_of_squares(&[]).unwrap(), 0.0);

    let mut scaled = x.clone();
    ops::scale(&mut scaled, 0.37).unwrap();
    let want: Vec<f32> = x.iter().map(|v| v * 0.37).collect();
    assert_eq!(scaled, want);
}

/// The bias gradient (column sums) over 70 rows of 33 against a plain sum
/// in f64; 1e-6 relative (f32 partial sums of 32 rows).
#[test]
fn column_sums_accumulate() {
    let (rows, width) = (70, 33);
    let m = values(rows * width, 40, 1.0);
    let start = values(width, 41, 1.0);
    let mut got = start.clone();
    ops::column_sum_into(&m, &mut got).unwrap();
    let want: Vec<f32> = (0..width)
        .map(|c| (start[c] as f64 + (0..rows).map(|r| m[r * width + c] as f64).sum::<f64>()) as f32)
        .collect();
    assert_close("column sums", &got, &want, 1e-6);
}

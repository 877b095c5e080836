//! The context-parallel strategies against a naive f64 reference on the
//! unsharded sequence: forward out and lse, and dQ/dK/dV, compared on every
//! rank after resharding; plus their message counts and liveness.
//!
//! Tolerance: inputs are uniform in [−1, 1) with head_dim ≤ 7, so scores are
//! O(1) and every output is a convex combination (out) or a sum of ≤ S ≤ 160
//! O(1) terms (gradients) accumulated in f32 in an order that differs from the
//! reference (tiles, ring merges, reductions). Rounding is then a few ulps
//! with √S-like growth: the largest error observed over this file is below
//! 1e-6 (a 1e-7 bound fails at 1.2e-7, one ulp of the outputs), so
//! atol = rtol = 1e-5 relative to max(1, max|ref|) leaves a 10× margin and
//! still catches any wrong block, mask or missing share (errors of 0.01–1).

use std::sync::Arc;
use std::time::Duration;

use super::{
    AllGatherAttention, Attention, AttentionError, AttnShape, QkvLayout, RingAttention,
    UlyssesAttention,
};
use crate::kernels::test_support::{assert_close, h, hm, uniform};
use crate::kernels::{CpuKernels, QkvProjection, Threads};
use crate::parallel::{CommStats, LocalWorld, Op, ProcessGroup, ZigzagLayout, run_ranks};

const TOL: f64 = 1e-5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    P2p,
    AllGather,
    A2a,
}

const STRATEGIES: [Strategy; 3] = [Strategy::P2p, Strategy::AllGather, Strategy::A2a];

fn build(strategy: Strategy, group: Arc<dyn ProcessGroup>, causal: bool) -> Box<dyn Attention> {
    let kernels = Arc::new(CpuKernels::new(Threads::single()));
    match strategy {
        Strategy::P2p => Box::new(RingAttention::new(group, kernels, causal)),
        Strategy::AllGather => Box::new(AllGatherAttention::new(group, kernels, causal)),
        Strategy::A2a => Box::new(UlyssesAttention::new(group, kernels, causal)),
    }
}

/// A full-sequence problem: `[batch, heads, seq, dim]` tensors.
struct Problem {
    batch: usize,
    heads: usize,
    seq: usize,
    dim: usize,
    causal: bool,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
}

impl Problem {
    fn new(batch: usize, heads: usize, seq: usize, dim: usize, causal: bool) -> Self {
        let n = batch * heads * seq * dim;
        Problem {
            batch,
            heads,
            seq,
            dim,
            causal,
            q: uniform(1, n),
            k: uniform(2, n),
            v: uniform(3, n),
            dout: uniform(4, n),
        }
    }
}

/// Out, lse, dq, dk, dv of the whole sequence.
struct Results {
    out: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

/// `softmax(s·QKᵀ + mask)·V` and its analytic backward, per slab, in f64.
fn reference(p: &Problem) -> Results {
    let (s, d) = (p.seq, p.dim);
    let scale = 1.0 / (d as f64).sqrt();
    let n = p.q.len();
    let mut r = Results {
        out: vec![0.0; n],
        lse: vec![0.0; n / d],
        dq: vec![0.0; n],
        dk: vec![0.0; n],
        dv: vec![0.0; n],
    };
    let at = |x: &[f32], slab: usize, row: usize, c: usize| f64::from(x[(slab * s + row) * d + c]);
    for slab in 0..p.batch * p.heads {
        for i in 0..s {
            let keys = if p.causal { i + 1 } else { s };
            let scores: Vec<f64> = (0..keys)
                .map(|j| {
                    scale
                        * (0..d)
                            .map(|c| at(&p.q, slab, i, c) * at(&p.k, slab, j, c))
                            .sum::<f64>()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + scores.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            let probs: Vec<f64> = scores.iter().map(|x| (x - lse).exp()).collect();
            let row = (slab * s + i) * d;
            r.lse[slab * s + i] = lse;
            for c in 0..d {
                r.out[row + c] = (0..keys).map(|j| probs[j] * at(&p.v, slab, j, c)).sum();
            }
            let dot: f64 = (0..d)
                .map(|c| r.out[row + c] * at(&p.dout, slab, i, c))
                .sum();
            for (j, &prob) in probs.iter().enumerate() {
                let dp: f64 = (0..d)
                    .map(|c| at(&p.dout, slab, i, c) * at(&p.v, slab, j, c))
                    .sum();
                let ds = prob * (dp - dot) * scale;
                let key = (slab * s + j) * d;
                for c in 0..d {
                    r.dv[key + c] += prob * at(&p.dout, slab, i, c);
                    r.dq[row + c] += ds * at(&p.k, slab, j, c);
                    r.dk[key + c] += ds * at(&p.q, slab, i, c);
                }
            }
        }
    }
    r
}

/// One rank's outputs, and its traffic in the forward and the backward.
struct RankRun {
    out: Vec<f32>,
    lse: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    forward: CommStats,
    backward: CommStats,
}

/// Shards `p` over `cp` thread ranks and runs `strategy` forward and backward.
fn run_cp(strategy: Strategy, cp: usize, p: &Problem) -> Result<Vec<RankRun>, String> {
    let layout = ZigzagLayout {
        cp,
        chunk: p.seq / (2 * cp),
    };
    let slabs = p.batch * p.heads;
    let shard = |x: &[f32], rank: usize, width: usize| {
        let mut local = vec![0.0; slabs * layout.local_len() * width];
        layout.take(rank, x, slabs, width, &mut local);
        local
    };
    let shape = AttnShape {
        batch: p.batch,
        n_head: p.heads,
        len: layout.local_len(),
        head_dim: p.dim,
    };
    let world = LocalWorld::new(cp, Duration::from_secs(30));
    run_ranks(&world, |rank| -> Result<RankRun, AttentionError> {
        let group: Arc<dyn ProcessGroup> = Arc::new(world.world_group(rank)?);
        let attention = build(strategy, group.clone(), p.causal);
        let (q, k, v, dout) = (
            shard(&p.q, rank, p.dim),
            shard(&p.k, rank, p.dim),
            shard(&p.v, rank, p.dim),
            shard(&p.dout, rank, p.dim),
        );
        let (mut out, mut lse) = (vec![f32::NAN; q.len()], vec![f32::NAN; shape.lse_len()]);
        let start = group.stats();
        attention.forward(shape, h(&q), h(&k), h(&v), hm(&mut out), hm(&mut lse))?;
        let mid = group.stats();
        let (mut dq, mut dk, mut dv) = (
            vec![f32::NAN; q.len()],
            vec![f32::NAN; q.len()],
            vec![f32::NAN; q.len()],
        );
        let inputs = [&q, &k, &v, &out, &lse, &dout].map(|x| h(x));
        let [q, k, v, out_view, lse_view, dout] = inputs;
        attention.backward(
            shape,
            q,
            k,
            v,
            out_view,
            lse_view,
            dout,
            hm(&mut dq),
            hm(&mut dk),
            hm(&mut dv),
        )?;
        let end = group.stats();
        Ok(RankRun {
            out,
            lse,
            dq,
            dk,
            dv,
            forward: mid.since(&start),
            backward: end.since(&mid),
        })
    })
    .map_err(|e| e.to_string())
}

fn wide_shard(
    x: &[f64],
    layout: ZigzagLayout,
    rank: usize,
    slabs: usize,
    width: usize,
) -> Vec<f64> {
    let narrow: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut local = vec![0.0; slabs * layout.local_len() * width];
    layout.take(rank, &narrow, slabs, width, &mut local);
    // The f32 rounding of the reference is far below the tolerance.
    local.iter().map(|&v| f64::from(v)).collect()
}

fn check_against_reference(strategy: Strategy, cp: usize, p: &Problem, expected: &Results) {
    let runs = run_cp(strategy, cp, p).unwrap_or_else(|e| panic!("{strategy:?} cp={cp}: {e}"));
    let layout = ZigzagLayout {
        cp,
        chunk: p.seq / (2 * cp),
    };
    let slabs = p.batch * p.heads;
    for (rank, run) in runs.iter().enumerate() {
        let what = |name: &str| {
            format!(
                "{strategy:?} cp={cp} causal={} d={} rank {rank} {name}",
                p.causal, p.dim
            )
        };
        let checks: [(&str, &[f32], &[f64], usize); 5] = [
            ("out", &run.out, &expected.out, p.dim),
            ("lse", &run.lse, &expected.lse, 1),
            ("dq", &run.dq, &expected.dq, p.dim),
            ("dk", &run.dk, &expected.dk, p.dim),
            ("dv", &run.dv, &expected.dv, p.dim),
        ];
        for (name, actual, full, width) in checks {
            assert_close(
                &what(name),
                actual,
                &wide_shard(full, layout, rank, slabs, width),
                TOL,
            );
        }
    }
}

/// The core property: any strategy on any CP size reproduces single-rank
/// attention on every rank, causal and bidirectional, with odd head dims.
#[test]
fn every_strategy_matches_the_single_rank_reference_on_every_rank() {
    for cp in [1, 2, 3, 4, 8] {
        // a2a needs the heads to divide: 6 heads for cp = 3, 8 otherwise.
        let heads = if cp == 3 { 6 } else { 8 };
        for (causal, dim, chunk) in [(true, 5, 3), (false, 3, 2), (true, 1, 1)] {
            let problem = Problem::new(2, heads, 2 * cp * chunk, dim, causal);
            let expected = reference(&problem);
            for strategy in STRATEGIES {
                check_against_reference(strategy, cp, &problem, &expected);
            }
        }
    }
}

/// Chunks longer than the kernel's 64-row tiles, so each call spans tiles.
#[test]
fn strategies_match_the_reference_across_kernel_tiles() {
    for (cp, causal) in [(2, true), (3, true), (2, false)] {
        let problem = Problem::new(1, 6, 2 * cp * 70, 7, causal);
        let expected = reference(&problem);
        for strategy in STRATEGIES {
            check_against_reference(strategy, cp, &problem, &expected);
        }
    }
}

/// Strategies agree with each other, not just each with the reference.
#[test]
fn strategies_agree_with_each_other() {
    let problem = Problem::new(2, 4, 2 * 4 * 6, 5, true);
    let runs: Vec<Vec<RankRun>> = STRATEGIES
        .iter()
        .map(|&s| run_cp(s, 4, &problem).unwrap())
        .collect();
    for other in &runs[1..] {
        for (a, b) in runs[0].iter().zip(other) {
            for (x, y) in [
                (&a.out, &b.out),
                (&a.lse, &b.lse),
                (&a.dq, &b.dq),
                (&a.dk, &b.dk),
                (&a.dv, &b.dv),
            ] {
                let worst = x
                    .iter()
                    .zip(y.iter())
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
                assert!(f64::from(worst) <= TOL, "strategies differ by {worst}");
            }
        }
    }
}

/// Message counts and bytes per rank match docs/cp-attention.md §7.
#[test]
fn communication_per_rank_matches_the_formulas() {
    for cp in [1, 2, 3, 4] {
        let problem = Problem::new(1, 12, 2 * cp * 2, 3, true);
        let local = problem.q.len() / cp;
        // One K/V block: k and v of the local tokens, f32.
        let kv_bytes = (2 * local * 4) as u64;
        let p = cp as u64;
        for strategy in STRATEGIES {
            for (rank, run) in run_cp(strategy, cp, &problem).unwrap().iter().enumerate() {
                let (f, b) = (&run.forward, &run.backward);
                let at = format!("{strategy:?} cp={cp} rank {rank}");
                let calls = |s: &CommStats| Op::ALL.map(|op| s.calls(op));
                let only = |entries: &[(Op, u64)]| {
                    Op::ALL.map(|op| entries.iter().find(|e| e.0 == op).map_or(0, |e| e.1))
                };
                if cp == 1 {
                    assert_eq!((calls(f), calls(b)), (only(&[]), only(&[])), "{at}");
                    continue;
                }
                match strategy {
                    Strategy::P2p => {
                        assert_eq!(
                            calls(f),
                            only(&[(Op::Send, p - 1), (Op::Recv, p - 1)]),
                            "{at} fwd"
                        );
                        assert_eq!(f.bytes_sent, (p - 1) * kv_bytes, "{at} fwd bytes");
                        // P−1 K/V and P−1 dK/dV messages, each one block.
                        let bwd = 2 * (p - 1);
                        assert_eq!(
                            calls(b),
                            only(&[(Op::Send, bwd), (Op::Recv, bwd)]),
                            "{at} bwd"
                        );
                        assert_eq!(b.bytes_sent, bwd * kv_bytes, "{at} bwd bytes");
                    }
                    Strategy::AllGather => {
                        assert_eq!(calls(f), only(&[(Op::AllGather, 1)]), "{at} fwd");
                        assert_eq!(f.bytes_received, (p - 1) * kv_bytes, "{at} fwd bytes");
                        assert_eq!(
                            calls(b),
                            only(&[(Op::AllGather, 1), (Op::ReduceScatter, 1)]),
                            "{at} bwd"
                        );
                        assert_eq!(b.bytes_sent, 2 * (p - 1) * kv_bytes, "{at} bwd bytes");
                    }
                    Strategy::A2a => {
                        assert_eq!(calls(f), only(&[(Op::AllToAll, 2)]), "{at} fwd");
                        assert_eq!(calls(b), only(&[(Op::AllToAll, 2)]), "{at} bwd");
                        // Forward: (P−1)/P of q, k, v out and of out + lse back.
                        let lse_local = (local / problem.dim) as u64;
                        let fwd = (p - 1) * (4 * local as u64 + lse_local) / p * 4;
                        assert_eq!(f.bytes_sent, fwd, "{at} fwd bytes");
                    }
                }
            }
        }
    }
}

#[test]
fn a2a_names_the_head_count_it_cannot_split() {
    let problem = Problem::new(1, 4, 2 * 3 * 2, 3, true);
    let message = run_cp(Strategy::A2a, 3, &problem)
        .err()
        .expect("4 heads over cp = 3");
    assert!(
        message.contains("model.n_head = 4 is not divisible by parallel.cp = 3"),
        "{message}"
    );
    assert!(message.contains("p2p"), "{message}");
}

/// A one-rank world (kept alive by the caller), its group and a small
/// attention shape, for the error-path tests.
fn one_rank_small_shape() -> (LocalWorld, Arc<dyn ProcessGroup>, AttnShape) {
    let world = LocalWorld::new(1, Duration::from_secs(5));
    let group: Arc<dyn ProcessGroup> = Arc::new(world.world_group(0).unwrap());
    let shape = AttnShape {
        batch: 1,
        n_head: 2,
        len: 4,
        head_dim: 3,
    };
    (world, group, shape)
}

#[test]
fn wrong_buffer_sizes_are_shape_errors() {
    let (_world, group, shape) = one_rank_small_shape();
    let n = shape.qkv_len();
    for strategy in STRATEGIES {
        let attention = build(strategy, group.clone(), true);
        let (mut out, mut lse) = (vec![0.0; n], vec![0.0; shape.lse_len()]);
        let err = attention
            .forward(
                shape,
                h(&vec![0.0; n]),
                h(&vec![0.0; n - 1]),
                h(&vec![0.0; n]),
                hm(&mut out),
                hm(&mut lse),
            )
            .unwrap_err();
        assert!(
            matches!(err, AttentionError::Shape { buffer: "k", .. }),
            "{strategy:?}: {err}"
        );
    }
}

/// Every context-parallel strategy takes head-major q, k, v (the layout
/// `TrainPlan::qkv_layout` assumes for cp > 1), and a packed call is an
/// error naming the strategy, not a wrong answer.
#[test]
fn context_parallel_strategies_take_head_major_qkv_only() {
    let (_world, group, shape) = one_rank_small_shape();
    let n = shape.qkv_len();
    for strategy in STRATEGIES {
        let attention = build(strategy, group.clone(), true);
        assert_eq!(attention.qkv_layout(), QkvLayout::HeadMajor, "{strategy:?}");
        let (mut out, mut lse) = (vec![0.0; n], vec![0.0; shape.lse_len()]);
        let (data, bias) = (
            vec![0.0; 3 * n],
            vec![0.0; 3 * shape.n_head * shape.head_dim],
        );
        let qkv = QkvProjection {
            data: h(&data),
            bias: h(&bias),
        };
        let err = attention
            .forward_packed(shape, qkv, hm(&mut out), hm(&mut lse))
            .unwrap_err();
        let name = attention.name().to_owned();
        assert!(
            err.to_string()
                .contains(&format!("`{name}` does not take packed qkv")),
            "{err}"
        );
        let mut dqkv = vec![0.0; 3 * n];
        let err = attention
            .backward_packed(shape, qkv, h(&out), h(&lse), h(&out), hm(&mut dqkv))
            .unwrap_err();
        assert!(
            err.to_string().contains("does not take packed qkv"),
            "{err}"
        );
    }
}

/// A rank that dies between forward and backward stops the others' ring
/// with an error naming it, instead of a hang.
#[test]
fn a_rank_failing_mid_step_stops_the_ring() {
    let cp = 3;
    let problem = Problem::new(1, 3, 2 * cp * 2, 3, true);
    let layout = ZigzagLayout { cp, chunk: 2 };
    let shape = AttnShape {
        batch: 1,
        n_head: 3,
        len: layout.local_len(),
        head_dim: 3,
    };
    let world = LocalWorld::new(cp, Duration::from_secs(60));
    let started = std::time::Instant::now();
    let err = run_ranks(&world, |rank| -> Result<(), String> {
        let group: Arc<dyn ProcessGroup> =
            Arc::new(world.world_group(rank).map_err(|e| e.to_string())?);
        let attention = RingAttention::new(group, Arc::new(CpuKernels::default()), true);
        let n = problem.q.len() / cp;
        let (x, mut out, mut lse) = (vec![0.5; n], vec![0.0; n], vec![0.0; shape.lse_len()]);
        attention
            .forward(shape, h(&x), h(&x), h(&x), hm(&mut out), hm(&mut lse))
            .map_err(|e| e.to_string())?;
        if rank == 1 {
            return Err("injected failure on rank 1".into());
        }
        let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        attention
            .backward(
                shape,
                h(&x),
                h(&x),
                h(&x),
                h(&out),
                h(&lse),
                h(&x),
                hm(&mut dq),
                hm(&mut dk),
                hm(&mut dv),
            )
            .map_err(|e| e.to_string())
    })
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.rank, 1);
    assert!(
        err.to_string().contains("injected failure on rank 1"),
        "{err}"
    );
}

//! Megatron-LM's layers against the unsplit model: at tp ∈ {2, 3, 4}, with
//! and without sequence parallelism, the TP ranks' forward gives the single
//! rank's loss, and their local gradients, gathered into the full layout,
//! give its gradient; replicated tensors get the same gradient bits on
//! every TP rank.
//!
//! Tolerance: parameters are O(1) (`o1_params`), so every gradient is a sum
//! of O(1) terms over at most `4C = 96` products and 12 tokens, accumulated
//! in f32. TP changes only the order of some sums (the row-parallel partial
//! products, the vocabulary's log-sum-exp merged from per-rank parts in
//! f64), a few ulps; 1e-5 relative to max(1, max|reference|) leaves a wide
//! margin and still catches a missing or doubled share (errors of 1e-2 and
//! more: a bias added on every rank, a reduction left out).

use std::sync::Arc;
use std::time::Duration;

use super::TpSharding;
use crate::attention::{AllGatherAttention, Attention, LocalAttention};
use crate::kernels::test_support::uniform;
use crate::kernels::{CpuKernels, IGNORE_TARGET, Kernels, Threads};
use crate::model::tests::o1_params;
use crate::model::{Activations, Batch, Gpt, ModelConfig, ModelError};
use crate::parallel::{LocalWorld, ProcessGroup, run_ranks};

const TOL: f64 = 1e-5;
const BATCH: usize = 2;
const LEN: usize = 6;

fn model(vocab_size: usize, vocab_padding: usize) -> ModelConfig {
    ModelConfig {
        n_layer: 2,
        n_head: 12,
        n_embd: 24,
        vocab_size,
        seq_len: LEN,
        n_positions: None,
        vocab_padding,
        init: None,
    }
}

struct Inputs {
    tokens: Vec<u32>,
    targets: Vec<u32>,
    positions: Vec<usize>,
}

impl Inputs {
    fn new(vocab: usize) -> Self {
        let ids = |seed| -> Vec<u32> {
            uniform(seed, BATCH * LEN)
                .iter()
                .map(|x| ((x + 1.0) / 2.0 * vocab as f32) as u32 % vocab as u32)
                .collect()
        };
        let mut targets = ids(12);
        targets[4] = IGNORE_TARGET;
        Inputs {
            tokens: ids(11),
            targets,
            positions: (0..LEN).collect(),
        }
    }

    fn batch(&self) -> Batch<'_> {
        Batch {
            tokens: &self.tokens,
            targets: &self.targets,
            positions: &self.positions,
        }
    }
}

/// The loss sum and the gradient (scale 1) of `gpt` at `params`, with the
/// packed attention (`LocalAttention`) or a head-major one (all-gather CP
/// attention on a one-rank group).
fn loss_and_grads(
    gpt: &Gpt,
    params: &[f32],
    inputs: &Inputs,
    head_major: bool,
) -> Result<(f64, Vec<f32>), ModelError> {
    let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::new(Threads::single()));
    let attn: Box<dyn Attention> = if head_major {
        let alone = LocalWorld::new(1, Duration::from_secs(30)).world_group(0)?;
        Box::new(AllGatherAttention::new(
            Arc::new(alone),
            kernels.clone(),
            true,
        ))
    } else {
        Box::new(LocalAttention::new(kernels.clone()))
    };
    let (k, attn) = (&*kernels, &*attn);
    let layout = attn.qkv_layout();
    let mut acts = Activations::with_shape(k, gpt.shape(), BATCH, LEN, layout)?;
    let loss = gpt.forward(k, attn, params.into(), inputs.batch(), &mut acts)?;
    let mut grads = vec![0.0; params.len()];
    let g = (&mut grads[..]).into();
    gpt.backward(k, attn, params.into(), inputs.batch(), 1.0, &mut acts, g)?;
    gpt.reduce_replicated_grads(k, (&mut grads[..]).into())?;
    Ok((loss.sum, grads))
}

fn check(cfg: &ModelConfig, tp: usize, head_major: bool, sp: bool) {
    let what = format!(
        "tp {tp}, vocab {} padded to {}, head-major {head_major}, sequence parallel {sp}",
        cfg.vocab_size, cfg.vocab_padding
    );
    let single = Gpt::new(cfg.clone());
    let full = o1_params(single.layout(), 3);
    let inputs = Inputs::new(cfg.vocab_size);
    let (want_loss, want_grads) = loss_and_grads(&single, &full, &inputs, head_major).unwrap();

    let sharding = TpSharding::new(cfg, tp).unwrap();
    let world = LocalWorld::new(tp, Duration::from_secs(30));
    let ranks = run_ranks(&world, |rank| -> Result<_, String> {
        let group: Arc<dyn ProcessGroup> =
            Arc::new(world.world_group(rank).map_err(|e| e.to_string())?);
        let gpt = sharding
            .rank_model(rank, group, sp)
            .map_err(|e| e.to_string())?;
        let local = sharding.rank(rank).unwrap().split(&full).unwrap();
        loss_and_grads(&gpt, &local, &inputs, head_major).map_err(|e| e.to_string())
    })
    .unwrap();

    for (rank, (loss, _)) in ranks.iter().enumerate() {
        let err = (loss - want_loss).abs() / want_loss.abs();
        assert!(err < TOL, "{what}: rank {rank} loss {loss} vs {want_loss}");
    }
    let locals: Vec<&[f32]> = ranks.iter().map(|(_, g)| &g[..]).collect();
    let gathered = sharding.gather(&locals).unwrap();
    let want: Vec<f64> = want_grads.iter().map(|&g| f64::from(g)).collect();
    crate::kernels::test_support::assert_close(&what, &gathered, &want, TOL);
    // Replicated tensors: the same bits on every TP rank.
    for rank in 1..tp {
        let (shard, first) = (sharding.rank(rank).unwrap(), sharding.rank(0).unwrap());
        let tensors = shard.layout().specs().iter().zip(shard.tensors());
        for ((spec, tensor), first) in tensors.zip(first.layout().specs()) {
            if tensor.partition.is_replicated() {
                let (mine, theirs) = (&locals[rank][spec.range()], &locals[0][first.range()]);
                assert_eq!(mine, theirs, "{what}: {} on rank {rank}", spec.name);
            }
        }
    }
}

#[test]
fn tp_layers_give_the_single_rank_loss_and_gradient() {
    for tp in [2, 3, 4] {
        for sp in [false, true] {
            // 97 is prime: split with padding at every tp.
            check(&model(97, 1), tp, false, sp);
            check(&model(97, 8), tp, true, sp);
        }
    }
    // So small a vocabulary that the last TP rank holds only padding.
    check(&model(5, 1), 4, false, true);
}

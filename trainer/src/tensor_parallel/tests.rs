//! The sharding against an independent statement of Megatron-LM's rule,
//! round trips, the global norm's bookkeeping and the per-rank counts.

use super::*;
use crate::kernels::test_support::uniform;
use crate::model::{ModelConfig, ParamLayout};
use crate::optim;

fn model(n_head: usize, n_embd: usize, vocab_size: usize, vocab_padding: usize) -> ModelConfig {
    ModelConfig {
        n_layer: 2,
        n_head,
        n_embd,
        vocab_size,
        seq_len: 4,
        n_positions: Some(6),
        vocab_padding,
        init: None,
    }
}

/// Shapes that exercise every rule: 12 heads of width 2 split at tp 1–4;
/// a vocabulary of 97 (prime) unpadded and padded to 8; one so small that
/// the last rank owns only padding.
fn cases() -> Vec<(ModelConfig, usize)> {
    let mut cases = Vec::new();
    for tp in 1..=4 {
        cases.push((model(12, 24, 97, 1), tp));
        cases.push((model(12, 24, 97, 8), tp));
    }
    cases.push((model(12, 24, 3, 4), 2));
    cases
}

/// A full buffer of `value(flat index)`, its vocabulary padding rows zero
/// (as in training).
fn full_buffer(cfg: &ModelConfig, value: impl FnMut(usize) -> f32) -> Vec<f32> {
    let layout = ParamLayout::gpt2(cfg);
    let mut full: Vec<f32> = (0..layout.len()).map(value).collect();
    let wte = &layout.specs()[0];
    full[wte.saved_range().end..wte.range().end].fill(0.0);
    full
}

fn random_full(cfg: &ModelConfig, seed: u64) -> Vec<f32> {
    let values = uniform(seed, ParamLayout::gpt2(cfg).len());
    full_buffer(cfg, |i| values[i])
}

/// Megatron-LM's scheme written out directly: the `(row, col)` of the full
/// tensor (a matrix; 1-D tensors are one row) that element `(row, col)` of
/// TP rank `t`'s local tensor holds, or `None` for a vocabulary padding row.
fn megatron_origin(
    cfg: &ModelConfig,
    tp: usize,
    t: usize,
    name: &str,
    (row, col): (usize, usize),
) -> Option<(usize, usize)> {
    let c = cfg.n_embd;
    let head_dim = c / cfg.n_head;
    let hidden_per_rank = 4 * c / tp;
    // The i-th feature of this rank's heads is feature d of head h globally.
    let head_feature = |i: usize| {
        let h = t * (cfg.n_head / tp) + i / head_dim;
        h * head_dim + i % head_dim
    };
    let ends = |suffix: &str| name.ends_with(suffix);
    if name == "transformer.wte.weight" {
        let rows_per_rank = cfg.vocab_size.next_multiple_of(cfg.vocab_padding * tp) / tp;
        let id = t * rows_per_rank + row;
        (id < cfg.vocab_size).then_some((id, col))
    } else if ends("attn.c_attn.weight") || ends("attn.c_attn.bias") {
        let per_band = c / tp;
        let (band, i) = (col / per_band, col % per_band);
        Some((row, band * c + head_feature(i)))
    } else if ends("mlp.c_fc.weight") || ends("mlp.c_fc.bias") {
        Some((row, t * hidden_per_rank + col))
    } else if ends("attn.c_proj.weight") {
        Some((head_feature(row), col))
    } else if ends("mlp.c_proj.weight") {
        Some((t * hidden_per_rank + row, col))
    } else {
        Some((row, col))
    }
}

/// The local shape the scheme gives: split dimensions divided by `tp`, the
/// vocabulary padded to `vocab_padding · tp`.
fn megatron_shape(cfg: &ModelConfig, tp: usize, name: &str, full: &[usize]) -> Vec<usize> {
    let ends = |suffix: &str| name.ends_with(suffix);
    if name == "transformer.wte.weight" {
        let padded = cfg.vocab_size.next_multiple_of(cfg.vocab_padding * tp);
        vec![padded / tp, full[1]]
    } else if ends("c_attn.weight") || ends("c_fc.weight") {
        vec![full[0], full[1] / tp]
    } else if ends("c_attn.bias") || ends("c_fc.bias") {
        vec![full[0] / tp]
    } else if ends("c_proj.weight") {
        vec![full[0] / tp, full[1]]
    } else {
        full.to_vec()
    }
}

#[test]
fn every_local_value_is_the_piece_megatron_assigns() {
    for (cfg, tp) in cases() {
        // Every value names its flat index in the full buffer (exact in f32
        // below 2^24), so a local value tells where it came from.
        let full = full_buffer(&cfg, |i| (i + 1) as f32);
        let full_layout = ParamLayout::gpt2(&cfg);
        let sharding = TpSharding::new(&cfg, tp).unwrap();
        for t in 0..tp {
            let shard = sharding.rank(t).unwrap();
            let local = shard.split(&full).unwrap();
            let specs = shard.layout().specs();
            assert_eq!(specs.len(), full_layout.specs().len());
            for (spec, full_spec) in specs.iter().zip(full_layout.specs()) {
                let case = format!("tp = {tp}, rank {t}, {} ({cfg:?})", spec.name);
                assert_eq!(spec.name, full_spec.name, "{case}");
                let shape = megatron_shape(&cfg, tp, &spec.name, &full_spec.shape);
                assert_eq!(spec.shape, shape, "{case}");
                assert_eq!(spec.weight_decay, full_spec.weight_decay, "{case}");
                let width = *shape.last().unwrap();
                let full_width = *full_spec.shape.last().unwrap();
                for (k, &got) in local[spec.range()].iter().enumerate() {
                    let at = (k / width, k % width);
                    let want = match megatron_origin(&cfg, tp, t, &spec.name, at) {
                        Some((r, c)) => full[full_spec.offset + r * full_width + c],
                        None => 0.0,
                    };
                    assert_eq!(got, want, "{case}, local element {at:?}");
                }
            }
        }
    }
}

#[test]
fn at_tp_1_the_local_layout_is_the_single_rank_layout() {
    for (cfg, _) in cases() {
        let shard = TpSharding::new(&cfg, 1).unwrap().rank(0).unwrap();
        assert_eq!(shard.layout(), &ParamLayout::gpt2(&cfg));
        let full = random_full(&cfg, 1);
        assert_eq!(shard.split(&full).unwrap(), full);
    }
}

#[test]
fn split_then_gather_returns_the_full_buffer() {
    for (seed, (cfg, tp)) in cases().into_iter().enumerate() {
        let full = random_full(&cfg, seed as u64);
        let sharding = TpSharding::new(&cfg, tp).unwrap();
        let locals: Vec<Vec<f32>> = (0..tp)
            .map(|t| sharding.rank(t).unwrap().split(&full).unwrap())
            .collect();
        let views: Vec<&[f32]> = locals.iter().map(Vec::as_slice).collect();
        assert_eq!(sharding.gather(&views).unwrap(), full, "tp = {tp}, {cfg:?}");
    }
}

#[test]
fn gather_takes_replicated_tensors_from_rank_0() {
    let cfg = model(12, 24, 97, 1);
    let sharding = TpSharding::new(&cfg, 2).unwrap();
    let full = random_full(&cfg, 7);
    let ln_f = |layout: &ParamLayout| layout.get("transformer.ln_f.bias").unwrap().range();
    let mut locals: Vec<Vec<f32>> = (0..2)
        .map(|t| sharding.rank(t).unwrap().split(&full).unwrap())
        .collect();
    let local_ln_f = ln_f(sharding.rank(1).unwrap().layout());
    locals[1][local_ln_f.clone()].fill(5.0);
    let gathered = sharding.gather(&[&locals[0], &locals[1]]).unwrap();
    assert_eq!(gathered, full, "rank 1's copy is not read");
    locals[0][local_ln_f].fill(5.0);
    let gathered = sharding.gather(&[&locals[0], &locals[1]]).unwrap();
    assert!(
        gathered[ln_f(&ParamLayout::gpt2(&cfg))]
            .iter()
            .all(|&x| x == 5.0)
    );
}

#[test]
fn owned_sums_of_squares_add_up_to_the_full_one() {
    for (seed, (cfg, tp)) in cases().into_iter().enumerate() {
        let full = random_full(&cfg, 100 + seed as u64);
        let sharding = TpSharding::new(&cfg, tp).unwrap();
        let (mut owned, mut naive) = (0.0, 0.0);
        for shard in sharding.ranks().unwrap() {
            let local = shard.split(&full).unwrap();
            owned += shard.owned_sum_of_squares(&local).unwrap();
            naive += optim::sum_of_squares(&local);
        }
        let want = optim::sum_of_squares(&full);
        // The squares of f32 values are exact in f64; only the order of
        // ~2·10⁴ f64 additions differs (error below n·2⁻⁵³ ≈ 3·10⁻¹²).
        let rel = (owned - want).abs() / want;
        assert!(rel < 1e-11, "tp = {tp}: {owned} vs {want}");
        if tp > 1 {
            // Summing every local buffer counts replicated tensors tp times.
            assert!(naive > want * (1.0 + 1e-6), "tp = {tp}");
        }
    }
}

#[test]
fn owned_ranges_are_the_shards_plus_replicas_on_rank_0() {
    let cfg = model(12, 24, 97, 1);
    let ranks = TpSharding::new(&cfg, 2).unwrap().ranks().unwrap();
    let owned = |shard: &RankShard| shard.owned_ranges().iter().map(|r| r.len()).sum::<usize>();
    let replicated: usize = ranks[1]
        .layout()
        .specs()
        .iter()
        .zip(ranks[1].tensors())
        .filter(|(_, t)| t.partition.is_replicated())
        .map(|(s, _)| s.numel())
        .sum();
    assert_eq!(owned(&ranks[0]), ranks[0].layout().len());
    assert_eq!(owned(&ranks[1]), ranks[1].layout().len() - replicated);
    let sorted = ranks[1].owned_ranges();
    assert!(
        sorted.windows(2).all(|w| w[0].end < w[1].start),
        "merged, disjoint"
    );
}

#[test]
fn params_per_rank_is_every_local_layouts_length() {
    for (cfg, tp) in cases() {
        let sharding = TpSharding::new(&cfg, tp).unwrap();
        for shard in sharding.ranks().unwrap() {
            assert_eq!(shard.layout().len() as f64, sharding.params_per_rank());
        }
    }
    // GPT-2 124M, counts only: 50257 ids padded to 50258 at tp = 2.
    let sharding = TpSharding::new(&ModelConfig::gpt2_124m(), 2).unwrap();
    assert_eq!(sharding.vocab().rows_per_rank(), 25129);
    let shard = sharding.rank(1).unwrap();
    assert_eq!(shard.layout().len() as f64, sharding.params_per_rank());
    assert_eq!(shard.layout().specs()[0].padding_rows, 1);
    let single = TpSharding::new(&ModelConfig::gpt2_124m(), 1).unwrap();
    assert_eq!(
        single.params_per_rank(),
        ModelConfig::gpt2_124m().param_count()
    );
}

#[test]
fn the_vocabulary_split_pads_to_a_multiple_of_padding_times_tp() {
    // (vocab_size, vocab_padding, tp) → rows per rank, real ids of the last rank.
    for (v, pad, tp, rows, last_real) in [
        (97, 1, 4, 25, 75..97),
        (97, 8, 4, 32, 96..97),
        (50257, 1, 2, 25129, 25129..50257),
        (3, 4, 2, 4, 4..4),
        (96, 1, 4, 24, 72..96),
    ] {
        let split = VocabSplit::new(&model(12, 24, v, pad), tp).unwrap();
        assert_eq!(split.rows_per_rank(), rows, "V = {v}, pad {pad}, tp {tp}");
        assert_eq!(
            split.real_rows(tp - 1),
            last_real,
            "V = {v}, pad {pad}, tp {tp}"
        );
        assert_eq!(split.padded() % (pad * tp), 0);
        assert!(split.padded() - v < pad * tp);
    }
    let cfg = model(12, 24, 97, 8);
    assert_eq!(
        VocabSplit::new(&cfg, 1).unwrap().padded(),
        cfg.padded_vocab()
    );
}

#[test]
fn bad_shapes_ranks_and_buffers_are_clear_errors() {
    let err = TpSharding::new(&model(12, 24, 97, 1), 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model.n_head = 12 is not divisible by parallel.tp = 5: each tensor-parallel rank owns \
         n_head / tp whole attention heads (and as many slices of the MLP); choose parallel.tp \
         among the divisors of 12: 1, 2, 3, 4, 6, 12"
    );
    assert_eq!(
        TpSharding::new(&model(12, 24, 97, 1), 0).unwrap_err(),
        TpError::ZeroTp
    );
    // Listing the choices stays quick for absurd head counts.
    let wide = model(1 << 40, 1 << 40, 97, 1);
    assert!(matches!(
        TpSharding::new(&wide, 3),
        Err(TpError::HeadsDoNotDivide { .. })
    ));
    let invalid = model(5, 24, 97, 1);
    assert!(matches!(
        TpSharding::new(&invalid, 1),
        Err(TpError::Model(_))
    ));
    let overflow = model(12, 24, 97, usize::MAX / 2);
    assert!(matches!(
        TpSharding::new(&overflow, 4),
        Err(TpError::VocabOverflow { .. })
    ));

    let sharding = TpSharding::new(&model(12, 24, 97, 1), 2).unwrap();
    assert_eq!(
        sharding.rank(2).unwrap_err(),
        TpError::Rank { rank: 2, tp: 2 }
    );
    let shard = sharding.rank(1).unwrap();
    let err = shard.split(&[0.0; 3]).unwrap_err();
    assert!(
        err.to_string().contains("the full buffer has 3 values"),
        "{err}"
    );
    let local = vec![0.0; shard.layout().len()];
    assert_eq!(
        sharding.gather(&[&local]).unwrap_err(),
        TpError::RankCount { tp: 2, found: 1 }
    );
    let err = sharding.gather(&[&local, &local[1..]]).unwrap_err();
    assert!(err.to_string().contains("TP rank 1"), "{err}");
    assert!(shard.owned_sum_of_squares(&local[1..]).is_err());
    assert!(matches!(
        Partition::of("transformer.h.0.attn.rotary.weight"),
        Err(TpError::UnknownTensor { .. })
    ));
}

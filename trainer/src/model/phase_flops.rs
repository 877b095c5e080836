//! Model FLOPs per phase, to read a [`Profile`](super::Profile) as rates.

use super::{ModelConfig, Pass, Phase};

/// Model FLOPs of the matrix products in each phase, forward and backward,
/// for some number of tokens.
///
/// The count is the one MFU uses ([`flops_per_token`](super::flops_per_token)),
/// split by phase: a product with `n` weights costs `2·n` per token forward
/// and `4·n` backward; attention `4·n_layer·n_embd·seq_len` forward and
/// twice that backward (the full score matrix, of which causal kernels
/// compute about half). Phases without products (LayerNorm, GELU, the
/// embedding lookup, ...) count none, and neither do the biases and
/// LayerNorm gains that `flops_per_token` includes (about `1/n_embd` of
/// it).
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseFlops {
    forward: [f64; Phase::ALL.len()],
}

impl PhaseFlops {
    /// The FLOPs of `tokens` tokens through the model `cfg`.
    pub fn new(cfg: &ModelConfig, tokens: f64) -> Self {
        let (l, d) = (cfg.n_layer as f64, cfg.n_embd as f64);
        let product = |weights: f64| 2.0 * weights * tokens;
        let mut forward = [0.0; Phase::ALL.len()];
        for (phase, flops) in [
            (Phase::QkvMatmul, product(l * 3.0 * d * d)),
            (Phase::Attention, 4.0 * l * d * cfg.seq_len as f64 * tokens),
            (Phase::AttnProjMatmul, product(l * d * d)),
            (Phase::MlpFcMatmul, product(l * 4.0 * d * d)),
            (Phase::MlpProjMatmul, product(l * 4.0 * d * d)),
            (Phase::LmHead, product(cfg.padded_vocab() as f64 * d)),
        ] {
            forward[phase.index()] = flops;
        }
        PhaseFlops { forward }
    }

    /// FLOPs of `phase` in `pass` (backward is twice forward; the update
    /// has none).
    pub fn get(&self, pass: Pass, phase: Phase) -> f64 {
        let forward = self.forward[phase.index()];
        match pass {
            Pass::Forward => forward,
            Pass::Backward => 2.0 * forward,
            Pass::Update => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ParamLayout, flops_per_token};

    /// The phases add up to `flops_per_token` less its bias and LayerNorm
    /// terms, and each product phase matches its weight matrix's size.
    #[test]
    fn phases_add_up_to_the_mfu_count_without_biases_and_gains() {
        let cfg = ModelConfig {
            n_layer: 3,
            n_head: 4,
            n_embd: 64,
            vocab_size: 300,
            seq_len: 128,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        };
        let tokens = 1000.0;
        let flops = PhaseFlops::new(&cfg, tokens);
        let (l, d) = (3.0, 64.0);
        // ln_1, ln_2 (gain, bias) per block, ln_f; the four biases per block.
        let vectors = l * (4.0 * d + 3.0 * d + d + 4.0 * d + d) + 2.0 * d;
        let want = (flops_per_token(&cfg) - 6.0 * vectors) * tokens;
        let total: f64 = Pass::ALL
            .iter()
            .flat_map(|&pass| Phase::ALL.map(|phase| flops.get(pass, phase)))
            .sum();
        assert!((total - want).abs() <= 1e-9 * want, "{total} vs {want}");

        let qkv_weights = ParamLayout::gpt2(&cfg)
            .specs()
            .iter()
            .filter(|s| s.name.ends_with("attn.c_attn.weight"))
            .map(|s| s.shape.iter().product::<usize>())
            .sum::<usize>() as f64;
        assert_eq!(
            flops.get(Pass::Forward, Phase::QkvMatmul),
            2.0 * qkv_weights * tokens
        );
        assert_eq!(
            flops.get(Pass::Backward, Phase::QkvMatmul),
            4.0 * qkv_weights * tokens
        );
        assert_eq!(
            flops.get(Pass::Forward, Phase::Attention),
            4.0 * l * d * 128.0 * tokens
        );
        for phase in [
            Phase::Data,
            Phase::LayerNorm,
            Phase::Gelu,
            Phase::Embedding,
            Phase::Optimizer,
        ] {
            for pass in Pass::ALL {
                assert_eq!(flops.get(pass, phase), 0.0, "{phase:?}");
            }
        }
    }
}

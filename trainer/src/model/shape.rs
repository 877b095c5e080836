//! The widths one rank computes with: the whole model's, or under tensor
//! parallelism those of its shard (its heads, hidden units and vocabulary
//! block).

use std::ops::Range;

use super::ModelConfig;

/// The local widths of the model on one rank. At `tp = 1` they are the
/// model's own ([`LocalShape::full`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalShape {
    /// Blocks.
    pub n_layer: usize,
    /// The residual stream's width `C` (never split).
    pub n_embd: usize,
    /// Attention heads computed here.
    pub n_head: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// MLP hidden units computed here.
    pub hidden: usize,
    /// Token ids whose `wte` rows and logit columns are held here, padding
    /// rows included.
    pub vocab: Range<usize>,
    /// The real ids among them (below `model.vocab_size`): a prefix.
    pub real_vocab: Range<usize>,
    /// Ranks of the TP group holding at least one real id (they come first);
    /// 1 without tensor parallelism.
    pub vocab_holders: usize,
    /// Whether this rank adds `wpe` in the embedding (one rank of a TP
    /// group does, so the group's sum counts it once).
    pub adds_positions: bool,
    /// Ranks the residual stream's rows are split over between the matrix
    /// products: the TP size under sequence parallelism, else 1.
    pub row_split: usize,
}

impl LocalShape {
    /// The whole model, as one rank computes it.
    pub fn full(cfg: &ModelConfig) -> Self {
        LocalShape {
            n_layer: cfg.n_layer,
            n_embd: cfg.n_embd,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
            // Saturating: `check` sizes absurd shapes without overflow.
            hidden: cfg.n_embd.saturating_mul(4),
            vocab: 0..cfg.padded_vocab(),
            real_vocab: 0..cfg.vocab_size,
            vocab_holders: 1,
            adds_positions: true,
            row_split: 1,
        }
    }

    /// Whether the residual stream's rows are split (sequence parallelism).
    pub fn sequence_parallel(&self) -> bool {
        self.row_split > 1
    }

    /// Width of the local q, k and v bands and of the attention output
    /// (`n_head · head_dim`).
    pub fn attn_width(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Logit columns per row.
    pub fn vocab_rows(&self) -> usize {
        self.vocab.len()
    }

    /// The logit columns of padding ids (never predicted), as local columns.
    pub fn padding_columns(&self) -> Range<usize> {
        self.real_vocab.len()..self.vocab.len()
    }
}

use super::{RankShard, RankSlices, TpError, VocabSplit};
use crate::model::{ModelConfig, ParamLayout};

/// The largest TP size an error lists among the choices: TP groups span a
/// node's GPUs, and listing stays quick for any `n_head`.
const MAX_LISTED_TP: usize = 1024;

/// Megatron-LM's tensor-parallel split of a GPT-2 over `tp` ranks: the
/// validated shape, and for every TP rank its [`RankShard`] (local layout
/// and where each piece comes from).
///
/// The full layout is always [`ParamLayout::gpt2`] (what a single rank and
/// every checkpoint use), whatever `tp`: resharding from one tp to another
/// goes through it. At tp = 1 the only rank's local layout is exactly that
/// layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpSharding {
    cfg: ModelConfig,
    tp: usize,
    vocab: VocabSplit,
}

impl TpSharding {
    /// Checks that `cfg` splits over `tp` ranks: the model shape is valid,
    /// `tp ≥ 1`, and `model.n_head` is a multiple of `tp` (so are `n_embd`,
    /// `3·n_embd` and `4·n_embd`, the other split dimensions). Any
    /// vocabulary splits ([`VocabSplit`]).
    pub fn new(cfg: &ModelConfig, tp: usize) -> Result<Self, TpError> {
        if tp == 0 {
            return Err(TpError::ZeroTp);
        }
        cfg.validate()?;
        if !cfg.n_head.is_multiple_of(tp) {
            let divisors: Vec<String> = (1..=cfg.n_head.min(MAX_LISTED_TP))
                .filter(|d| cfg.n_head.is_multiple_of(*d))
                .map(|d| d.to_string())
                .collect();
            return Err(TpError::HeadsDoNotDivide {
                n_head: cfg.n_head,
                tp,
                divisors: divisors.join(", "),
            });
        }
        Ok(TpSharding {
            cfg: cfg.clone(),
            tp,
            vocab: VocabSplit::new(cfg, tp)?,
        })
    }

    /// The TP size.
    pub fn tp(&self) -> usize {
        self.tp
    }

    /// The model shape.
    pub fn model(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The vocabulary's split.
    pub fn vocab(&self) -> &VocabSplit {
        &self.vocab
    }

    /// What rank `rank` owns, in model terms: heads, hidden units, token ids.
    pub fn slices(&self, rank: usize) -> RankSlices {
        let block = |n: usize| rank * n / self.tp..(rank + 1) * n / self.tp;
        RankSlices {
            heads: block(self.cfg.n_head),
            hidden: block(4 * self.cfg.n_embd),
            vocab: self.vocab.rows(rank),
            real_vocab: self.vocab.real_rows(rank),
        }
    }

    /// The full layout, the same at every tp ([`ParamLayout::gpt2`]).
    pub fn full_layout(&self) -> ParamLayout {
        ParamLayout::gpt2(&self.cfg)
    }

    /// What TP rank `rank` holds.
    pub fn rank(&self, rank: usize) -> Result<RankShard, TpError> {
        if rank >= self.tp {
            return Err(TpError::Rank { rank, tp: self.tp });
        }
        RankShard::new(&self.full_layout(), self.tp, rank, &self.vocab)
    }

    /// What every TP rank holds, in rank order.
    pub fn ranks(&self) -> Result<Vec<RankShard>, TpError> {
        let full = self.full_layout();
        (0..self.tp)
            .map(|rank| RankShard::new(&full, self.tp, rank, &self.vocab))
            .collect()
    }
}

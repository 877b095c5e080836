use std::fmt;
use std::ops::Range;

/// What one TP rank owns, in model terms (for `check` and the model's
/// vocabulary-parallel layers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankSlices {
    /// Attention heads (of q, k and v alike; the rows of `attn.c_proj`).
    pub heads: Range<usize>,
    /// MLP hidden units (columns of `mlp.c_fc`, rows of `mlp.c_proj`).
    pub hidden: Range<usize>,
    /// Token ids whose `wte` rows and logits the rank holds, padding
    /// included.
    pub vocab: Range<usize>,
    /// The real ones (below `model.vocab_size`): a prefix of `vocab`.
    pub real_vocab: Range<usize>,
}

impl fmt::Display for RankSlices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heads {:?}, hidden units {:?}, token ids {:?}",
            self.heads, self.hidden, self.vocab
        )?;
        let padding = self.vocab.len() - self.real_vocab.len();
        if padding > 0 {
            write!(f, " ({padding} of them padding)")?;
        }
        Ok(())
    }
}

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The shape of a GPT-2 model: the `[model]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of token ids; the data's ids must all be below it.
    pub vocab_size: usize,
    /// Tokens per training sequence.
    pub seq_len: usize,
    /// Rows of `wpe` (Hugging Face's `n_positions`); unset means `seq_len`.
    /// Rows from `seq_len` on are kept (imported, saved, decayed by AdamW)
    /// but never read: training positions are below `seq_len`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_positions: Option<usize>,
    /// Rows of `wte` are rounded up to a multiple of this (64 or 128 make
    /// the output head's matrix products faster); 1 means no padding. The
    /// padded rows are zero, never predicted and never saved.
    #[serde(default = "no_padding")]
    pub vocab_padding: usize,
    /// Optional Hugging Face GPT-2 safetensors file to start from.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

fn no_padding() -> usize {
    1
}

/// A model shape that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelConfigError {
    /// A size that must be positive is zero.
    #[error("model.{key} must be at least 1, got 0")]
    Zero {
        /// The offending key under `model`.
        key: &'static str,
    },
    /// The heads do not split the embedding evenly.
    #[error(
        "model.n_embd = {n_embd} is not divisible by model.n_head = {n_head}; \
         choose n_head among the divisors of n_embd"
    )]
    HeadsDoNotDivide {
        /// `model.n_embd`.
        n_embd: usize,
        /// `model.n_head`.
        n_head: usize,
    },
    /// The position table is shorter than a training sequence.
    #[error(
        "model.n_positions = {n_positions} is less than model.seq_len = {seq_len}: every \
         position of a sequence needs a row of wpe; raise n_positions (or leave it unset, \
         which means seq_len)"
    )]
    PositionsBelowSeqLen {
        /// `model.n_positions`.
        n_positions: usize,
        /// `model.seq_len`.
        seq_len: usize,
    },
}

impl ModelConfig {
    /// GPT-2 small (124M parameters), the shape tests size things against.
    #[cfg(test)]
    pub(crate) fn gpt2_124m() -> Self {
        ModelConfig {
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            vocab_size: 50257,
            seq_len: 1024,
            n_positions: None,
            vocab_padding: 1,
            init: None,
        }
    }

    /// Checks the invariants every later stage relies on.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        for (key, value) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("vocab_size", self.vocab_size),
            ("seq_len", self.seq_len),
            ("n_positions", self.positions()),
            ("vocab_padding", self.vocab_padding),
        ] {
            if value == 0 {
                return Err(ModelConfigError::Zero { key });
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(ModelConfigError::HeadsDoNotDivide {
                n_embd: self.n_embd,
                n_head: self.n_head,
            });
        }
        if self.positions() < self.seq_len {
            return Err(ModelConfigError::PositionsBelowSeqLen {
                n_positions: self.positions(),
                seq_len: self.seq_len,
            });
        }
        Ok(())
    }

    /// Rows of `wpe`: `n_positions`, or `seq_len` when unset.
    pub fn positions(&self) -> usize {
        self.n_positions.unwrap_or(self.seq_len)
    }

    /// Rows of `wte` in memory: `vocab_size` rounded up to a multiple of
    /// `vocab_padding` (the width of the logits). Ids from `vocab_size` on
    /// are padding.
    pub fn padded_vocab(&self) -> usize {
        self.vocab_size.next_multiple_of(self.vocab_padding.max(1))
    }

    /// Parameters of the model ([`ParamLayout::gpt2`](super::ParamLayout)'s
    /// length, `wpe` and the vocabulary's padding included), from the sizes
    /// alone: `V·C + P·C + L·(12·C² + 13·C) + 2·C` (`V` padded, `P` =
    /// [`Self::positions`]). In `f64`, exact below 2^53 and never an overflow, so
    /// that absurd sizes can be refused before anything is allocated.
    pub fn param_count(&self) -> f64 {
        let c = self.n_embd as f64;
        let per_block = 12.0 * c * c + 13.0 * c;
        (self.padded_vocab() as f64 + self.positions() as f64) * c
            + self.n_layer as f64 * per_block
            + 2.0 * c
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 128,
            vocab_size: 256,
            seq_len: 64,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    #[test]
    fn heads_must_divide_the_embedding() {
        let cfg = ModelConfig {
            n_head: 3,
            ..tiny()
        };
        let err = cfg.validate().unwrap_err();
        assert_eq!(
            err,
            ModelConfigError::HeadsDoNotDivide {
                n_embd: 128,
                n_head: 3
            }
        );
        assert!(err.to_string().contains("model.n_head = 3"));
    }

    #[test]
    fn zero_sizes_name_their_key() {
        let cfg = ModelConfig {
            n_layer: 0,
            ..tiny()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("model.n_layer")
        );
        assert_eq!(tiny().validate(), Ok(()));
        assert_eq!(tiny().head_dim(), 32);
    }

    #[test]
    fn the_parameter_count_is_the_layouts_length() {
        for cfg in [
            tiny(),
            ModelConfig {
                n_layer: 5,
                n_embd: 12,
                n_head: 3,
                vocab_size: 7,
                ..tiny()
            },
        ] {
            assert_eq!(
                cfg.param_count(),
                super::super::ParamLayout::gpt2(&cfg).len() as f64
            );
        }
        let absurd = ModelConfig {
            n_layer: usize::MAX,
            n_embd: usize::MAX,
            ..tiny()
        };
        assert!(absurd.param_count() > 1e50);
    }
}

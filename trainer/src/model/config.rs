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
    /// Tokens per training sequence (rows of `wpe`).
    pub seq_len: usize,
    /// Optional Hugging Face GPT-2 safetensors file to start from.
    #[serde(default)]
    pub init: Option<PathBuf>,
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
}

impl ModelConfig {
    /// Checks the invariants every later stage relies on.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        for (key, value) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
            ("vocab_size", self.vocab_size),
            ("seq_len", self.seq_len),
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
        Ok(())
    }

    /// Parameters of the model ([`ParamLayout::gpt2`](super::ParamLayout)'s
    /// length, `wpe` included), from the sizes alone: `V·C + T·C + L·(12·C² +
    /// 13·C) + 2·C`. In `f64`, exact below 2^53 and never an overflow, so
    /// that absurd sizes can be refused before anything is allocated.
    pub fn param_count(&self) -> f64 {
        let c = self.n_embd as f64;
        let per_block = 12.0 * c * c + 13.0 * c;
        (self.vocab_size as f64 + self.seq_len as f64) * c
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

//! The built-in tokenizers, selected by `data.tokenizer` (a plugin registers
//! its own [`Tokenizer`] under a new name), and the tokenizer of commands
//! that train nothing.

use std::sync::Arc;

use appctx::{Environment, component};

use super::configured;
use crate::tokenizer::{ByteTokenizer, Gpt2Tokenizer, Tokenizer};

/// Every byte a token (vocabulary 256).
fn bytes() -> Arc<dyn Tokenizer> {
    Arc::new(ByteTokenizer)
}
component!(bytes, select = "data.tokenizer");

/// GPT-2's byte-level BPE (50257 tokens).
fn gpt2() -> Arc<dyn Tokenizer> {
    Arc::new(Gpt2Tokenizer::new())
}
component!(gpt2, select = "data.tokenizer");

/// The tokenizer `data.tokenizer` names in `env`, among every linked
/// tokenizer component, for a command that trains nothing (`prepare`,
/// `generate`, `eval`, `export`), so none of the trainer's components is
/// created. A name no linked crate registers is appctx's error listing those
/// that exist.
pub fn configured_tokenizer(env: &Environment) -> Result<Arc<dyn Tokenizer>, appctx::Error> {
    configured(env, "tokenizer")
}

/// `env` with `data.tokenizer = name` over it.
pub fn with_tokenizer(env: &Environment, name: &str) -> Result<Environment, appctx::Error> {
    Environment::builder()
        .defaults("(the configuration)", env.to_toml())
        .set(format!("data.tokenizer={name}"))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_name_picks_the_tokenizer_and_others_are_listed() {
        let env = Environment::builder()
            .defaults(
                "defaults.toml",
                "[data]\ntokenizer = \"gpt2\"\n[model]\nn_layer = 2\n",
            )
            .build()
            .unwrap();
        assert_eq!(configured_tokenizer(&env).unwrap().name(), "gpt2");
        let bytes = configured_tokenizer(&with_tokenizer(&env, "bytes").unwrap()).unwrap();
        assert_eq!(bytes.vocab_size(), 256);
        let err = configured_tokenizer(&with_tokenizer(&env, "sentencepiece").unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`bytes`, `gpt2`"), "{err}");
    }
}

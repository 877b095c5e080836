//! The built-in tokenizers, selected by `data.tokenizer` (a plugin registers
//! its own [`Tokenizer`] under a new name), and the tokenizer of commands
//! that train nothing.

use std::sync::Arc;

use appctx::{ComponentDef, ContextBuilder, Environment, TypeKey, component, registered};

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
/// `generate`, `eval`, `export`): a context of the tokenizer components
/// alone, so none of the trainer's is created. A name no linked crate
/// registers is appctx's error listing those that exist.
pub fn configured_tokenizer(env: &Environment) -> Result<Arc<dyn Tokenizer>, appctx::Error> {
    let provides = TypeKey::of::<dyn Tokenizer>();
    // What the context is for: needing the tokenizer makes `prepare` report
    // a name no component has, with the names that exist.
    let mut builder = ContextBuilder::new()
        .name("tokenizer")
        .environment(env.clone())
        .component(ComponentDef::new(
            "configured_tokenizer",
            |t: Arc<dyn Tokenizer>| Arc::new(Configured(t)),
        ));
    for def in registered().iter().filter(|def| def.provides() == provides) {
        builder = builder.component((**def).clone());
    }
    // The rest of the configuration is the run's, read by components this
    // context leaves out.
    if let serde_json::Value::Object(sections) = env.to_json() {
        for section in sections.keys() {
            builder = builder.known_prefix(section.clone());
        }
    }
    Ok(builder.build()?.get::<Configured>()?.0.clone())
}

/// The tokenizer [`configured_tokenizer`] looks up.
struct Configured(Arc<dyn Tokenizer>);

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

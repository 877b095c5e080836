use appctx::Environment;

use super::ConfigLayers;

/// The embedded default configuration (`config/default.toml`), the reference
/// for every key.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// Profiles built into the binary, by name.
pub const BUILTIN_PROFILES: [(&str, &str); 2] = [
    ("cp4", include_str!("../../../config/cp4.toml")),
    ("long", include_str!("../../../config/long.toml")),
];

/// Prefix of the environment variables that set keys (`CPTRAIN__TRAIN__STEPS=5`).
pub const ENV_PREFIX: &str = "CPTRAIN";

/// Builds the layered environment: embedded defaults < `--config` files <
/// profiles < `CPTRAIN__…` variables < `--set`.
pub fn build_environment(layers: &ConfigLayers) -> Result<Environment, appctx::Error> {
    build_environment_over(layers, None)
}

/// [`build_environment`] with a `(name, TOML text)` layer right above the
/// embedded defaults: a resumed run's own configuration, which the command
/// line's layers then override.
pub fn build_environment_over(
    layers: &ConfigLayers,
    base: Option<(&str, &str)>,
) -> Result<Environment, appctx::Error> {
    let mut builder = Environment::builder().defaults("config/default.toml", DEFAULT_CONFIG);
    if let Some((name, text)) = base {
        builder = builder.defaults(name, text);
    }
    builder = builder
        .files(layers.config.iter().cloned())
        .profile_dir("config")
        .profiles(layers.profile.iter().cloned())
        .env_prefix(ENV_PREFIX)
        .sets(layers.set.iter().cloned());
    for (name, text) in BUILTIN_PROFILES {
        builder = builder.embedded_profile(name, text);
    }
    let env = builder.clone().build()?;
    match tokenizer_vocab(&env) {
        Some((vocab, why)) => builder
            .defaults(why, format!("[model]\nvocab_size = {vocab}\n"))
            .build(),
        None => Ok(env),
    }
}

/// `model.vocab_size` follows the data unless a layer above the embedded
/// defaults sets it: 256 for `text`, the tokenizer's vocabulary for
/// `tokens`. Returns the size and a label for the layer that sets it.
fn tokenizer_vocab(env: &Environment) -> Option<(usize, String)> {
    let from_defaults = matches!(
        env.origin("model.vocab_size"),
        Some(appctx::Source::Defaults { name }) if name == "config/default.toml"
    );
    if !from_defaults {
        return None;
    }
    match env.get_string("data.source")?.as_str() {
        "text" => Some((256, "(model.vocab_size of data.source = text)".into())),
        "tokens" => {
            let name = env.get_string("data.tokenizer")?;
            let tokenizer = crate::tokenizer::tokenizer_by_name(&name).ok()?;
            Some((
                tokenizer.vocab_size(),
                format!("(model.vocab_size of data.tokenizer = {name})"),
            ))
        }
        _ => None,
    }
}

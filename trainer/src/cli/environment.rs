use appctx::{Environment, EnvironmentBuilder};

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
    build_following_data(builder)
}

/// The environment of an application that embeds the trainer: the embedded
/// defaults under `layers` ((name, TOML text), lowest first), nothing read
/// from files, profiles or environment variables; `model.vocab_size`
/// follows the data as in [`build_environment`].
pub fn embedded_environment(layers: &[(&str, String)]) -> Result<Environment, appctx::Error> {
    let mut builder = Environment::builder().defaults("config/default.toml", DEFAULT_CONFIG);
    for (name, text) in layers {
        builder = builder.defaults(*name, text.as_str());
    }
    build_following_data(builder)
}

/// Builds `builder`'s environment, then again with the layers of the keys
/// that follow the data and `model.init` when some do.
fn build_following_data(mut builder: EnvironmentBuilder) -> Result<Environment, appctx::Error> {
    let env = builder.clone().build()?;
    let followed: Vec<(String, String)> = [tokenizer_vocab(&env), init_positions(&env)]
        .into_iter()
        .flatten()
        .collect();
    if followed.is_empty() {
        return Ok(env);
    }
    for (why, toml) in followed {
        builder = builder.defaults(why, toml);
    }
    builder.build()
}

/// `model.n_positions` follows `model.init` unless some layer sets it: the
/// rows of the imported `wpe` are all kept. Returns a label for the layer
/// and its TOML.
fn init_positions(env: &Environment) -> Option<(String, String)> {
    if env.origin("model.n_positions").is_some() {
        return None;
    }
    let init = env.get_string("model.init")?;
    let rows = crate::checkpoint::init_positions(std::path::Path::new(&init))?;
    Some((
        "(model.n_positions of model.init)".into(),
        format!("[model]\nn_positions = {rows}\n"),
    ))
}

/// `model.vocab_size` follows the data unless a layer above the embedded
/// defaults sets it: 256 for `text`, the tokenizer's vocabulary for
/// `tokens`. Returns a label for the layer that sets it and its TOML.
fn tokenizer_vocab(env: &Environment) -> Option<(String, String)> {
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
            let tokenizer = crate::components::configured_tokenizer(env).ok()?;
            Some((
                tokenizer.vocab_size(),
                format!("(model.vocab_size of data.tokenizer = {name})"),
            ))
        }
        _ => None,
    }
    .map(|(vocab, why)| (why, format!("[model]\nvocab_size = {vocab}\n")))
}

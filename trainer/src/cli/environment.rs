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
    builder.build()
}

//! `${...}` placeholders in configuration values, and profiles activated
//! by `app.profiles` in the configuration or the environment.

use appctx::{ContextBuilder, Environment, Error};
use toml::Value;

/// An environment from defaults text, variables and `--set`s.
fn env(defaults: &str, vars: &[(&str, &str)], sets: &[&str]) -> appctx::Result<Environment> {
    Environment::builder()
        .defaults("base.toml", defaults)
        .env_prefix("APP")
        .env_vars(vars.iter().copied())
        .sets(sets.iter().copied())
        .embedded_profile("fast", "[train]\nsteps = 5\n")
        .embedded_profile("wide", "[model]\nwidth = 64\n")
        .build()
}

#[test]
fn placeholders_take_keys_variables_and_defaults() {
    let e = env(
        r#"
        [data]
        root = "/data"
        path = "${data.root}/train.bin"
        cache = "${CACHE_DIR:/tmp/cache}/${data.name:shard}"
        home = "${HOME_DIR}"
        literal = "cost: $${not.a.key} in $"
        [model]
        n_layer = 4
        depth = "${model.n_layer}"
        label = "layers=${model.n_layer}"
        list = ["${data.root}", "x"]
        "#,
        &[("HOME_DIR", "/home/me")],
        &["data.root=/mnt"],
    )
    .unwrap();
    let get = |k: &str| e.get(k).cloned().unwrap();
    // The referenced key is resolved after layering: `--set` wins.
    assert_eq!(get("data.path"), Value::from("/mnt/train.bin"));
    assert_eq!(get("data.cache"), Value::from("/tmp/cache/shard"));
    assert_eq!(get("data.home"), Value::from("/home/me"));
    assert_eq!(get("data.literal"), Value::from("cost: ${not.a.key} in $"));
    // A whole-value placeholder keeps the type; inside text, TOML form.
    assert_eq!(get("model.depth"), Value::Integer(4));
    assert_eq!(get("model.label"), Value::from("layers=4"));
    assert_eq!(
        get("model.list"),
        Value::Array(vec![Value::from("/mnt"), Value::from("x")])
    );
    // The provenance stays that of the key that holds the placeholder.
    assert_eq!(
        e.origin("data.path").unwrap().to_string(),
        "embedded defaults base.toml"
    );
}

#[test]
fn a_missing_placeholder_names_the_key_and_its_source() {
    let err = env("[data]\npath = \"${data.root}/x\"\n", &[], &[]).unwrap_err();
    let Error::UnresolvedPlaceholder {
        key, placeholder, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (key.as_str(), placeholder.as_str()),
        ("data.path", "${data.root}")
    );
    let text = err.to_string();
    assert!(text.contains("The value of `data.path` (set in embedded defaults base.toml) uses the placeholder `${data.root}`"), "{text}");
    assert!(text.contains("`${NAME:default}`"), "{text}");
    let err = env("[data]\npath = \"${data.root\"\n", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("has no closing `}`"), "{err}");
}

#[test]
fn a_placeholder_cycle_is_reported_as_a_path() {
    let err = env(
        "[a]\nx = \"${a.y}\"\ny = \"-${a.z}\"\nz = \"${a.x}\"\n",
        &[],
        &[],
    )
    .unwrap_err();
    let Error::PlaceholderCycle { path } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, &["a.x", "a.y", "a.z", "a.x"]);
    assert!(err.to_string().contains("a.x → a.y → a.z → a.x"), "{err}");
}

#[test]
fn app_profiles_activates_profiles_from_config_or_the_environment() {
    let base = "[train]\nsteps = 1\n[model]\nwidth = 8\n";
    // From the configuration (a list), and from a variable (comma-separated).
    let from_config = env(&format!("{base}[app]\nprofiles = [\"fast\"]\n"), &[], &[]).unwrap();
    assert_eq!(from_config.active_profiles(), ["fast"]);
    assert_eq!(from_config.get("train.steps"), Some(&Value::Integer(5)));
    let from_env = env(base, &[("APP__APP__PROFILES", "fast, wide")], &[]).unwrap();
    assert_eq!(from_env.active_profiles(), ["fast", "wide"]);
    assert_eq!(from_env.get("model.width"), Some(&Value::Integer(64)));
    // The highest layer that sets it wins; profiles stay below env and --set.
    let both = env(
        &format!("{base}[app]\nprofiles = \"wide\"\n"),
        &[("APP__APP__PROFILES", "fast")],
        &["train.steps=9"],
    )
    .unwrap();
    assert_eq!(both.active_profiles(), ["fast"]);
    assert_eq!(both.get("train.steps"), Some(&Value::Integer(9)));
    // `app.profiles` is a key appctx reads: not an unknown key.
    let ctx = ContextBuilder::new()
        .known_prefix("train")
        .known_prefix("model")
        .environment(from_env)
        .build();
    assert!(ctx.is_ok(), "{:?}", ctx.err());
}

#[test]
fn app_profiles_errors_name_the_key() {
    let err = env("[app]\nprofiles = 3\n", &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::ConfigType { key, .. } if key == "app.profiles"),
        "{err}"
    );
    let err = env("[app]\nprofiles = [\"fsat\"]\n", &[], &[]).unwrap_err();
    assert!(err.to_string().contains("did you mean `fast`?"), "{err}");
}

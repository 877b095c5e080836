//! Properties of the layered environment: precedence, provenance, binding errors.

use std::path::PathBuf;

use appctx::{ConfigSection, Environment, Error, Source};
use serde::Deserialize;

/// The five layers, lowest precedence first.
const LAYERS: [&str; 5] = ["defaults", "file", "profile", "env", "set"];

/// An environment in which only `layers` set `app.k` (each to its own name).
fn env_with(dir: &tempfile::TempDir, layers: &[&str]) -> Environment {
    let mut b = Environment::builder()
        .profile_dir(dir.path())
        .env_prefix("APP")
        .env_vars(Vec::<(String, String)>::new());
    for layer in layers {
        b = match *layer {
            "defaults" => b.defaults("default.toml", "[app]\nk = \"defaults\"\n"),
            "file" => {
                let path = dir.path().join("extra.toml");
                std::fs::write(&path, "[app]\nk = \"file\"\n").unwrap();
                b.file(path)
            }
            "profile" => {
                std::fs::write(dir.path().join("fast.toml"), "app.k = \"profile\"\n").unwrap();
                b.profile("fast")
            }
            "env" => b.env_vars([("APP__APP__K", "env")]),
            "set" => b.set("app.k=set"),
            other => panic!("unknown layer {other}"),
        };
    }
    b.build().unwrap()
}

#[test]
fn every_higher_layer_wins_over_every_lower_one() {
    for (lo, low) in LAYERS.iter().enumerate() {
        for high in &LAYERS[lo + 1..] {
            let dir = tempfile::tempdir().unwrap();
            let env = env_with(&dir, &[low, high]);
            assert_eq!(
                env.get_string("app.k").as_deref(),
                Some(*high),
                "{high} must win over {low}"
            );
            let origin = env.origin("app.k").unwrap().to_string();
            let expected_origin = match *high {
                "file" => "file ",
                "profile" => "profile `fast`",
                "env" => "environment variable APP__APP__K",
                "set" => "--set app.k=set",
                _ => unreachable!(),
            };
            assert!(
                origin.contains(expected_origin),
                "{low}<{high}: origin {origin}"
            );
        }
    }
}

#[test]
fn tables_merge_key_by_key_and_provenance_is_per_leaf() {
    let env = Environment::builder()
        .defaults("d", "[server]\nport = 80\nhost = \"a\"\n")
        .set("server.port=8080")
        .build()
        .unwrap();
    assert_eq!(env.get("server.port").unwrap().as_integer(), Some(8080));
    assert_eq!(env.get_string("server.host").as_deref(), Some("a"));
    assert!(matches!(
        env.origin("server.host"),
        Some(Source::Defaults { .. })
    ));
    assert!(matches!(
        env.origin("server.port"),
        Some(Source::Override { .. })
    ));
    let printed = env.effective().to_string();
    assert!(printed.contains("server.port = 8080"), "{printed}");
    assert!(printed.contains("# --set server.port=8080"), "{printed}");
    assert!(printed.contains("# embedded defaults d"), "{printed}");
    assert_eq!(env.to_json()["server"]["port"], 8080);
}

/// A value of any length prints (no formatting width overflow), and short
/// entries stay aligned among themselves.
#[test]
fn the_effective_config_prints_values_of_any_length() {
    let long = "x".repeat(70_000);
    let env = Environment::builder()
        .defaults("d", "[a]\nb = 1\nc = \"s\"\n")
        .set(format!("a.c={long}"))
        .build()
        .unwrap();
    let printed = env.effective().to_string();
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].starts_with("a.b = 1 "), "{}", lines[0]);
    assert!(lines[0].ends_with("# embedded defaults d"), "{}", lines[0]);
    assert!(lines[1].starts_with("a.c = ") && lines[1].contains(&long));
    assert!(lines[1].contains("  # --set a.c="));
}

#[test]
fn override_and_env_values_are_read_as_toml_scalars_where_possible() {
    let cases: [(&str, toml::Value); 6] = [
        ("5", toml::Value::Integer(5)),
        ("1e-3", toml::Value::Float(1e-3)),
        ("true", toml::Value::Boolean(true)),
        ("[1, 2]", toml::Value::Array(vec![1.into(), 2.into()])),
        ("adamw", toml::Value::String("adamw".into())),
        ("\"5\"", toml::Value::String("5".into())),
    ];
    for (raw, expected) in cases {
        let env = Environment::builder()
            .set(format!("a.b={raw}"))
            .env_prefix("X")
            .env_vars([("X__C__D", raw)])
            .build()
            .unwrap();
        assert_eq!(env.get("a.b"), Some(&expected), "--set {raw}");
        assert_eq!(env.get("c.d"), Some(&expected), "env {raw}");
    }
}

#[test]
fn env_vars_need_the_prefix_and_double_underscores_and_are_lowercased() {
    let env = Environment::builder()
        .env_prefix("CPTRAIN")
        .env_vars([
            ("CPTRAIN__TRAIN__STEPS", "5"),
            ("CPTRAIN_TRAIN__LR", "1"),
            ("OTHER__X", "1"),
        ])
        .build()
        .unwrap();
    assert_eq!(env.get("train.steps").unwrap().as_integer(), Some(5));
    assert_eq!(env.leaf_keys().collect::<Vec<_>>(), vec!["train.steps"]);
}

#[test]
fn malformed_sources_are_clear_errors() {
    let err = Environment::builder().set("no-equals").build().unwrap_err();
    assert!(matches!(err, Error::InvalidOverride { .. }), "{err}");
    let err = Environment::builder().set("a..b=1").build().unwrap_err();
    assert!(err.to_string().contains("empty segment"), "{err}");
    let err = Environment::builder()
        .defaults("default.toml", "[a\n")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("embedded defaults default.toml"),
        "{err}"
    );
    let err = Environment::builder()
        .file("/nonexistent/x.toml")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
}

#[test]
fn a_missing_profile_lists_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cp4.toml"), "").unwrap();
    let err = Environment::builder()
        .profile_dir(dir.path())
        .embedded_profile("long", "")
        .profile("cp5")
        .build()
        .unwrap_err();
    let Error::ProfileNotFound { available, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(available, &["cp4".to_string(), "long".to_string()]);
    assert!(err.to_string().contains("did you mean `cp4`"), "{err}");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Model {
    n_layer: u32,
    #[serde(default)]
    name: Option<String>,
    dropout: f64,
}

impl ConfigSection for Model {
    const PREFIX: &'static str = "model";
}

#[derive(Debug, Deserialize)]
struct Lenient {
    #[allow(dead_code)]
    port: u16,
}

#[test]
fn sections_bind_with_lenient_scalars() {
    let env = Environment::builder()
        .defaults("d", "[model]\nn_layer = 2\ndropout = 0\n")
        .env_prefix("APP")
        .env_vars([("APP__MODEL__NAME", "12")])
        .build()
        .unwrap();
    let model: Model = env.bind("model").unwrap();
    assert_eq!(
        model,
        Model {
            n_layer: 2,
            name: Some("12".into()),
            dropout: 0.0
        }
    );
}

#[test]
fn binding_errors_name_the_key_the_expectation_and_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    // (file text, expected error kind, key named, text the message must contain)
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "[model]\nn_layer = \"twelve\"\ndropout = 0.1\n",
            "type",
            "model.n_layer",
            "u32",
        ),
        (
            "[model]\nn_layers = 2\nn_layer = 2\ndropout = 0.1\n",
            "unknown",
            "model.n_layers",
            "Did you mean `model.n_layer`",
        ),
        (
            "[model]\nn_layer = 2\n",
            "missing",
            "model.dropout",
            "not set",
        ),
        (
            "[model]\nn_layer = -1\ndropout = 0.1\n",
            "type",
            "model.n_layer",
            "-1",
        ),
    ];
    for (text, kind, key, needle) in cases {
        std::fs::write(&file, text).unwrap();
        let env = Environment::builder().file(&file).build().unwrap();
        let err = env.bind::<Model>("model").unwrap_err();
        let message = err.to_string();
        let (matched, named) = match &err {
            Error::ConfigType { key, .. } => (kind == "type", key),
            Error::UnknownConfigKey { key, .. } => (kind == "unknown", key),
            Error::MissingConfigKey { key, .. } => (kind == "missing", key),
            other => panic!("unexpected {other}"),
        };
        assert!(matched, "{kind}: {message}");
        assert_eq!(named, key);
        assert!(message.contains(needle), "{message}");
        if kind != "missing" {
            assert!(
                message.contains(&PathBuf::from(&file).display().to_string()),
                "{message}"
            );
        }
    }
}

#[test]
fn keys_a_lenient_struct_ignores_are_still_unknown() {
    let env = Environment::builder()
        .set("server.port=80")
        .set("server.prot=81")
        .build()
        .unwrap();
    let err = env.bind::<Lenient>("server").unwrap_err();
    let Error::UnknownConfigKey {
        key, suggestion, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(key, "server.prot");
    assert_eq!(suggestion.as_deref(), Some("server.port"));
    assert!(err.to_string().contains("--set server.prot=81"), "{err}");
}

#[test]
fn errors_render_as_description_and_action() {
    let env = Environment::builder()
        .set("model.n_layer=x")
        .build()
        .unwrap();
    let text = env.bind::<Model>("model").unwrap_err().to_string();
    assert!(text.starts_with("Description:\n"), "{text}");
    assert!(text.contains("\n\nAction:\n"), "{text}");
}

//! How the `config`-based layering resolves conflicts, reads values, and
//! keeps provenance exact.

use toml::Value;

use super::{Environment, Source};
use crate::error::Error;

/// Every leaf key of `table` (dotted), sorted; arrays are leaves.
fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = super::join(prefix, key);
        match value {
            Value::Table(inner) => leaves(inner, &path, out),
            _ => out.push(path),
        }
    }
}

fn origin(env: &Environment, key: &str) -> String {
    env.origin(key).map(ToString::to_string).unwrap_or_default()
}

/// A lower source, then `--set` arguments, and what must hold afterwards.
struct Replacement {
    defaults: &'static str,
    sets: &'static [&'static str],
    key: &'static str,
    value: &'static str,
    origin: &'static str,
    leaf_keys: &'static [&'static str],
}

#[test]
fn later_sources_replace_leaves_and_tables_alike_and_provenance_follows() {
    let cases = [
        Replacement {
            defaults: "[a]\nx = 1\ny = 2\n",
            sets: &["a=3"],
            key: "a",
            value: "3",
            origin: "--set a=3",
            leaf_keys: &["a"],
        },
        Replacement {
            defaults: "a = 5\n",
            sets: &["a.x=1"],
            key: "a.x",
            value: "1",
            origin: "--set a.x=1",
            leaf_keys: &["a.x"],
        },
        Replacement {
            defaults: "",
            sets: &["a.b=1", "a=2"],
            key: "a",
            value: "2",
            origin: "--set a=2",
            leaf_keys: &["a"],
        },
        Replacement {
            defaults: "",
            sets: &["a=2", "a.b=1"],
            key: "a.b",
            value: "1",
            origin: "--set a.b=1",
            leaf_keys: &["a.b"],
        },
    ];
    for case in cases {
        let sets = case.sets;
        let env = Environment::builder()
            .defaults("d", case.defaults)
            .sets(sets.iter().copied())
            .build()
            .unwrap();
        assert_eq!(
            env.get_string(case.key).as_deref(),
            Some(case.value),
            "{sets:?}"
        );
        assert_eq!(origin(&env, case.key), case.origin, "{sets:?}");
        assert_eq!(
            env.leaf_keys().collect::<Vec<_>>(),
            case.leaf_keys,
            "{sets:?}"
        );
    }
}

#[test]
fn conflicting_env_vars_resolve_in_name_order_whatever_order_they_come_in() {
    let vars = [("APP__A", "1"), ("APP__A__B", "2")];
    for reversed in [false, true] {
        let mut given = vars.to_vec();
        if reversed {
            given.reverse();
        }
        let env = Environment::builder()
            .env_prefix("APP")
            .env_vars(given)
            .build()
            .unwrap();
        assert_eq!(env.get("a.b").and_then(Value::as_integer), Some(2));
        assert_eq!(origin(&env, "a.b"), "environment variable APP__A__B");
        assert_eq!(env.leaf_keys().collect::<Vec<_>>(), ["a.b"]);
    }
}

#[test]
fn every_leaf_has_exactly_one_source_and_every_source_names_a_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.toml");
    std::fs::write(
        &file,
        "[train]\nsteps = 7\nlr = 0.1\n[model]\nsizes = [1, 2]\n",
    )
    .unwrap();
    let env = Environment::builder()
        .defaults(
            "d",
            "[train]\nsteps = 1\nseed = 3\n[model]\nname = \"gpt\"\n",
        )
        .file(&file)
        .embedded_profile("fast", "[train]\nlr = 0.5\n")
        .profile("fast")
        .env_prefix("APP")
        .env_vars([("APP__MODEL__NAME", "tiny")])
        .set("train.seed=4")
        .build()
        .unwrap();
    let mut expected = Vec::new();
    leaves(env.values(), "", &mut expected);
    expected.sort();
    assert_eq!(env.leaf_keys().collect::<Vec<_>>(), expected);
    let table: [(&str, Source); 5] = [
        ("train.steps", Source::File { path: file.clone() }),
        (
            "train.lr",
            Source::Profile {
                name: "fast".into(),
                path: None,
            },
        ),
        (
            "train.seed",
            Source::Override {
                argument: "train.seed=4".into(),
            },
        ),
        (
            "model.name",
            Source::EnvVar {
                name: "APP__MODEL__NAME".into(),
            },
        ),
        ("model.sizes", Source::File { path: file.clone() }),
    ];
    for (key, source) in table {
        assert_eq!(env.origin(key), Some(&source), "{key}");
    }
}

#[test]
fn env_and_set_values_follow_the_same_toml_rule() {
    // `config`'s own `try_parsing` would read `TRUE` as a boolean and `007` as 7;
    // TOML reads neither, so both stay text, from either source.
    let cases: [(&str, Value); 4] = [
        ("TRUE", Value::String("TRUE".into())),
        ("007", Value::String("007".into())),
        ("1_000", Value::Integer(1000)),
        ("", Value::String(String::new())),
    ];
    for (raw, expected) in cases {
        let env = Environment::builder()
            .set(format!("a.b={raw}"))
            .env_prefix("X")
            .env_vars([("X__C", raw)])
            .build()
            .unwrap();
        assert_eq!(env.get("a.b"), Some(&expected), "--set {raw}");
        assert_eq!(env.get("c"), Some(&expected), "env {raw}");
    }
}

#[test]
fn set_keys_must_be_plain_dotted_names() {
    for argument in ["a[0]=1", "a b=1", "a.\u{e9}=1"] {
        let err = Environment::builder().set(argument).build().unwrap_err();
        assert!(matches!(err, Error::InvalidOverride { .. }), "{err}");
        assert!(
            err.to_string().contains("may only hold"),
            "{argument}: {err}"
        );
    }
    let env = Environment::builder()
        .set(" a . b-c_2 = x ")
        .build()
        .unwrap();
    assert_eq!(env.get_string("a.b-c_2").as_deref(), Some("x"));
}

#[test]
fn a_config_file_is_read_at_exactly_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.toml"), "a = 1\n").unwrap();
    for path in [dir.path().join("x"), dir.path().to_path_buf()] {
        let err = Environment::builder().file(&path).build().unwrap_err();
        let Error::ConfigFileUnreadable { path: named, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(named, &path);
    }
}

#[test]
fn syntax_errors_name_the_source_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, "[a]\nb = \n").unwrap();
    let profile_dir = dir.path().join("profiles");
    std::fs::create_dir(&profile_dir).unwrap();
    std::fs::write(profile_dir.join("p.toml"), "x = 1\n[y\n").unwrap();
    let file_err = Environment::builder().file(&file).build().unwrap_err();
    let profile_err = Environment::builder()
        .profile_dir(&profile_dir)
        .profile("p")
        .build()
        .unwrap_err();
    for (err, needle, line) in [
        (file_err, file.display().to_string(), "line 2"),
        (profile_err, "profile `p`".to_string(), "line 2"),
    ] {
        assert!(matches!(err, Error::ConfigSyntax { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&needle), "{text}");
        assert!(text.contains(line), "{text}");
    }
}

#[test]
fn values_keep_empty_tables_sort_keys_and_read_datetimes_as_text() {
    let env = Environment::builder()
        .defaults("d", "z = 1\n[empty]\n[a]\nwhen = 1979-05-27\n")
        .build()
        .unwrap();
    assert_eq!(env.get("empty"), Some(&Value::Table(toml::Table::new())));
    assert_eq!(env.get("a.when"), Some(&Value::String("1979-05-27".into())));
    assert_eq!(env.values().keys().collect::<Vec<_>>(), ["a", "empty", "z"]);
    assert_eq!(env.leaf_keys().collect::<Vec<_>>(), ["a.when", "z"]);
}

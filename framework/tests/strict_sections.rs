//! `ContextBuilder::strict_sections`: a key under a section that only
//! inactive components bind is an error naming them and why each is off.

use std::sync::Arc;

use appctx::{
    ComponentDef, Config, ConfigSection, ContextBuilder, Environment, Error, Scope, component,
    on_property,
};
use serde::Deserialize;

appctx::module!(STRICT_TESTS, name = "strict-tests");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileSource {
    path: String,
    #[serde(default)]
    stride: usize,
}

impl ConfigSection for FileSource {
    const PREFIX: &'static str = "data";
}

struct Source;

fn file_source(_: Config<FileSource>) -> Arc<Source> {
    Arc::new(Source)
}

/// A reader of `data` in each child of scope `rank`, when sharding is on.
struct ShardSource;

fn shard_source(_: Config<FileSource>) -> Arc<ShardSource> {
    Arc::new(ShardSource)
}
component!(
    shard_source,
    scope = Scope::named("rank"),
    when = on_property("data.sharded", "true")
);

fn builder(sets: &[&str]) -> ContextBuilder {
    let env = Environment::builder()
        .defaults(
            "app.toml",
            "[source]\nkind = \"synthetic\"\n[data]\nstride = 4\n",
        )
        .sets(sets.iter().copied())
        .build()
        .unwrap();
    ContextBuilder::new()
        .environment(env)
        .component(ComponentDef::new("file", file_source).select("source.kind"))
        .component(ComponentDef::new("synthetic", || Arc::new(Source)).select("source.kind"))
}

#[test]
fn a_key_only_inactive_components_read_names_them_and_why() {
    let err = builder(&[]).strict_sections().prepare().unwrap_err();
    match &err {
        Error::UnreadConfigKey {
            key,
            section,
            would_read,
            ..
        } => {
            assert_eq!(key, "data.stride");
            assert_eq!(section, "data");
            assert_eq!(would_read.len(), 1);
            assert_eq!(would_read[0].name, "file");
        }
        other => panic!("expected UnreadConfigKey, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(
            "No active component reads `data.stride` (set in embedded defaults app.toml); the components \
             that would read section `data` are inactive:"
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "`file` (scope `singleton`): property source.kind == file: found \"synthetic\""
        ),
        "{message}"
    );
    assert!(
        message.contains("ContextBuilder::known_prefix(\"data\")"),
        "{message}"
    );
}

#[test]
fn keys_that_something_reads_pass() {
    type Configure = fn(ContextBuilder) -> ContextBuilder;
    let cases: [(&str, &[&str], Configure); 4] = [
        // The binder is active.
        ("active binder", &["source.kind=file", "data.path=x"], |b| b),
        // The application declares that it reads the section itself.
        ("known prefix", &[], |b| b.known_prefix("data")),
        // Not asked for: off by default.
        ("not strict", &[], |b| b),
        // A child scope's component whose conditions hold reads it there.
        ("child scope reader", &["data.sharded=true"], |b| {
            b.module(&STRICT_TESTS)
        }),
    ];
    for (case, sets, configure) in cases {
        let strict = case != "not strict";
        let mut b = configure(builder(sets));
        if strict {
            b = b.strict_sections();
        }
        let result = b.prepare();
        assert!(result.is_ok(), "{case}: {:?}", result.err());
    }
}

#[test]
fn an_excluded_binder_is_reported_as_excluded() {
    let err = builder(&["source.kind=file", "data.path=x"])
        .exclude("file")
        .strict_sections()
        .prepare()
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::UnreadConfigKey { .. }), "{message}");
    assert!(
        message.contains("): excluded by the context builder (`.exclude(..)`)"),
        "{message}"
    );
}

#[test]
fn a_child_scope_binder_that_is_off_is_listed_with_its_scope() {
    let err = builder(&[])
        .module(&STRICT_TESTS)
        .strict_sections()
        .prepare()
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, Error::UnreadConfigKey { would_read, .. } if would_read.len() == 2),
        "{message}"
    );
    assert!(
        message.contains("`shard_source` (scope `rank`): property data.sharded == true: not set"),
        "{message}"
    );
}

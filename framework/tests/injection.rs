//! Properties of injection and graph validation, on programmatic contexts.

use std::sync::Arc;

use appctx::{
    ComponentDef, Config, ConfigSection, ContextBuilder, Environment, Error, on_missing,
    on_profile, on_property, on_property_or_missing,
};
use serde::Deserialize;

trait Store: Send + Sync {
    fn kind(&self) -> String;
}

struct Named(&'static str);

impl Store for Named {
    fn kind(&self) -> String {
        self.0.to_string()
    }
}

fn store(kind: &'static str) -> impl Fn() -> Arc<dyn Store> + Send + Sync + 'static {
    move || Arc::new(Named(kind)) as Arc<dyn Store>
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerConfig {
    port: u16,
    #[serde(default)]
    store: Option<String>,
}

impl ConfigSection for ServerConfig {
    const PREFIX: &'static str = "server";
}

struct Server {
    port: u16,
    store: Arc<dyn Store>,
    extras: Vec<Arc<dyn Store>>,
    audit: Option<Arc<Audit>>,
}

struct Audit;

fn env(sets: &[&str]) -> Environment {
    Environment::builder()
        .sets(sets.iter().copied())
        .build()
        .unwrap()
}

fn root() -> ContextBuilder {
    ContextBuilder::new()
}

fn server(
    cfg: Config<ServerConfig>,
    store: Arc<dyn Store>,
    extras: Vec<Arc<dyn Store>>,
    audit: Option<Arc<Audit>>,
) -> Result<Arc<Server>, std::io::Error> {
    Ok(Arc::new(Server {
        port: cfg.port,
        store,
        extras,
        audit,
    }))
}

#[test]
fn functions_receive_arcs_traits_options_vecs_and_config() {
    let ctx = root()
        .environment(env(&["server.port=8080", "server.store=disk"]))
        .component(ComponentDef::new("memory", store("memory")).select("server.store"))
        .component(ComponentDef::new("disk", store("disk")).select("server.store"))
        .component(ComponentDef::new("server", server))
        .build()
        .unwrap();
    let server = ctx.get::<Server>().unwrap();
    assert_eq!(server.port, 8080);
    assert_eq!(server.store.kind(), "disk");
    assert_eq!(server.extras.len(), 1);
    assert!(server.audit.is_none());
    assert_eq!(ctx.get::<dyn Store>().unwrap().kind(), "disk");
    assert_eq!(
        ctx.config::<ServerConfig>().unwrap().store.as_deref(),
        Some("disk")
    );
    assert!(ctx.get_optional::<Audit>().unwrap().is_none());
    assert!(matches!(
        ctx.get::<Audit>(),
        Err(Error::NoSuchComponent { .. })
    ));
}

#[test]
fn all_providers_come_in_order_then_name() {
    let ctx = root()
        .component(ComponentDef::new("b", store("b")))
        .component(ComponentDef::new("a", store("a")))
        .component(ComponentDef::new("z-first", store("z")).order(-1))
        .component(ComponentDef::new("c", store("c")).order(5))
        .build()
        .unwrap();
    let kinds: Vec<String> = ctx
        .get_all::<dyn Store>()
        .unwrap()
        .iter()
        .map(|s| s.kind())
        .collect();
    assert_eq!(kinds, ["z", "a", "b", "c"]);
}

#[test]
fn conditions_choose_providers() {
    // (config overrides, profile, expected chosen store)
    let cases: [(&[&str], Option<&str>, &str); 5] = [
        (&[], None, "fallback"),
        (&["store.kind=redis"], None, "redis"),
        (&["store.kind=memory"], None, "memory"),
        (&["store.kind=memory"], Some("test"), "test-double"),
        (&["store.kind=unknown"], None, "fallback"),
    ];
    for (sets, profile, expected) in cases {
        let mut e = Environment::builder().sets(sets.iter().copied());
        if let Some(p) = profile {
            e = e.embedded_profile(p, "").profile(p);
        }
        let ctx = root()
            .environment(e.build().unwrap())
            .component(
                ComponentDef::new("redis", store("redis")).when(on_property("store.kind", "redis")),
            )
            .component(
                ComponentDef::new("memory", store("memory"))
                    .when(on_property_or_missing("store.kind", "memory"))
                    .when(appctx::on_not_profile("test")),
            )
            .component(
                ComponentDef::new("test-double", store("test-double")).when(on_profile("test")),
            )
            .component(
                ComponentDef::new("fallback", store("fallback")).when(on_missing::<dyn Store>()),
            )
            .build()
            .unwrap_or_else(|e| panic!("{sets:?}: {e}"));
        let chosen = ctx.get::<dyn Store>();
        // With no key at all, `memory` matches too (or-missing) and the fallback backs off.
        let expected = if sets.is_empty() { "memory" } else { expected };
        assert_eq!(chosen.unwrap().kind(), expected, "{sets:?} {profile:?}");
    }
}

#[test]
#[allow(unexpected_cfgs)] // the point: a feature this crate does not have
fn feature_conditions_follow_the_registering_crate() {
    let prepared = root()
        .component(
            ComponentDef::new("gpu", store("gpu")).when(appctx::on_feature!("no-such-feature")),
        )
        .component(ComponentDef::new("sig", store("sig")).when(appctx::on_feature!("signals")))
        .prepare()
        .unwrap();
    let on = prepared.condition_report().entry("sig").unwrap();
    assert_eq!(
        on.status,
        appctx::Status::Active,
        "default feature `signals` is on"
    );
    let entry = prepared.condition_report().entry("gpu").unwrap();
    assert_eq!(entry.status, appctx::Status::Inactive);
    assert!(
        entry.reason().contains("disabled at compile time"),
        "{}",
        entry.reason()
    );
}

#[test]
fn a_missing_dependency_lists_disabled_candidates_and_the_selector_values() {
    let err = root()
        .environment(env(&["server.port=1", "server.store=dsk"]))
        .component(ComponentDef::new("memory", store("memory")).select("server.store"))
        .component(ComponentDef::new("disk", store("disk")).select("server.store"))
        .component(ComponentDef::new("server", server))
        .prepare()
        .unwrap_err();
    let Error::MissingDependency {
        component,
        candidates,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(component, "server");
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["disk", "memory"]);
    assert!(candidates[0].reasons[0].contains("found \"dsk\""), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Set `server.store` to one of `disk`, `memory`"),
        "{text}"
    );
    assert!(text.contains("did you mean `disk`?"), "{text}");
}

#[test]
fn two_providers_of_a_single_injection_are_ambiguous_unless_one_is_primary() {
    let build = |primary: bool| {
        let disk = ComponentDef::new("disk", store("disk"));
        root()
            .environment(env(&["server.port=1"]))
            .component(ComponentDef::new("memory", store("memory")))
            .component(if primary { disk.primary() } else { disk })
            .component(ComponentDef::new("server", server))
            .build()
    };
    let err = build(false).unwrap_err();
    let Error::AmbiguousDependency { providers, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(providers, &["disk", "memory"]);
    assert_eq!(
        build(true).unwrap().get::<Server>().unwrap().store.kind(),
        "disk"
    );
}

struct A;
struct B;
struct C;

#[test]
fn a_cycle_is_reported_as_its_full_path() {
    let err = root()
        .component(ComponentDef::new("a", |_: Arc<B>| Arc::new(A)))
        .component(ComponentDef::new("b", |_: Arc<C>| Arc::new(B)))
        .component(ComponentDef::new("c", |_: Arc<A>| Arc::new(C)))
        .prepare()
        .unwrap_err();
    let Error::DependencyCycle { path } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, &["a", "b", "c", "a"]);
    assert!(err.to_string().contains("a → b → c → a"), "{err}");
}

#[test]
fn prepare_creates_nothing_and_exports_the_graph() {
    let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = created.clone();
    let prepared = root()
        .component(ComponentDef::new("a", move |_: Arc<B>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Arc::new(A)
        }))
        .component(ComponentDef::new("b", || Arc::new(B)))
        .prepare()
        .unwrap();
    assert_eq!(created.load(std::sync::atomic::Ordering::SeqCst), 0);
    let graph = prepared.graph();
    // Depth-first from the first name: dependencies before dependents.
    assert_eq!(graph.creation_order, ["b", "a", "environment"]);
    assert!(
        graph.to_dot().contains("\"a\" -> \"b\" [label=\"one\"]"),
        "{}",
        graph.to_dot()
    );
    assert_eq!(graph.to_json()["edges"][0]["from"], "a");
    assert!(graph.to_string().contains("a : A  ← b"), "{graph}");
    prepared.refresh().unwrap();
    assert_eq!(created.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn unknown_config_keys_are_rejected_with_a_suggestion() {
    // (override, unknown key reported, suggestion)
    let cases: [(&str, &str, Option<&str>); 3] = [
        ("servr.port=1", "servr", Some("server")),
        ("totally.else=1", "totally", None),
        ("store.knd=x", "store.knd", Some("store.kind")),
    ];
    for (set, key, suggestion) in cases {
        let err = root()
            .environment(env(&["server.port=1", set]))
            .component(
                ComponentDef::new("memory", store("memory")).when(on_property("store.kind", "m")),
            )
            .component(ComponentDef::new("server", |c: Config<ServerConfig>| {
                Arc::new(c.port)
            }))
            .prepare()
            .unwrap_err();
        let Error::UnknownConfigKey {
            key: reported,
            suggestion: suggested,
            origin,
            ..
        } = &err
        else {
            panic!("{set}: {err}")
        };
        assert_eq!(reported, key);
        assert_eq!(suggested.as_deref(), suggestion, "{err}");
        assert_eq!(origin, &format!("--set {set}"));
    }
    let ok = root()
        .environment(env(&["server.port=1", "logging.level=debug"]))
        .known_prefix("logging")
        .component(ComponentDef::new("server", |c: Config<ServerConfig>| {
            Arc::new(c.port)
        }))
        .prepare();
    assert!(ok.is_ok());
}

#[test]
fn a_bad_section_value_fails_prepare_naming_key_and_source() {
    let err = root()
        .environment(env(&["server.port=eighty"]))
        .component(ComponentDef::new("server", |c: Config<ServerConfig>| {
            Arc::new(c.port)
        }))
        .prepare()
        .unwrap_err();
    let Error::ConfigType { key, origin, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(key, "server.port");
    assert_eq!(origin.as_deref(), Some("--set server.port=eighty"));
}

#[test]
fn order_of_definitions_does_not_change_the_result() {
    let names = |reverse: bool| {
        let mut defs = vec![
            ComponentDef::new("b", store("b")),
            ComponentDef::new("a", store("a")),
            ComponentDef::new("c", |_: Vec<Arc<dyn Store>>| Arc::new(C)),
        ];
        if reverse {
            defs.reverse();
        }
        let mut builder = root();
        for d in defs {
            builder = builder.component(d);
        }
        let ctx = builder.build().unwrap();
        (
            ctx.graph().creation_order,
            ctx.startup_report()
                .entries
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(names(false), names(true));
}

#[test]
fn duplicate_names_are_rejected() {
    let err = root()
        .component(ComponentDef::new("x", store("1")))
        .component(ComponentDef::new("x", store("2")))
        .prepare()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateComponent { .. }), "{err}");
}

#[test]
fn reports_say_why_each_component_was_chosen() {
    let ctx = root()
        .environment(env(&["store.kind=redis"]))
        .component(
            ComponentDef::new("redis", store("redis")).when(on_property("store.kind", "redis")),
        )
        .component(
            ComponentDef::new("memory", store("memory")).when(on_property("store.kind", "memory")),
        )
        .build()
        .unwrap();
    let report = ctx.condition_report().to_string();
    assert!(report.contains("Active components:\n"), "{report}");
    assert!(
        report.contains(
            "redis (dyn Store, scope singleton): property store.kind == redis: found \"redis\""
        ),
        "{report}"
    );
    assert!(
        report.contains(
            "memory (dyn Store, scope singleton): property store.kind == memory: found \"redis\""
        ),
        "{report}"
    );
    let startup = ctx.startup_report();
    assert_eq!(startup.entries.len(), 2);
    assert!(startup.to_string().contains("redis"), "{startup}");
    assert!(startup.to_json()["entries"][0]["created_in"].is_u64());
    assert_eq!(
        ctx.condition_report().to_json()["entries"][0]["status"],
        "active"
    );
}

#[test]
fn the_condition_report_is_available_when_the_graph_does_not_validate() {
    let builder = root()
        .environment(env(&["store.kind=none"]))
        .component(
            ComponentDef::new("redis", store("redis")).when(on_property("store.kind", "redis")),
        )
        .component(ComponentDef::new("user", |_: Arc<dyn Store>| Arc::new(A)));
    let report = builder.condition_report().unwrap();
    assert_eq!(
        report.entry("redis").unwrap().status,
        appctx::Status::Inactive
    );
    assert_eq!(report.entry("user").unwrap().status, appctx::Status::Active);
    assert!(matches!(
        builder.prepare(),
        Err(Error::MissingDependency { .. })
    ));
}

/// Prototype scope: every injection and every lookup gets a fresh instance,
/// made from the singletons it depends on; the context holds none.
#[test]
fn a_prototype_is_created_afresh_for_each_injection_and_lookup() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Ticket(usize);
    struct Pair(Arc<Ticket>, Arc<Ticket>);
    let made = Arc::new(AtomicUsize::new(0));
    let counter = made.clone();
    let ctx = root()
        .component(ComponentDef::new("audit", || Arc::new(Audit)))
        .component(
            ComponentDef::new("ticket", move |_audit: Arc<Audit>| {
                Arc::new(Ticket(counter.fetch_add(1, Ordering::SeqCst)))
            })
            .prototype(),
        )
        .component(ComponentDef::new(
            "pair",
            |a: Arc<Ticket>, b: Arc<Ticket>| Arc::new(Pair(a, b)),
        ))
        .build()
        .unwrap();
    let pair = ctx.get::<Pair>().unwrap();
    assert_ne!(pair.0.0, pair.1.0, "each parameter gets its own");
    let (x, y) = (ctx.get::<Ticket>().unwrap(), ctx.get::<Ticket>().unwrap());
    assert!(!Arc::ptr_eq(&x, &y));
    assert_eq!(ctx.get_all::<Ticket>().unwrap().len(), 1);
    assert_eq!(
        made.load(Ordering::SeqCst),
        5,
        "2 injections + 3 lookups, none at refresh"
    );
    assert!(
        ctx.startup_report()
            .entries
            .iter()
            .all(|e| e.name != "ticket")
    );
    ctx.close();
    assert!(matches!(
        ctx.get::<Ticket>(),
        Err(Error::ContextClosed { .. })
    ));
}

#[test]
fn a_failing_prototype_fails_the_lookup_naming_it() {
    let ctx = root()
        .component(
            ComponentDef::new("flaky", || -> Result<Arc<Audit>, std::io::Error> {
                Err(std::io::Error::other("no more tickets"))
            })
            .prototype(),
        )
        .build()
        .expect("a prototype is not created at refresh");
    let err = ctx.get_all::<Audit>().map(|_| ()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::ComponentCreation { component, .. } if component == "flaky"),
        "{text}"
    );
    assert!(text.contains("no more tickets"), "{text}");
}

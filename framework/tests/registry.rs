//! Link-time registration with `component!`, including from a second crate,
//! and scopes (singleton vs. per-child) resolved through the registry.
//!
//! The pitfall: a crate that is only listed in Cargo.toml is never linked, so
//! its registrations are silently missing. Naming it once is enough:
use appctx_fixture_plugin as _;

use std::sync::Arc;

use appctx::{
    ApplicationContext, Config, ConfigSection, ContextBuilder, Environment, Error, Scope,
    component, on_property,
};
use appctx_fixture_plugin::PluginGreeting;
use serde::Deserialize;

// This test crate's module; it pulls in the fixture plugin's.
appctx::module!(REGISTRY_TESTS, requires = ["fixture"]);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobConfig {
    kind: String,
    steps: u32,
}

impl ConfigSection for JobConfig {
    const PREFIX: &'static str = "job";
}

pub trait Job: Send + Sync {
    fn describe(&self) -> String;
}

struct Count(String, u32);

impl Job for Count {
    fn describe(&self) -> String {
        format!("{} {}", self.0, self.1)
    }
}

fn count(cfg: Config<JobConfig>) -> Arc<dyn Job> {
    Arc::new(Count(cfg.kind.clone(), cfg.steps))
}
component!(count, name = "count", select = "job.kind");

fn sleep(cfg: Config<JobConfig>) -> Result<Arc<dyn Job>, std::io::Error> {
    Ok(Arc::new(Count(cfg.kind.clone(), 0)))
}
component!(sleep, name = "sleep", select = "job.kind", order = 1);

/// Selected by `job.kind = "gated"`, and only while `job.gate = "open"`
/// (like a plugin component whose cargo feature is not built in).
fn gated(cfg: Config<JobConfig>) -> Result<Arc<dyn Job>, std::io::Error> {
    Ok(Arc::new(Count(cfg.kind.clone(), 0)))
}
component!(
    gated,
    name = "gated",
    select = "job.kind",
    when = on_property("job.gate", "open")
);

/// Given per child, programmatically.
pub struct Rank(pub usize);

/// Created once per `rank` child.
pub struct Shard {
    rank: usize,
    job: Arc<dyn Job>,
}

fn shard(rank: Arc<Rank>, job: Arc<dyn Job>) -> Arc<Shard> {
    Arc::new(Shard { rank: rank.0, job })
}
component!(shard, scope = Scope::named("rank"));

/// A singleton that (wrongly) wants a per-rank value: only when asked to.
pub struct Leaky;

fn leaky(_shard: Arc<Shard>) -> Arc<Leaky> {
    Arc::new(Leaky)
}
component!(leaky, when = on_property("test.leak", "yes"));

fn env(sets: &[&str]) -> Environment {
    Environment::builder()
        .defaults("defaults", "[job]\nkind = \"count\"\nsteps = 3\n")
        .sets(sets.iter().copied())
        .build()
        .unwrap()
}

fn boot(sets: &[&str]) -> appctx::Result<Arc<ApplicationContext>> {
    ContextBuilder::new()
        .module(&REGISTRY_TESTS)
        .environment(env(sets))
        .known_prefix("test")
        .build()
}

#[test]
fn components_of_a_linked_second_crate_are_found() {
    let ctx = boot(&[]).unwrap();
    assert_eq!(
        ctx.get::<dyn PluginGreeting>().unwrap().text(),
        "hello from the fixture plugin"
    );
    let names: Vec<&str> = appctx::registered()
        .iter()
        .map(|d| d.component_name())
        .collect();
    assert_eq!(
        names,
        [
            "count",
            "fixture.greeting",
            "gated",
            "leaky",
            "shard",
            "sleep"
        ],
        "sorted by name"
    );
}

#[test]
fn the_macro_registers_selectable_providers() {
    // (job.kind, expected description)
    for (kind, expected) in [("count", "count 3"), ("sleep", "sleep 0")] {
        let ctx = boot(&[&format!("job.kind={kind}")]).unwrap();
        assert_eq!(ctx.get::<dyn Job>().unwrap().describe(), expected);
        let report = ctx.condition_report();
        assert!(report.entry("shard").unwrap().status == appctx::Status::OtherScope);
    }
    // Nothing in the parent needs a Job, so a bad selector shows when a child does:
    let parent = boot(&["job.kind=cont"]).unwrap();
    let err = parent
        .child("rank")
        .instance(Arc::new(Rank(0)))
        .build()
        .unwrap_err();
    let Error::MissingDependency { candidates, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(candidates.len(), 3, "{err}");
    assert!(
        err.to_string()
            .contains("Set `job.kind` to one of `count`, `sleep`"),
        "{err}"
    );
    assert!(err.to_string().contains("did you mean `count`?"), "{err}");
}

/// A value that no linked crate registers (a plugin crate that is not
/// linked) gets the linking rule and the linked crates, not only a list of
/// built-in values.
#[test]
fn a_value_no_linked_crate_registers_names_the_linking_rule() {
    let parent = boot(&["job.kind=remote"]).unwrap();
    let err = parent
        .child("rank")
        .instance(Arc::new(Rank(0)))
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Set `job.kind` to one of `count`, `sleep` (it is \"remote\")"),
        "{text}"
    );
    assert!(
        text.contains("No linked crate registers a component for `job.kind = \"remote\"`"),
        "{text}"
    );
    assert!(
        text.contains("the crates that register values of `job.kind` are `registry`"),
        "{text}"
    );
    assert!(text.contains("`use the_plugin_crate as _;`"), "{text}");
}

/// A value whose component is linked but inactive for another reason is
/// not sent to the linking rule, and a typo of it is still recognised.
#[test]
fn a_linked_but_inactive_value_is_told_apart_from_a_missing_one() {
    let error_of = |set: &str| {
        let parent = boot(&[set]).unwrap();
        let child = parent.child("rank").instance(Arc::new(Rank(0))).build();
        child.unwrap_err().to_string()
    };
    let text = error_of("job.kind=gated");
    assert!(
        text.contains("the component for \"gated\" is linked but inactive"),
        "{text}"
    );
    assert!(text.contains("job.gate"), "the failing condition: {text}");
    assert!(!text.contains("No linked crate registers"), "{text}");
    let text = error_of("job.kind=gatd");
    assert!(text.contains("did you mean `gated`?"), "{text}");
}

#[test]
fn scoped_components_are_created_once_per_child() {
    let parent = boot(&[]).unwrap();
    assert!(
        parent.get::<Shard>().is_err(),
        "the parent never has per-rank components"
    );
    let children: Vec<_> = (0..3)
        .map(|r| {
            parent
                .child("rank")
                .instance(Arc::new(Rank(r)))
                .build()
                .unwrap()
        })
        .collect();
    for (r, child) in children.iter().enumerate() {
        let shard = child.get::<Shard>().unwrap();
        assert_eq!(shard.rank, r);
        assert!(Arc::ptr_eq(&shard.job, &parent.get::<dyn Job>().unwrap()));
    }
}

#[test]
fn a_singleton_depending_on_a_child_scoped_component_is_a_scope_inversion() {
    let err = boot(&["test.leak=yes"]).unwrap_err();
    let Error::ScopeInversion {
        component,
        provider,
        provider_scope,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (
            component.as_str(),
            provider.as_str(),
            provider_scope.as_str()
        ),
        ("leaky", "shard", "rank")
    );
}

#[test]
fn the_registry_order_is_the_same_on_every_run() {
    let first: Vec<String> = boot(&[]).unwrap().graph().creation_order;
    for _ in 0..3 {
        assert_eq!(boot(&[]).unwrap().graph().creation_order, first);
    }
}

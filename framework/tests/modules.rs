//! Modules: a context is made of the modules it names (and what they
//! require), so that an unrelated context in the same binary sees none of
//! another library's components; exclusions, overrides and `depends_on`.
use appctx_fixture_plugin as _;

use std::sync::{Arc, Mutex};

use appctx::{
    ApplicationContext, ComponentDef, Config, ConfigSection, ContextBuilder, Environment, Error,
    Status, component,
};
use appctx_fixture_plugin::PluginGreeting;
use serde::Deserialize;

// The module of this test crate: a library with a required key, like a
// trainer's `model.n_layer`.
appctx::module!(LIBRARY, name = "library", requires = ["fixture"]);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfig {
    n_layer: usize,
}

impl ConfigSection for ModelConfig {
    const PREFIX: &'static str = "model";
}

pub struct Model(usize);

fn model(cfg: Config<ModelConfig>) -> Arc<Model> {
    Arc::new(Model(cfg.n_layer))
}
component!(model);

/// Needs the fixture's greeting.
pub struct Banner(String);

fn banner(greeting: Arc<dyn PluginGreeting>, model: Arc<Model>) -> Arc<Banner> {
    Arc::new(Banner(format!("{} ({} layers)", greeting.text(), model.0)))
}
component!(banner);

/// Records the order in which `first` and `second` are created.
static CREATED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

pub struct Ordered;

fn second() -> Arc<Ordered> {
    CREATED.lock().unwrap().push("second");
    Arc::new(Ordered)
}
component!(second, depends_on = "first", primary);

fn first() -> Arc<Ordered> {
    CREATED.lock().unwrap().push("first");
    Arc::new(Ordered)
}
component!(first);

fn env(toml: &str) -> Environment {
    Environment::builder()
        .defaults("test.toml", toml)
        .build()
        .unwrap()
}

fn library(toml: &str) -> ContextBuilder {
    ContextBuilder::new()
        .module(&LIBRARY)
        .environment(env(toml))
}

const MODEL: &str = "[model]\nn_layer = 2\n";

#[test]
fn a_context_that_names_no_module_sees_no_registered_component() {
    // The library needs `model.n_layer`; an unrelated context does not.
    let err = library("").build().unwrap_err();
    assert!(
        matches!(&err, Error::MissingConfigKey { key, .. } if key == "model.n_layer"),
        "{err}"
    );
    let unrelated = ContextBuilder::new()
        .component(ComponentDef::new("own", || Arc::new(7_u32)))
        .build()
        .unwrap();
    assert_eq!(*unrelated.get::<u32>().unwrap(), 7);
    assert!(unrelated.get::<Model>().is_err());
    assert!(unrelated.get::<dyn PluginGreeting>().is_err());
    assert!(
        unrelated
            .condition_report()
            .entries
            .iter()
            .all(|e| e.origin == "programmatic" || e.origin == "appctx")
    );
}

#[test]
fn a_named_module_brings_the_modules_it_requires() {
    let ctx = library(MODEL).build().unwrap();
    assert_eq!(
        ctx.get::<Banner>().unwrap().0,
        "hello from the fixture plugin (2 layers)"
    );
    // Only the fixture's module: its greeting, none of this crate's components.
    let fixture = ContextBuilder::new()
        .module(&appctx_fixture_plugin::MODULE)
        .build()
        .unwrap();
    assert!(fixture.get::<dyn PluginGreeting>().is_ok());
    assert!(fixture.get::<Model>().is_err());
}

#[test]
fn all_modules_takes_every_linked_module() {
    let ctx = ContextBuilder::new()
        .all_modules()
        .environment(env(MODEL))
        .build()
        .unwrap();
    assert!(ctx.get::<Banner>().is_ok());
    let m = ApplicationContext::builder().module(&LIBRARY).all_modules();
    assert!(m.environment(env(MODEL)).build().is_ok());
}

#[test]
fn children_take_their_parents_modules() {
    let parent = library(MODEL).build().unwrap();
    let child = parent.child("worker").build().unwrap();
    assert!(
        child
            .condition_report()
            .entries
            .iter()
            .any(|e| e.name == "banner" && e.status == Status::OtherScope)
    );
}

#[test]
fn excluded_components_are_left_out_by_config_or_by_the_builder() {
    let by_config = library(&format!("{MODEL}[appctx]\nexclude = [\"banner\"]\n"))
        .build()
        .unwrap();
    let by_builder = library(MODEL).exclude("banner").build().unwrap();
    for ctx in [by_config, by_builder] {
        assert!(ctx.get::<Banner>().is_err());
        let entry = ctx.condition_report().entry("banner").unwrap();
        assert_eq!(entry.status, Status::Excluded);
        assert!(entry.reason().contains("excluded by"), "{}", entry.reason());
    }
}

#[test]
fn needing_an_excluded_component_names_the_exclusion() {
    let err = library(&format!(
        "{MODEL}[appctx]\nexclude = [\"fixture.greeting\"]\n"
    ))
    .build()
    .unwrap_err();
    let Error::ExcludedDependency {
        component,
        provider,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (component.as_str(), provider.as_str()),
        ("banner", "fixture.greeting")
    );
    let text = err.to_string();
    assert!(
        text.contains("Description:") && text.contains("Action:"),
        "{text}"
    );
    assert!(
        text.contains("excluded by `appctx.exclude` (set in embedded defaults test.toml)"),
        "{text}"
    );
    assert!(
        text.contains("Remove `fixture.greeting` from the exclusions"),
        "{text}"
    );
}

#[test]
fn an_exclusion_or_override_of_an_unknown_name_is_an_error() {
    let err = library(MODEL).exclude("baner").build().unwrap_err();
    assert!(
        matches!(&err, Error::UnknownComponentName { name, suggestion: Some(s), .. } if name == "baner" && s == "banner"),
        "{err}"
    );
    assert!(err.to_string().contains("Did you mean `banner`?"), "{err}");
    let err = library(&format!("{MODEL}[appctx]\nexclude = [\"nothing\"]\n"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "`appctx.exclude` (set in embedded defaults test.toml) names the component `nothing`"
        ),
        "{err}"
    );
    let err = library(MODEL)
        .override_component("nothing", Arc::new(Model(1)))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownComponentName { name, .. } if name == "nothing"),
        "{err}"
    );
}

#[test]
fn an_override_replaces_a_registered_component_with_an_instance() {
    struct Fake;
    impl PluginGreeting for Fake {
        fn text(&self) -> String {
            "fake".into()
        }
    }
    let fake: Arc<dyn PluginGreeting> = Arc::new(Fake);
    let ctx = library(MODEL)
        .override_component("fixture.greeting", fake)
        .build()
        .unwrap();
    assert_eq!(ctx.get::<Banner>().unwrap().0, "fake (2 layers)");
    // A model override also frees the context from the model's section.
    let ctx = library("")
        .override_component("model", Arc::new(Model(9)))
        .build()
        .unwrap();
    assert!(ctx.get::<Banner>().unwrap().0.ends_with("(9 layers)"));
}

#[test]
fn an_override_of_another_type_is_an_error() {
    let err = library(MODEL)
        .override_component("model", Arc::new(3_u8))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::OverrideType { component, .. } if component == "model"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("is a u8, but `model` provides Model"),
        "{text}"
    );
}

#[test]
fn depends_on_creates_the_named_component_first() {
    let ctx = library(MODEL).build().unwrap();
    let order = ctx.graph().creation_order;
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("first") < pos("second"), "{order:?}");
    let created = CREATED.lock().unwrap().clone();
    assert_eq!(created.first(), Some(&"first"), "{created:?}");
    assert!(
        ctx.graph()
            .edges
            .iter()
            .any(|e| e.from == "second" && e.to == "first" && e.kind == "depends_on")
    );
}

#[test]
fn depends_on_a_missing_component_is_an_error() {
    let err = ContextBuilder::new()
        .component(ComponentDef::new("lonely", || Arc::new(1_i64)).depends_on("ghost"))
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, Error::MissingDependency { .. }), "{text}");
    assert!(
        text.contains("lonely needs the component named `ghost` (depends_on)"),
        "{text}"
    );
}

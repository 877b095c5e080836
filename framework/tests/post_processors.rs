//! Post-processors: every created component of their type goes through
//! them, in (order, name) order, before anything sees it; a failure names
//! the post-processor and the component.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use appctx::{ComponentDef, ContextBuilder, Error, PostProcessor, component, post_processor};

appctx::module!(POST_TESTS, name = "post-tests");

trait Greeter: Send + Sync {
    fn greet(&self) -> String;
}

struct Plain(&'static str);

impl Greeter for Plain {
    fn greet(&self) -> String {
        self.0.to_string()
    }
}

/// Wraps a greeter, adding a mark around its greeting.
struct Marked(&'static str, Arc<dyn Greeter>);

impl Greeter for Marked {
    fn greet(&self) -> String {
        format!("{}({})", self.0, self.1.greet())
    }
}

fn mark(label: &'static str) -> impl Fn(&str, Arc<dyn Greeter>) -> Arc<dyn Greeter> {
    move |_, inner| Arc::new(Marked(label, inner))
}

fn hello() -> Arc<dyn Greeter> {
    Arc::new(Plain("hello"))
}
component!(hello);

/// Registered for the module's contexts: runs first (order -1).
fn registered(component: &str, inner: Arc<dyn Greeter>) -> Arc<dyn Greeter> {
    assert_eq!(component, "hello");
    Arc::new(Marked("registered", inner))
}
post_processor!(registered, order = -1);

#[test]
fn post_processors_form_a_pipeline_in_order_then_name() {
    let ctx = ContextBuilder::new()
        .module(&POST_TESTS)
        .post_processor(PostProcessor::new("b", mark("b")))
        .post_processor(PostProcessor::new("a", mark("a")))
        .post_processor(PostProcessor::new("last", mark("last")).order(5))
        .build()
        .unwrap();
    // The first in order wraps the factory's value; the context holds the last result.
    assert_eq!(
        ctx.get::<dyn Greeter>().unwrap().greet(),
        "last(b(a(registered(hello))))"
    );
}

#[test]
fn a_registered_post_processor_applies_only_to_contexts_of_its_module() {
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("hello", hello))
        .build()
        .unwrap();
    assert_eq!(ctx.get::<dyn Greeter>().unwrap().greet(), "hello");
}

#[test]
fn only_components_providing_the_type_are_processed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("hello", hello))
        .component(ComponentDef::new("number", || Arc::new(7_u32)))
        .component(ComponentDef::new("concrete", || {
            Arc::new(Plain("concrete"))
        }))
        .post_processor(PostProcessor::new(
            "log",
            move |component: &str, g: Arc<dyn Greeter>| {
                log.lock().unwrap().push(component.to_string());
                g
            },
        ))
        .build()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["hello"]);
    assert_eq!(*ctx.get::<u32>().unwrap(), 7);
}

#[test]
fn dependents_receive_the_processed_instance_and_each_prototype_is_processed() {
    let processed = Arc::new(AtomicUsize::new(0));
    let count = processed.clone();
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("fresh", hello).prototype())
        .component(ComponentDef::new("user", |g: Arc<dyn Greeter>| {
            Arc::new(g.greet())
        }))
        .post_processor(PostProcessor::new(
            "count",
            move |_: &str, g: Arc<dyn Greeter>| {
                count.fetch_add(1, Ordering::SeqCst);
                Arc::new(Marked("counted", g)) as Arc<dyn Greeter>
            },
        ))
        .build()
        .unwrap();
    assert_eq!(*ctx.get::<String>().unwrap(), "counted(hello)");
    ctx.get::<dyn Greeter>().unwrap();
    ctx.get::<dyn Greeter>().unwrap();
    assert_eq!(processed.load(Ordering::SeqCst), 3);
}

/// Rejects greeters whose greeting is empty.
fn non_empty(_: &str, g: Arc<dyn Greeter>) -> Result<Arc<dyn Greeter>, String> {
    match g.greet().is_empty() {
        true => Err("the greeting is empty".to_string()),
        false => Ok(g),
    }
}

#[test]
fn a_failing_post_processor_names_itself_and_the_component() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let tracked = dropped.clone();
    let err = ContextBuilder::new()
        .component(ComponentDef::new("a-first", move || {
            Arc::new(Tracked(tracked.clone()))
        }))
        .component(ComponentDef::new("silent", || {
            Arc::new(Plain("")) as Arc<dyn Greeter>
        }))
        .post_processor(PostProcessor::new("non_empty", non_empty))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::PostProcessorFailed { post_processor, component, .. }
            if post_processor == "non_empty" && component == "silent"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(
            "Post-processor `non_empty` failed on component `silent` (provides dyn Greeter): \
             the greeting is empty"
        ),
        "{message}"
    );
    assert!(
        message.contains("Fix the cause above in `non_empty`"),
        "{message}"
    );
    // What refresh created before the failure was dropped.
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

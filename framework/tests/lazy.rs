//! Lazy components and `Lazy<T>` handles: created on first use, once,
//! whatever threads ask; lazy edges break construction cycles; a cycle met
//! at `get` time is an error naming the path; close drops lazily created
//! components in reverse creation order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use appctx::{ComponentDef, ContextBuilder, Error, Lazy, Scope, component};

appctx::module!(LAZY_TESTS, name = "lazy-tests");

/// Counts the creations of a component.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Counter {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Expensive to build: created only when asked for.
#[derive(Debug)]
struct Index;

fn index(created: Arc<Counter>) -> Arc<Index> {
    created.0.fetch_add(1, Ordering::SeqCst);
    Arc::new(Index)
}
component!(index, lazy);

#[test]
fn a_lazy_component_is_created_at_its_first_lookup_not_at_refresh() {
    let created = Arc::new(Counter::default());
    let ctx = ContextBuilder::new()
        .module(&LAZY_TESTS)
        .instance(created.clone())
        .build()
        .unwrap();
    assert_eq!(created.count(), 0);
    let names: Vec<&str> = (ctx.startup_report().entries.iter())
        .map(|e| e.name.as_str())
        .collect();
    assert!(!names.contains(&"index"), "{names:?}");
    let graph = ctx.graph();
    assert!(graph.nodes.iter().any(|n| n.name == "index" && n.lazy));

    let first = ctx.get::<Index>().unwrap();
    let second = ctx.get::<Index>().unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(created.count(), 1);
}

struct Parent {
    child: Lazy<Child>,
}

struct Child {
    parent: Arc<Parent>,
}

fn parent(child: Lazy<Child>) -> Arc<Parent> {
    Arc::new(Parent { child })
}

fn child(parent: Arc<Parent>) -> Arc<Child> {
    Arc::new(Child { parent })
}

#[test]
fn a_lazy_edge_breaks_a_construction_cycle_and_is_shown_as_lazy() {
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("parent", parent))
        .component(ComponentDef::new("child", child))
        .build()
        .unwrap();
    let parent = ctx.get::<Parent>().unwrap();
    assert!(Arc::ptr_eq(&parent.child.get().unwrap().parent, &parent));

    let graph = ctx.graph();
    let edge = |from: &str| graph.edges.iter().find(|e| e.from == from).unwrap();
    assert_eq!(edge("parent").kind, "lazy");
    assert_eq!(edge("child").kind, "one");
    assert!(graph.to_dot().contains("[label=\"lazy\", style=dashed]"));
    assert!(graph.to_string().contains("← child (lazy)"));

    // The same shape with plain `Arc`s is a cycle that prepare rejects.
    let strict = ContextBuilder::new()
        .component(ComponentDef::new("parent", |_: Arc<u32>| Arc::new(0_u16)))
        .component(ComponentDef::new("child", |_: Arc<u16>| Arc::new(0_u32)))
        .prepare();
    assert!(matches!(strict, Err(Error::DependencyCycle { .. })));
}

/// `eager`'s factory calls `get` on its handle at once, and the provider
/// needs `eager`: a cycle that no ordering can satisfy.
struct Eager;
struct Needy;

fn eager(needy: Lazy<Needy>) -> Result<Arc<Eager>, Error> {
    needy.get()?;
    Ok(Arc::new(Eager))
}

fn needy(_eager: Arc<Eager>) -> Arc<Needy> {
    Arc::new(Needy)
}

#[test]
fn a_cycle_met_at_get_time_is_an_error_naming_the_path() {
    let err = ContextBuilder::new()
        .component(ComponentDef::new("eager", eager))
        .component(ComponentDef::new("needy", needy))
        .build()
        .unwrap_err();
    match &err {
        Error::LazyCycle { context, path } => {
            assert_eq!(context, "application");
            assert_eq!(path, &["eager", "needy", "eager"]);
        }
        other => panic!("expected a lazy cycle, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("A lazy cycle in context `application`"),
        "{message}"
    );
    assert!(message.contains("eager → needy → eager"), "{message}");
    assert!(
        message.contains("Call `Lazy::get` after the factory has returned"),
        "{message}"
    );

    // Both lazy: the cycle is met by the first lookup, after refresh.
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("eager", eager).lazy())
        .component(ComponentDef::new("needy", needy).lazy())
        .build()
        .unwrap();
    assert!(matches!(ctx.get::<Eager>(), Err(Error::LazyCycle { path, .. }) if path.len() == 3));
    // Nothing was left half-created: the lookup fails the same way again.
    assert!(matches!(ctx.get::<Needy>(), Err(Error::LazyCycle { .. })));
}

/// A factory that looks a component up through a handle before refresh
/// reaches it gets it created then, with what it needs.
struct Early(usize);
struct Base;

#[test]
fn a_handle_used_in_a_factory_creates_its_provider_early() {
    let ctx = ContextBuilder::new()
        // "a-user" sorts first, so refresh reaches it before "base" and "z-early".
        .component(ComponentDef::new("a-user", |early: Lazy<Early>| {
            early.get().map(|e| Arc::new(e.0))
        }))
        .component(ComponentDef::new("z-early", |_: Arc<Base>| {
            Arc::new(Early(7))
        }))
        .component(ComponentDef::new("base", || Arc::new(Base)))
        .build()
        .unwrap();
    assert_eq!(*ctx.get::<usize>().unwrap(), 7);
    let order: Vec<&str> = (ctx.startup_report().entries.iter())
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(order, ["base", "z-early", "a-user", "environment"]);
}

#[test]
fn concurrent_first_lookups_create_a_lazy_component_once() {
    let created = Arc::new(Counter::default());
    let counter = created.clone();
    let ctx = ContextBuilder::new()
        .component(
            ComponentDef::new("slow", move || {
                counter.0.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                Arc::new(Index)
            })
            .lazy(),
        )
        .build()
        .unwrap();
    let got: Vec<Arc<Index>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| ctx.get::<Index>().unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(created.count(), 1);
    assert!(got.iter().all(|i| Arc::ptr_eq(i, &got[0])));
}

/// Records its name when dropped.
struct Dropped(&'static str, Arc<Mutex<Vec<&'static str>>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
    }
}

struct First(#[allow(dead_code)] Dropped);
struct Second(#[allow(dead_code)] Dropped);

#[test]
fn close_drops_lazily_created_components_in_reverse_creation_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, b, c) = (log.clone(), log.clone(), log.clone());
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("eager", move || {
            Arc::new(Dropped("eager", a.clone()))
        }))
        .component(
            ComponentDef::new("first", move || {
                Arc::new(First(Dropped("first", b.clone())))
            })
            .lazy(),
        )
        .component(
            ComponentDef::new("second", move || {
                Arc::new(Second(Dropped("second", c.clone())))
            })
            .lazy(),
        )
        .build()
        .unwrap();
    // Created in the order second, first (lookups), after eager (refresh).
    drop(ctx.get::<Second>().unwrap());
    drop(ctx.get::<First>().unwrap());
    ctx.close();
    assert_eq!(*log.lock().unwrap(), ["first", "second", "eager"]);
    assert!(matches!(
        ctx.get::<First>(),
        Err(Error::ContextClosed { .. })
    ));
}

#[test]
fn a_handle_fails_once_its_context_is_closed() {
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("parent", parent))
        .component(ComponentDef::new("child", child))
        .build()
        .unwrap();
    let handle = ctx.get::<Parent>().unwrap().child.clone();
    ctx.close();
    assert!(
        matches!(handle.get(), Err(Error::ContextClosed { context }) if context == "application")
    );
}

struct RankLocal;

#[test]
fn a_lazy_dependency_is_checked_like_an_arc() {
    // A singleton may not reach into a shorter-lived scope, lazily or not.
    let inverted = ContextBuilder::new()
        .module(&LAZY_TESTS)
        .instance(Arc::new(Counter::default()))
        .component(ComponentDef::new("holder", |_: Lazy<RankLocal>| {
            Arc::new(0_u8)
        }))
        .prepare();
    assert!(
        matches!(&inverted, Err(Error::ScopeInversion { provider, .. }) if provider == "rank_local"),
        "{inverted:?}"
    );
    // A missing provider is found by prepare, not by the first `get`.
    let missing = ContextBuilder::new()
        .component(ComponentDef::new("holder", |_: Lazy<Base>| Arc::new(0_u8)))
        .prepare();
    assert!(matches!(missing, Err(Error::MissingDependency { .. })));
}

fn rank_local() -> Arc<RankLocal> {
    Arc::new(RankLocal)
}
component!(rank_local, scope = Scope::named("rank"));

#[test]
fn a_lazy_creation_failure_is_the_lookups_error_and_is_retried() {
    let attempts = Arc::new(Counter::default());
    let counter = attempts.clone();
    let ctx = ContextBuilder::new()
        .component(
            ComponentDef::new("flaky", move || {
                match counter.0.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(std::io::Error::other("disk not ready")),
                    _ => Ok(Arc::new(Index)),
                }
            })
            .lazy(),
        )
        .build()
        .unwrap();
    let err = ctx.get::<Index>().unwrap_err();
    assert!(
        matches!(&err, Error::ComponentCreation { component, .. } if component == "flaky"),
        "{err:?}"
    );
    assert!(err.to_string().contains("disk not ready"));
    assert!(ctx.get::<Index>().is_ok());
    assert_eq!(attempts.count(), 2);
}

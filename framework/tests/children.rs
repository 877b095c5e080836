//! Properties of child contexts and of the cancellation tree.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appctx::{
    ApplicationContext, CancelCause, CancellationToken, ComponentDef, ContextBuilder,
    ContextClosed, Error,
};

#[derive(Debug, PartialEq)]
struct Greeting(&'static str);
struct RankInfo(usize);
struct Dataset;

fn parent() -> Arc<ApplicationContext> {
    ContextBuilder::new()
        .instance(Arc::new(Greeting("parent")))
        .instance(Arc::new(Dataset))
        .build()
        .unwrap()
}

#[test]
fn a_child_resolves_from_its_parent_and_the_nearest_provider_wins() {
    let parent = parent();
    let child = parent
        .child("rank")
        .instance(Arc::new(Greeting("child")))
        .instance(Arc::new(RankInfo(3)))
        .component(ComponentDef::new(
            "uses-both",
            |g: Arc<Greeting>, _d: Arc<Dataset>, r: Arc<RankInfo>| Arc::new((g.0, r.0)),
        ))
        .build()
        .unwrap();
    // (context, greeting seen)
    for (ctx, expected) in [(&parent, "parent"), (&child, "child")] {
        assert_eq!(ctx.get::<Greeting>().unwrap().0, expected);
    }
    assert_eq!(*child.get::<(&str, usize)>().unwrap(), ("child", 3));
    assert!(Arc::ptr_eq(
        &child.get::<Dataset>().unwrap(),
        &parent.get::<Dataset>().unwrap()
    ));
    assert!(matches!(
        parent.get::<RankInfo>(),
        Err(Error::NoSuchComponent { .. })
    ));
    let greetings: Vec<&str> = child
        .get_all::<Greeting>()
        .unwrap()
        .iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(
        greetings,
        ["child", "parent"],
        "all: both levels, by (order, name)"
    );
    let graph = child.graph();
    assert!(
        graph
            .nodes
            .iter()
            .any(|n| n.name == "Dataset" && n.inherited)
    );
}

#[test]
fn children_are_built_concurrently_from_threads() {
    let parent = parent();
    let ranks: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|rank| {
                let parent = parent.clone();
                s.spawn(move || {
                    let child = parent
                        .child("rank")
                        .name(format!("rank-{rank}"))
                        .instance(Arc::new(RankInfo(rank)))
                        .component(ComponentDef::new(
                            "doubled",
                            |r: Arc<RankInfo>, _: Arc<Dataset>| Arc::new(r.0 * 2),
                        ))
                        .build()
                        .unwrap();
                    *child.get::<usize>().unwrap() / 2
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ranks, (0..8).collect::<Vec<_>>());
}

#[test]
fn closing_a_parent_closes_its_children_first() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let listener = |log: &Arc<Mutex<Vec<String>>>| {
        let log = log.clone();
        move |e: &ContextClosed| log.lock().unwrap().push(e.context.clone())
    };
    let parent = ContextBuilder::new().name("process").build().unwrap();
    let children: Vec<_> = (0..2)
        .map(|i| {
            parent
                .child("rank")
                .name(format!("rank-{i}"))
                .listener(listener(&log))
                .build()
                .unwrap()
        })
        .collect();
    parent.close();
    assert!(children.iter().all(|c| c.is_closed()));
    assert!(children.iter().all(|c| c.shutdown_token().is_cancelled()));
    assert_eq!(*log.lock().unwrap(), ["rank-1", "rank-0"]);
}

#[test]
fn cancelling_a_token_cancels_its_descendants_only() {
    let root = CancellationToken::new();
    let child = root.child();
    let grandchild = child.child();
    let sibling = root.child();
    child.cancel("rank failed");
    // (token, cancelled?)
    for (token, cancelled) in [
        (&root, false),
        (&child, true),
        (&grandchild, true),
        (&sibling, false),
    ] {
        assert_eq!(token.is_cancelled(), cancelled);
    }
    assert_eq!(
        grandchild.cause(),
        Some(CancelCause::Requested("rank failed".into()))
    );
    root.cancel("shutdown");
    assert_eq!(
        sibling.cause(),
        Some(CancelCause::Requested("shutdown".into()))
    );
    assert_eq!(
        child.cause(),
        Some(CancelCause::Requested("rank failed".into())),
        "the first cause wins"
    );
    assert!(root.child().is_cancelled(), "born cancelled");
    assert!(grandchild.is_descendant_of(&root));
}

#[test]
fn deadlines_cancel_and_are_inherited() {
    let root = CancellationToken::new();
    let timed = root.child_with_timeout(Duration::from_millis(50));
    let inner = timed.child();
    assert!(!inner.is_cancelled());
    let begin = Instant::now();
    assert_eq!(inner.wait(), CancelCause::DeadlineExceeded);
    assert!(begin.elapsed() >= Duration::from_millis(40));
    assert!(timed.is_cancelled());
    assert!(!root.is_cancelled());
}

#[test]
fn waiting_wakes_on_cancel_from_another_thread() {
    let token = CancellationToken::new();
    let remote = token.clone();
    let waiter = std::thread::spawn(move || remote.wait_timeout(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(20));
    token.cancel("done");
    assert_eq!(
        waiter.join().unwrap(),
        Some(CancelCause::Requested("done".into()))
    );
    {
        let guarded = CancellationToken::new();
        let _guard = guarded.drop_guard();
        let observer = guarded.clone();
        drop(_guard);
        assert!(observer.is_cancelled());
    }
}

/// A dry run prepares a child against a parent that was only prepared: the
/// child's graph reaches into the parent, its wiring errors are the ones
/// building it would give, and no factory of either context runs.
#[test]
fn a_dry_run_prepares_children_without_creating_anything() {
    let created = Arc::new(Mutex::new(Vec::<&str>::new()));
    let log = created.clone();
    let dry = ContextBuilder::new()
        .component(ComponentDef::new("dataset", move || {
            log.lock().unwrap().push("dataset");
            Arc::new(Dataset)
        }))
        .prepare()
        .unwrap()
        .dry_run();
    let log = created.clone();
    let trainer = move || {
        let log = log.clone();
        ComponentDef::new("trainer", move |_d: Arc<Dataset>, r: Arc<RankInfo>| {
            log.lock().unwrap().push("trainer");
            Arc::new(r.0)
        })
    };
    for rank in 0..2 {
        let graph = dry
            .prepare_child("rank", |b| {
                b.instance(Arc::new(RankInfo(rank))).component(trainer())
            })
            .unwrap();
        assert!(
            graph
                .nodes
                .iter()
                .any(|n| n.name == "dataset" && n.inherited)
        );
    }
    let err = dry
        .prepare_child("rank", |b| b.component(trainer()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingDependency { component, .. } if component == "trainer"),
        "{err}"
    );
    assert!(created.lock().unwrap().is_empty(), "nothing was created");
    assert_eq!(dry.graph().nodes.len(), 2, "dataset and the environment");
}

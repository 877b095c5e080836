//! Properties of refresh, lifecycles, events, runners and close.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appctx::{
    BoxError, CancellationToken, ComponentDef, ContextBuilder, ContextClosed, ContextRefreshed,
    Error, EventListener, Lifecycle, Runner,
};

/// A shared, ordered record of what happened.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Records its drop.
struct Tracked {
    name: &'static str,
    log: Log,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.log.push(format!("drop {}", self.name));
    }
}

struct Phased {
    name: &'static str,
    phase: i32,
    log: Log,
    fail: bool,
}

impl Lifecycle for Phased {
    fn start(&self) -> Result<(), BoxError> {
        if self.fail {
            return Err(format!("{} refused", self.name).into());
        }
        self.log.push(format!("start {}", self.name));
        Ok(())
    }
    fn stop(&self) {
        self.log.push(format!("stop {}", self.name));
    }
    fn phase(&self) -> i32 {
        self.phase
    }
}

fn root(log: &Log) -> ContextBuilder {
    ContextBuilder::new().named_instance("log", Arc::new(log.clone()))
}

struct Db(#[allow(dead_code)] Tracked);
struct Cache(#[allow(dead_code)] Tracked);
struct Index(#[allow(dead_code)] Tracked);
struct Api;

fn tracked(log: &Arc<Log>, name: &'static str) -> Tracked {
    log.push(format!("create {name}"));
    Tracked {
        name,
        log: (**log).clone(),
    }
}

#[test]
fn a_failing_factory_drops_what_exists_in_reverse_and_names_the_chain() {
    let log = Log::default();
    let err = root(&log)
        .component(ComponentDef::new("db", |log: Arc<Log>| {
            Arc::new(Db(tracked(&log, "db")))
        }))
        .component(ComponentDef::new("cache", |_: Arc<Db>, log: Arc<Log>| {
            Arc::new(Cache(tracked(&log, "cache")))
        }))
        .component(ComponentDef::new(
            "index",
            |_: Arc<Cache>, log: Arc<Log>| Arc::new(Index(tracked(&log, "index"))),
        ))
        .component(ComponentDef::new(
            "api",
            |_: Arc<Index>| -> Result<Arc<Api>, std::io::Error> {
                Err(std::io::Error::other("port in use"))
            },
        ))
        .component(ComponentDef::new("app", |_api: Arc<Api>| Arc::new(0u8)))
        .build()
        .unwrap_err();
    let Error::ComponentCreation {
        component, chain, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(component, "api");
    assert_eq!(chain, &["app", "api"]);
    assert!(err.to_string().contains("port in use"), "{err}");
    assert!(err.to_string().contains("app → api"), "{err}");
    assert_eq!(
        log.take(),
        [
            "create db",
            "create cache",
            "create index",
            "drop index",
            "drop cache",
            "drop db"
        ]
    );
}

fn phased(name: &'static str, phase: i32, fail: bool) -> ComponentDef {
    ComponentDef::new(name, move |log: Arc<Log>| {
        Arc::new(Phased {
            name,
            phase,
            log: (*log).clone(),
            fail,
        }) as Arc<dyn Lifecycle>
    })
}

#[test]
fn lifecycles_start_by_phase_and_stop_in_reverse() {
    let log = Log::default();
    let ctx = root(&log)
        .component(phased("late", 10, false))
        .component(phased("early", -5, false))
        .component(phased("middle", 0, false))
        .build()
        .unwrap();
    assert_eq!(log.take(), ["start early", "start middle", "start late"]);
    ctx.close();
    assert_eq!(log.take(), ["stop late", "stop middle", "stop early"]);
}

#[test]
fn a_failing_start_stops_the_started_ones() {
    let log = Log::default();
    let err = root(&log)
        .component(phased("a", 0, false))
        .component(phased("b", 1, true))
        .component(phased("c", 2, false))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::LifecycleStart { ref component, .. } if component == "b"),
        "{err}"
    );
    assert_eq!(log.take(), ["start a", "stop a"]);
}

struct Slow;

impl Lifecycle for Slow {
    fn stop(&self) {
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[test]
fn close_waits_at_most_the_stop_timeout_per_phase() {
    let ctx = ContextBuilder::new()
        .stop_timeout(Duration::from_millis(100))
        .component(ComponentDef::new("slow", || {
            Arc::new(Slow) as Arc<dyn Lifecycle>
        }))
        .build()
        .unwrap();
    let begin = Instant::now();
    ctx.close();
    assert!(
        begin.elapsed() < Duration::from_secs(2),
        "{:?}",
        begin.elapsed()
    );
}

struct Ping(u32);

#[test]
fn events_reach_typed_listeners_in_order() {
    let log = Log::default();
    let listener = |name: &'static str, order: i32| {
        ComponentDef::new(name, move |log: Arc<Log>| {
            Arc::new(move |p: &Ping| log.push(format!("{name} got {}", p.0)))
                as Arc<dyn EventListener<Ping>>
        })
        .order(order)
    };
    let seen = log.clone();
    let ctx = root(&log)
        .component(listener("second", 2))
        .component(listener("first", 1))
        .listener(move |e: &ContextRefreshed| seen.push(format!("refreshed {}", e.context)))
        .build()
        .unwrap();
    ctx.publish(&Ping(7));
    ctx.publish(&"no listener for &str");
    assert_eq!(
        log.take(),
        ["refreshed application", "first got 7", "second got 7"]
    );
}

#[test]
fn close_is_idempotent_runs_on_drop_and_publishes_closed_before_dropping() {
    let log = Log::default();
    let build = || {
        let seen = log.clone();
        root(&log)
            .component(ComponentDef::new("tracked", |log: Arc<Log>| {
                Arc::new(Tracked {
                    name: "tracked",
                    log: (*log).clone(),
                })
            }))
            .listener(move |_: &ContextClosed| seen.push("closed event"))
            .build()
            .unwrap()
    };
    let ctx = build();
    let token = ctx.shutdown_token().clone();
    ctx.close();
    ctx.close();
    assert!(token.is_cancelled());
    assert!(ctx.is_closed());
    assert!(matches!(
        ctx.get::<Tracked>(),
        Err(Error::ContextClosed { .. })
    ));
    assert_eq!(log.take(), ["closed event", "drop tracked"]);
    drop(ctx);
    assert!(log.take().is_empty(), "a second close does nothing");

    drop(build());
    assert_eq!(log.take(), ["closed event", "drop tracked"], "drop closes");
}

struct Step {
    name: &'static str,
    log: Log,
    fail: bool,
}

impl Runner for Step {
    fn run(&self, _shutdown: &CancellationToken) -> Result<(), BoxError> {
        self.log.push(format!("run {}", self.name));
        if self.fail {
            return Err("boom".into());
        }
        Ok(())
    }
}

fn step(name: &'static str, order: i32, fail: bool) -> ComponentDef {
    ComponentDef::new(name, move |log: Arc<Log>| {
        Arc::new(Step {
            name,
            log: (*log).clone(),
            fail,
        }) as Arc<dyn Runner>
    })
    .order(order)
}

#[test]
fn runners_run_in_order_and_the_first_error_is_the_result() {
    let log = Log::default();
    let ctx = root(&log)
        .component(step("c", 3, false))
        .component(step("a", 1, false))
        .component(step("b", 2, true))
        .build()
        .unwrap();
    let err = ctx.run().unwrap_err();
    assert!(
        matches!(err, Error::RunnerFailed { ref runner, .. } if runner == "b"),
        "{err}"
    );
    assert_eq!(log.take(), ["run a", "run b"]);

    let ok = root(&log).component(step("a", 1, false)).build().unwrap();
    ok.run().unwrap();
    ok.shutdown_token().cancel("test");
    ok.run().unwrap();
    assert_eq!(log.take(), ["run a"], "a cancelled context runs nothing");
}

#[test]
fn the_context_token_is_a_child_of_the_given_one() {
    let app = CancellationToken::new();
    let ctx = ContextBuilder::new()
        .shutdown_token(app.clone())
        .build()
        .unwrap();
    ctx.close();
    assert!(
        !app.is_cancelled(),
        "closing never cancels the application's token"
    );
    let ctx = ContextBuilder::new()
        .shutdown_token(app.clone())
        .build()
        .unwrap();
    app.cancel("SIGTERM");
    assert!(ctx.shutdown_token().is_cancelled());
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::{ApplicationContext, ComponentDef, ContextBuilder, Environment, Error, Executor};

/// A context configured by `toml` (the `[appctx.executor]` keys).
fn context(toml: &str) -> Arc<ApplicationContext> {
    let env = Environment::builder()
        .defaults("test.toml", toml)
        .build()
        .unwrap();
    ContextBuilder::new().environment(env).build().unwrap()
}

/// Polls `future` on this thread until it is ready (a minimal `block_on`:
/// the waker unparks the thread).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[test]
fn ordered_tasks_run_in_submission_order_on_one_thread_of_their_own() {
    let ctx = context("");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let seen = seen.clone();
            ctx.executor()
                .submit(format!("task {i}"), move || {
                    // Uneven durations: a pool would reorder them.
                    thread::sleep(Duration::from_micros(((50 - i) % 7) * 200));
                    seen.lock().unwrap().push(i);
                    thread::current().id()
                })
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(*seen.lock().unwrap(), (0..50).collect::<Vec<u64>>());
    assert!(threads.iter().all(|t| *t == threads[0]));
    assert_ne!(threads[0], thread::current().id());
}

#[test]
fn no_thread_starts_before_the_first_task() {
    let ctx = context("");
    let executor = ctx.executor();
    assert_eq!(executor.inner.ordered.threads(), 0);
    assert_eq!(executor.inner.blocking.threads(), 0);
    executor.submit("one", || ()).unwrap().join().unwrap();
    assert_eq!(executor.inner.ordered.threads(), 1);
    assert_eq!(executor.inner.blocking.threads(), 0);
}

#[test]
fn the_blocking_pool_runs_at_most_its_thread_count_at_once() {
    let ctx = context("[appctx.executor]\nblocking_threads = 2\n");
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (active, most) = (active.clone(), most.clone());
            ctx.executor()
                .submit_blocking(format!("io {i}"), move || {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(30));
                    active.fetch_sub(1, Ordering::SeqCst);
                })
                .unwrap()
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    // Eight 30 ms tasks on two threads overlap (unless the machine stalls
    // one thread for the whole run), and never on three.
    assert_eq!(most.load(Ordering::SeqCst), 2);
    assert_eq!(ctx.executor().inner.blocking.threads(), 2);
}

#[test]
fn a_blocked_blocking_task_does_not_hold_up_the_ordered_tasks() {
    let ctx = context("");
    let (tx, rx) = mpsc::channel();
    let waiting = ctx
        .executor()
        .submit_blocking("wait for the ordered task", move || {
            rx.recv_timeout(Duration::from_secs(10))
        })
        .unwrap();
    ctx.executor()
        .submit("send", move || tx.send(7).unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(waiting.join().unwrap(), Ok(7));
}

#[test]
fn a_handle_is_a_future_that_needs_no_runtime() {
    let ctx = context("");
    let handle = ctx
        .executor()
        .submit("slow", || {
            thread::sleep(Duration::from_millis(20));
            6 * 7
        })
        .unwrap();
    assert_eq!(block_on(handle).unwrap(), 42);
}

#[test]
fn close_runs_every_queued_task_within_the_timeout() {
    let ctx = context("");
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..5)
        .map(|i| {
            let done = done.clone();
            ctx.executor()
                .submit(format!("task {i}"), move || {
                    thread::sleep(Duration::from_millis(10));
                    done.fetch_add(1, Ordering::SeqCst)
                })
                .unwrap()
        })
        .collect();
    ctx.close();
    assert_eq!(done.load(Ordering::SeqCst), 5, "close waited for the queue");
    let order: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
}

#[test]
fn close_drops_what_is_still_queued_after_the_timeout() {
    let ctx = context("[appctx.executor]\nclose_timeout_s = 0.2\n");
    let ran = Arc::new(AtomicUsize::new(0));
    let slow = ctx
        .executor()
        .submit("slow", || thread::sleep(Duration::from_millis(600)))
        .unwrap();
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let ran = ran.clone();
            ctx.executor()
                .submit(format!("queued {i}"), move || {
                    ran.fetch_add(1, Ordering::SeqCst)
                })
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    ctx.close();
    let took = started.elapsed();
    // Close waits the timeout, not for the slow task (the bound leaves
    // room for a loaded machine while staying under the task's 600 ms).
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(550), "{took:?}");
    for handle in queued {
        let err = handle.join().unwrap_err();
        assert!(matches!(err, Error::TaskCancelled { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("raise `appctx.executor.close_timeout_s`"),
            "{err}"
        );
    }
    slow.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "dropped tasks never run");
}

#[test]
fn a_panicking_task_becomes_an_error_and_the_next_task_still_runs() {
    let ctx = context("");
    let bad = ctx
        .executor()
        .submit("write step-3", || -> u32 { panic!("disk on fire") })
        .unwrap();
    let next = ctx.executor().submit("next", || 1).unwrap();
    let err = bad.join().unwrap_err();
    assert!(matches!(err, Error::TaskPanicked { .. }), "{err}");
    let text = err.to_string();
    for part in [
        "Description:",
        "Task `write step-3` of context `application`",
        "disk on fire",
        "Action:",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
    assert_eq!(next.join().unwrap(), 1);
}

#[test]
fn a_task_submitted_after_close_is_refused() {
    let ctx = context("");
    let executor = ctx.executor().clone();
    ctx.close();
    for refused in [
        executor.submit("late", || ()).unwrap_err(),
        executor.submit_blocking("late io", || ()).unwrap_err(),
    ] {
        assert!(matches!(refused, Error::TaskRefused { .. }), "{refused}");
        assert!(
            refused.to_string().contains("the context is closed"),
            "{refused}"
        );
    }
}

#[test]
fn a_task_may_close_its_own_context_without_waiting_for_itself() {
    let ctx = context("");
    let own = ctx.clone();
    let closing = ctx.executor().submit("close", move || own.close()).unwrap();
    let after = ctx.executor().submit("after", || ()).unwrap();
    closing
        .join_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert!(matches!(after.join(), Err(Error::TaskCancelled { .. })));
}

#[test]
fn components_inject_their_contexts_executor() {
    struct Greeting(String);
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("greeting", |executor: Executor| {
            let hello = executor.submit("greet", || "hello".to_string()).unwrap();
            Arc::new(Greeting(hello.join().unwrap()))
        }))
        .build()
        .unwrap();
    assert_eq!(ctx.get::<Greeting>().unwrap().0, "hello");
}

#[test]
fn bad_executor_settings_name_the_key() {
    for (toml, key) in [
        ("blocking_threads = 0", "appctx.executor.blocking_threads"),
        ("close_timeout_s = -1.0", "appctx.executor.close_timeout_s"),
    ] {
        let env = Environment::builder()
            .defaults("app.toml", format!("[appctx.executor]\n{toml}\n"))
            .build()
            .unwrap();
        let err = ContextBuilder::new()
            .environment(env)
            .prepare()
            .unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
        assert!(err.to_string().contains("app.toml"), "{err}");
    }
}

//! A runner reaches its own context through an injected `ContextHandle`,
//! and builds one child per worker from it.

use std::sync::{Arc, Mutex};

use appctx::{
    BoxError, CancellationToken, ComponentDef, ContextBuilder, ContextHandle, Error, Runner,
};

struct WorkerId(usize);
struct Seen(Mutex<Vec<usize>>);

struct SpawnWorkers {
    context: ContextHandle,
}

impl Runner for SpawnWorkers {
    fn run(&self, _shutdown: &CancellationToken) -> Result<(), BoxError> {
        let parent = self.context.context()?;
        std::thread::scope(|scope| {
            for id in 0..3 {
                let parent = parent.clone();
                scope.spawn(move || {
                    let child = parent
                        .child("worker")
                        .instance(Arc::new(WorkerId(id)))
                        .build()
                        .unwrap();
                    let seen = child.get::<Seen>().unwrap();
                    seen.0
                        .lock()
                        .unwrap()
                        .push(child.get::<WorkerId>().unwrap().0);
                });
            }
        });
        Ok(())
    }
}

#[test]
fn a_runner_builds_children_of_its_own_context() {
    let ctx = ContextBuilder::new()
        .instance(Arc::new(Seen(Mutex::new(Vec::new()))))
        .component(ComponentDef::new("spawner", |context: ContextHandle| {
            Arc::new(SpawnWorkers { context }) as Arc<dyn Runner>
        }))
        .build()
        .unwrap();
    ctx.run().unwrap();
    let mut seen = ctx.get::<Seen>().unwrap().0.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn a_handle_used_inside_a_factory_is_an_error_not_a_deadlock() {
    let result = ContextBuilder::new()
        .component(ComponentDef::new("eager", |context: ContextHandle| {
            context.context().map(|_| Arc::new(1u8))
        }))
        .build();
    let Err(err) = result else {
        panic!("the factory fails");
    };
    assert!(err.to_string().contains("still being"), "{err}");
}

#[test]
fn a_handle_does_not_keep_its_context_alive() {
    struct Holder(ContextHandle);
    let ctx = ContextBuilder::new()
        .component(ComponentDef::new("holder", |context: ContextHandle| {
            Arc::new(Holder(context))
        }))
        .build()
        .unwrap();
    let holder = ctx.get::<Holder>().unwrap();
    assert!(holder.0.context().is_ok());
    drop(ctx);
    assert!(matches!(holder.0.context(), Err(Error::ContextUnavailable)));
}

//! The application context: prepare → refresh → run → close.

mod builder;
mod creation;
mod dry_run;
mod instances;
mod plan;
mod prepare;
mod qualified;
mod refresh;
mod resolver;
mod selection;
mod unread;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

pub use builder::ContextBuilder;
pub use dry_run::DryRun;
pub use prepare::PreparedContext;
pub use resolver::Resolver;

use crate::component::{Scope, TypeKey};
use crate::config::{Config, ConfigSection};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::events::{ContextClosed, EventListener};
use crate::executor::Executor;
use crate::graph::DependencyGraph;
use crate::lifecycle::{Runner, Started, stop_all};
use crate::report::{ConditionReport, StartupReport};
use crate::shutdown::CancellationToken;
use instances::Instances;
use plan::Plan;
use selection::Selection;

/// A refreshed context: every active component exists, but lazy ones (created
/// at their first lookup) and prototypes (created at each).
///
/// Closing (explicitly with [`close`](Self::close), or when the last `Arc`
/// is dropped) closes children first, cancels the shutdown token, publishes
/// [`ContextClosed`], stops lifecycles in reverse phase order and drops the
/// components in reverse creation order. Closing twice does nothing.
pub struct ApplicationContext {
    pub(crate) plan: Plan,
    pub(crate) selection: Arc<Selection>,
    instances: Instances,
    started: Mutex<Vec<Started>>,
    children: Mutex<Vec<Weak<ApplicationContext>>>,
    closed: AtomicBool,
    /// Set when refresh finishes.
    startup: OnceLock<StartupReport>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ApplicationContext {
    /// Starts building a root context (same as [`ContextBuilder::new`]).
    pub fn builder() -> ContextBuilder {
        ContextBuilder::new()
    }

    /// Starts building a child context of scope `scope` (e.g. `"rank"`): it
    /// creates the components registered with `Scope::named(scope)` plus any
    /// added to the builder, and resolves everything else from this context.
    /// Children may be built concurrently from several threads.
    pub fn child(self: &Arc<Self>, scope: &'static str) -> ContextBuilder {
        ContextBuilder::child_of(self, scope)
    }

    pub(crate) fn with_resolver<R>(&self, f: impl FnOnce(&Resolver<'_>) -> R) -> R {
        f(&Resolver {
            plan: &self.plan,
            instances: &self.instances,
        })
    }

    /// The single active provider of `T` (a type or `dyn Trait`); the nearest context wins.
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.with_resolver(|r| r.get::<T>())
    }

    /// Like [`get`](Self::get), but `None` when there is no provider.
    pub fn get_optional<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Option<Arc<T>>> {
        self.with_resolver(|r| r.get_optional::<T>())
    }

    /// All active providers of `T` here and in ancestors, sorted by (order, name).
    pub fn get_all<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Vec<Arc<T>>> {
        self.with_resolver(|r| r.get_all::<T>())
    }

    /// The provider of `T` with component name `name`.
    pub fn get_named<T: ?Sized + Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>> {
        self.with_resolver(|r| r.get_named::<T>(name))
    }

    /// A configuration section bound from this context's environment.
    pub fn config<T: ConfigSection>(&self) -> Result<Config<T>> {
        self.with_resolver(|r| r.config::<T>())
    }

    /// The environment.
    pub fn environment(&self) -> &Arc<Environment> {
        &self.plan.env
    }

    /// The shutdown token: cancelled on close, and when an ancestor's is.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.plan.token
    }

    /// The context's executor: ordered tasks on its own thread, blocking
    /// tasks on a small pool; drained by [`close`](Self::close).
    pub fn executor(&self) -> &Executor {
        &self.plan.executor
    }

    /// The context's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The context's scope.
    pub fn scope(&self) -> Scope {
        self.plan.scope
    }

    /// The parent context, if this is a child.
    pub fn parent(&self) -> Option<&Arc<ApplicationContext>> {
        self.plan.parent.as_ref()
    }

    /// What refresh created, with timings.
    pub fn startup_report(&self) -> &StartupReport {
        self.startup
            .get_or_init(|| StartupReport::empty(&self.plan.name))
    }

    /// Why each registered component was or was not chosen.
    pub fn condition_report(&self) -> &ConditionReport {
        &self.plan.conditions
    }

    /// The dependency graph.
    pub fn graph(&self) -> DependencyGraph {
        self.plan.graph()
    }

    /// Delivers `event` synchronously to every `dyn EventListener<E>` of this
    /// context and its ancestors, in (order, name) order.
    pub fn publish<E: 'static>(&self, event: &E) {
        let listeners = self.get_all::<dyn EventListener<E>>().unwrap_or_default();
        for listener in listeners {
            listener.on_event(event);
        }
    }

    /// Runs every `dyn Runner` of this context in (order, name) order; the
    /// first error stops the sequence and is returned. Runners are skipped
    /// once the shutdown token is cancelled.
    pub fn run(&self) -> Result<()> {
        let key = TypeKey::of::<dyn Runner>();
        let runners: Vec<(String, Arc<dyn Runner>)> = self.with_resolver(|r| {
            let ids = self.plan.providers.get(&key).cloned().unwrap_or_default();
            ids.into_iter()
                .filter_map(|id| {
                    let stored = r.instances.get(id)?;
                    let runner = stored.downcast_ref::<Arc<dyn Runner>>()?.clone();
                    Some((self.plan.nodes[id].def.name.clone(), runner))
                })
                .collect()
        });
        for (name, runner) in runners {
            if let Some(cause) = self.plan.token.cause() {
                tracing::info!(context = %self.plan.name, runner = %name, %cause, "skipping runner");
                break;
            }
            tracing::debug!(context = %self.plan.name, runner = %name, "running");
            runner
                .run(&self.plan.token)
                .map_err(|source| Error::RunnerFailed {
                    runner: name,
                    source,
                })?;
        }
        Ok(())
    }

    /// Whether close has begun.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes children, cancels the token, publishes [`ContextClosed`],
    /// drains the [`executor`](Self::executor) (within
    /// `appctx.executor.close_timeout_s`), stops lifecycles (reverse phase order, each phase bounded by the stop
    /// timeout) and drops components in reverse creation order. Idempotent.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let children: Vec<Arc<ApplicationContext>> = lock(&self.children)
            .drain(..)
            .filter_map(|c| c.upgrade())
            .collect();
        for child in children.iter().rev() {
            child.close();
        }
        self.plan
            .token
            .cancel(format!("context `{}` closed", self.plan.name));
        self.publish(&ContextClosed {
            context: self.plan.name.clone(),
            scope: self.plan.scope,
        });
        self.plan.executor.close();
        let started = std::mem::take(&mut *lock(&self.started));
        stop_all(started, self.plan.stop_timeout, &self.plan.name);
        self.instances.close();
        tracing::debug!(context = %self.plan.name, "closed");
    }
}

impl Drop for ApplicationContext {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for ApplicationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationContext")
            .field("name", &self.plan.name)
            .field("scope", &self.plan.scope)
            .field("components", &self.plan.nodes.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl std::fmt::Debug for ContextBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextBuilder")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("components", &self.defs.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PreparedContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedContext")
            .field("name", &self.plan.name)
            .field("components", &self.plan.nodes.len())
            .finish()
    }
}

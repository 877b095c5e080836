//! Assembling a context: environment, programmatic components, parent.

use std::sync::Arc;
use std::time::Duration;

use super::ApplicationContext;
use super::prepare::PreparedContext;
use crate::component::{ComponentDef, Scope, short_type_name};
use crate::environment::Environment;
use crate::error::Result;
use crate::events::EventListener;
use crate::report::ConditionReport;
use crate::shutdown::CancellationToken;

/// Builds a root context ([`ContextBuilder::new`]) or a child context
/// ([`ApplicationContext::child`]).
///
/// Defaults that work: all link-time registered components of the context's
/// scope, an empty environment, a fresh shutdown token, 30 s stop timeout per
/// lifecycle phase.
pub struct ContextBuilder {
    pub(crate) name: String,
    pub(crate) scope: Scope,
    pub(crate) env: Option<Arc<Environment>>,
    pub(crate) parent: Option<Arc<ApplicationContext>>,
    pub(crate) defs: Vec<ComponentDef>,
    pub(crate) use_registry: bool,
    pub(crate) known_prefixes: Vec<String>,
    pub(crate) token: Option<CancellationToken>,
    pub(crate) stop_timeout: Duration,
}

impl Default for ContextBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextBuilder {
    /// A root context (scope [`Scope::Singleton`]), named `application`.
    pub fn new() -> Self {
        ContextBuilder {
            name: "application".to_string(),
            scope: Scope::Singleton,
            env: None,
            parent: None,
            defs: Vec::new(),
            use_registry: true,
            known_prefixes: Vec::new(),
            token: None,
            stop_timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn child_of(parent: &Arc<ApplicationContext>, scope: &'static str) -> Self {
        ContextBuilder {
            name: scope.to_string(),
            scope: Scope::Named(scope),
            env: Some(parent.plan.env.clone()),
            parent: Some(parent.clone()),
            use_registry: parent.use_registry,
            stop_timeout: parent.plan.stop_timeout,
            ..ContextBuilder::new()
        }
    }

    /// Names the context (in reports and errors), e.g. `rank-3`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The configuration (a child uses its parent's unless given one).
    pub fn environment(mut self, env: Environment) -> Self {
        self.env = Some(Arc::new(env));
        self
    }

    /// Adds a component definition (created in this context, whatever its scope says).
    pub fn component(mut self, def: ComponentDef) -> Self {
        self.defs.push(def);
        self
    }

    /// Adds a ready value as a component named after its type.
    pub fn instance<T: ?Sized + Send + Sync + 'static>(self, value: Arc<T>) -> Self {
        let name = short_type_name(std::any::type_name::<T>());
        self.component(ComponentDef::instance(name, value))
    }

    /// Adds a ready value as a component with a given name.
    pub fn named_instance<T: ?Sized + Send + Sync + 'static>(
        self,
        name: impl Into<String>,
        value: Arc<T>,
    ) -> Self {
        self.component(ComponentDef::instance(name, value))
    }

    /// Adds an event listener for `E` (receives `ContextRefreshed` of this context too).
    pub fn listener<E: 'static>(self, listener: impl Fn(&E) + Send + Sync + 'static) -> Self {
        let name = format!(
            "listener<{}>#{}",
            short_type_name(std::any::type_name::<E>()),
            self.defs.len()
        );
        let listener: Arc<dyn EventListener<E>> = Arc::new(listener);
        self.component(ComponentDef::instance(name, listener))
    }

    /// Whether to include link-time registered components (default `true`;
    /// children inherit the parent's choice). Turn off for fully programmatic contexts.
    pub fn use_registry(mut self, yes: bool) -> Self {
        self.use_registry = yes;
        self
    }

    /// Declares a configuration prefix that the application reads itself, so
    /// its keys are not reported as unknown.
    pub fn known_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.known_prefixes.push(prefix.into());
        self
    }

    /// Parents the context's shutdown token under `token` (e.g. one cancelled
    /// by signals). Closing the context never cancels `token` itself.
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }

    /// How long close waits for each lifecycle phase to stop.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Validates everything without creating any component.
    pub fn prepare(self) -> Result<PreparedContext> {
        super::prepare::prepare(self)
    }

    /// Evaluates conditions only (no graph validation): what `components`
    /// listings print, even when the graph would not validate.
    pub fn condition_report(&self) -> Result<ConditionReport> {
        super::prepare::condition_report(self)
    }

    /// `prepare()` then `refresh()`.
    pub fn build(self) -> Result<Arc<ApplicationContext>> {
        self.prepare()?.refresh()
    }
}

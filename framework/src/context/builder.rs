//! Assembling a context: environment, programmatic components, parent.

use std::sync::Arc;
use std::time::Duration;

use super::ApplicationContext;
use super::prepare::PreparedContext;
use super::selection::Selection;
use crate::component::{ComponentDef, Scope, short_type_name};
use crate::environment::Environment;
use crate::error::Result;
use crate::events::EventListener;
use crate::module::Module;
use crate::post_processor::PostProcessor;
use crate::report::ConditionReport;
use crate::shutdown::CancellationToken;

/// Where a context's registered components come from.
#[derive(Debug, Clone)]
pub(crate) enum Modules {
    /// The modules named with [`ContextBuilder::module`] (and what they require).
    Named(Vec<&'static Module>),
    /// Every linked module ([`ContextBuilder::all_modules`]).
    All,
    /// The parent's selection (a child context).
    Inherited(Arc<Selection>),
}

/// Builds a root context ([`ContextBuilder::new`]) or a child context
/// ([`ApplicationContext::child`]).
///
/// Defaults that work: no registered component (name modules with
/// [`module`](Self::module), or take every linked one with
/// [`all_modules`](Self::all_modules)), an empty environment, a fresh shutdown token, 30 s stop timeout per
/// lifecycle phase.
pub struct ContextBuilder {
    pub(crate) name: String,
    pub(crate) scope: Scope,
    pub(crate) env: Option<Arc<Environment>>,
    pub(crate) parent: Option<Arc<ApplicationContext>>,
    pub(crate) defs: Vec<ComponentDef>,
    pub(crate) modules: Modules,
    pub(crate) exclusions: Vec<String>,
    pub(crate) overrides: Vec<ComponentDef>,
    pub(crate) known_prefixes: Vec<String>,
    pub(crate) post_processors: Vec<PostProcessor>,
    pub(crate) strict_sections: bool,
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
            modules: Modules::Named(Vec::new()),
            exclusions: Vec::new(),
            overrides: Vec::new(),
            known_prefixes: Vec::new(),
            post_processors: Vec::new(),
            strict_sections: false,
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
            modules: Modules::Inherited(parent.selection.clone()),
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

    /// Takes part the components registered by the crate that declared
    /// `module` (with [`module!`](crate::module)), and those of the modules
    /// it requires. Repeatable. Children inherit their parent's modules.
    pub fn module(mut self, module: &'static Module) -> Self {
        match &mut self.modules {
            Modules::Named(named) => named.push(module),
            Modules::All | Modules::Inherited(_) => {}
        }
        self
    }

    /// Takes part the components of every linked module: what an
    /// application's own binary wants, and never a library embedded in one
    /// (it would pick up every other library's components).
    pub fn all_modules(mut self) -> Self {
        if !matches!(self.modules, Modules::Inherited(_)) {
            self.modules = Modules::All;
        }
        self
    }

    /// Leaves the component named `name` out of this context and its
    /// children, as if it were not registered (like `appctx.exclude` in
    /// the configuration). A component that needs it fails in `prepare()`.
    pub fn exclude(mut self, name: impl Into<String>) -> Self {
        self.exclusions.push(name.into());
        self
    }

    /// Replaces the component named `name` (registered or added to the
    /// builder, of this context or a child scope) by a ready value, for
    /// tests: the value keeps the component's name, scope and conditions.
    /// `T` must be the type the component provides.
    pub fn override_component<T: ?Sized + Send + Sync + 'static>(
        mut self,
        name: impl Into<String>,
        value: Arc<T>,
    ) -> Self {
        self.overrides.push(ComponentDef::instance(name, value));
        self
    }

    /// Declares a configuration prefix that the application reads itself, so
    /// its keys are not reported as unknown.
    pub fn known_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.known_prefixes.push(prefix.into());
        self
    }

    /// Adds a post-processor for this context's components (not its
    /// children's; registered ones, see [`post_processor!`](crate::post_processor),
    /// apply in every context of their module). It joins the pipeline of its
    /// type in (order, name) order.
    pub fn post_processor(mut self, post_processor: PostProcessor) -> Self {
        self.post_processors.push(post_processor);
        self
    }

    /// Rejects, in `prepare()`, a configuration key under a section that
    /// only inactive components bind ([`Error::UnreadConfigKey`](crate::Error::UnreadConfigKey)):
    /// `data.stride` set while the one component reading `data` is switched
    /// off is a mistake the user wants to hear about. Off by default,
    /// because an application may read such a section itself; declare
    /// those with [`known_prefix`](Self::known_prefix). A root context's
    /// setting covers its children (they share its configuration).
    pub fn strict_sections(mut self) -> Self {
        self.strict_sections = true;
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

//! Component definitions: what a component provides, needs, and when it applies.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::condition::Condition;
use crate::context::Resolver;
use crate::error::BoxError;
use crate::factory::Factory;
use crate::inject::Dependency;

/// A created component, type-erased: an `Arc<dyn Any>` holding an `Arc<T>`.
pub(crate) type Stored = Arc<dyn Any + Send + Sync>;

type ErasedFactory = dyn Fn(&Resolver<'_>) -> Result<Stored, BoxError> + Send + Sync;

/// Identifies a provided type (`Foo` or `dyn Trait`) by `TypeId`, with its name for messages.
#[derive(Clone, Copy, Debug)]
pub struct TypeKey {
    id: TypeId,
    name: &'static str,
}

impl TypeKey {
    /// The key of `T`.
    pub fn of<T: ?Sized + 'static>() -> Self {
        TypeKey {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }

    /// The full type name, e.g. `dyn my_app::Store`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The type name without module paths, e.g. `dyn Store`.
    pub fn short_name(&self) -> String {
        short_type_name(self.name)
    }
}

impl PartialEq for TypeKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for TypeKey {}
impl Hash for TypeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl fmt::Display for TypeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short_name())
    }
}

/// Strips module paths: `alloc::sync::Arc<dyn a::b::Store>` → `Arc<dyn Store>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut start = 0;
    for (i, c) in full.char_indices() {
        if !(c.is_alphanumeric() || c == '_' || c == ':') {
            out.push_str(last_segment(&full[start..i]));
            out.push(c);
            start = i + c.len_utf8();
        }
    }
    out.push_str(last_segment(&full[start..]));
    out
}

/// The last `::` segment of a path.
fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or("")
}

/// How long a component lives, i.e. which context instantiates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// One per root context (per process): created in the context built with
    /// [`ContextBuilder::new`](crate::ContextBuilder::new), visible to all its children.
    #[default]
    Singleton,
    /// Created in each child context of this scope (e.g. `"rank"`: one child
    /// per rank, see [`ApplicationContext::child`](crate::ApplicationContext::child)).
    Named(&'static str),
}

impl Scope {
    /// A named child scope.
    pub const fn named(name: &'static str) -> Self {
        Scope::Named(name)
    }
}

impl Scope {
    /// `singleton`, or the child scope's name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Scope::Singleton => "singleton",
            Scope::Named(name) => name,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the context needs to know about one component, before it exists.
///
/// Build one with [`ComponentDef::new`] (a function whose parameters are its
/// dependencies), [`ComponentDef::instance`] (a ready value) or
/// [`ComponentDef::manual`] (explicit dependencies), then refine it with
/// [`when`](Self::when), [`order`](Self::order), [`scope`](Self::scope), ...
#[derive(Clone)]
pub struct ComponentDef {
    pub(crate) name: String,
    pub(crate) provides: TypeKey,
    pub(crate) dependencies: Vec<Dependency>,
    pub(crate) factory: Arc<ErasedFactory>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) order: i32,
    pub(crate) scope: Scope,
    pub(crate) primary: bool,
    pub(crate) origin: String,
    /// Where `component!` registered it (this decides its module); `None`
    /// for definitions given to a builder.
    pub(crate) module_path: Option<&'static str>,
    /// Components created before it, by name, without being injected.
    pub(crate) depends_on: Vec<String>,
    /// Created afresh for every injection and lookup, never held by the context.
    pub(crate) prototype: bool,
    /// Created on its first lookup instead of at refresh.
    pub(crate) lazy: bool,
}

impl fmt::Debug for ComponentDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentDef")
            .field("name", &self.name)
            .field("provides", &self.provides.name())
            .field("scope", &self.scope)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl ComponentDef {
    /// A component made by `factory`, a function (or closure) whose parameters
    /// are [`Injectable`](crate::Injectable) and which returns `Arc<T>` or
    /// `Result<Arc<T>, E>` with `E: Into<BoxError>`. `T` (a type or `dyn Trait`)
    /// is what the component provides.
    pub fn new<Args, F: Factory<Args>>(name: impl Into<String>, factory: F) -> Self {
        let create = move |r: &Resolver<'_>| -> Result<Stored, BoxError> {
            let value: Arc<F::Output> = factory.create(r)?;
            Ok(Arc::new(value))
        };
        Self::erased(
            name.into(),
            TypeKey::of::<F::Output>(),
            F::dependencies(),
            Arc::new(create),
        )
    }

    /// A component that is an existing value.
    pub fn instance<T: ?Sized + Send + Sync + 'static>(
        name: impl Into<String>,
        value: Arc<T>,
    ) -> Self {
        let stored: Stored = Arc::new(value);
        Self::erased(
            name.into(),
            TypeKey::of::<T>(),
            Vec::new(),
            Arc::new(move |_: &Resolver<'_>| Ok(stored.clone())),
        )
    }

    /// A component with explicitly declared dependencies and a factory that
    /// looks them up itself (e.g. [`Resolver::get_named`]). For generated
    /// or data-driven component sets.
    pub fn manual<T, F>(name: impl Into<String>, dependencies: Vec<Dependency>, factory: F) -> Self
    where
        T: ?Sized + Send + Sync + 'static,
        F: Fn(&Resolver<'_>) -> Result<Arc<T>, BoxError> + Send + Sync + 'static,
    {
        let create = move |r: &Resolver<'_>| -> Result<Stored, BoxError> {
            let value: Arc<T> = factory(r)?;
            Ok(Arc::new(value))
        };
        Self::erased(
            name.into(),
            TypeKey::of::<T>(),
            dependencies,
            Arc::new(create),
        )
    }

    fn erased(
        name: String,
        provides: TypeKey,
        dependencies: Vec<Dependency>,
        factory: Arc<ErasedFactory>,
    ) -> Self {
        ComponentDef {
            name,
            provides,
            dependencies,
            factory,
            conditions: Vec::new(),
            order: 0,
            scope: Scope::Singleton,
            primary: false,
            origin: "programmatic".to_string(),
            module_path: None,
            depends_on: Vec::new(),
            prototype: false,
            lazy: false,
        }
    }

    /// Renames the component.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a condition; the component is active only if all hold.
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Active only when the configuration key `key` equals this component's
    /// name: the common "provider chosen by a config key" case.
    pub fn select(self, key: impl Into<String>) -> Self {
        self.when(Condition::SelectedBy(key.into()))
    }

    /// Position among providers of the same type (`Vec` injection, runners,
    /// listeners); lower first, ties by name. Default 0.
    pub fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// Which contexts instantiate it (default [`Scope::Singleton`]).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Preferred when several active providers compete for a single injection.
    pub fn primary(mut self) -> Self {
        self.primary = true;
        self
    }

    /// Prototype scope: a fresh instance for every component that injects
    /// it and for every lookup (`get`, `get_all`, ...), created by its
    /// factory at that moment within its context. The context keeps none, so
    /// a prototype is never started as a `Lifecycle`, run as a `Runner`, nor
    /// dropped on close; its factory's failure at a lookup is that lookup's
    /// error.
    pub fn prototype(mut self) -> Self {
        self.prototype = true;
        self
    }

    /// Lazy: not created at refresh, but on its first lookup (a `get`, a
    /// [`Lazy`](crate::Lazy) handle's `get`, or the creation of a component
    /// that injects it), once; then held and closed like any other. A lazy
    /// `dyn Lifecycle` or `dyn Runner` is started or run only if it exists
    /// by then.
    pub fn lazy(mut self) -> Self {
        self.lazy = true;
        self
    }

    /// Records where the definition was registered (the macro passes `file:line`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Creates the component named `name` before this one, without
    /// injecting it (Spring's `@DependsOn`): for side effects such as a
    /// registry another component fills. Repeatable; a missing name is an
    /// error of `prepare()`.
    pub fn depends_on(mut self, name: impl Into<String>) -> Self {
        self.depends_on.push(name.into());
        self
    }

    /// Records the registering `module_path!()`, which decides the
    /// component's module. Used by [`component!`](crate::component).
    #[doc(hidden)]
    pub fn __registered_in(mut self, module_path: &'static str) -> Self {
        self.module_path = Some(module_path);
        self
    }

    /// The component's name.
    pub fn component_name(&self) -> &str {
        &self.name
    }

    /// The provided type.
    pub fn provides(&self) -> TypeKey {
        self.provides
    }

    /// The declared dependencies (from the factory's parameter types).
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// The conditions.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The scope.
    pub fn component_scope(&self) -> Scope {
        self.scope
    }

    /// The order.
    pub fn component_order(&self) -> i32 {
        self.order
    }
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn short_type_names_drop_every_module_path() {
        let cases = [
            ("alloc::sync::Arc<dyn a::b::Store>", "Arc<dyn Store>"),
            ("usize", "usize"),
            ("(a::B, &c::D<e::F>)", "(B, &D<F>)"),
            ("dyn appctx::lifecycle::Runner", "dyn Runner"),
        ];
        for (full, short) in cases {
            assert_eq!(short_type_name(full), short, "{full}");
        }
    }
}

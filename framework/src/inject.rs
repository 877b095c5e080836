//! Parameter types a component function may take, and what each needs.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::component::TypeKey;
use crate::config::{Config, ConfigSection};
use crate::context::Resolver;
use crate::environment::Environment;
use crate::error::Result;
use crate::handle::ContextHandle;
use crate::shutdown::CancellationToken;

/// A configuration section a component binds: its prefix and how to bind it.
#[derive(Clone, Copy)]
pub struct SectionDecl {
    /// Dotted key prefix.
    pub prefix: &'static str,
    /// The Rust type bound.
    pub type_name: &'static str,
    pub(crate) type_id: TypeId,
    pub(crate) bind: fn(&Environment) -> Result<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for SectionDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Config<{}> @ {}", self.type_name, self.prefix)
    }
}

impl SectionDecl {
    /// The declaration of section `T`.
    pub fn of<T: ConfigSection>() -> Self {
        fn bind<T: ConfigSection>(env: &Environment) -> Result<Arc<dyn Any + Send + Sync>> {
            let value: T = env.bind(T::PREFIX)?;
            Ok(Arc::new(value))
        }
        SectionDecl {
            prefix: T::PREFIX,
            type_name: std::any::type_name::<T>(),
            type_id: TypeId::of::<T>(),
            bind: bind::<T>,
        }
    }
}

/// The [`Dependency::kind_label`] of a `Lazy<T>` parameter.
pub(crate) const LAZY_KIND: &str = "lazy";

/// One dependency of a component, as declared by a parameter type.
#[derive(Debug, Clone)]
pub enum Dependency {
    /// Exactly one provider (`Arc<T>`).
    One(TypeKey),
    /// At most one provider (`Option<Arc<T>>`).
    Optional(TypeKey),
    /// Every provider, ordered (`Vec<Arc<T>>`).
    All(TypeKey),
    /// The provider with this component name (`Named<T, Q>`, or
    /// [`Dependency::named`] for manual definitions).
    Named(TypeKey, String),
    /// Exactly one provider, created on first use (`Lazy<T>`): chosen and
    /// validated like [`One`](Self::One), but it imposes no creation order.
    Lazy(TypeKey),
    /// A configuration section (`Config<T>`).
    Config(SectionDecl),
    /// Something the context itself supplies (the shutdown token); no graph edge.
    Context(&'static str),
}

impl Dependency {
    /// The provider type this dependency points at, if it is a component.
    pub fn type_key(&self) -> Option<TypeKey> {
        match self {
            Dependency::One(k)
            | Dependency::Optional(k)
            | Dependency::All(k)
            | Dependency::Named(k, _)
            | Dependency::Lazy(k) => Some(*k),
            Dependency::Config(_) | Dependency::Context(_) => None,
        }
    }

    /// Short label for graphs and reports (`one`, `optional`, `all`, `named`, `lazy`, ...).
    pub fn kind_label(&self) -> &'static str {
        match self {
            Dependency::One(_) => "one",
            Dependency::Optional(_) => "optional",
            Dependency::All(_) => "all",
            Dependency::Named(..) => "named",
            Dependency::Lazy(_) => LAZY_KIND,
            Dependency::Config(_) => "config",
            Dependency::Context(_) => "context",
        }
    }

    /// A dependency on the provider named `name`, for [`ComponentDef::manual`](crate::ComponentDef::manual).
    pub fn named<T: ?Sized + 'static>(name: impl Into<String>) -> Self {
        Dependency::Named(TypeKey::of::<T>(), name.into())
    }
}

/// A type that can be a parameter of a component function.
///
/// Implemented for `Arc<T>`, `Option<Arc<T>>`, `Vec<Arc<T>>`,
/// [`Lazy<T>`](crate::Lazy), [`Named<T, Q>`](crate::Named) (`T` a type or
/// `dyn Trait`), [`Config<T>`], [`ContextHandle`] and [`CancellationToken`].
pub trait Injectable: Sized + 'static {
    /// What this parameter needs, for the dependency graph.
    fn dependency() -> Dependency;
    /// Fetches the value from already-created components.
    fn resolve(resolver: &Resolver<'_>) -> Result<Self>;
}

impl<T: ?Sized + Send + Sync + 'static> Injectable for Arc<T> {
    fn dependency() -> Dependency {
        Dependency::One(TypeKey::of::<T>())
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        resolver.get::<T>()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Injectable for Option<Arc<T>> {
    fn dependency() -> Dependency {
        Dependency::Optional(TypeKey::of::<T>())
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        resolver.get_optional::<T>()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Injectable for Vec<Arc<T>> {
    fn dependency() -> Dependency {
        Dependency::All(TypeKey::of::<T>())
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        resolver.get_all::<T>()
    }
}

impl<T: ConfigSection> Injectable for Config<T> {
    fn dependency() -> Dependency {
        Dependency::Config(SectionDecl::of::<T>())
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        resolver.config::<T>()
    }
}

impl Injectable for ContextHandle {
    fn dependency() -> Dependency {
        Dependency::Context("context handle")
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        Ok(resolver.plan.handle.clone())
    }
}

impl Injectable for CancellationToken {
    fn dependency() -> Dependency {
        Dependency::Context("shutdown token")
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        Ok(resolver.shutdown_token().clone())
    }
}

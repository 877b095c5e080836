//! Asking for a provider by its component name from a component function:
//! `Named<T, Q>`, where the zero-sized type `Q` carries the name.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use crate::component::TypeKey;
use crate::context::Resolver;
use crate::error::Result;
use crate::inject::{Dependency, Injectable};

/// A component name as a type, for [`Named`]. Declare one with
/// [`qualifier!`](crate::qualifier).
pub trait Qualifier: 'static {
    /// The component name it stands for.
    const NAME: &'static str;
}

/// Declares zero-sized [`Qualifier`] types, each standing for a component
/// name: `appctx::qualifier!(pub Primary = "primary_db");` (several may be
/// given, separated by `;`).
#[macro_export]
macro_rules! qualifier {
    ($($(#[$meta:meta])* $vis:vis $qualifier:ident = $name:literal);+ $(;)?) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
            $vis struct $qualifier;
            impl $crate::Qualifier for $qualifier {
                const NAME: &'static str = $name;
            }
        )+
    };
}

/// A parameter that injects the provider of `T` whose component name is
/// `Q::NAME` (nearest context first), where several components provide `T`.
///
/// `prepare()` checks it like `Arc<T>`: a name no active component has is
/// [`Error::QualifierNotFound`](crate::Error::QualifierNotFound), listing
/// the providers of `T` that do exist (or, for an inactive or excluded
/// component of that name, [`Error::MissingDependency`](crate::Error::MissingDependency)
/// with why it is inactive). Component names are unique in a context, so
/// a name is never ambiguous; a child's component shadows an ancestor's.
///
/// ```
/// use std::sync::Arc;
/// use appctx::{ComponentDef, ContextBuilder, Named};
///
/// pub struct Db(&'static str);
/// appctx::qualifier!(pub Primary = "primary_db"; pub Replica = "replica_db");
///
/// struct Repo { write: Arc<Db>, read: Arc<Db> }
/// fn repo(write: Named<Db, Primary>, read: Named<Db, Replica>) -> Arc<Repo> {
///     Arc::new(Repo { write: write.into_arc(), read: read.into_arc() })
/// }
///
/// let ctx = ContextBuilder::new()
///     .named_instance("primary_db", Arc::new(Db("10.0.0.1")))
///     .named_instance("replica_db", Arc::new(Db("10.0.0.2")))
///     .component(ComponentDef::new("repo", repo))
///     .build()?;
/// let repo = ctx.get::<Repo>()?;
/// assert_eq!((repo.write.0, repo.read.0), ("10.0.0.1", "10.0.0.2"));
/// # Ok::<(), appctx::Error>(())
/// ```
pub struct Named<T: ?Sized, Q> {
    value: Arc<T>,
    qualifier: PhantomData<fn() -> Q>,
}

impl<T: ?Sized, Q: Qualifier> Named<T, Q> {
    /// The component name it was resolved by.
    pub const NAME: &'static str = Q::NAME;

    /// The injected provider.
    pub fn into_arc(self) -> Arc<T> {
        self.value
    }
}

impl<T: ?Sized, Q> Deref for Named<T, Q> {
    type Target = Arc<T>;
    fn deref(&self) -> &Arc<T> {
        &self.value
    }
}

impl<T: ?Sized, Q> Clone for Named<T, Q> {
    fn clone(&self) -> Self {
        Named {
            value: self.value.clone(),
            qualifier: PhantomData,
        }
    }
}

impl<T: ?Sized + 'static, Q: Qualifier> fmt::Debug for Named<T, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Named<{}, \"{}\">", TypeKey::of::<T>(), Q::NAME)
    }
}

impl<T: ?Sized + Send + Sync + 'static, Q: Qualifier> Injectable for Named<T, Q> {
    fn dependency() -> Dependency {
        Dependency::named::<T>(Q::NAME)
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        Ok(Named {
            value: resolver.get_named::<T>(Q::NAME)?,
            qualifier: PhantomData,
        })
    }
}

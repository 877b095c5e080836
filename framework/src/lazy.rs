//! `Lazy<T>`: a parameter that injects a way to get the provider of `T`
//! later, instead of the provider itself.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::component::TypeKey;
use crate::context::{ApplicationContext, Resolver};
use crate::error::{Error, Result};
use crate::inject::{Dependency, Injectable};

/// A handle on the single provider of `T` (a type or `dyn Trait`), looked
/// up in the injecting component's context at each [`get`](Self::get).
///
/// `prepare()` checks it like `Arc<T>` (a missing or ambiguous provider,
/// scope inversion), and the graph shows the edge as `lazy`; but the edge
/// does not order creation, so it can break a construction cycle: `a` may
/// take `Lazy<B>` while `b` takes `Arc<A>`. The provider is created at the
/// first `get` if it does not exist yet (a [`lazy`](crate::ComponentDef::lazy)
/// component, or one refresh has not reached), once, whichever threads ask.
///
/// A `get` that needs a component still being created on its own thread
/// (`a`'s factory calls `get`, and `b`'s factory needs `a`) is
/// [`Error::LazyCycle`], naming the path; call `get` after the factory has
/// returned instead. Creations in one context happen one at a time, so a
/// factory must not wait for another thread that creates in the same context.
///
/// The handle holds neither the provider nor the context: a cycle through
/// it keeps nothing alive, and after the context closes `get` fails.
///
/// ```
/// use std::sync::Arc;
/// use appctx::{ComponentDef, ContextBuilder, Lazy};
///
/// struct Parent { child: Lazy<Child> }
/// struct Child { parent: Arc<Parent> }
///
/// let ctx = ContextBuilder::new()
///     .component(ComponentDef::new("parent", |child: Lazy<Child>| Arc::new(Parent { child })))
///     .component(ComponentDef::new("child", |parent: Arc<Parent>| Arc::new(Child { parent })))
///     .build()?;
/// let parent = ctx.get::<Parent>()?;
/// assert!(Arc::ptr_eq(&parent.child.get()?.parent, &parent));
/// # Ok::<(), appctx::Error>(())
/// ```
pub struct Lazy<T: ?Sized> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: ?Sized> {
    /// The context of the component that injected it.
    context: Weak<ApplicationContext>,
    context_name: String,
    provides: std::marker::PhantomData<fn() -> Arc<T>>,
}

impl<T: ?Sized + Send + Sync + 'static> Lazy<T> {
    /// The provider, created now if it does not exist yet (a prototype
    /// provider gives a fresh instance at each call).
    ///
    /// Errors: the provider's creation failure (and a later `get` tries
    /// again), [`Error::LazyCycle`], or [`Error::ContextClosed`] once its
    /// context is closed or dropped.
    pub fn get(&self) -> Result<Arc<T>> {
        let context = self
            .inner
            .context
            .upgrade()
            .ok_or_else(|| Error::ContextClosed {
                context: self.inner.context_name.clone(),
            })?;
        context.get::<T>()
    }
}

impl<T: ?Sized> Clone for Lazy<T> {
    fn clone(&self) -> Self {
        Lazy {
            inner: self.inner.clone(),
        }
    }
}

impl<T: ?Sized + 'static> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy")
            .field("provides", &TypeKey::of::<T>().name())
            .field("context", &self.inner.context_name)
            .finish()
    }
}

impl<T: ?Sized + Send + Sync + 'static> Injectable for Lazy<T> {
    fn dependency() -> Dependency {
        Dependency::Lazy(TypeKey::of::<T>())
    }
    fn resolve(resolver: &Resolver<'_>) -> Result<Self> {
        Ok(Lazy {
            inner: Arc::new(Inner {
                context: resolver.instances.owner().clone(),
                context_name: resolver.plan.name.clone(),
                provides: std::marker::PhantomData,
            }),
        })
    }
}

//! Post-processors: functions that see every created component of one
//! provided type and return the value the context publishes instead (a
//! wrapper that times calls, a check, a registration).

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::component::{Stored, TypeKey};
use crate::error::BoxError;
use crate::factory::IntoComponent;

type ErasedApply = dyn Fn(&str, Stored) -> Result<Stored, BoxError> + Send + Sync;

/// A post-processor of the components that provide `T` (a type or
/// `dyn Trait`): a function `(component name, instance) -> instance` that
/// returns `Arc<T>` or `Result<Arc<T>, E>`.
///
/// It runs once per created instance (each prototype instance, a lazy
/// component when it is created), before anything can inject the instance,
/// in every context that takes its module (registered with
/// [`post_processor!`](crate::post_processor)) or in the one context whose
/// builder was given it ([`ContextBuilder::post_processor`](crate::ContextBuilder::post_processor)).
/// Several post-processors of one type form a pipeline in (order, name)
/// order: the first receives the factory's value, each next one the
/// previous one's result, and the context holds the last result. An error
/// fails the component's creation ([`Error::PostProcessorFailed`](crate::Error::PostProcessorFailed)).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use appctx::{ComponentDef, ContextBuilder, PostProcessor};
///
/// trait Greeter: Send + Sync { fn greet(&self) -> String; }
/// struct Plain;
/// impl Greeter for Plain { fn greet(&self) -> String { "hello".into() } }
///
/// /// Counts the calls of the greeter it wraps.
/// struct Counted { inner: Arc<dyn Greeter>, calls: AtomicUsize }
/// impl Greeter for Counted {
///     fn greet(&self) -> String {
///         self.calls.fetch_add(1, Ordering::Relaxed);
///         self.inner.greet()
///     }
/// }
///
/// fn counted(_component: &str, inner: Arc<dyn Greeter>) -> Arc<dyn Greeter> {
///     Arc::new(Counted { inner, calls: AtomicUsize::new(0) })
/// }
///
/// let ctx = ContextBuilder::new()
///     .component(ComponentDef::new("plain", || Arc::new(Plain) as Arc<dyn Greeter>))
///     .post_processor(PostProcessor::new("counted", counted))
///     .post_processor(PostProcessor::new("shout", |_: &str, g: Arc<dyn Greeter>| {
///         struct Shout(Arc<dyn Greeter>);
///         impl Greeter for Shout { fn greet(&self) -> String { self.0.greet().to_uppercase() } }
///         Arc::new(Shout(g)) as Arc<dyn Greeter>
///     }).order(1))
///     .build()?;
/// assert_eq!(ctx.get::<dyn Greeter>()?.greet(), "HELLO");
/// # Ok::<(), appctx::Error>(())
/// ```
#[derive(Clone)]
pub struct PostProcessor {
    pub(crate) name: String,
    pub(crate) target: TypeKey,
    pub(crate) order: i32,
    pub(crate) origin: String,
    pub(crate) module_path: Option<&'static str>,
    pub(crate) apply: Arc<ErasedApply>,
}

impl PostProcessor {
    /// A post-processor named `name` (in errors and reports) applying `f`
    /// to every created component that provides `T`.
    pub fn new<T, F, R>(name: impl Into<String>, f: F) -> Self
    where
        T: ?Sized + Send + Sync + 'static,
        F: Fn(&str, Arc<T>) -> R + Send + Sync + 'static,
        R: IntoComponent<Output = T>,
    {
        let apply = move |component: &str, stored: Stored| -> Result<Stored, BoxError> {
            let value = stored
                .downcast_ref::<Arc<T>>()
                .cloned()
                .ok_or("the instance is not of the post-processed type")?;
            let processed: Arc<T> = f(component, value).into_component()?;
            Ok(Arc::new(processed))
        };
        PostProcessor {
            name: name.into(),
            target: TypeKey::of::<T>(),
            order: 0,
            origin: "programmatic".to_string(),
            module_path: None,
            apply: Arc::new(apply),
        }
    }

    /// Position in the pipeline of its type: lower first, ties by name. Default 0.
    pub fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// Renames the post-processor.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Records where it was registered (the macro passes `file:line`).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Records the registering `module_path!()`, which decides its module.
    /// Used by [`post_processor!`](crate::post_processor).
    #[doc(hidden)]
    pub fn __registered_in(mut self, module_path: &'static str) -> Self {
        self.module_path = Some(module_path);
        self
    }

    /// The post-processor's name.
    pub fn post_processor_name(&self) -> &str {
        &self.name
    }

    /// The type whose components it processes.
    pub fn target(&self) -> TypeKey {
        self.target
    }
}

impl fmt::Debug for PostProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostProcessor")
            .field("name", &self.name)
            .field("target", &self.target.name())
            .field("order", &self.order)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// One link-time registration of a post-processor (see
/// [`post_processor!`](crate::post_processor)).
pub struct PostProcessorRegistration {
    build: fn() -> PostProcessor,
}

impl PostProcessorRegistration {
    /// Wraps a constructor. Used by [`post_processor!`](crate::post_processor).
    pub const fn new(build: fn() -> PostProcessor) -> Self {
        PostProcessorRegistration { build }
    }
}

inventory::collect!(PostProcessorRegistration);

/// Every registered post-processor, built once.
pub(crate) fn registered_post_processors() -> &'static [Arc<PostProcessor>] {
    static ALL: OnceLock<Vec<Arc<PostProcessor>>> = OnceLock::new();
    ALL.get_or_init(|| {
        inventory::iter::<PostProcessorRegistration>
            .into_iter()
            .map(|r| Arc::new((r.build)()))
            .collect()
    })
}

/// Registers a post-processor with the link-time registry, like
/// [`component!`](crate::component) registers a component: the first
/// argument is a function `fn(&str, Arc<T>) -> Arc<T>` (or
/// `-> Result<Arc<T>, E>`), the rest `method = value` pairs applied to
/// [`PostProcessor`] (`name`, default the function's name; `order`). It
/// applies in the contexts that take the registering crate's module.
///
/// ```
/// use std::sync::Arc;
/// use appctx::post_processor;
///
/// appctx::module!(pub AUDITED, name = "audited");
/// pub trait Store: Send + Sync { fn get(&self, key: &str) -> Option<String>; }
///
/// /// Logs which component each store is.
/// fn announce(component: &str, store: Arc<dyn Store>) -> Arc<dyn Store> {
///     println!("store `{component}` created");
///     store
/// }
/// post_processor!(announce, order = -10);
/// ```
#[macro_export]
macro_rules! post_processor {
    ($function:path $(, $method:ident $(= $value:expr)?)* $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::PostProcessorRegistration::new(|| {
                $crate::PostProcessor::new(stringify!($function), $function)
                    .origin(concat!(module_path!(), " (", file!(), ":", line!(), ")"))
                    .__registered_in(module_path!())
                    $( .$method($($value)?) )*
            })
        }
    };
}

//! Components registered at link time through `inventory`, and the
//! [`component!`](crate::component) macro that registers them.

use std::sync::{Arc, OnceLock};

use crate::component::ComponentDef;

/// One link-time registration: a constructor of the definition (inventory
/// needs a constant; the definition itself is built on first use).
pub struct Registration {
    build: fn() -> ComponentDef,
}

impl Registration {
    /// Wraps a constructor. Used by [`component!`](crate::component).
    pub const fn new(build: fn() -> ComponentDef) -> Self {
        Registration { build }
    }
}

inventory::collect!(Registration);

/// Every registered definition, sorted by (name, origin) so that every run
/// sees the same order whatever the link order was.
pub fn registered() -> &'static [Arc<ComponentDef>] {
    static ALL: OnceLock<Vec<Arc<ComponentDef>>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut defs: Vec<Arc<ComponentDef>> = inventory::iter::<Registration>
            .into_iter()
            .map(|r| Arc::new((r.build)()))
            .collect();
        defs.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.origin.cmp(&b.origin)));
        defs
    })
}

/// Registers a component function with the link-time registry.
///
/// The first argument is the function; the rest are `method = value` pairs
/// applied to [`ComponentDef`] in order (`name`, `when` (repeatable),
/// `select`, `order`, `scope`, `depends_on` (repeatable), and the flags
/// `primary`, `prototype` and `lazy`). The default name is the function's name. The component belongs
/// to the registering crate's module (see [`module!`](crate::module)).
///
/// ```
/// use std::sync::Arc;
/// use appctx::{component, on_property, Scope};
///
/// appctx::module!(pub GREETERS);
/// pub trait Greeter: Send + Sync { fn greet(&self) -> String; }
/// struct English;
/// impl Greeter for English { fn greet(&self) -> String { "hello".into() } }
///
/// fn english() -> Arc<dyn Greeter> { Arc::new(English) }
/// component!(english, when = on_property("greeter.language", "en"), order = 1, primary);
///
/// // Chosen when `greeter.kind = "french"`, created once per "rank" child context:
/// struct French;
/// impl Greeter for French { fn greet(&self) -> String { "bonjour".into() } }
/// fn french() -> Result<Arc<dyn Greeter>, std::io::Error> { Ok(Arc::new(French)) }
/// component!(french, select = "greeter.kind", scope = Scope::named("rank"));
/// ```
#[macro_export]
macro_rules! component {
    ($factory:path $(, $method:ident $(= $value:expr)?)* $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::Registration::new(|| {
                $crate::ComponentDef::new(stringify!($factory), $factory)
                    .origin(concat!(module_path!(), " (", file!(), ":", line!(), ")"))
                    .__registered_in(module_path!())
                    $( .$method($($value)?) )*
            })
        }
    };
}

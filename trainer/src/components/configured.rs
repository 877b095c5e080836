//! The one component a configuration key selects, for a command that
//! builds no run: a context of the components providing that type alone.

use std::sync::Arc;

use appctx::{ComponentDef, ContextBuilder, Environment, TypeKey, registered};

/// The `T` the configuration in `env` selects among every linked component
/// providing `T` (`data.tokenizer`'s tokenizer, `optimizer.kind`'s optimizer
/// factory), created in a context named `name` of those components alone, so
/// none of the run's others is created. A name no linked crate registers is
/// appctx's error listing those that exist; a selected component that
/// depends on one of the run's other components is appctx's missing
/// dependency error naming both.
pub fn configured<T: ?Sized + Send + Sync + 'static>(
    env: &Environment,
    name: &str,
) -> Result<Arc<T>, appctx::Error> {
    let provides = TypeKey::of::<T>();
    // What the context is for: needing a `T` makes a selected name that no
    // component has an error, with the names that exist.
    let mut builder = ContextBuilder::new()
        .name(name)
        .environment(env.clone())
        .component(ComponentDef::new(
            format!("configured_{name}"),
            |t: Arc<T>| Arc::new(Configured(t)),
        ));
    for def in registered().iter().filter(|def| def.provides() == provides) {
        builder = builder.component((**def).clone());
    }
    // The rest of the configuration is the run's, read by components this
    // context leaves out.
    if let serde_json::Value::Object(sections) = env.to_json() {
        for section in sections.keys() {
            builder = builder.known_prefix(section.clone());
        }
    }
    Ok(builder.build()?.get::<Configured<T>>()?.0.clone())
}

/// The component [`configured`] looks up.
struct Configured<T: ?Sized>(Arc<T>);

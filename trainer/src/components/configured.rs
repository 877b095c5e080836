//! The one component a configuration key selects, for a command that
//! builds no run: a context of the components providing that type and of
//! what they depend on, each created only if the selected one needs it.

use std::collections::BTreeSet;
use std::sync::Arc;

use appctx::{ComponentDef, ContextBuilder, Dependency, Environment, TypeKey, registered};

/// The `T` the configuration in `env` selects among every linked component
/// providing `T` (`data.source`'s data source, `data.tokenizer`'s
/// tokenizer, `optimizer.kind`'s optimizer factory), created in a context
/// named `name` of those components and of the linked components they
/// depend on. Every one of them is lazy, so only the selected component and
/// what it needs are created; none of the run's others is. A name no linked
/// crate registers is appctx's error listing those that exist.
pub fn configured<T: ?Sized + Send + Sync + 'static>(
    env: &Environment,
    name: &str,
) -> Result<Arc<T>, appctx::Error> {
    let provides = TypeKey::of::<T>();
    let candidates: Vec<ComponentDef> = providers(provides).collect();
    let needed = dependencies_of(&candidates, &[provides]);
    let (builder, _) = few_components(env, name, candidates.into_iter().chain(needed))?;
    // What the context is for: needing a `T` makes a selected name that no
    // component has an error, with the names that exist.
    let context = builder
        .component(ComponentDef::new(
            format!("configured_{name}"),
            |t: Arc<T>| Arc::new(Configured(t)),
        ))
        .build()?;
    Ok(context.get::<Configured<T>>()?.0.clone())
}

/// The component [`configured`] looks up.
struct Configured<T: ?Sized>(Arc<T>);

/// Every linked component providing `key`.
pub(super) fn providers(key: TypeKey) -> impl Iterator<Item = ComponentDef> {
    registered()
        .iter()
        .filter(move |def| def.provides() == key)
        .map(|def| (**def).clone())
}

/// Every linked provider of each type that `defs` inject, and of each type
/// those inject in turn, leaving out the types in `given` (which the
/// context gets otherwise).
pub(super) fn dependencies_of(defs: &[ComponentDef], given: &[TypeKey]) -> Vec<ComponentDef> {
    let mut seen: BTreeSet<&str> = given.iter().map(TypeKey::name).collect();
    let mut found = Vec::new();
    let mut frontier = defs.to_vec();
    while let Some(def) = frontier.pop() {
        for key in def.dependencies().iter().filter_map(Dependency::type_key) {
            if seen.insert(key.name()) {
                let providing: Vec<ComponentDef> = providers(key).collect();
                frontier.extend(providing.iter().cloned());
                found.extend(providing);
            }
        }
    }
    found
}

/// A context named `name` of a few of the run's components, `defs`, each
/// lazy (created only if another needs it), under the run's configuration
/// `env`, every section of which is known (the rest of the configuration is
/// read by components the context leaves out). The run's `appctx.exclude`
/// names components such a context lacks, so it applies by leaving out the
/// `defs` it names, then leaves the environment (whose values then come from
/// one layer); the names are returned.
pub(super) fn few_components(
    env: &Environment,
    name: &str,
    defs: impl IntoIterator<Item = ComponentDef>,
) -> Result<(ContextBuilder, Vec<String>), appctx::Error> {
    let mut values = env.values().clone();
    let excluded: Vec<String> = values
        .get_mut("appctx")
        .and_then(|appctx| appctx.as_table_mut()?.remove("exclude"))
        .and_then(|list| list.try_into().ok())
        .unwrap_or_default();
    let env = if excluded.is_empty() {
        env.clone()
    } else {
        // A table of TOML values always serializes.
        let toml = toml::to_string(&values).unwrap_or_default();
        Environment::builder()
            .defaults("(the configuration)", toml)
            .build()?
    };
    let mut builder = ContextBuilder::new().name(name).environment(env);
    for def in defs {
        if !excluded.iter().any(|n| n == def.component_name()) {
            builder = builder.component(def.lazy());
        }
    }
    for section in values.keys() {
        builder = builder.known_prefix(section.clone());
    }
    Ok((builder, excluded))
}

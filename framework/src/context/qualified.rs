//! The error for a dependency on a component name (`Named<T, Q>`, or
//! `Dependency::Named`) that no registered component of the right type has.

use super::plan::Plan;
use crate::component::TypeKey;
use crate::error::Error;

/// `component` asks for the provider of `key` named `name`, and no active,
/// inactive or other-scope component of that type has that name: lists the
/// providers of `key` that exist (the message suggests the nearest), and
/// what `name` is if it is a component of another type.
pub(crate) fn not_found(plan: &Plan, component: &str, key: TypeKey, name: &str) -> Error {
    let mut providers = Vec::new();
    let mut named_type = None;
    let mut context = Some(plan);
    while let Some(p) = context {
        let ids = p.providers.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        providers.extend(ids.iter().map(|&id| p.nodes[id].def.name.clone()));
        if named_type.is_none()
            && let Some(&id) = p.by_name.get(name)
        {
            named_type = Some(p.nodes[id].def.provides.short_name());
        }
        context = p.parent.as_ref().map(|parent| &parent.plan);
    }
    Error::QualifierNotFound {
        component: component.to_string(),
        dependency: key.name(),
        name: name.to_string(),
        named_type,
        providers,
    }
}

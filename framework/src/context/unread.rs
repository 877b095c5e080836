//! `ContextBuilder::strict_sections`: a configuration key under a section
//! that only inactive components bind is an error, naming those components
//! and why each is inactive.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::selection::APPCTX_PREFIX;
use crate::component::ComponentDef;
use crate::condition::{Condition, ConditionOutcome};
use crate::environment::{Environment, PROFILES_KEY};
use crate::error::{Candidate, Error, Result};
use crate::inject::Dependency;

/// The definitions of a root context, with the verdict of their conditions.
pub(crate) struct Definitions<'a> {
    /// The context's own definitions (its scope and its builder's).
    pub defs: &'a [Arc<ComponentDef>],
    pub active: &'a [bool],
    pub outcomes: &'a [Vec<ConditionOutcome>],
    /// Registered definitions of child scopes.
    pub other_scopes: &'a [Arc<ComponentDef>],
    /// Excluded names, with what excluded each.
    pub excluded: &'a BTreeMap<String, String>,
}

/// Section prefixes (and condition keys) something reads, and the sections
/// only inactive components bind, with those components.
#[derive(Default)]
struct Readers<'a> {
    read: Vec<&'a str>,
    idle: Vec<(&'a str, Candidate)>,
}

impl<'a> Readers<'a> {
    /// Counts `def`'s sections as read when `reasons` is empty, else as
    /// idle sections with `def` as a would-be reader.
    fn add(&mut self, def: &'a ComponentDef, reasons: Vec<String>) {
        let prefixes = def.dependencies.iter().filter_map(|dep| match dep {
            Dependency::Config(decl) => Some(decl.prefix),
            _ => None,
        });
        for prefix in prefixes {
            if reasons.is_empty() {
                self.read.push(prefix);
            } else {
                let candidate = Candidate {
                    name: def.name.clone(),
                    scope: def.scope.as_str().to_owned(),
                    reasons: reasons.clone(),
                };
                self.idle.push((prefix, candidate));
            }
        }
    }
}

/// Whether the leaf `key` lies in the section at `prefix` (`""` is the whole tree).
fn covers(prefix: &str, key: &str) -> bool {
    prefix.is_empty()
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Why a component is inactive: its failed conditions, and its exclusion.
fn reasons(outcomes: &[ConditionOutcome], excluded_by: Option<&String>) -> Vec<String> {
    let failed = outcomes.iter().filter(|o| !o.matched);
    let mut reasons: Vec<String> = failed
        .map(|o| format!("{}: {}", o.condition, o.detail))
        .collect();
    if let Some(by) = excluded_by {
        reasons.push(format!("excluded by {by}"));
    }
    reasons
}

/// The first key (in key order) that only inactive components would read.
pub(crate) fn check(
    env: &Environment,
    d: &Definitions<'_>,
    known_prefixes: &[String],
) -> Result<()> {
    let mut readers = Readers::default();
    for ((def, outs), &active) in d.defs.iter().zip(d.outcomes).zip(d.active) {
        let why = match active {
            true => Vec::new(),
            false => reasons(outs, d.excluded.get(&def.name)),
        };
        readers.add(def, why);
    }
    for def in d.other_scopes {
        // What a child of that scope would decide, as far as the
        // configuration alone tells (the condition report's view).
        let outs: Vec<ConditionOutcome> = (def.conditions.iter())
            .map(|c| c.evaluate(env, &def.name, &|_| None))
            .collect();
        readers.add(def, reasons(&outs, d.excluded.get(&def.name)));
    }
    let all_defs = d.defs.iter().chain(d.other_scopes);
    let condition_keys =
        all_defs.flat_map(|def| def.conditions.iter().filter_map(Condition::property_key));
    readers.read.extend(condition_keys);
    readers
        .read
        .extend(known_prefixes.iter().map(String::as_str));
    readers.read.extend([APPCTX_PREFIX, PROFILES_KEY]);
    if readers.idle.is_empty() {
        return Ok(());
    }
    for key in env.leaf_keys() {
        if readers.read.iter().any(|prefix| covers(prefix, key)) {
            continue;
        }
        let idle: Vec<&(&str, Candidate)> = (readers.idle.iter())
            .filter(|(prefix, _)| covers(prefix, key))
            .collect();
        let Some((section, _)) = idle.iter().max_by_key(|(prefix, _)| prefix.len()) else {
            continue;
        };
        let mut would_read: Vec<Candidate> = Vec::new();
        for (_, candidate) in idle.iter() {
            if !would_read.iter().any(|c| c.name == candidate.name) {
                would_read.push(candidate.clone());
            }
        }
        return Err(Error::UnreadConfigKey {
            key: key.to_string(),
            origin: env.origin(key).map(ToString::to_string),
            section: section.to_string(),
            would_read,
        });
    }
    Ok(())
}

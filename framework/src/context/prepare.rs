//! `prepare()`: evaluate conditions, bind configuration, build and validate
//! the dependency graph. Pure: no component is created.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::builder::ContextBuilder;
use super::plan::{Edge, Node, Plan, Target};
use super::selection::{APPCTX_PREFIX, AppctxSection, Selection};
use crate::component::{ComponentDef, TypeKey};
use crate::condition::{Condition, ConditionOutcome};
use crate::diagnostics::{did_you_mean, ticked};
use crate::environment::{Environment, PROFILES_KEY, join};
use crate::error::{Candidate, Error, Result};
use crate::executor::{Executor, ExecutorSettings};
use crate::graph::{DependencyGraph, topological_order};
use crate::inject::Dependency;
use crate::report::{ConditionEntry, ConditionReport, Status};

/// A validated context, ready to [`refresh`](Self::refresh). Nothing has been created.
pub struct PreparedContext {
    pub(crate) plan: Plan,
    pub(crate) selection: Arc<Selection>,
}

impl PreparedContext {
    /// The graph (what `check` prints); export with `to_dot` / `to_json`.
    pub fn graph(&self) -> DependencyGraph {
        self.plan.graph()
    }

    /// Why each registered component was or was not chosen.
    pub fn condition_report(&self) -> &ConditionReport {
        &self.plan.conditions
    }

    /// The environment.
    pub fn environment(&self) -> &Arc<Environment> {
        &self.plan.env
    }
}

/// Definitions of a context and the verdict of their conditions.
struct Evaluated {
    env: Arc<Environment>,
    selection: Selection,
    executor: ExecutorSettings,
    defs: Vec<Arc<ComponentDef>>,
    other_scopes: Vec<Arc<ComponentDef>>,
    active: Vec<bool>,
    outcomes: Vec<Vec<ConditionOutcome>>,
    entries: Vec<ConditionEntry>,
}

/// The first half of prepare: collect definitions, check names and keys, evaluate conditions.
fn evaluate(b: &ContextBuilder) -> Result<Evaluated> {
    let env = b
        .env
        .clone()
        .unwrap_or_else(|| Arc::new(Environment::empty()));
    let appctx = AppctxSection::bind(&env)?;
    let selection = Selection::of(b, &env, &appctx)?;
    let registry = selection.registered();
    if b.parent.is_none() {
        let known = registry.iter().map(|d| d.name.as_str());
        selection.check_names(known.chain(b.defs.iter().map(|d| d.name.as_str())))?;
    }
    let mut defs: Vec<Arc<ComponentDef>> = Vec::with_capacity(registry.len() + b.defs.len() + 1);
    for def in registry.iter().filter(|d| d.scope == b.scope) {
        defs.push(selection.apply_override(Arc::clone(def))?);
    }
    for def in &b.defs {
        defs.push(selection.apply_override(Arc::new(def.clone().scope(b.scope)))?);
    }
    if b.parent.is_none() {
        defs.push(Arc::new(
            ComponentDef::instance("environment", env.clone()).origin("appctx"),
        ));
    }
    defs.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.origin.cmp(&b.origin)));
    check_duplicates(&defs)?;
    if b.parent.is_none() {
        let claims = registry.iter().copied().chain(&defs);
        check_unknown_keys(&env, claims, &b.known_prefixes)?;
    }

    let parent_plan = b.parent.as_ref().map(|p| &p.plan);
    let other_scopes: Vec<Arc<ComponentDef>> = registry
        .iter()
        .filter(|d| d.scope != b.scope)
        .map(|d| Arc::clone(d))
        .collect();
    let (active, outcomes) = evaluate_conditions(&defs, &env, parent_plan, &selection);
    let mut entries: Vec<ConditionEntry> = defs
        .iter()
        .zip(&outcomes)
        .zip(&active)
        .map(|((def, outs), &on)| {
            let mut outs = outs.clone();
            let status = match selection.excluded.get(&def.name) {
                _ if on => Status::Active,
                Some(by) => {
                    outs.push(exclusion_outcome(by));
                    Status::Excluded
                }
                None => Status::Inactive,
            };
            entry(def, outs, status)
        })
        .collect();
    for def in &other_scopes {
        let outs = def
            .conditions
            .iter()
            .map(|c| c.evaluate(&env, &def.name, &|_| None))
            .collect();
        entries.push(entry(def, outs, Status::OtherScope));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Evaluated {
        env,
        selection,
        executor: appctx.executor,
        defs,
        other_scopes,
        active,
        outcomes,
        entries,
    })
}

/// The condition report's line for an excluded component.
fn exclusion_outcome(by: &str) -> ConditionOutcome {
    ConditionOutcome {
        condition: "not excluded".to_string(),
        matched: false,
        detail: format!("excluded by {by}"),
    }
}

/// The condition report alone (no graph validation), for listing components.
pub(crate) fn condition_report(b: &ContextBuilder) -> Result<ConditionReport> {
    Ok(ConditionReport {
        context: b.name.clone(),
        entries: evaluate(b)?.entries,
    })
}

pub(crate) fn prepare(b: ContextBuilder) -> Result<PreparedContext> {
    let Evaluated {
        env,
        selection,
        executor,
        defs,
        other_scopes,
        active,
        outcomes,
        entries,
    } = evaluate(&b)?;
    if b.parent.is_none() && b.strict_sections {
        let definitions = super::unread::Definitions {
            defs: &defs,
            active: &active,
            outcomes: &outcomes,
            other_scopes: &other_scopes,
            excluded: &selection.excluded,
        };
        super::unread::check(&env, &definitions, &b.known_prefixes)?;
    }

    let mut nodes = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        if active[i] {
            let why = if outcomes[i].is_empty() {
                "unconditional".to_string()
            } else {
                outcomes[i]
                    .iter()
                    .map(|o| format!("{}: {}", o.condition, o.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            nodes.push(Node {
                def: def.clone(),
                why,
            });
        }
    }
    let mut providers: HashMap<TypeKey, Vec<usize>> = HashMap::new();
    let mut by_name = HashMap::with_capacity(nodes.len());
    for (id, node) in nodes.iter().enumerate() {
        providers.entry(node.def.provides).or_default().push(id);
        by_name.insert(node.def.name.clone(), id);
    }
    for ids in providers.values_mut() {
        ids.sort_by_key(|&i| nodes[i].def.order); // stable: ties stay in name order
    }
    let mut sections = HashMap::new();
    for node in &nodes {
        for dep in &node.def.dependencies {
            if let Dependency::Config(decl) = dep
                && !sections.contains_key(&decl.type_id)
            {
                sections.insert(decl.type_id, (decl.bind)(&env)?);
            }
        }
    }

    let token = match (&b.parent, &b.token) {
        (_, Some(t)) => t.child(),
        (Some(parent), None) => parent.plan.token.child(),
        (None, None) => crate::shutdown::CancellationToken::new(),
    };
    let mut plan = Plan {
        executor: Executor::new(&b.name, executor),
        name: b.name,
        scope: b.scope,
        env,
        parent: b.parent,
        token,
        stop_timeout: b.stop_timeout,
        nodes,
        providers,
        by_name,
        sections,
        edges: Vec::new(),
        creation_order: Vec::new(),
        post_processors: selection.post_processors(&b.post_processors),
        conditions: ConditionReport {
            context: String::new(),
            entries,
        },
        handle: Default::default(),
    };
    plan.conditions.context = plan.name.clone();
    let inactive: Vec<(&Arc<ComponentDef>, &Vec<ConditionOutcome>)> = defs
        .iter()
        .zip(&outcomes)
        .zip(&active)
        .filter(|(_, on)| !**on)
        .map(|(pair, _)| pair)
        .collect();
    let lookup = Candidates {
        excluded: &selection.excluded,
        inactive: &inactive,
        other_scopes: &other_scopes,
        env: &plan.env,
    };
    plan.edges = resolve_edges(&plan, &lookup)?;
    let deps: Vec<Vec<usize>> = plan
        .edges
        .iter()
        .map(|list| {
            list.iter()
                .filter(|e| e.orders_creation())
                .filter_map(|e| match e.target {
                    Target::Local(i) => Some(i),
                    Target::Inherited(_) => None,
                })
                .collect()
        })
        .collect();
    plan.creation_order = topological_order(&deps).map_err(|cycle| Error::DependencyCycle {
        path: cycle
            .iter()
            .map(|&i| plan.nodes[i].def.name.clone())
            .collect(),
    })?;
    Ok(PreparedContext {
        plan,
        selection: Arc::new(selection),
    })
}

fn entry(def: &ComponentDef, outcomes: Vec<ConditionOutcome>, status: Status) -> ConditionEntry {
    ConditionEntry {
        name: def.name.clone(),
        provides: def.provides.short_name(),
        scope: def.scope.as_str().to_owned(),
        origin: def.origin.clone(),
        status,
        outcomes,
    }
}

fn check_duplicates(defs: &[Arc<ComponentDef>]) -> Result<()> {
    for pair in defs.windows(2) {
        if pair[0].name == pair[1].name {
            let name = pair[0].name.clone();
            let origins = defs
                .iter()
                .filter(|d| d.name == name)
                .map(|d| d.origin.clone())
                .collect();
            return Err(Error::DuplicateComponent { name, origins });
        }
    }
    Ok(())
}

/// Every configuration leaf must lie under a section prefix or be a key a
/// condition reads (or under a declared known prefix).
fn check_unknown_keys<'a>(
    env: &Environment,
    defs: impl Iterator<Item = &'a Arc<ComponentDef>>,
    known_prefixes: &[String],
) -> Result<()> {
    let mut exact: HashSet<String> = HashSet::new();
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let mut claim = |key: &str| {
        exact.insert(key.to_string());
        let mut path = String::new();
        for seg in key.split('.') {
            path = join(&path, seg);
            claimed.insert(path.clone());
        }
    };
    for def in defs {
        for dep in &def.dependencies {
            if let Dependency::Config(decl) = dep {
                claim(decl.prefix);
            }
        }
        for key in def.conditions.iter().filter_map(Condition::property_key) {
            claim(key);
        }
    }
    for prefix in known_prefixes {
        claim(prefix);
    }
    claim(APPCTX_PREFIX);
    claim(PROFILES_KEY);
    if exact.contains("") {
        return Ok(());
    }
    for leaf in env.leaf_keys() {
        let mut path = String::new();
        for seg in leaf.split('.') {
            let parent = path.clone();
            path = join(&path, seg);
            if exact.contains(&path) {
                break;
            }
            if !claimed.contains(&path) {
                let known: Vec<String> = claimed
                    .iter()
                    .filter(|k| k.rfind('.').map(|i| &k[..i]).unwrap_or("") == parent)
                    .cloned()
                    .collect();
                return Err(env.unknown_key(&path, &known));
            }
        }
    }
    Ok(())
}

/// Two passes: components without a back-off condition first, then those
/// with one, in (order, name) order, each seeing who is active so far.
fn evaluate_conditions(
    defs: &[Arc<ComponentDef>],
    env: &Environment,
    parent: Option<&Plan>,
    selection: &Selection,
) -> (Vec<bool>, Vec<Vec<ConditionOutcome>>) {
    let backs_off = |d: &ComponentDef| {
        d.conditions
            .iter()
            .any(|c| matches!(c, Condition::MissingComponent(_)))
    };
    let mut active = vec![false; defs.len()];
    let mut outcomes = vec![Vec::new(); defs.len()];
    let mut by_type: HashMap<TypeKey, Vec<usize>> = HashMap::new();
    let first: Vec<usize> = (0..defs.len()).filter(|&i| !backs_off(&defs[i])).collect();
    let mut second: Vec<usize> = (0..defs.len()).filter(|&i| backs_off(&defs[i])).collect();
    second.sort_by_key(|&i| defs[i].order);
    for i in first.into_iter().chain(second) {
        let def = &defs[i];
        let other = |key: TypeKey| {
            by_type
                .get(&key)
                .and_then(|ids| ids.iter().find(|&&j| j != i))
                .map(|&j| defs[j].name.clone())
                .or_else(|| parent.and_then(|p| p.provider_name(key)))
        };
        let outs: Vec<ConditionOutcome> = def
            .conditions
            .iter()
            .map(|c| c.evaluate(env, &def.name, &other))
            .collect();
        if outs.iter().all(|o| o.matched) && !selection.excluded.contains_key(&def.name) {
            active[i] = true;
            by_type.entry(def.provides).or_default().push(i);
        }
        outcomes[i] = outs;
    }
    (active, outcomes)
}

/// Registered providers that were not chosen, for missing-dependency errors.
struct Candidates<'a> {
    excluded: &'a BTreeMap<String, String>,
    inactive: &'a [(&'a Arc<ComponentDef>, &'a Vec<ConditionOutcome>)],
    other_scopes: &'a [Arc<ComponentDef>],
    env: &'a Environment,
}

fn resolve_edges(plan: &Plan, candidates: &Candidates<'_>) -> Result<Vec<Vec<Edge>>> {
    let mut all_edges = Vec::with_capacity(plan.nodes.len());
    for node in &plan.nodes {
        let def = &node.def;
        let mut edges = Vec::with_capacity(def.dependencies.len());
        for dep in &def.dependencies {
            let kind = dep.kind_label();
            match dep {
                Dependency::One(key) | Dependency::Optional(key) | Dependency::Lazy(key) => {
                    match plan.choose(*key, &def.name)? {
                        Some(id) => edges.push(Edge {
                            kind,
                            target: Target::Local(id),
                        }),
                        None => match plan.inherited_target(dep) {
                            Some(name) => edges.push(Edge {
                                kind,
                                target: Target::Inherited(name),
                            }),
                            None if !matches!(dep, Dependency::Optional(_)) => {
                                return Err(missing(plan, candidates, def, dep));
                            }
                            None => {}
                        },
                    }
                }
                Dependency::All(key) => {
                    for &id in plan.providers.get(key).map(Vec::as_slice).unwrap_or(&[]) {
                        edges.push(Edge {
                            kind,
                            target: Target::Local(id),
                        });
                    }
                }
                Dependency::Named(key, name) => {
                    let local = plan
                        .by_name
                        .get(name)
                        .filter(|&&id| plan.nodes[id].def.provides == *key);
                    let target = match (local, plan.inherited_target(dep)) {
                        (Some(&id), _) => Target::Local(id),
                        (None, Some(inherited)) => Target::Inherited(inherited),
                        (None, None) => return Err(missing(plan, candidates, def, dep)),
                    };
                    edges.push(Edge { kind, target });
                }
                Dependency::Config(_) | Dependency::Context(_) => {}
            }
        }
        for name in &def.depends_on {
            let target = match (plan.by_name.get(name), plan.inherited_name(name)) {
                (Some(&id), _) => Target::Local(id),
                (None, Some(inherited)) => Target::Inherited(inherited),
                (None, None) => return Err(missing_depends_on(plan, candidates, def, name)),
            };
            edges.push(Edge {
                kind: "depends_on",
                target,
            });
        }
        all_edges.push(edges);
    }
    Ok(all_edges)
}

/// The error for an unsatisfied dependency: a scope inversion if a provider
/// exists in a shorter-lived scope, otherwise a missing dependency listing
/// the candidates that were not chosen and why.
fn missing(plan: &Plan, c: &Candidates<'_>, def: &ComponentDef, dep: &Dependency) -> Error {
    let key = dep.type_key().expect("component dependencies have a type");
    let wanted_name = match dep {
        Dependency::Named(_, name) => Some(name.as_str()),
        _ => None,
    };
    let fits = |d: &ComponentDef| d.provides == key && wanted_name.is_none_or(|n| d.name == n);
    if let Some(name) = wanted_name {
        let inactive = c.inactive.iter().map(|(d, _)| *d);
        if !inactive.chain(c.other_scopes).any(|d| fits(d)) {
            return super::qualified::not_found(plan, &def.name, key, name);
        }
    }
    let dependency = match wanted_name {
        Some(n) => format!("{} named `{n}`", key.short_name()),
        None => key.short_name(),
    };
    missing_provider(plan, c, def, &fits, dependency)
}

/// The error for a `depends_on` name that no active component has.
fn missing_depends_on(plan: &Plan, c: &Candidates<'_>, def: &ComponentDef, name: &str) -> Error {
    let dependency = format!("the component named `{name}` (depends_on)");
    missing_provider(plan, c, def, &|d| d.name == name, dependency)
}

/// The error for a dependency that no active provider `fits`.
fn missing_provider(
    plan: &Plan,
    c: &Candidates<'_>,
    def: &ComponentDef,
    fits: &dyn Fn(&ComponentDef) -> bool,
    dependency: String,
) -> Error {
    let chain = plan.scope_chain();
    let failed = |def: &ComponentDef, outs: &[ConditionOutcome]| -> Vec<String> {
        outs.iter()
            .zip(&def.conditions)
            .filter(|(o, _)| !o.matched)
            .map(|(o, _)| format!("{}: {}", o.condition, o.detail))
            .collect()
    };
    let mut candidates = Vec::new();
    let mut selectors: Vec<Selector> = Vec::new();
    let mut note_selectors = |d: &ComponentDef, outs: &[ConditionOutcome]| {
        let conditions = outs.iter().zip(&d.conditions).map(|(o, cond)| {
            let selecting = cond.selecting_value(&d.name);
            (selecting, o.matched)
        });
        selectors.push(Selector {
            conditions: conditions.collect(),
            origin: crate_of(&d.origin).map(str::to_owned),
        });
    };
    for (d, outs) in c.inactive.iter().filter(|(d, _)| fits(d)) {
        let mut reasons = failed(d, outs);
        if let Some(by) = c.excluded.get(&d.name) {
            if reasons.is_empty() {
                return Error::ExcludedDependency {
                    component: def.name.clone(),
                    dependency,
                    provider: d.name.clone(),
                    excluded_by: by.clone(),
                };
            }
            reasons.push(format!("excluded by {by}"));
        }
        note_selectors(d, outs);
        candidates.push(Candidate {
            name: d.name.clone(),
            scope: d.scope.as_str().to_owned(),
            reasons,
        });
    }
    for d in c.other_scopes.iter().filter(|d| fits(d)) {
        let outs: Vec<ConditionOutcome> = d
            .conditions
            .iter()
            .map(|cond| cond.evaluate(c.env, &d.name, &|_| None))
            .collect();
        let mut reasons = failed(d, &outs);
        let outlives = !chain.contains(&d.scope);
        if outlives && reasons.is_empty() {
            return Error::ScopeInversion {
                component: def.name.clone(),
                component_scope: plan.scope.as_str().to_owned(),
                dependency,
                provider: d.name.clone(),
                provider_scope: d.scope.as_str().to_owned(),
            };
        }
        note_selectors(d, &outs);
        reasons.push(if outlives {
            format!("lives in the shorter-lived scope `{}`", d.scope)
        } else {
            format!(
                "lives in scope `{}`, but is not active in that context",
                d.scope
            )
        });
        candidates.push(Candidate {
            name: d.name.clone(),
            scope: d.scope.as_str().to_owned(),
            reasons,
        });
    }
    Error::MissingDependency {
        component: def.name.clone(),
        dependency,
        hint: selector_hint(&selectors, c.env),
        candidates,
    }
}

/// A candidate's conditions, for the hint: each one's selecting key and
/// value (`None` for a condition that is not a property value) and whether
/// it held; and the crate that registered the candidate.
struct Selector {
    conditions: Vec<(Option<(String, String)>, bool)>,
    origin: Option<String>,
}

impl Selector {
    /// The value of `key` that selects this candidate, if one does.
    fn value_of(&self, key: &str) -> Option<&str> {
        self.conditions
            .iter()
            .find_map(|(selecting, _)| match selecting {
                Some((k, v)) if k == key => Some(v.as_str()),
                _ => None,
            })
    }

    /// Whether setting `key` to its value would activate the candidate:
    /// every condition on anything else holds.
    fn usable(&self, key: &str) -> bool {
        (self.conditions.iter())
            .filter(|(selecting, _)| selecting.as_ref().is_none_or(|(k, _)| k != key))
            .all(|&(_, matched)| matched)
    }
}

/// The crate a component was registered from: the first path segment of
/// the origin the `component!` macro records, `module_path (file:line)`
/// (`None` for components built in code).
fn crate_of(origin: &str) -> Option<&str> {
    let (path, _) = origin.split_once(" (")?;
    path.split("::").next()
}

/// "Set `optimizer.kind` to one of `adamw`, `sgd` (found "adamq"; did you
/// mean `adamw`?)", and, when the value names no registered component, which
/// crates are linked and how to link the one that provides it.
fn selector_hint(selectors: &[Selector], env: &Environment) -> Option<String> {
    // The key the candidates are selected by: the one most of them share.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for selector in selectors {
        let keys: BTreeSet<&str> = (selector.conditions.iter())
            .filter_map(|(selecting, _)| selecting.as_ref().map(|(k, _)| k.as_str()))
            .collect();
        for key in keys {
            *counts.entry(key).or_default() += 1;
        }
    }
    let key = counts
        .iter()
        .max_by_key(|&(k, n)| (*n, std::cmp::Reverse(*k)))?
        .0;
    let with_value = || selectors.iter().filter_map(|s| Some((s.value_of(key)?, s)));
    let values: Vec<&str> = with_value()
        .filter(|(_, s)| s.usable(key))
        .map(|(v, _)| v)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let current = env.get_string(key);
    // A typo may name a linked component that is inactive for another reason.
    let registered: BTreeSet<&str> = with_value().map(|(v, _)| v).collect();
    let suggestion = current.as_deref().and_then(|cur| {
        let others = registered.iter().copied().filter(|&v| v != cur);
        did_you_mean(cur, others)
    });
    let values: Vec<String> = values.into_iter().map(str::to_owned).collect();
    let mut hint = format!(
        "Set `{key}` to one of {}{}",
        ticked(&values),
        match (&current, suggestion) {
            (Some(cur), Some(s)) => format!(" (it is \"{cur}\"; did you mean `{s}`?)"),
            (Some(cur), None) => format!(" (it is \"{cur}\")"),
            (None, _) => " (it is not set)".to_string(),
        }
    );
    match current {
        // Registered, but another of its conditions fails (listed above).
        Some(cur) if registered.contains(cur.as_str()) && !values.contains(&cur) => {
            hint.push_str(&format!(
                "; the component for \"{cur}\" is linked but inactive: its failing condition is \
                 listed above"
            ))
        }
        Some(cur) if !values.contains(&cur) => hint.push_str(&linking_rule(key, &cur, selectors)),
        _ => {}
    }
    Some(hint)
}

/// Why a value no linked crate registers is not there, and the fix.
fn linking_rule(key: &str, value: &str, selectors: &[Selector]) -> String {
    let mut crates: BTreeSet<&str> = selectors
        .iter()
        .filter(|s| s.value_of(key).is_some())
        .filter_map(|s| s.origin.as_deref())
        .collect();
    if crates.is_empty() {
        crates.insert("(components registered in code only)");
    }
    let linked = crates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        ". No linked crate registers a component for `{key} = \"{value}\"`; the crates that \
         register values of `{key}` are {linked}. If `{value}` comes from a plugin crate, link it \
         into the binary: add it to [dependencies] and write `use the_plugin_crate as _;` in the \
         binary's main.rs (components register through `inventory`, which sees only crates the \
         binary links)"
    )
}

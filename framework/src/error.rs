//! The one error type of appctx. Its `Display` is a failure analysis:
//! a description of what went wrong and an action saying what to do.

use std::path::PathBuf;

use crate::diagnostics::{FailureAnalysis, ticked};

/// Any error a component factory, lifecycle or runner may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, appctx::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A provider that exists but was not chosen, listed in a missing-dependency error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Component name.
    pub name: String,
    /// Its scope, e.g. `singleton` or `rank`.
    pub scope: String,
    /// Why it was not chosen (failed conditions, or the scope it lives in).
    pub reasons: Vec<String>,
}

/// Everything that can go wrong while preparing, refreshing, running or closing a context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration source is not valid TOML.
    #[error("{}", self.analysis())]
    ConfigSyntax {
        /// The source, e.g. `file config/app.toml`.
        origin: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A `--config` file does not exist or cannot be read.
    #[error("{}", self.analysis())]
    ConfigFileUnreadable {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// An active profile has neither a file nor an embedded definition.
    #[error("{}", self.analysis())]
    ProfileNotFound {
        /// The profile asked for.
        profile: String,
        /// Profiles that do exist.
        available: Vec<String>,
        /// The folder searched for `<profile>.toml`, if any.
        searched: Option<PathBuf>,
    },
    /// A `--set` argument or environment variable could not be understood.
    #[error("{}", self.analysis())]
    InvalidOverride {
        /// The argument or variable as given.
        argument: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration key that nothing reads.
    #[error("{}", self.analysis())]
    UnknownConfigKey {
        /// Full dotted key path.
        key: String,
        /// Where it was set.
        origin: String,
        /// The nearest known key, if any is close.
        suggestion: Option<String>,
        /// Keys that are valid at that position.
        known: Vec<String>,
    },
    /// A configuration value has the wrong type.
    #[error("{}", self.analysis())]
    ConfigType {
        /// Full dotted key path.
        key: String,
        /// What the section's type expects.
        expected: String,
        /// What was found.
        found: String,
        /// Where the value was set.
        origin: Option<String>,
        /// The Rust type of the section being bound.
        section: &'static str,
    },
    /// A key a configuration section requires is not set anywhere.
    #[error("{}", self.analysis())]
    MissingConfigKey {
        /// Full dotted key path.
        key: String,
        /// The Rust type of the section being bound.
        section: &'static str,
    },
    /// A value was rejected by the section's own validation (serde `custom` error).
    #[error("{}", self.analysis())]
    InvalidConfig {
        /// Full dotted key path (or the section prefix).
        key: String,
        /// The message.
        message: String,
        /// Where the value was set.
        origin: Option<String>,
    },
    /// A component needs a type that no active component provides.
    #[error("{}", self.analysis())]
    MissingDependency {
        /// The component that needs it.
        component: String,
        /// The type needed.
        dependency: String,
        /// Providers that exist but are disabled or out of scope.
        candidates: Vec<Candidate>,
        /// A concrete suggestion, e.g. which value of a selector key picks a candidate.
        hint: Option<String>,
    },
    /// More than one active component provides a type injected as a single value.
    #[error("{}", self.analysis())]
    AmbiguousDependency {
        /// The component that needs it (or `get` for a lookup).
        component: String,
        /// The type needed.
        dependency: String,
        /// The active providers.
        providers: Vec<String>,
    },
    /// Components depend on each other in a circle.
    #[error("{}", self.analysis())]
    DependencyCycle {
        /// The cycle as a path whose first and last element are the same.
        path: Vec<String>,
    },
    /// A longer-lived component depends on a shorter-lived one.
    #[error("{}", self.analysis())]
    ScopeInversion {
        /// The longer-lived component.
        component: String,
        /// Its scope.
        component_scope: String,
        /// The type it needs.
        dependency: String,
        /// The shorter-lived provider.
        provider: String,
        /// The provider's scope.
        provider_scope: String,
    },
    /// Two components of one context share a name.
    #[error("{}", self.analysis())]
    DuplicateComponent {
        /// The name.
        name: String,
        /// Where each was registered.
        origins: Vec<String>,
    },
    /// A component factory failed during refresh.
    #[error("{}", self.analysis())]
    ComponentCreation {
        /// The failing component.
        component: String,
        /// Who needed it: the path from a top-level component down to the failing one.
        chain: Vec<String>,
        /// The factory's error.
        source: BoxError,
    },
    /// A `Lifecycle` component failed to start.
    #[error("{}", self.analysis())]
    LifecycleStart {
        /// The component.
        component: String,
        /// Its error.
        source: BoxError,
    },
    /// A runner returned an error.
    #[error("{}", self.analysis())]
    RunnerFailed {
        /// The runner component.
        runner: String,
        /// Its error.
        source: BoxError,
    },
    /// A lookup (`get`) asked for a type that is not in the context.
    #[error("{}", self.analysis())]
    NoSuchComponent {
        /// The type asked for.
        requested: String,
        /// The context asked.
        context: String,
    },
    /// The context was already closed.
    #[error("{}", self.analysis())]
    ContextClosed {
        /// The context.
        context: String,
    },
    /// A `${...}` placeholder names no key, no environment variable, and has no default.
    #[error("{}", self.analysis())]
    UnresolvedPlaceholder {
        /// The key whose value holds it.
        key: String,
        /// The placeholder as written, e.g. `${data.root}`.
        placeholder: String,
        /// Where the key was set.
        origin: Option<String>,
    },
    /// Placeholders refer to each other in a circle.
    #[error("{}", self.analysis())]
    PlaceholderCycle {
        /// The keys, first and last the same.
        path: Vec<String>,
    },
    /// A module requires a module that no linked crate declares.
    #[error("{}", self.analysis())]
    ModuleMissing {
        /// The module that requires it.
        module: String,
        /// The module it requires.
        required: String,
        /// The modules that are linked.
        linked: Vec<String>,
    },
    /// Two linked modules share a name, or one Rust module declares two.
    #[error("{}", self.analysis())]
    ModuleClash {
        /// The module name, or the Rust module path, declared twice.
        clash: String,
        /// The Rust module paths, or the module names, involved.
        parties: Vec<String>,
    },
    /// A component needs a component that is excluded by name.
    #[error("{}", self.analysis())]
    ExcludedDependency {
        /// The component that needs it.
        component: String,
        /// What it needs.
        dependency: String,
        /// The excluded provider, which would otherwise be active.
        provider: String,
        /// What excluded it, e.g. `` `appctx.exclude` (set in file a.toml) ``.
        excluded_by: String,
    },
    /// An exclusion or an override names no component.
    #[error("{}", self.analysis())]
    UnknownComponentName {
        /// The name given.
        name: String,
        /// Where it was given.
        by: String,
        /// The nearest component name, if one is close.
        suggestion: Option<String>,
    },
    /// An override's value is not of the type the component provides.
    #[error("{}", self.analysis())]
    OverrideType {
        /// The overridden component.
        component: String,
        /// The type it provides.
        expected: String,
        /// The type of the value given.
        given: String,
    },
    /// Creating a component needed, through a [`Lazy`](crate::Lazy) handle's
    /// `get`, a component that the same thread is still creating.
    #[error("{}", self.analysis())]
    LazyCycle {
        /// The context the components belong to.
        context: String,
        /// The components being created, first and last the same: each
        /// needed the next while it was being created.
        path: Vec<String>,
    },
    /// A dependency on a component name (a [`Named`](crate::Named)
    /// parameter, or [`Dependency::Named`](crate::Dependency::Named)) that no
    /// registered component providing the type has.
    #[error("{}", self.analysis())]
    QualifierNotFound {
        /// The component that asks.
        component: String,
        /// The type it needs, as `std::any::type_name` spells it.
        dependency: &'static str,
        /// The component name it asks for.
        name: String,
        /// What the component of that name provides instead, if there is one.
        named_type: Option<String>,
        /// The active providers of the type, this context's then its ancestors'.
        providers: Vec<String>,
    },
    /// A post-processor failed on a component.
    #[error("{}", self.analysis())]
    PostProcessorFailed {
        /// The post-processor.
        post_processor: String,
        /// The component it processed.
        component: String,
        /// The type the component provides.
        provides: String,
        /// Its error.
        source: BoxError,
    },
    /// A configuration key under a section that only inactive components
    /// bind ([`ContextBuilder::strict_sections`](crate::ContextBuilder::strict_sections)).
    #[error("{}", self.analysis())]
    UnreadConfigKey {
        /// Full dotted key path.
        key: String,
        /// Where it was set.
        origin: Option<String>,
        /// The section prefix it lies in.
        section: String,
        /// The components that bind the section, and why each is inactive.
        would_read: Vec<Candidate>,
    },
    /// A [`ContextHandle`](crate::ContextHandle) was used before its context
    /// finished refreshing, or after it was dropped.
    #[error("{}", self.analysis())]
    ContextUnavailable,
    /// A task of a context's [`Executor`](crate::Executor) panicked.
    #[error("{}", self.analysis())]
    TaskPanicked {
        /// The context whose executor ran it.
        context: String,
        /// The task's name.
        task: String,
        /// The panic's message.
        message: String,
    },
    /// A queued task was dropped unrun because its context closed and the
    /// drain timeout passed.
    #[error("{}", self.analysis())]
    TaskCancelled {
        /// The context that closed.
        context: String,
        /// The task's name.
        task: String,
        /// How long close waited (`appctx.executor.close_timeout_s`).
        timeout: std::time::Duration,
    },
    /// A task was not accepted by a context's executor.
    #[error("{}", self.analysis())]
    TaskRefused {
        /// The context.
        context: String,
        /// The task's name.
        task: String,
        /// Why: the context is closed, or no thread could be started.
        reason: String,
    },
}

impl Error {
    /// The description and action of this error.
    pub fn analysis(&self) -> FailureAnalysis {
        use Error::*;
        match self {
            ConfigSyntax { origin, message } => FailureAnalysis::new(
                format!("The configuration in {origin} is not valid TOML:\n{message}"),
                format!("Fix the syntax in {origin}."),
            ),
            ConfigFileUnreadable { path, message } => FailureAnalysis::new(
                format!(
                    "The configuration file {} could not be read: {message}",
                    path.display()
                ),
                "Check the path given to --config (relative paths start at the working directory).",
            ),
            ProfileNotFound {
                profile,
                available,
                searched,
            } => FailureAnalysis::new(
                format!(
                    "The active profile `{profile}` is not defined{}.",
                    searched
                        .as_ref()
                        .map(|d| format!(
                            " (no {}/{profile}.toml and no embedded profile of that name)",
                            d.display()
                        ))
                        .unwrap_or_default()
                ),
                format!(
                    "Activate one of the available profiles: {}{}",
                    ticked(available),
                    crate::diagnostics::did_you_mean(profile, available.iter().map(String::as_str))
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default()
                ),
            ),
            InvalidOverride { argument, reason } => FailureAnalysis::new(
                format!("The override `{argument}` is not valid: {reason}."),
                "Write overrides as `--set section.key=value` and environment variables as PREFIX__SECTION__KEY=value.",
            ),
            UnknownConfigKey {
                key,
                origin,
                suggestion,
                known,
            } => FailureAnalysis::new(
                format!(
                    "The configuration key `{key}` (set in {origin}) is not known to any component."
                ),
                match suggestion {
                    Some(s) => format!(
                        "Did you mean `{s}`? Fix or remove `{key}` in {origin}. Known keys here: {}.",
                        ticked(known)
                    ),
                    None => format!(
                        "Remove `{key}` from {origin}. Known keys here: {}.",
                        ticked(known)
                    ),
                },
            ),
            ConfigType {
                key,
                expected,
                found,
                origin,
                section,
            } => FailureAnalysis::new(
                format!(
                    "The configuration key `{key}` has the wrong type: expected {expected}, found {found}{}.\nIt is bound to {section}.",
                    origin_suffix(origin)
                ),
                format!(
                    "Set `{key}` to {expected}{}.",
                    origin
                        .as_ref()
                        .map(|o| format!(" in {o}"))
                        .unwrap_or_default()
                ),
            ),
            MissingConfigKey { key, section } => FailureAnalysis::new(
                format!(
                    "The configuration key `{key}` is required by {section} but is not set in any source."
                ),
                format!(
                    "Set `{key}` in a config file, a profile, the environment, or with --set {key}=..."
                ),
            ),
            InvalidConfig {
                key,
                message,
                origin,
            } => FailureAnalysis::new(
                format!(
                    "The configuration key `{key}` is invalid: {message}{}.",
                    origin_suffix(origin)
                ),
                format!("Correct the value of `{key}`."),
            ),
            MissingDependency {
                component,
                dependency,
                candidates,
                hint,
            } => missing_dependency(component, dependency, candidates, hint.as_deref()),
            AmbiguousDependency {
                component,
                dependency,
                providers,
            } => FailureAnalysis::new(
                format!(
                    "{component} needs a single {dependency}, but {} active components provide one: {}.",
                    providers.len(),
                    ticked(providers)
                ),
                "Disable all but one with a condition, mark one `.primary()`, or inject Vec<Arc<..>> to receive all of them.",
            ),
            DependencyCycle { path } => FailureAnalysis::new(
                format!(
                    "The dependencies of some components form a cycle:\n\n{}",
                    path.join(" → ")
                ),
                "Break the cycle: move the shared part into its own component, or make one dependency optional and set it after refresh.",
            ),
            ScopeInversion {
                component,
                component_scope,
                dependency,
                provider,
                provider_scope,
            } => FailureAnalysis::new(
                format!(
                    "{component} (scope `{component_scope}`) depends on {dependency}, whose provider `{provider}` has the shorter-lived scope `{provider_scope}`. A longer-lived component would keep a shorter-lived one alive (a scope leak)."
                ),
                format!(
                    "Move `{component}` into scope `{provider_scope}`, or make `{provider}` longer-lived, or pass the value at call time instead of injecting it."
                ),
            ),
            DuplicateComponent { name, origins } => FailureAnalysis::new(
                format!(
                    "More than one component is named `{name}`, registered at: {}.",
                    origins.join("; ")
                ),
                "Give each component a unique name (the `name = \"...\"` of the registration).",
            ),
            ComponentCreation {
                component,
                chain,
                source,
            } => FailureAnalysis::new(
                format!(
                    "Component `{component}` could not be created: {source}\nDependency chain: {}\nEverything created before it was stopped and dropped.",
                    chain.join(" → ")
                ),
                format!("Fix the cause above; `{component}` is needed by the chain shown."),
            ),
            LifecycleStart { component, source } => FailureAnalysis::new(
                format!(
                    "Component `{component}` failed to start: {source}\nComponents started before it were stopped."
                ),
                format!("Fix the cause above, or disable `{component}`."),
            ),
            RunnerFailed { runner, source } => FailureAnalysis::new(
                format!("Runner `{runner}` failed: {source}"),
                "Fix the cause above; later runners were not run.",
            ),
            NoSuchComponent { requested, context } => FailureAnalysis::new(
                format!(
                    "No active component of context `{context}` or its ancestors provides {requested}."
                ),
                "Register a component that provides it, or check the condition report (why candidates were disabled).",
            ),
            ContextClosed { context } => FailureAnalysis::new(
                format!("Context `{context}` is closed; its components were dropped."),
                "Look components up before closing the context, or keep the Arc you got.",
            ),
            UnresolvedPlaceholder {
                key,
                placeholder,
                origin,
            } => FailureAnalysis::new(
                format!(
                    "The value of `{key}`{} uses the placeholder `{placeholder}`, but no \
                     configuration key or environment variable of that name is set, and it has \
                     no default.",
                    origin_suffix(origin)
                ),
                format!(
                    "Set the key or the environment variable it names, or give a default: \
                     `${{NAME:default}}`. Write `$${{` for a literal `${{` in `{key}`."
                ),
            ),
            PlaceholderCycle { path } => FailureAnalysis::new(
                format!(
                    "Configuration placeholders refer to each other in a cycle:\n\n{}",
                    path.join(" → ")
                ),
                "Set one of these keys to a plain value.",
            ),
            ModuleMissing {
                module,
                required,
                linked,
            } => FailureAnalysis::new(
                format!(
                    "Module `{module}` requires module `{required}`, but no linked crate declares \
                     it. Linked modules: {}.",
                    ticked(linked)
                ),
                format!(
                    "Link the crate that declares `{required}`: add it to [dependencies] and write \
                     `use the_crate as _;` in the binary (or the test), or remove `{required}` \
                     from the `requires` of `{module}`'s `appctx::module!`."
                ),
            ),
            ModuleClash { clash, parties } => FailureAnalysis::new(
                format!(
                    "`{clash}` is declared twice by `appctx::module!` ({}): a Rust module declares \
                     at most one appctx module, and module names are unique.",
                    ticked(parties)
                ),
                "Keep one `appctx::module!` per crate (at its root), and give each module its \
                 own `name = \"...\"`.",
            ),
            ExcludedDependency {
                component,
                dependency,
                provider,
                excluded_by,
            } => FailureAnalysis::new(
                format!(
                    "{component} needs {dependency}, whose provider `{provider}` is excluded by \
                     {excluded_by}."
                ),
                format!(
                    "Remove `{provider}` from the exclusions, or provide {dependency} another way \
                     (another component, or an instance given to the context builder), or \
                     exclude `{component}` too."
                ),
            ),
            UnknownComponentName {
                name,
                by,
                suggestion,
            } => FailureAnalysis::new(
                format!(
                    "{by} names the component `{name}`, but the context has no component of \
                     that name (in any scope of its modules)."
                ),
                match suggestion {
                    Some(s) => format!("Did you mean `{s}`? Correct the name given in {by}."),
                    None => {
                        format!("Correct the name given in {by}; `components` lists the names.")
                    }
                },
            ),
            OverrideType {
                component,
                expected,
                given,
            } => FailureAnalysis::new(
                format!(
                    "The override of component `{component}` is a {given}, but `{component}` \
                     provides {expected}."
                ),
                format!("Pass an `Arc<{expected}>` to `.override_component(\"{component}\", ..)`."),
            ),
            LazyCycle { context, path } => FailureAnalysis::new(
                format!(
                    "A lazy cycle in context `{context}`: creating `{}` needed, through \
                     `Lazy::get`, components that need `{}` while it is still being \
                     created:\n\n{}",
                    path.first().map(String::as_str).unwrap_or_default(),
                    path.first().map(String::as_str).unwrap_or_default(),
                    path.join(" → ")
                ),
                "Call `Lazy::get` after the factory has returned (in a method, a lifecycle or \
                 a runner) rather than inside it, or remove one dependency of the path.",
            ),
            QualifierNotFound {
                component,
                dependency,
                name,
                named_type,
                providers,
            } => {
                let dependency = crate::component::short_type_name(dependency);
                FailureAnalysis::new(
                    format!(
                        "{component} needs the {dependency} named `{name}`, but no component of that \
                     name provides {dependency}{}.\n{}",
                        named_type
                            .as_ref()
                            .map(|t| format!(" (the component `{name}` provides {t})"))
                            .unwrap_or_default(),
                        match providers.as_slice() {
                            [] => format!("No active component provides {dependency} at all."),
                            _ =>
                                format!("Active providers of {dependency}: {}.", ticked(providers)),
                        }
                    ),
                    format!(
                        "{}Name the provider `{name}` (`component!(f, name = \"{name}\")`), or \
                     change the qualifier of {component} to the name of an existing provider.",
                        crate::diagnostics::did_you_mean(
                            name,
                            providers.iter().map(String::as_str)
                        )
                        .map(|s| format!("Did you mean `{s}`? "))
                        .unwrap_or_default()
                    ),
                )
            }
            PostProcessorFailed {
                post_processor,
                component,
                provides,
                source,
            } => FailureAnalysis::new(
                format!(
                    "Post-processor `{post_processor}` failed on component `{component}` \
                     (provides {provides}): {source}\nThe component was not published; during \
                     refresh, everything created before it was stopped and dropped."
                ),
                format!(
                    "Fix the cause above in `{post_processor}`, or keep `{component}` out of its \
                     reach (it sees every component that provides {provides})."
                ),
            ),
            UnreadConfigKey {
                key,
                origin,
                section,
                would_read,
            } => {
                let mut description = format!(
                    "No active component reads `{key}`{}; the components that would read \
                     section `{section}` are inactive:",
                    origin_suffix(origin)
                );
                description.push_str(&candidate_lines(would_read));
                FailureAnalysis::new(
                    description,
                    format!(
                        "Activate one of them (see why each is inactive), or remove `{key}`{}. \
                         If the application reads `{section}` itself, declare it with \
                         `ContextBuilder::known_prefix(\"{section}\")`.",
                        origin
                            .as_ref()
                            .map(|o| format!(" from {o}"))
                            .unwrap_or_default()
                    ),
                )
            }
            ContextUnavailable => FailureAnalysis::new(
                "A component used its context handle while the context was still being \
                 refreshed (inside a factory), or after the context was dropped.",
                "Use the handle from runners, lifecycles or later calls, not from factories.",
            ),
            TaskPanicked {
                context,
                task,
                message,
            } => FailureAnalysis::new(
                format!(
                    "Task `{task}` of context `{context}`'s executor panicked: {message}\n\
                     The executor went on with the tasks queued after it."
                ),
                format!(
                    "Fix the panic in `{task}`; a task that can fail should return a Result, \
                     which its handle's join() passes on."
                ),
            ),
            TaskCancelled {
                context,
                task,
                timeout,
            } => FailureAnalysis::new(
                format!(
                    "Task `{task}` was dropped unrun: context `{context}` closed, and its \
                     executor's queue was not done within the close timeout ({timeout:?})."
                ),
                "Wait for the task's handle before closing the context, or raise \
                 `appctx.executor.close_timeout_s`.",
            ),
            TaskRefused {
                context,
                task,
                reason,
            } => FailureAnalysis::new(
                format!("Context `{context}`'s executor did not accept task `{task}`: {reason}."),
                "Submit tasks while the context is open (from runners, lifecycles or other \
                 tasks before close), or run the work on the calling thread.",
            ),
        }
    }
}

fn origin_suffix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" (set in {o})"))
        .unwrap_or_default()
}

/// One line per candidate, each starting a new line: its name, scope and
/// why it was not chosen.
fn candidate_lines(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|c| {
            format!(
                "\n  - `{}` (scope `{}`): {}",
                c.name,
                c.scope,
                c.reasons.join("; ")
            )
        })
        .collect()
}

fn missing_dependency(
    component: &str,
    dependency: &str,
    candidates: &[Candidate],
    hint: Option<&str>,
) -> FailureAnalysis {
    let mut description =
        format!("{component} needs {dependency}, but no active component provides it.");
    if candidates.is_empty() {
        description.push_str("\nNo component providing it is registered at all.");
        return FailureAnalysis::new(
            description,
            format!(
                "Register a component that provides {dependency} (and, for a plugin crate, make sure it is linked: `use the_plugin as _;`)."
            ),
        );
    }
    description.push_str("\nCandidates that exist but were not chosen:");
    description.push_str(&candidate_lines(candidates));
    let action = match hint {
        Some(hint) => format!("{hint}, or register another provider."),
        None => "Change the configuration so that one candidate's conditions hold (see the reasons above), or register another provider.".to_string(),
    };
    FailureAnalysis::new(description, action)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing dependency and an unread key list the same candidate with
    /// the same words.
    #[test]
    fn candidates_read_alike_in_every_error() {
        let candidate = Candidate {
            name: "file".into(),
            scope: "singleton".into(),
            reasons: vec![
                "property data.kind == file: found \"synthetic\"".into(),
                "excluded".into(),
            ],
        };
        let line = "- `file` (scope `singleton`): property data.kind == file: found \
                    \"synthetic\"; excluded";
        let missing = Error::MissingDependency {
            component: "loader".into(),
            dependency: "dyn Source".into(),
            candidates: vec![candidate.clone()],
            hint: None,
        };
        let unread = Error::UnreadConfigKey {
            key: "data.stride".into(),
            origin: None,
            section: "data".into(),
            would_read: vec![candidate],
        };
        for error in [missing, unread] {
            let message = error.to_string();
            assert!(message.contains(line), "{message}");
        }
    }
}

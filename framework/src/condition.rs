//! Conditions decide, during `prepare()`, whether a registered component is active.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::component::TypeKey;
use crate::environment::Environment;

/// A test that explains a failure (what was found, what would hold).
type Predicate = dyn Fn(&Environment) -> Result<(), String> + Send + Sync;

/// A condition on a component. Build with the helper functions
/// ([`on_property`], [`on_profile`], [`on_missing`], [`on_feature!`](crate::on_feature), ...).
#[derive(Clone)]
pub enum Condition {
    /// Key equals the value; `if_missing` makes an absent key count as a match.
    PropertyEquals {
        /// Dotted key.
        key: String,
        /// Expected value (compared as text).
        value: String,
        /// Whether an absent key matches.
        if_missing: bool,
    },
    /// Key is set.
    PropertyPresent(String),
    /// Key is not set.
    PropertyAbsent(String),
    /// The key's value equals the component's own name (see [`ComponentDef::select`](crate::ComponentDef::select)).
    SelectedBy(String),
    /// The profile is active.
    Profile(String),
    /// The profile is not active.
    NotProfile(String),
    /// No other active provider of the type exists (the component backs off).
    MissingComponent(TypeKey),
    /// A cargo feature of the registering crate (use [`on_feature!`](crate::on_feature)).
    Feature {
        /// Feature name.
        name: String,
        /// Whether it was enabled when the registering crate was compiled.
        enabled: bool,
    },
    /// Any predicate on the environment.
    Custom {
        /// Shown in reports.
        description: String,
        /// The test.
        test: Arc<Predicate>,
    },
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("<component>"))
    }
}

/// `key == value`.
pub fn on_property(key: impl Into<String>, value: impl Into<String>) -> Condition {
    Condition::PropertyEquals {
        key: key.into(),
        value: value.into(),
        if_missing: false,
    }
}

/// `key == value`, or `key` not set at all (a default choice).
pub fn on_property_or_missing(key: impl Into<String>, value: impl Into<String>) -> Condition {
    Condition::PropertyEquals {
        key: key.into(),
        value: value.into(),
        if_missing: true,
    }
}

/// `key` is set.
pub fn on_property_present(key: impl Into<String>) -> Condition {
    Condition::PropertyPresent(key.into())
}

/// `key` is not set.
pub fn on_property_absent(key: impl Into<String>) -> Condition {
    Condition::PropertyAbsent(key.into())
}

/// The profile is active.
pub fn on_profile(profile: impl Into<String>) -> Condition {
    Condition::Profile(profile.into())
}

/// The profile is not active.
pub fn on_not_profile(profile: impl Into<String>) -> Condition {
    Condition::NotProfile(profile.into())
}

/// Back off when another active provider of `T` exists (here or in an ancestor context).
pub fn on_missing<T: ?Sized + 'static>() -> Condition {
    Condition::MissingComponent(TypeKey::of::<T>())
}

/// Any predicate on the environment.
pub fn on_custom(
    description: impl Into<String>,
    test: impl Fn(&Environment) -> bool + Send + Sync + 'static,
) -> Condition {
    on_check(description, move |env| {
        if test(env) {
            Ok(())
        } else {
            Err("does not hold".into())
        }
    })
}

/// A requirement on the environment that explains its failure: `Err` says
/// what was found (the detail of condition reports and of the error when a
/// selected component is inactive).
///
/// ```
/// use appctx::{Environment, on_check};
///
/// let even = on_check("workers.count is even", |env| {
///     match env.get_string("workers.count").and_then(|v| v.parse::<u32>().ok()) {
///         Some(n) if n % 2 == 1 => Err(format!("workers.count = {n} is odd")),
///         _ => Ok(()),
///     }
/// });
/// # let _ = (even, Environment::empty());
/// ```
pub fn on_check(
    description: impl Into<String>,
    test: impl Fn(&Environment) -> Result<(), String> + Send + Sync + 'static,
) -> Condition {
    Condition::Custom {
        description: description.into(),
        test: Arc::new(test),
    }
}

/// A condition on a cargo feature of the crate where the macro is invoked:
/// `on_feature!("cuda")`.
#[macro_export]
macro_rules! on_feature {
    ($feature:literal) => {
        $crate::Condition::Feature {
            name: $feature.to_string(),
            enabled: cfg!(feature = $feature),
        }
    };
}

/// The result of evaluating one condition.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConditionOutcome {
    /// The condition, e.g. `property optimizer.kind == adamw`.
    pub condition: String,
    /// Whether it held.
    pub matched: bool,
    /// What was found, e.g. `found "sgd" (set in file a.toml)`.
    pub detail: String,
}

impl Condition {
    /// A human description; `component` is used by [`Condition::SelectedBy`].
    pub fn describe(&self, component: &str) -> String {
        match self {
            Condition::PropertyEquals {
                key,
                value,
                if_missing,
            } => format!(
                "property {key} == {value}{}",
                if *if_missing { " (or unset)" } else { "" }
            ),
            Condition::PropertyPresent(key) => format!("property {key} is set"),
            Condition::PropertyAbsent(key) => format!("property {key} is not set"),
            Condition::SelectedBy(key) => format!("property {key} == {component}"),
            Condition::Profile(p) => format!("profile {p} is active"),
            Condition::NotProfile(p) => format!("profile {p} is not active"),
            Condition::MissingComponent(k) => format!("no other provider of {k}"),
            Condition::Feature { name, .. } => format!("cargo feature `{name}` is enabled"),
            Condition::Custom { description, .. } => description.clone(),
        }
    }

    /// The key and the value that would satisfy a property condition.
    pub(crate) fn selecting_value(&self, component: &str) -> Option<(String, String)> {
        match self {
            Condition::PropertyEquals { key, value, .. } => Some((key.clone(), value.clone())),
            Condition::SelectedBy(key) => Some((key.clone(), component.to_string())),
            _ => None,
        }
    }

    /// The property key this condition reads, if any (such keys count as known).
    pub(crate) fn property_key(&self) -> Option<&str> {
        match self {
            Condition::PropertyEquals { key, .. }
            | Condition::PropertyPresent(key)
            | Condition::PropertyAbsent(key)
            | Condition::SelectedBy(key) => Some(key),
            _ => None,
        }
    }

    /// Evaluates against the environment; `other_provider` names an active
    /// provider of a type other than `component`, if there is one.
    pub(crate) fn evaluate(
        &self,
        env: &Environment,
        component: &str,
        other_provider: &dyn Fn(TypeKey) -> Option<String>,
    ) -> ConditionOutcome {
        let found = |key: &str| match (env.get_string(key), env.origin(key)) {
            (Some(v), Some(origin)) => format!("found \"{v}\" (set in {origin})"),
            (Some(v), None) => format!("found \"{v}\""),
            (None, _) => "not set".to_string(),
        };
        let (matched, detail) = match self {
            Condition::PropertyEquals {
                key,
                value,
                if_missing,
            } => match env.get_string(key) {
                Some(v) => (&v == value, found(key)),
                None => (*if_missing, found(key)),
            },
            Condition::SelectedBy(key) => (
                env.get_string(key).as_deref() == Some(component),
                found(key),
            ),
            Condition::PropertyPresent(key) => (env.contains(key), found(key)),
            Condition::PropertyAbsent(key) => (!env.contains(key), found(key)),
            Condition::Profile(p) | Condition::NotProfile(p) => {
                let active = env.is_profile_active(p);
                let detail = format!("active profiles: [{}]", env.active_profiles().join(", "));
                (active == matches!(self, Condition::Profile(_)), detail)
            }
            Condition::MissingComponent(k) => match other_provider(*k) {
                Some(name) => (false, format!("`{name}` provides it")),
                None => (true, "none found".to_string()),
            },
            Condition::Feature { enabled, .. } => (
                *enabled,
                if *enabled {
                    "enabled"
                } else {
                    "disabled at compile time"
                }
                .to_string(),
            ),
            Condition::Custom { test, .. } => match test(env) {
                Ok(()) => (true, "holds".to_string()),
                Err(why) => (false, why),
            },
        };
        ConditionOutcome {
            condition: self.describe(component),
            matched,
            detail,
        }
    }
}

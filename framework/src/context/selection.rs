//! Which definitions make up a context: the registered components of the
//! modules it is built from, minus the ones excluded by name, with some
//! replaced by ready instances (overrides), plus those given to its builder.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::builder::{ContextBuilder, Modules};
use crate::component::ComponentDef;
use crate::diagnostics::did_you_mean;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::executor::ExecutorSettings;
use crate::module::{self, ModuleSet};
use crate::post_processor::{PostProcessor, registered_post_processors};
use crate::registry::registered;

/// The configuration section appctx reads itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppctxSection {
    /// Component names left out of every context.
    #[serde(default)]
    exclude: Vec<String>,
    /// `appctx.executor.*`.
    #[serde(default)]
    pub executor: ExecutorSettings,
}

impl AppctxSection {
    /// The section bound from `env`, validated.
    pub fn bind(env: &Environment) -> Result<AppctxSection> {
        let mut section: AppctxSection = env.bind(APPCTX_PREFIX)?;
        section.executor = section.executor.validated(env)?;
        Ok(section)
    }
}

/// The key prefix of [`AppctxSection`].
pub(crate) const APPCTX_PREFIX: &str = "appctx";

/// What a context takes from the registry; children inherit it.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    /// Modules whose registered components take part.
    pub modules: ModuleSet,
    /// Excluded component names, each with what excluded it.
    pub excluded: BTreeMap<String, String>,
    /// Ready instances standing in for components, by name.
    pub overrides: BTreeMap<String, ComponentDef>,
}

impl Selection {
    /// The selection of the context `b` builds: the parent's, or the one of
    /// the modules `b` names; plus `b`'s and the configuration's exclusions
    /// and `b`'s overrides.
    pub fn of(b: &ContextBuilder, env: &Environment, appctx: &AppctxSection) -> Result<Selection> {
        let mut selection = match &b.modules {
            Modules::Inherited(parent) => Selection::clone(parent),
            Modules::Named(named) => Selection::new(module::resolve(Some(named))?),
            Modules::All => Selection::new(module::resolve(None)?),
        };
        for name in &b.exclusions {
            selection
                .excluded
                .insert(name.clone(), "the context builder (`.exclude(..)`)".into());
        }
        let key = format!("{APPCTX_PREFIX}.exclude");
        let origin = env
            .origin(&key)
            .map(|s| format!(" (set in {s})"))
            .unwrap_or_default();
        for name in &appctx.exclude {
            selection
                .excluded
                .insert(name.clone(), format!("`{key}`{origin}"));
        }
        for def in &b.overrides {
            selection.overrides.insert(def.name.clone(), def.clone());
        }
        Ok(selection)
    }

    fn new(modules: ModuleSet) -> Selection {
        Selection {
            modules,
            excluded: BTreeMap::new(),
            overrides: BTreeMap::new(),
        }
    }

    /// The registered definitions of the selected modules (every scope).
    pub fn registered(&self) -> Vec<&'static Arc<ComponentDef>> {
        if self.modules.is_empty() {
            return Vec::new();
        }
        registered()
            .iter()
            .filter(|d| d.module_path.is_some_and(|p| self.modules.takes(p)))
            .collect()
    }

    /// The registered post-processors of the selected modules plus
    /// `added`, in pipeline order: (order, name).
    pub fn post_processors(&self, added: &[PostProcessor]) -> Vec<Arc<PostProcessor>> {
        let registered = registered_post_processors()
            .iter()
            .filter(|p| p.module_path.is_some_and(|m| self.modules.takes(m)))
            .cloned();
        let mut all: Vec<Arc<PostProcessor>> = registered
            .chain(added.iter().cloned().map(Arc::new))
            .collect();
        all.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
        all
    }

    /// `def`, or the instance that overrides it (keeping its name, scope,
    /// order, primary flag and conditions: it stands in wherever `def` would
    /// be active). An override of another type is an error.
    pub fn apply_override(&self, def: Arc<ComponentDef>) -> Result<Arc<ComponentDef>> {
        let Some(instance) = self.overrides.get(&def.name) else {
            return Ok(def);
        };
        if instance.provides != def.provides {
            return Err(Error::OverrideType {
                component: def.name.clone(),
                expected: def.provides.short_name(),
                given: instance.provides.short_name(),
            });
        }
        Ok(Arc::new(ComponentDef {
            conditions: def.conditions.clone(),
            order: def.order,
            scope: def.scope,
            primary: def.primary,
            origin: format!("override of {}", def.origin),
            module_path: def.module_path,
            ..instance.clone()
        }))
    }

    /// Every excluded or overridden name must be a component of the
    /// context or of its child scopes (`known`): a typo would otherwise
    /// silently keep the component.
    pub fn check_names<'a>(&self, known: impl Iterator<Item = &'a str> + Clone) -> Result<()> {
        let named = self
            .excluded
            .iter()
            .map(|(name, by)| (name, by.clone()))
            .chain(self.overrides.keys().map(|name| {
                (
                    name,
                    "the context builder (`.override_component(..)`)".into(),
                )
            }));
        for (name, by) in named {
            if !known.clone().any(|k| k == name) {
                return Err(Error::UnknownComponentName {
                    name: name.clone(),
                    by,
                    suggestion: did_you_mean(name, known.clone()),
                });
            }
        }
        Ok(())
    }
}

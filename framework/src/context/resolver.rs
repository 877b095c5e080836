//! Looking components up: used by factories during refresh and by
//! [`ApplicationContext::get`](crate::ApplicationContext::get) afterwards.

use std::sync::Arc;

use super::instances::Instances;
use super::plan::Plan;
use crate::component::{Stored, TypeKey};
use crate::config::{Config, ConfigSection};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::shutdown::CancellationToken;

/// Read access to the components of a context and its ancestors.
pub struct Resolver<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) instances: &'a Instances,
}

/// A provider found for `get_all`: its sort key and value.
pub(crate) struct Found {
    pub order: i32,
    pub name: String,
    pub value: Stored,
}

impl<'a> Resolver<'a> {
    /// The single active provider of `T` (nearest context wins).
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.get_optional::<T>()?
            .ok_or_else(|| Error::NoSuchComponent {
                requested: TypeKey::of::<T>().short_name(),
                context: self.plan.name.clone(),
            })
    }

    /// The single active provider of `T`, if any.
    pub fn get_optional<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Option<Arc<T>>> {
        let key = TypeKey::of::<T>();
        Ok(self.one(key)?.and_then(|s| downcast::<T>(&s)))
    }

    /// Every active provider of `T` in this context and its ancestors,
    /// sorted by (order, name); on ties the nearest context comes first.
    pub fn get_all<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Vec<Arc<T>>> {
        let mut found = Vec::new();
        self.all(TypeKey::of::<T>(), &mut found)?;
        found.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
        Ok(found
            .iter()
            .filter_map(|f| downcast::<T>(&f.value))
            .collect())
    }

    /// The provider of `T` with component name `name` (nearest context wins).
    pub fn get_named<T: ?Sized + Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>> {
        let key = TypeKey::of::<T>();
        if let Some(&id) = self.plan.by_name.get(name)
            && self.plan.nodes[id].def.provides == key
        {
            return self
                .instance(id)
                .and_then(|s| downcast::<T>(&s).ok_or_else(|| self.no_such(key)));
        }
        match &self.plan.parent {
            Some(parent) => parent.with_resolver(|r| r.get_named::<T>(name)),
            None => Err(Error::NoSuchComponent {
                requested: format!("{} named `{name}`", key.short_name()),
                context: self.plan.name.clone(),
            }),
        }
    }

    /// The configuration section `T`, bound from this context's environment.
    pub fn config<T: ConfigSection>(&self) -> Result<Config<T>> {
        if let Some(bound) = self.plan.sections.get(&std::any::TypeId::of::<T>())
            && let Ok(value) = bound.clone().downcast::<T>()
        {
            return Ok(Config(value));
        }
        Ok(Config(Arc::new(self.plan.env.bind::<T>(T::PREFIX)?)))
    }

    /// The environment of the context.
    pub fn environment(&self) -> &Arc<Environment> {
        &self.plan.env
    }

    /// The context's shutdown token.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.plan.token
    }

    fn no_such(&self, key: TypeKey) -> Error {
        Error::NoSuchComponent {
            requested: key.short_name(),
            context: self.plan.name.clone(),
        }
    }

    /// The chosen single provider of `key`, type-erased.
    pub(crate) fn one(&self, key: TypeKey) -> Result<Option<Stored>> {
        match self.plan.choose(key, "get")? {
            Some(id) => self.instance(id).map(Some),
            None => match &self.plan.parent {
                Some(parent) => parent.with_resolver(|r| r.one(key)),
                None => Ok(None),
            },
        }
    }

    /// Local providers first, then the ancestors', so that the stable sort in
    /// `get_all` puts the nearest first among equal (order, name).
    pub(crate) fn all(&self, key: TypeKey, found: &mut Vec<Found>) -> Result<()> {
        for &id in self
            .plan
            .providers
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let def = &self.plan.nodes[id].def;
            let value = match self.instance(id) {
                Ok(value) => value,
                Err(Error::ContextClosed { .. }) => continue, // dropped: absent
                Err(e) => return Err(e),
            };
            found.push(Found {
                order: def.order,
                name: def.name.clone(),
                value,
            });
        }
        match &self.plan.parent {
            Some(parent) => parent.with_resolver(|r| r.all(key, found)),
            None => Ok(()),
        }
    }
}

fn downcast<T: ?Sized + Send + Sync + 'static>(stored: &Stored) -> Option<Arc<T>> {
    stored.downcast_ref::<Arc<T>>().cloned()
}

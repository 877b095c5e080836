//! `refresh()`: create components in topological order, start lifecycles,
//! publish `ContextRefreshed`. On failure, tear down what exists, in reverse.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::instances::{Instances, Phase};
use super::prepare::PreparedContext;
use super::{ApplicationContext, lock};
use crate::component::TypeKey;
use crate::error::{Error, Result};
use crate::events::ContextRefreshed;
use crate::lifecycle::{Lifecycle, Started, stop_all};
use crate::report::{StartupEntry, StartupReport};

impl PreparedContext {
    /// Creates every active component in dependency order (but lazy ones
    /// and prototypes), starts `dyn Lifecycle` components by phase and
    /// publishes [`ContextRefreshed`].
    ///
    /// If a factory fails, the components created so far are dropped in
    /// reverse creation order and the error names the component and the chain
    /// of components that needed it.
    pub fn refresh(self) -> Result<Arc<ApplicationContext>> {
        let begin = Instant::now();
        let nodes = self.plan.nodes.len();
        let context = Arc::new_cyclic(|this| ApplicationContext {
            plan: self.plan,
            selection: self.selection,
            instances: Instances::new(nodes, Phase::Refreshing, this.clone()),
            started: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            startup: OnceLock::new(),
        });
        if let Err(error) = context.create_eagerly() {
            context.abandon();
            return Err(error);
        }
        context.instances.set_phase(Phase::Ready);
        if let Err(error) = context.start_lifecycles() {
            context.abandon();
            return Err(error);
        }
        let _ = context.startup.set(context.startup_entries(begin));
        let plan = &context.plan;
        plan.handle.bind(&context);
        if let Some(parent) = &plan.parent {
            let mut children = lock(&parent.children);
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&context));
        }
        let components = plan.nodes.len();
        tracing::info!(context = %plan.name, components, elapsed = ?begin.elapsed(), "context refreshed");
        context.publish(&ContextRefreshed {
            context: plan.name.clone(),
            scope: plan.scope,
            components,
        });
        Ok(context)
    }
}

impl ApplicationContext {
    /// Creates the components that are neither lazy nor prototypes, in
    /// creation order (those a factory needed earlier already exist).
    fn create_eagerly(&self) -> Result<()> {
        let creating = self.instances.enter();
        self.with_resolver(|resolver| {
            for &id in &self.plan.creation_order {
                let def = &self.plan.nodes[id].def;
                if def.prototype || def.lazy {
                    continue;
                }
                if let Err(error) = resolver.create(&creating, id) {
                    tracing::error!(context = %self.plan.name, component = %def.name, %error, "component creation failed");
                    return Err(error);
                }
            }
            Ok(())
        })
    }

    /// Starts the `dyn Lifecycle` components by phase, then creation order;
    /// if one fails, stops those started.
    fn start_lifecycles(&self) -> Result<()> {
        let key = TypeKey::of::<dyn Lifecycle>();
        let mut lifecycles: Vec<(i32, usize, &str, Arc<dyn Lifecycle>)> = Vec::new();
        for (position, (id, _)) in self.instances.created().into_iter().enumerate() {
            let def = &self.plan.nodes[id].def;
            if def.provides == key
                && let Some(value) = self.instances.get(id)
                && let Some(lc) = value.downcast_ref::<Arc<dyn Lifecycle>>()
            {
                lifecycles.push((lc.phase(), position, &def.name, lc.clone()));
            }
        }
        lifecycles.sort_by_key(|(phase, position, ..)| (*phase, *position));
        let mut started = Vec::with_capacity(lifecycles.len());
        for (phase, _, name, lifecycle) in lifecycles {
            if let Err(source) = lifecycle.start() {
                stop_all(started, self.plan.stop_timeout, &self.plan.name);
                return Err(Error::LifecycleStart {
                    component: name.to_string(),
                    source,
                });
            }
            started.push(Started {
                name: name.to_string(),
                phase,
                lifecycle,
            });
        }
        *lock(&self.started) = started;
        Ok(())
    }

    /// What refresh created, in creation order, with timings.
    fn startup_entries(&self, begin: Instant) -> StartupReport {
        let entries = (self.instances.created().into_iter())
            .map(|(id, created_in)| {
                let node = &self.plan.nodes[id];
                StartupEntry {
                    name: node.def.name.clone(),
                    provides: node.def.provides.short_name(),
                    scope: node.def.scope.as_str().to_owned(),
                    created_in,
                    why: node.why.clone(),
                }
            })
            .collect();
        StartupReport {
            context: self.plan.name.clone(),
            entries,
            total: begin.elapsed(),
        }
    }

    /// Drops what a failed refresh created, in reverse creation order,
    /// without the rest of close (no token is cancelled, nothing published).
    fn abandon(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.plan.executor.close();
        self.instances.close();
    }
}

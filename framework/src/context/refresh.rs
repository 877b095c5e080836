//! `refresh()`: create components in topological order, start lifecycles,
//! publish `ContextRefreshed`. On failure, tear down what exists, in reverse.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::prepare::PreparedContext;
use super::resolver::Resolver;
use super::{ApplicationContext, lock};
use crate::component::{Stored, TypeKey};
use crate::error::{Error, Result};
use crate::events::ContextRefreshed;
use crate::lifecycle::{Lifecycle, Started, stop_all};
use crate::report::{StartupEntry, StartupReport};

impl PreparedContext {
    /// Creates every active component in dependency order, starts
    /// `dyn Lifecycle` components by phase and publishes [`ContextRefreshed`].
    ///
    /// If a factory fails, the components created so far are dropped in
    /// reverse creation order and the error names the component and the chain
    /// of components that needed it.
    pub fn refresh(self) -> Result<Arc<ApplicationContext>> {
        let begin = Instant::now();
        let plan = self.plan;
        let mut instances: Vec<Option<Stored>> = vec![None; plan.nodes.len()];
        let mut entries = Vec::with_capacity(plan.nodes.len());
        for (position, &id) in plan.creation_order.iter().enumerate() {
            let node = &plan.nodes[id];
            if node.def.prototype {
                continue;
            }
            let started = Instant::now();
            let created = (node.def.factory)(&Resolver {
                plan: &plan,
                instances: &instances,
            });
            match created {
                Ok(value) => {
                    instances[id] = Some(value);
                    entries.push(StartupEntry {
                        name: node.def.name.clone(),
                        provides: node.def.provides.short_name(),
                        scope: node.def.scope.to_string(),
                        created_in: started.elapsed(),
                        why: node.why.clone(),
                    });
                }
                Err(source) => {
                    plan.executor.close();
                    for &done in plan.creation_order[..position].iter().rev() {
                        drop(instances[done].take());
                    }
                    let chain = plan.dependents_chain(id);
                    tracing::error!(context = %plan.name, component = %node.def.name, error = %source, "component creation failed");
                    return Err(Error::ComponentCreation {
                        component: node.def.name.clone(),
                        chain,
                        source,
                    });
                }
            }
        }

        let mut lifecycles: Vec<(i32, usize, String, Arc<dyn Lifecycle>)> = Vec::new();
        let key = TypeKey::of::<dyn Lifecycle>();
        for (position, &id) in plan.creation_order.iter().enumerate() {
            if plan.nodes[id].def.provides == key
                && let Some(lc) = instances[id]
                    .as_ref()
                    .and_then(|s| s.downcast_ref::<Arc<dyn Lifecycle>>())
            {
                lifecycles.push((
                    lc.phase(),
                    position,
                    plan.nodes[id].def.name.clone(),
                    lc.clone(),
                ));
            }
        }
        lifecycles.sort_by_key(|(phase, position, ..)| (*phase, *position));
        let mut started = Vec::with_capacity(lifecycles.len());
        for (phase, _, name, lifecycle) in lifecycles {
            if let Err(source) = lifecycle.start() {
                plan.executor.close();
                stop_all(started, plan.stop_timeout, &plan.name);
                for &id in plan.creation_order.iter().rev() {
                    drop(instances[id].take());
                }
                return Err(Error::LifecycleStart {
                    component: name,
                    source,
                });
            }
            started.push(Started {
                name,
                phase,
                lifecycle,
            });
        }

        let startup = StartupReport {
            context: plan.name.clone(),
            entries,
            total: begin.elapsed(),
        };
        let components = plan.nodes.len();
        let context = Arc::new(ApplicationContext {
            plan,
            selection: self.selection,
            instances: RwLock::new(instances),
            started: Mutex::new(started),
            children: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            startup,
        });
        context.plan.handle.bind(&context);
        if let Some(parent) = &context.plan.parent {
            let mut children = lock(&parent.children);
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&context));
        }
        tracing::info!(context = %context.plan.name, components, elapsed = ?begin.elapsed(), "context refreshed");
        context.publish(&ContextRefreshed {
            context: context.plan.name.clone(),
            scope: context.plan.scope,
            components,
        });
        Ok(context)
    }
}

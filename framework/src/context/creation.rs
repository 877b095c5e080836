//! Creating one component: its factory, then the post-processors, with the
//! errors named after the component. Used by refresh, by lookups of lazy
//! components and prototypes, and by lookups (through a `Lazy` handle) of
//! components refresh has not reached yet.

use std::cell::RefCell;
use std::time::Instant;

use super::instances::{Created, Creating, Instances, Phase};
use super::resolver::Resolver;
use crate::component::Stored;
use crate::error::{BoxError, Error, Result};

thread_local! {
    /// The components this thread is creating, outermost first, each as
    /// (the address of its context's instances, node).
    static CREATING: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Marks a component as being created by this thread until dropped.
struct OnStack;

impl OnStack {
    /// Pushes (`instances`, `id`), or returns the nodes of the cycle if this
    /// thread is already creating it: from its first creation to now.
    fn push(instances: &Instances, id: usize) -> Result<OnStack, Vec<usize>> {
        let key = (instances as *const Instances as usize, id);
        CREATING.with_borrow_mut(|stack| {
            if let Some(start) = stack.iter().position(|&entry| entry == key) {
                let mut cycle: Vec<usize> = stack[start..]
                    .iter()
                    .filter(|(context, _)| *context == key.0)
                    .map(|&(_, node)| node)
                    .collect();
                cycle.push(id);
                return Err(cycle);
            }
            stack.push(key);
            Ok(OnStack)
        })
    }
}

impl Drop for OnStack {
    fn drop(&mut self) {
        CREATING.with_borrow_mut(|stack| stack.pop());
    }
}

impl Resolver<'_> {
    /// The instance of node `id`: the one the context holds, a lazy one
    /// created now, or a fresh one for a prototype.
    pub(crate) fn instance(&self, id: usize) -> Result<Stored> {
        let def = &self.plan.nodes[id].def;
        if let Some(value) = self.instances.get(id) {
            return Ok(value);
        }
        match self.instances.phase() {
            Phase::Closed => return Err(self.closed()),
            _ if def.prototype => return self.build(id),
            Phase::Refreshing => {}
            Phase::Ready if def.lazy => {}
            // An eager component is missing after refresh only once dropped.
            Phase::Ready => return Err(self.closed()),
        }
        let creating = self.instances.enter();
        self.create(&creating, id)
    }

    /// Creates node `id` (held: not a prototype) unless another thread did
    /// while this one waited for `creating`.
    pub(crate) fn create(&self, creating: &Creating<'_>, id: usize) -> Result<Stored> {
        if let Some(value) = self.instances.get(id) {
            return Ok(value);
        }
        if self.instances.phase() == Phase::Closed {
            return Err(self.closed());
        }
        let started = Instant::now();
        let value = self.build(id)?;
        let elapsed = started.elapsed();
        self.instances.store(
            creating,
            Created {
                id,
                value: value.clone(),
                elapsed,
            },
        );
        Ok(value)
    }

    /// Runs node `id`'s factory and the post-processors of its type.
    fn build(&self, id: usize) -> Result<Stored> {
        let def = &self.plan.nodes[id].def;
        let _on_stack = OnStack::push(self.instances, id).map_err(|cycle| Error::LazyCycle {
            context: self.plan.name.clone(),
            path: (cycle.iter())
                .map(|&node| self.plan.nodes[node].def.name.clone())
                .collect(),
        })?;
        let mut value = (def.factory)(self).map_err(|source| self.creation_error(id, source))?;
        for post in self.plan.post_processors_of(def.provides) {
            value =
                (post.apply)(&def.name, value).map_err(|source| Error::PostProcessorFailed {
                    post_processor: post.name.clone(),
                    component: def.name.clone(),
                    provides: def.provides.short_name(),
                    source,
                })?;
        }
        Ok(value)
    }

    /// A factory's failure, named after the component and the chain that
    /// needs it; a lazy cycle met inside it is passed on as it is.
    fn creation_error(&self, id: usize, source: BoxError) -> Error {
        match source.downcast::<Error>() {
            Ok(cycle) if matches!(*cycle, Error::LazyCycle { .. }) => *cycle,
            Ok(other) => self.component_creation(id, other),
            Err(source) => self.component_creation(id, source),
        }
    }

    fn component_creation(&self, id: usize, source: BoxError) -> Error {
        Error::ComponentCreation {
            component: self.plan.nodes[id].def.name.clone(),
            chain: self.plan.dependents_chain(id),
            source,
        }
    }

    fn closed(&self) -> Error {
        Error::ContextClosed {
            context: self.plan.name.clone(),
        }
    }
}

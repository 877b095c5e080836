//! Preparing, without creating anything, the child contexts a runner will
//! build: what a dry run (`check`) needs to find their wiring errors.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::ApplicationContext;
use super::builder::ContextBuilder;
use super::instances::{Instances, Phase};
use super::prepare::PreparedContext;
use crate::environment::Environment;
use crate::error::Result;
use crate::graph::DependencyGraph;
use crate::report::ConditionReport;

/// A prepared context standing in for its refreshed self as the parent of
/// child contexts that are prepared (conditions, configuration binding,
/// dependency graph) but never refreshed. No component of the context or of
/// its children is ever created, and nothing can be looked up in it.
pub struct DryRun {
    context: Arc<ApplicationContext>,
}

impl PreparedContext {
    /// Turns the prepared context into the parent of dry-run children.
    pub fn dry_run(self) -> DryRun {
        let instances = Instances::new(self.plan.nodes.len(), Phase::Closed, Weak::new());
        DryRun {
            context: Arc::new(ApplicationContext {
                plan: self.plan,
                selection: self.selection,
                instances,
                started: Mutex::new(Vec::new()),
                children: Mutex::new(Vec::new()),
                // Never refreshed: there is nothing to close, no token to
                // cancel and no `ContextClosed` to publish.
                closed: AtomicBool::new(true),
                startup: OnceLock::new(),
            }),
        }
    }
}

impl DryRun {
    /// Prepares the child of scope `scope` that `configure` describes (its
    /// name, instances and components, as given to
    /// [`ApplicationContext::child`]) and returns its graph; any error is
    /// the one building that child would report.
    pub fn prepare_child(
        &self,
        scope: &'static str,
        configure: impl FnOnce(ContextBuilder) -> ContextBuilder,
    ) -> Result<DependencyGraph> {
        let child = configure(self.context.child(scope)).prepare()?;
        Ok(child.graph())
    }

    /// The graph of the context itself.
    pub fn graph(&self) -> DependencyGraph {
        self.context.graph()
    }

    /// Why each registered component of the context was or was not chosen.
    pub fn condition_report(&self) -> &ConditionReport {
        self.context.condition_report()
    }

    /// The environment.
    pub fn environment(&self) -> &Arc<Environment> {
        self.context.environment()
    }
}

impl std::fmt::Debug for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRun")
            .field("name", &self.context.plan.name)
            .finish_non_exhaustive()
    }
}

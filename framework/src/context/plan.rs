//! The result of `prepare()`: active components, who provides what, the
//! bound configuration sections, the edges and the creation order.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::ApplicationContext;
use crate::component::{ComponentDef, Scope, TypeKey};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::graph::{DependencyGraph, GraphEdge, GraphNode};
use crate::inject::Dependency;
use crate::post_processor::PostProcessor;
use crate::report::ConditionReport;
use crate::shutdown::CancellationToken;

/// An active component of the context.
pub(crate) struct Node {
    pub def: Arc<ComponentDef>,
    /// Why it is active (matched conditions).
    pub why: String,
}

/// Where a dependency edge points.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A node of this context.
    Local(usize),
    /// A component of an ancestor context, by name.
    Inherited(String),
}

/// One resolved dependency of a node.
pub(crate) struct Edge {
    pub kind: &'static str,
    pub target: Target,
}

impl Edge {
    /// Whether the target must be created before the dependent (every edge
    /// but a `Lazy` one).
    pub fn orders_creation(&self) -> bool {
        self.kind != crate::inject::LAZY_KIND
    }
}

pub(crate) struct Plan {
    pub name: String,
    pub scope: Scope,
    pub env: Arc<Environment>,
    pub parent: Option<Arc<ApplicationContext>>,
    pub token: CancellationToken,
    pub stop_timeout: Duration,
    /// The context's executor (no thread until a task is submitted).
    pub executor: Executor,
    pub nodes: Vec<Node>,
    /// Providers of each type among `nodes`, sorted by (order, name).
    pub providers: HashMap<TypeKey, Vec<usize>>,
    pub by_name: HashMap<String, usize>,
    pub sections: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    pub edges: Vec<Vec<Edge>>,
    pub creation_order: Vec<usize>,
    /// The post-processors of this context, in (order, name) order.
    pub post_processors: Vec<Arc<PostProcessor>>,
    pub conditions: ConditionReport,
    /// Bound to the context when refresh finishes.
    pub handle: crate::handle::ContextHandle,
}

impl Plan {
    /// The local provider a single injection of `key` gets: the only one, or
    /// the only primary one; `None` if there is no local provider.
    pub fn choose(&self, key: TypeKey, requester: &str) -> Result<Option<usize>> {
        let Some(ids) = self.providers.get(&key) else {
            return Ok(None);
        };
        if let [id] = ids.as_slice() {
            return Ok(Some(*id));
        }
        let primaries: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].def.primary)
            .collect();
        match primaries.as_slice() {
            [id] => Ok(Some(*id)),
            _ => Err(Error::AmbiguousDependency {
                component: requester.to_string(),
                dependency: key.short_name(),
                providers: ids
                    .iter()
                    .map(|&i| self.nodes[i].def.name.clone())
                    .collect(),
            }),
        }
    }

    /// The post-processors of the components providing `key`, in pipeline order.
    pub fn post_processors_of(&self, key: TypeKey) -> impl Iterator<Item = &PostProcessor> {
        (self.post_processors.iter())
            .filter(move |p| p.target == key)
            .map(|p| &**p)
    }

    /// Whether this context or an ancestor has an active provider of `key`;
    /// returns its name.
    pub fn provider_name(&self, key: TypeKey) -> Option<String> {
        if let Some(ids) = self.providers.get(&key) {
            return ids.first().map(|&i| self.nodes[i].def.name.clone());
        }
        self.parent.as_ref().and_then(|p| p.plan.provider_name(key))
    }

    /// The scopes of this context and its ancestors.
    pub fn scope_chain(&self) -> Vec<Scope> {
        let mut chain = vec![self.scope];
        let mut parent = self.parent.as_ref();
        while let Some(p) = parent {
            chain.push(p.plan.scope);
            parent = p.plan.parent.as_ref();
        }
        chain
    }

    /// The path of dependents leading to `node`: a top-level component first.
    pub fn dependents_chain(&self, node: usize) -> Vec<String> {
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (from, edges) in self.edges.iter().enumerate() {
            for e in edges {
                if let Target::Local(to) = e.target {
                    dependents[to].push(from);
                }
            }
        }
        let mut chain = vec![node];
        let mut current = node;
        while let Some(&up) = dependents[current].first() {
            if chain.contains(&up) {
                break;
            }
            chain.push(up);
            current = up;
        }
        chain
            .iter()
            .rev()
            .map(|&i| self.nodes[i].def.name.clone())
            .collect()
    }

    /// The graph for export.
    pub fn graph(&self) -> DependencyGraph {
        let mut nodes: Vec<GraphNode> = self
            .nodes
            .iter()
            .map(|n| GraphNode {
                name: n.def.name.clone(),
                provides: n.def.provides.short_name(),
                scope: n.def.scope.as_str().to_owned(),
                inherited: false,
                lazy: n.def.lazy,
            })
            .collect();
        let mut edges = Vec::new();
        let mut inherited = std::collections::BTreeSet::new();
        for (from, list) in self.edges.iter().enumerate() {
            for e in list {
                let to = match &e.target {
                    Target::Local(i) => self.nodes[*i].def.name.clone(),
                    Target::Inherited(name) => {
                        inherited.insert(name.clone());
                        name.clone()
                    }
                };
                edges.push(GraphEdge {
                    from: self.nodes[from].def.name.clone(),
                    to,
                    kind: e.kind.to_string(),
                });
            }
        }
        for name in inherited {
            let def = self.parent.as_ref().and_then(|p| p.plan.find_def(&name));
            nodes.push(GraphNode {
                provides: def.map(|d| d.provides.short_name()).unwrap_or_default(),
                scope: def.map(|d| d.scope.as_str().to_owned()).unwrap_or_default(),
                lazy: def.is_some_and(|d| d.lazy),
                name,
                inherited: true,
            });
        }
        DependencyGraph {
            context: self.name.clone(),
            nodes,
            edges,
            creation_order: self
                .creation_order
                .iter()
                .map(|&i| self.nodes[i].def.name.clone())
                .collect(),
        }
    }

    fn find_def(&self, name: &str) -> Option<&Arc<ComponentDef>> {
        match self.by_name.get(name) {
            Some(&i) => Some(&self.nodes[i].def),
            None => self.parent.as_ref().and_then(|p| p.plan.find_def(name)),
        }
    }

    /// The ancestor component named `name`, if there is one.
    pub fn inherited_name(&self, name: &str) -> Option<String> {
        let parent = self.parent.as_ref()?;
        parent.plan.find_def(name).map(|d| d.name.clone())
    }

    /// The inherited provider a dependency resolves to, if an ancestor has one.
    pub fn inherited_target(&self, dep: &Dependency) -> Option<String> {
        let parent = self.parent.as_ref()?;
        match dep {
            Dependency::Named(key, name) => parent
                .plan
                .find_def(name)
                .filter(|d| d.provides == *key)
                .map(|d| d.name.clone()),
            other => other.type_key().and_then(|k| parent.plan.provider_name(k)),
        }
    }
}

//! The dependency graph: topological order, cycle paths, DOT and JSON export.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::inject::LAZY_KIND;

/// Orders nodes so that every node comes after the nodes it depends on
/// (`deps[i]` lists what `i` depends on). Depth-first, iterative, O(V + E);
/// ties follow node index order, so the result is deterministic.
/// On a cycle, returns it as a path whose first and last node are the same.
pub(crate) fn topological_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    const WHITE: u8 = 0;
    const GRAY: u8 = 1;
    const BLACK: u8 = 2;
    let mut color = vec![WHITE; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..deps.len() {
        if color[root] != WHITE {
            continue;
        }
        color[root] = GRAY;
        stack.push((root, 0));
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match color[dep] {
                    WHITE => {
                        color[dep] = GRAY;
                        stack.push((dep, 0));
                    }
                    GRAY => {
                        let start = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|(n, _)| *n).collect();
                        cycle.push(dep);
                        return Err(cycle);
                    }
                    _ => {}
                }
            } else {
                color[node] = BLACK;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// A component in the exported graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    /// Component name (unique in the context).
    pub name: String,
    /// Provided type.
    pub provides: String,
    /// Scope.
    pub scope: String,
    /// Provided by an ancestor context (not created here).
    pub inherited: bool,
    /// Created on its first lookup rather than at refresh.
    pub lazy: bool,
}

/// "`from` depends on `to`".
#[derive(Debug, Clone, Serialize)]
pub struct GraphEdge {
    /// The dependent component.
    pub from: String,
    /// The dependency.
    pub to: String,
    /// `one`, `optional`, `all`, `named`, `lazy` (no creation order) or `depends_on`.
    pub kind: String,
}

/// The validated plan of a context: nodes, edges and creation order.
/// `cptrain check` prints it; export it with [`to_dot`](Self::to_dot) / [`to_json`](Self::to_json).
#[derive(Debug, Clone, Serialize)]
pub struct DependencyGraph {
    /// The context's name.
    pub context: String,
    /// Active components of this context, then inherited providers it uses.
    pub nodes: Vec<GraphNode>,
    /// Dependencies.
    pub edges: Vec<GraphEdge>,
    /// Component names in the order refresh will create them.
    pub creation_order: Vec<String>,
}

impl DependencyGraph {
    /// Graphviz DOT text (`dot -Tsvg`).
    pub fn to_dot(&self) -> String {
        let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", escape(&self.context));
        for n in &self.nodes {
            out.push_str(&format!(
                "  \"{}\" [label=\"{}\\n{}\\n[{}{}]\"{}];\n",
                escape(&n.name),
                escape(&n.name),
                escape(&n.provides),
                escape(&n.scope),
                if n.lazy { ", lazy" } else { "" },
                if n.inherited { ", style=dashed" } else { "" }
            ));
        }
        for e in &self.edges {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"{}];\n",
                escape(&e.from),
                escape(&e.to),
                e.kind,
                if e.kind == LAZY_KIND {
                    ", style=dashed"
                } else {
                    ""
                }
            ));
        }
        out.push_str("}\n");
        out
    }

    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl fmt::Display for DependencyGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Plan for context `{}` ({} components, in creation order):",
            self.context,
            self.creation_order.len()
        )?;
        let types: HashMap<&str, &str> = self
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.provides.as_str()))
            .collect();
        let mut deps: HashMap<&str, Vec<String>> = HashMap::new();
        for e in &self.edges {
            let to = match e.kind.as_str() {
                LAZY_KIND => format!("{} (lazy)", e.to),
                _ => e.to.clone(),
            };
            deps.entry(e.from.as_str()).or_default().push(to);
        }
        let lazy: HashMap<&str, bool> = (self.nodes.iter())
            .map(|n| (n.name.as_str(), n.lazy))
            .collect();
        for (i, name) in self.creation_order.iter().enumerate() {
            let needs = deps.get(name.as_str()).map(|d| d.join(", "));
            writeln!(
                f,
                "  {:>3}. {} : {}{}{}",
                i + 1,
                name,
                types.get(name.as_str()).copied().unwrap_or("?"),
                if lazy.get(name.as_str()) == Some(&true) {
                    " [lazy]"
                } else {
                    ""
                },
                needs.map(|d| format!("  ← {d}")).unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

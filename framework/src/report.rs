//! Reports a CLI prints: the condition report (why each component was or was
//! not chosen) and the startup report (what was created, and how long it took).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::condition::ConditionOutcome;

/// Whether a registered component takes part in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// All conditions hold: it is created in this context.
    Active,
    /// A condition failed.
    Inactive,
    /// It belongs to another scope (created in child contexts of that scope).
    OtherScope,
    /// Left out by name (`appctx.exclude`, or the builder's `exclude`).
    Excluded,
}

/// One registered component and the evaluation of its conditions.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionEntry {
    /// Component name.
    pub name: String,
    /// Provided type (short form).
    pub provides: String,
    /// Scope.
    pub scope: String,
    /// Where it was registered.
    pub origin: String,
    /// The verdict.
    pub status: Status,
    /// One outcome per condition, in declaration order.
    pub outcomes: Vec<ConditionOutcome>,
}

impl ConditionEntry {
    /// Why it is (in)active, in one line.
    pub fn reason(&self) -> String {
        if self.outcomes.is_empty() {
            return "unconditional".to_string();
        }
        self.outcomes
            .iter()
            .filter(|o| matches!(self.status, Status::Active | Status::OtherScope) || !o.matched)
            .map(|o| format!("{}: {}", o.condition, o.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Why each registered component was or was not chosen (Spring Boot's
/// condition evaluation report). `cptrain components` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionReport {
    /// The context it was made for.
    pub context: String,
    /// Entries sorted by name.
    pub entries: Vec<ConditionEntry>,
}

impl ConditionReport {
    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The entry of a component.
    pub fn entry(&self, name: &str) -> Option<&ConditionEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

impl fmt::Display for ConditionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Condition report for context `{}`", self.context)?;
        for (status, title) in [
            (Status::Active, "Active components"),
            (Status::Inactive, "Inactive components"),
            (Status::Excluded, "Excluded components"),
            (
                Status::OtherScope,
                "Components of other scopes (created in child contexts)",
            ),
        ] {
            let entries: Vec<_> = self.entries.iter().filter(|e| e.status == status).collect();
            if entries.is_empty() {
                continue;
            }
            writeln!(f, "\n{title}:")?;
            for e in entries {
                writeln!(
                    f,
                    "  {} ({}, scope {}): {}",
                    e.name,
                    e.provides,
                    e.scope,
                    e.reason()
                )?;
            }
        }
        Ok(())
    }
}

/// One created component.
#[derive(Debug, Clone, Serialize)]
pub struct StartupEntry {
    /// Component name.
    pub name: String,
    /// Provided type (short form).
    pub provides: String,
    /// Scope.
    pub scope: String,
    /// Time its factory took.
    #[serde(serialize_with = "micros")]
    pub created_in: Duration,
    /// Why it was chosen.
    pub why: String,
}

/// What refresh created, in creation order, with timings.
#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    /// The context.
    pub context: String,
    /// In creation order (topological, but for components a factory
    /// created early through a `Lazy` handle).
    pub entries: Vec<StartupEntry>,
    /// Whole refresh, including lifecycle start.
    #[serde(serialize_with = "micros")]
    pub total: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

impl StartupReport {
    /// The report of a context that created nothing (yet).
    pub(crate) fn empty(context: &str) -> Self {
        StartupReport {
            context: context.to_string(),
            entries: Vec::new(),
            total: Duration::ZERO,
        }
    }

    /// As JSON (durations in microseconds).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for StartupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Started context `{}`: {} components in {:.3?}",
            self.context,
            self.entries.len(),
            self.total
        )?;
        let name_w = self.entries.iter().map(|e| e.name.len()).max().unwrap_or(4);
        let type_w = self
            .entries
            .iter()
            .map(|e| e.provides.len())
            .max()
            .unwrap_or(4);
        for e in &self.entries {
            writeln!(
                f,
                "  {:<name_w$}  {:<type_w$}  {:<10}  {:>10.3?}  {}",
                e.name, e.provides, e.scope, e.created_in, e.why
            )?;
        }
        Ok(())
    }
}

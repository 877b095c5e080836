//! Failure analysis: every [`Error`](crate::Error) renders as a *Description*
//! and an *Action*, the way Spring Boot's failure analyzers do.

use std::fmt;

/// What went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureAnalysis {
    /// What went wrong, naming the key, file, or component.
    pub description: String,
    /// What the user should do about it.
    pub action: String,
}

impl FailureAnalysis {
    /// Builds an analysis from its two paragraphs.
    pub fn new(description: impl Into<String>, action: impl Into<String>) -> Self {
        FailureAnalysis {
            description: description.into(),
            action: action.into(),
        }
    }
}

impl fmt::Display for FailureAnalysis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Description:\n\n{}\n\nAction:\n\n{}",
            indent(&self.description),
            indent(&self.action)
        )
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The candidate among `known` nearest to `wanted` (Jaro-Winkler), if it is close enough.
pub fn did_you_mean<'a, I>(wanted: &str, known: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(wanted, k), k))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, k)| k.to_string())
}

/// Formats a list as `a, b, c` with each item in backticks.
pub(crate) fn ticked(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

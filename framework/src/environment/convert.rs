//! The merged `config` tree as a TOML table (what binding and printing use).

use config::{Map, Value, ValueKind};

/// Converts a `config` table, sorting keys so every run prints the same.
///
/// `config` reads TOML datetimes as strings, so they come back as strings.
pub(super) fn to_toml_table(table: Map<String, Value>) -> toml::Table {
    let mut entries: Vec<(String, toml::Value)> = table
        .into_iter()
        .filter_map(|(key, value)| Some((key, to_toml(value)?)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// One value; `Nil` (which TOML cannot hold, and which no source here produces) is dropped.
fn to_toml(value: Value) -> Option<toml::Value> {
    Some(match value.kind {
        ValueKind::Nil => return None,
        ValueKind::Boolean(b) => toml::Value::Boolean(b),
        ValueKind::I64(i) => toml::Value::Integer(i),
        ValueKind::I128(i) => integer(i),
        ValueKind::U64(u) => integer(u),
        ValueKind::U128(u) => integer(u),
        ValueKind::Float(x) => toml::Value::Float(x),
        ValueKind::String(s) => toml::Value::String(s),
        ValueKind::Table(table) => toml::Value::Table(to_toml_table(table)),
        ValueKind::Array(items) => {
            toml::Value::Array(items.into_iter().filter_map(to_toml).collect())
        }
    })
}

/// A wide integer as a TOML integer, or as text when it does not fit in `i64`.
fn integer<T: TryInto<i64> + ToString + Copy>(wide: T) -> toml::Value {
    wide.try_into()
        .map(toml::Value::Integer)
        .unwrap_or_else(|_| toml::Value::String(wide.to_string()))
}

//! Which source set which key, replayed from each layer's own tree.
//!
//! `config` merges a table into a table key by key, and lets any other value
//! replace what a lower layer set (a table included); [`record`] applies the
//! same rule to the sources of the keys.

use std::collections::BTreeMap;

use config::{Map, Value, ValueKind};

use super::Source;
use super::bind::join;

/// Records `source` for every leaf of `layer` (a layer's tree under `prefix`),
/// forgetting what it replaces.
pub(super) fn record(
    origins: &mut BTreeMap<String, Source>,
    layer: &Map<String, Value>,
    prefix: &str,
    source: &Source,
) {
    for (key, value) in layer {
        let path = join(prefix, key);
        match &value.kind {
            ValueKind::Table(table) => {
                // A table replaces a leaf a lower layer set here.
                origins.remove(&path);
                record(origins, table, &path, source);
            }
            _ => {
                forget_under(origins, &path);
                origins.insert(path, source.clone());
            }
        }
    }
}

/// Forgets `path` and every key below it.
fn forget_under(origins: &mut BTreeMap<String, Source>, path: &str) {
    origins.remove(path);
    let from = format!("{path}.");
    let to = format!("{path}/"); // '/' sorts right after '.'
    let stale: Vec<String> = origins.range(from..to).map(|(k, _)| k.clone()).collect();
    for key in stale {
        origins.remove(&key);
    }
}

//! `${...}` placeholders in configuration values, resolved once the layers
//! are merged: `${a.b}` is the value of key `a.b` (itself resolved), else the
//! environment variable `a.b`; `${NAME:default}` falls back to `default`.
//! A value that is exactly one placeholder takes the referenced value with
//! its type (`n = "${model.n_layer}"` is an integer); inside text, values are
//! written in TOML form. `$${` writes a literal `${`.

use std::collections::{BTreeMap, HashMap};

use toml::{Table, Value};

use super::Source;
use crate::error::{Error, Result};

/// Resolves every placeholder of `root` in place. `var` reads an
/// environment variable; `origins` names where each key was set.
pub(super) fn resolve(
    root: &mut Table,
    origins: &BTreeMap<String, Source>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let pending: Vec<String> = origins
        .keys()
        .filter(|key| lookup(root, key).is_some_and(has_placeholder))
        .cloned()
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut resolver = Resolver {
        root,
        origins,
        var,
        done: HashMap::new(),
        stack: Vec::new(),
    };
    for key in &pending {
        resolver.key(key)?;
    }
    let resolved = resolver.done;
    for (key, value) in resolved {
        if let Some(slot) = lookup_mut(root, &key) {
            *slot = value;
        }
    }
    Ok(())
}

struct Resolver<'a> {
    root: &'a Table,
    origins: &'a BTreeMap<String, Source>,
    var: &'a dyn Fn(&str) -> Option<String>,
    /// Resolved values of keys that held placeholders.
    done: HashMap<String, Value>,
    /// Keys being resolved, outermost first (a repeat is a cycle).
    stack: Vec<String>,
}

impl Resolver<'_> {
    /// The resolved value of `key`, or `None` if no key of that name exists.
    fn key(&mut self, key: &str) -> Result<Option<Value>> {
        if let Some(value) = self.done.get(key) {
            return Ok(Some(value.clone()));
        }
        let Some(raw) = lookup(self.root, key) else {
            return Ok(None);
        };
        if !has_placeholder(raw) {
            return Ok(Some(raw.clone()));
        }
        if let Some(start) = self.stack.iter().position(|k| k == key) {
            let mut path = self.stack[start..].to_vec();
            path.push(key.to_string());
            return Err(Error::PlaceholderCycle { path });
        }
        self.stack.push(key.to_string());
        let value = self.value(key, raw);
        self.stack.pop();
        let value = value?;
        self.done.insert(key.to_string(), value.clone());
        Ok(Some(value))
    }

    /// `raw` (the value of `key`) with its placeholders replaced.
    fn value(&mut self, key: &str, raw: &Value) -> Result<Value> {
        match raw {
            Value::String(text) => self.text(key, text),
            Value::Array(items) => items
                .iter()
                .map(|item| self.value(key, item))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn text(&mut self, key: &str, text: &str) -> Result<Value> {
        let parts = split(text).map_err(|message| Error::InvalidConfig {
            key: key.to_string(),
            message,
            origin: self.origin(key),
        })?;
        if let [Part::Placeholder(inner)] = parts.as_slice() {
            return self.placeholder(key, inner);
        }
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Text(t) => out.push_str(&t),
                Part::Placeholder(inner) => match self.placeholder(key, &inner)? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(Value::String(out))
    }

    /// The value of `${inner}` met in the value of `key`.
    fn placeholder(&mut self, key: &str, inner: &str) -> Result<Value> {
        let (name, default) = match inner.split_once(':') {
            Some((name, default)) => (name.trim(), Some(default)),
            None => (inner.trim(), None),
        };
        if let Some(value) = self.key(name)? {
            return Ok(value);
        }
        if let Some(value) = (self.var)(name) {
            return Ok(Value::String(value));
        }
        match default {
            Some(default) => Ok(Value::String(default.to_string())),
            None => Err(Error::UnresolvedPlaceholder {
                key: key.to_string(),
                placeholder: format!("${{{inner}}}"),
                origin: self.origin(key),
            }),
        }
    }

    fn origin(&self, key: &str) -> Option<String> {
        self.origins.get(key).map(|s| s.to_string())
    }
}

/// A piece of a value: literal text, or the inside of a `${...}`.
enum Part {
    Text(String),
    Placeholder(String),
}

/// Splits `text` at its placeholders; an unclosed `${` is an error.
fn split(text: &str) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(escaped) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open
                .find('}')
                .ok_or_else(|| format!("the placeholder in \"{text}\" has no closing `}}`"))?;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Placeholder(open[..end].to_string()));
            rest = &open[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(parts)
}

fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("${"),
        Value::Array(items) => items.iter().any(has_placeholder),
        _ => false,
    }
}

fn lookup<'t>(root: &'t Table, key: &str) -> Option<&'t Value> {
    let mut parts = key.split('.');
    let mut value = root.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn lookup_mut<'t>(root: &'t mut Table, key: &str) -> Option<&'t mut Value> {
    let mut parts = key.split('.');
    let mut value = root.get_mut(parts.next()?)?;
    for part in parts {
        value = value.as_table_mut()?.get_mut(part)?;
    }
    Some(value)
}

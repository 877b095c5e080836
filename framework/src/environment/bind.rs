//! Binding a subtree of the configuration to a serde type, with errors that
//! name the full key path (and, through the environment, the source).
//!
//! A small `Deserializer` over `toml::Value` whose error type records
//! *structured* failures (unknown field with the expected list, wrong type,
//! missing field), so that diagnostics need not parse serde's messages.
//! Scalars are converted leniently (`"5"` binds to an integer field, `5` to a
//! string field), because environment variables and `--set` carry text.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use toml::Value;

/// What went wrong while binding, before it is turned into an [`crate::Error`].
#[derive(Debug)]
pub(crate) enum Failure {
    Unknown {
        field: String,
        expected: Vec<String>,
    },
    Type {
        expected: String,
        found: String,
    },
    Missing {
        field: String,
    },
    Custom(String),
}

/// A binding failure at a key path.
#[derive(Debug)]
pub(crate) struct BindError {
    pub path: Option<String>,
    pub failure: Failure,
}

impl BindError {
    fn new(failure: Failure) -> Self {
        BindError {
            path: None,
            failure,
        }
    }

    /// Fills in the path if no deeper level did.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(match &self.failure {
                Failure::Missing { field } | Failure::Unknown { field, .. } => join(path, field),
                _ => path.to_string(),
            });
        }
        self
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at {:?}", self.failure, self.path)
    }
}

impl std::error::Error for BindError {}

impl de::Error for BindError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        BindError::new(Failure::Custom(msg.to_string()))
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        BindError::new(Failure::Type {
            expected: exp.to_string(),
            found: unexp.to_string(),
        })
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        BindError::new(Failure::Unknown {
            field: field.to_string(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        })
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        BindError::new(Failure::Type {
            expected: format!("one of {}", expected.join(", ")),
            found: format!("`{variant}`"),
        })
    }
    fn missing_field(field: &'static str) -> Self {
        BindError::new(Failure::Missing {
            field: field.to_string(),
        })
    }
}

/// Keys the target type did not read (structs without `deny_unknown_fields`).
#[derive(Default)]
pub(crate) struct Ignored {
    /// Full paths of ignored keys.
    pub ignored: RefCell<Vec<String>>,
    /// Full paths of keys that were read.
    pub read: RefCell<Vec<String>>,
}

pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Deserializes one value found at `path`.
pub(crate) struct ValueDe<'a> {
    pub value: &'a Value,
    pub path: String,
    pub ignored: &'a Ignored,
}

impl ValueDe<'_> {
    fn child<'b>(&'b self, value: &'b Value, path: String) -> ValueDe<'b> {
        ValueDe {
            value,
            path,
            ignored: self.ignored,
        }
    }
}

macro_rules! lenient_number {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
            if let Value::String(s) = self.value {
                let t = s.trim();
                let result = if let Ok(i) = t.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(u) = t.parse::<u64>() {
                    visitor.visit_u64(u)
                } else if let Ok(x) = t.parse::<f64>() {
                    visitor.visit_f64(x)
                } else {
                    visitor.visit_str(s)
                };
                return result.map_err(|e: BindError| e.at(&self.path));
            }
            self.deserialize_any(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDe<'_> {
    type Error = BindError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let result = match self.value {
            Value::String(s) => visitor.visit_str(s),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Datetime(d) => visitor.visit_string(d.to_string()),
            Value::Array(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                de: &self,
            }),
            Value::Table(table) => visitor.visit_map(MapDe {
                entries: table.iter(),
                pending: None,
                de: &self,
            }),
        };
        result.map_err(|e: BindError| e.at(&self.path))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let text = match self.value {
            Value::Integer(i) => i.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Boolean(b) => b.to_string(),
            _ => return self.deserialize_any(visitor),
        };
        visitor
            .visit_string(text)
            .map_err(|e: BindError| e.at(&self.path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        if let Value::String(s) = self.value
            && let Ok(b) = s.trim().parse::<bool>()
        {
            return visitor
                .visit_bool(b)
                .map_err(|e: BindError| e.at(&self.path));
        }
        self.deserialize_any(visitor)
    }

    lenient_number!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let path = self.path.clone();
        visitor.visit_some(self).map_err(|e: BindError| e.at(&path))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BindError> {
        let path = self.path.clone();
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: BindError| e.at(&path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BindError> {
        match self.value {
            Value::String(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: BindError| e.at(&self.path)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        self.ignored.ignored.borrow_mut().push(self.path.clone());
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct SeqDe<'a, 'b, I> {
    items: I,
    de: &'b ValueDe<'a>,
}

impl<'de, 'a, 'b, I> SeqAccess<'de> for SeqDe<'a, 'b, I>
where
    I: Iterator<Item = (usize, &'b Value)>,
{
    type Error = BindError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, BindError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, value)) => {
                let path = format!("{}[{i}]", self.de.path);
                seed.deserialize(self.de.child(value, path)).map(Some)
            }
        }
    }
}

struct MapDe<'a, 'b, I> {
    entries: I,
    pending: Option<(&'b String, &'b Value)>,
    de: &'b ValueDe<'a>,
}

impl<'de, 'a, 'b, I> MapAccess<'de> for MapDe<'a, 'b, I>
where
    I: Iterator<Item = (&'b String, &'b Value)>,
{
    type Error = BindError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, BindError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        let path = join(&self.de.path, key);
        self.de.ignored.read.borrow_mut().push(path.clone());
        seed.deserialize(key.as_str().into_deserializer())
            .map(Some)
            .map_err(|e: BindError| {
                if e.path.is_none() && matches!(e.failure, Failure::Unknown { .. }) {
                    BindError {
                        path: Some(path),
                        ..e
                    }
                } else {
                    e.at(&self.de.path)
                }
            })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, BindError> {
        let (key, value) = self
            .pending
            .take()
            .expect("serde calls next_value_seed after next_key_seed");
        let path = join(&self.de.path, key);
        seed.deserialize(self.de.child(value, path))
    }
}

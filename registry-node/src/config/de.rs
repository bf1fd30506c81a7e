//! A `serde_json::Value` deserializer that remembers where it is.
//!
//! Config files are parsed (JSON or HCL) into a `Value` first, because sources
//! are merged as values. Deserializing that value with `serde_json` alone would
//! report `unknown field "htp", expected one of ...` without saying it sits under
//! `ports`; this wrapper records the key path so errors read
//! `unknown field "ports.htp"` or `ports.http: invalid type: string "x", expected i32`.

use std::fmt;

use serde::Deserialize;
use serde::de::value::StringDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Deserializes `T` from `value`, reporting errors with their key path.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, PathError> {
    T::deserialize(ValueDe(value))
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A deserialization error and the key path it happened at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    /// Outermost first; built while the error unwinds.
    path: Vec<Segment>,
    /// The error text without the path.
    message: String,
    /// Set when the error is a key the target does not know.
    unknown: Option<String>,
}

impl PathError {
    fn prepend(mut self, segment: Segment) -> Self {
        self.path.insert(0, segment);
        self
    }

    /// The dotted path of the offending key (`ports.http`, `retry_join[1]`).
    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        let mut segments: Vec<Segment> = self.path.clone();
        if let Some(field) = &self.unknown {
            segments.push(Segment::Key(field.clone()));
        }
        for segment in segments {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&key);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if self.unknown.is_some() {
            write!(f, "unknown field \"{path}\"")
        } else if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

impl std::error::Error for PathError {}

impl de::Error for PathError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PathError {
            path: Vec::new(),
            message: msg.to_string(),
            unknown: None,
        }
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        // The list of expected keys is long and not helpful in a config error.
        PathError {
            path: Vec::new(),
            message: format!("unknown field \"{field}\""),
            unknown: Some(field.to_string()),
        }
    }
}

/// The wrapped value.
struct ValueDe(Value);

impl<'de> de::Deserializer<'de> for ValueDe {
    type Error = PathError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(SeqDe {
                iter: items.into_iter(),
                index: 0,
            }),
            Value::Object(map) => visitor.visit_map(MapDe::new(map)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(ValueDe(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        match self.0 {
            Value::String(s) => {
                let de: StringDeserializer<PathError> = s.into_deserializer();
                visitor.visit_enum(de)
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &"a string")),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// What a value looks like, for "invalid type" messages.
fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match n.as_f64() {
            Some(f) => de::Unexpected::Float(f),
            None => de::Unexpected::Other("number"),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct SeqDe {
    iter: std::vec::IntoIter<Value>,
    index: usize,
}

impl<'de> SeqAccess<'de> for SeqDe {
    type Error = PathError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PathError> {
        let Some(value) = self.iter.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(ValueDe(value))
            .map(Some)
            .map_err(|e| e.prepend(Segment::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe {
    iter: serde_json::map::IntoIter,
    /// The key whose value is read next.
    key: Option<String>,
    value: Option<Value>,
}

impl MapDe {
    fn new(map: Map<String, Value>) -> Self {
        MapDe {
            iter: map.into_iter(),
            key: None,
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for MapDe {
    type Error = PathError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PathError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        self.key = Some(key.clone());
        let de: StringDeserializer<PathError> = key.into_deserializer();
        seed.deserialize(de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PathError> {
        let value = self.value.take().unwrap_or(Value::Null);
        let key = self.key.take().unwrap_or_default();
        seed.deserialize(ValueDe(value))
            .map_err(|e| e.prepend(Segment::Key(key)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// `deserialize_with` helper: a list of raw JSON objects decoded the way Consul
/// decodes service and check definitions (case-insensitive, snake_case accepted).
pub(crate) fn consul_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = Vec::<Value>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|v| registry_api::decode::from_value(v).map_err(de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        http: i32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default)]
        ports: Option<Inner>,
        #[serde(default)]
        list: Vec<u16>,
    }

    #[test]
    fn errors_carry_their_path() {
        let err = from_value::<Outer>(json!({"ports": {"htp": 1}})).unwrap_err();
        assert!(err.unknown.is_some());
        assert_eq!(err.to_string(), "unknown field \"ports.htp\"");

        let err = from_value::<Outer>(json!({"nope": 1})).unwrap_err();
        assert_eq!(err.to_string(), "unknown field \"nope\"");

        let err = from_value::<Outer>(json!({"ports": {"http": "x"}})).unwrap_err();
        assert_eq!(err.path(), "ports.http");
        assert!(
            err.to_string()
                .starts_with("ports.http: invalid type: string \"x\"")
        );

        let err = from_value::<Outer>(json!({"list": [1, 70000]})).unwrap_err();
        assert_eq!(err.path(), "list[1]");
    }
}

//! Lenient JSON decoding that matches Go's `encoding/json`: struct field names
//! are matched case-insensitively, and (as Consul's agent endpoints allow)
//! snake_case keys bind to CamelCase fields. Map keys (`Meta`, `Header`) are
//! kept exactly as sent.
//!
//! It wraps `serde_json::Value` in a deserializer that renames an object's keys
//! to the field names the target struct declares, so every wire type keeps its
//! exact CamelCase output names and still accepts `{"name": "web", "port": 80}`.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Decodes JSON bytes into `T`, matching field names the way Go does.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    from_value(value)
}

/// Decodes an already parsed JSON value into `T`, matching field names the way Go does.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Relaxed(value))
}

/// Folds a key for comparison: lower case, underscores and dashes removed.
fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Picks the declared field a JSON key binds to: exact first, then folded.
fn rename(key: String, fields: &'static [&'static str]) -> String {
    if fields.contains(&key.as_str()) {
        return key;
    }
    let folded = fold(&key);
    match fields.iter().find(|f| fold(f) == folded) {
        Some(f) => (*f).to_string(),
        None => key,
    }
}

struct Relaxed(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Relaxed {
    type Deserializer = Relaxed;
    fn into_deserializer(self) -> Relaxed {
        self
    }
}

struct RelaxedMap {
    iter: serde_json::map::IntoIter,
    fields: Option<&'static [&'static str]>,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for RelaxedMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                let key = match self.fields {
                    Some(fields) => rename(k, fields),
                    None => k,
                };
                seed.deserialize(Value::String(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self.value.take().unwrap_or(Value::Null);
        seed.deserialize(Relaxed(value))
    }
}

struct RelaxedSeq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for RelaxedSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.0.next() {
            Some(v) => seed.deserialize(Relaxed(v)).map(Some),
            None => Ok(None),
        }
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    map: Map<String, Value>,
    fields: Option<&'static [&'static str]>,
    visitor: V,
) -> Result<V::Value, serde_json::Error> {
    visitor.visit_map(RelaxedMap {
        iter: map.into_iter(),
        fields,
        value: None,
    })
}

impl<'de> de::Deserializer<'de> for Relaxed {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visit_object(map, None, visitor),
            Value::Array(items) => visitor.visit_seq(RelaxedSeq(items.into_iter())),
            other => de::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Relaxed(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visit_object(map, Some(fields), visitor),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_bool(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_str(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_bytes(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_byte_buf(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit(visitor)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Inner {
        #[serde(rename = "HTTP")]
        http: String,
        #[serde(rename = "Interval")]
        interval: String,
    }

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Outer {
        #[serde(rename = "ID")]
        id: String,
        #[serde(rename = "EnableTagOverride")]
        enable_tag_override: bool,
        #[serde(rename = "Meta")]
        meta: HashMap<String, String>,
        #[serde(rename = "Checks")]
        checks: Vec<Inner>,
        #[serde(rename = "Check")]
        check: Option<Inner>,
    }

    #[test]
    fn binds_lower_and_snake_case_and_keeps_map_keys() {
        let v: Outer = super::from_slice(
            br#"{"id":"jetty","enable_tag_override":true,"Meta":{"Env":"x"},
                 "checks":[{"http":"http://a/","interval":"5s"}],"CHECK":{"Http":"h"}}"#,
        )
        .unwrap();
        assert_eq!(v.id, "jetty");
        assert!(v.enable_tag_override);
        assert_eq!(v.meta.get("Env").map(String::as_str), Some("x"));
        assert_eq!(v.checks[0].http, "http://a/");
        assert_eq!(v.checks[0].interval, "5s");
        assert_eq!(v.check.unwrap().http, "h");
    }
}

//! Request bodies read strictly: a parameter given twice is refused rather than letting one
//! of its values win (RFC 6749 §3.2: "Request and response parameters MUST NOT be included
//! more than once"). A reader that takes the last value and a check that looked at the
//! first could otherwise disagree about what a request says (`client_id=A&client_id=B`).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON (or not a form).
    Malformed,
    /// This key appears more than once (cut to 100 characters).
    Repeated(String),
}

impl BodyError {
    fn repeated(key: &str) -> Self {
        Self::Repeated(key.chars().take(100).collect())
    }
}

/// `a=b&c=d` as a JSON object of strings; a repeated key is an error.
pub fn form(bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    let mut out = Map::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        if out.contains_key(k.as_ref()) {
            return Err(BodyError::repeated(&k));
        }
        out.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    Ok(out)
}

/// JSON text as a value; an object with a repeated key, at any depth, is an error.
pub fn json(bytes: &[u8]) -> Result<Value, BodyError> {
    let repeated = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Unique(&repeated)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match (parsed, repeated.into_inner()) {
        (_, Some(key)) => Err(BodyError::repeated(&key)),
        (Ok(v), None) => Ok(v),
        (Err(_), None) => Err(BodyError::Malformed),
    }
}

/// Builds a JSON value, noting the first repeated object key (and failing there).
#[derive(Clone, Copy)]
struct Unique<'a>(&'a RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                *self.0.borrow_mut() = Some(key);
                return Err(de::Error::custom("repeated key"));
            }
            let v = map.next_value_seed(self)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Why a body's object does not make a parameter struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// This parameter's value is not of its declared type.
    Invalid(&'static str),
    /// The target is not a struct of parameters.
    Other(String),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(name) => write!(f, "invalid parameter {name}"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Other(msg.to_string())
    }
}

/// Reads a parameter struct (the declared wire type) from a body's object: its fields in
/// their declaration order, so the first invalid one reported is the first declared; keys
/// it does not declare are ignored. Values are moved, not copied.
pub fn fields<T: de::DeserializeOwned>(object: Map<String, Value>) -> Result<T, FieldError> {
    T::deserialize(Fields(object))
}

struct Fields(Map<String, Value>);

impl<'de> de::Deserializer<'de> for Fields {
    type Error = FieldError;

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_map(InOrder {
            fields: fields.iter(),
            object: &mut self.0,
            pending: None,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, FieldError> {
        Err(FieldError::Other("expected a struct of parameters".into()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The declared fields present in the object, in declaration order.
struct InOrder<'a> {
    fields: std::slice::Iter<'static, &'static str>,
    object: &'a mut Map<String, Value>,
    pending: Option<(&'static str, Value)>,
}

impl<'de> MapAccess<'de> for InOrder<'_> {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldError> {
        for field in self.fields.by_ref() {
            if let Some(value) = self.object.remove(*field) {
                self.pending = Some((field, value));
                return seed
                    .deserialize(de::value::BorrowedStrDeserializer::new(field))
                    .map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldError> {
        let (field, value) = self
            .pending
            .take()
            .ok_or_else(|| FieldError::Other("a value without its key".into()))?;
        seed.deserialize(value)
            .map_err(|_| FieldError::Invalid(field))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn repeated_form_parameters_are_refused() {
        assert_eq!(
            form(b"client_id=a&client_id=b"),
            Err(BodyError::Repeated("client_id".into()))
        );
        // Percent-encoding does not hide a repetition.
        assert_eq!(
            form(b"audience=x&%61udience=y"),
            Err(BodyError::Repeated("audience".into()))
        );
        let ok = form(b"a=1&b=2&c=").unwrap();
        assert_eq!(ok["c"], "");
    }

    #[test]
    fn repeated_json_keys_are_refused_at_any_depth() {
        assert_eq!(
            json(br#"{"grant_type":"a","grant_type":"b"}"#),
            Err(BodyError::Repeated("grant_type".into()))
        );
        assert_eq!(
            json(br#"{"x":[{"k":1,"k":2}]}"#),
            Err(BodyError::Repeated("k".into()))
        );
        // Escapes do not hide one either: "\u0061" is "a".
        assert_eq!(
            json(br#"{"a":1,"\u0061":2}"#),
            Err(BodyError::Repeated("a".into()))
        );
        assert_eq!(json(b"{\"a\":1} x"), Err(BodyError::Malformed));
        assert_eq!(json(b"{"), Err(BodyError::Malformed));
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let text = br#"{"s":"t","n":-1,"u":18446744073709551615,"f":1.5,"b":true,"z":null,"a":[1,{"k":"v"}]}"#;
        let strict = json(text).unwrap();
        let plain: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, plain);
        // Key order is kept (preserve_order), as serde_json keeps it.
        assert_eq!(
            strict.as_object().unwrap().keys().collect::<Vec<_>>(),
            plain.as_object().unwrap().keys().collect::<Vec<_>>()
        );
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Params {
        b: Option<String>,
        a: Option<String>,
    }

    #[test]
    fn fields_are_read_in_declaration_order() {
        let object = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let ok: Params = fields(object(serde_json::json!({"a": "x", "b": null, "c": 1}))).unwrap();
        assert_eq!(
            ok,
            Params {
                b: None,
                a: Some("x".into())
            }
        );
        // Both are invalid: the first declared is reported, whatever the body's order.
        let bad = fields::<Params>(object(serde_json::json!({"a": 1, "b": 2})));
        assert_eq!(bad, Err(FieldError::Invalid("b")));
    }
}

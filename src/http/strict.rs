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
}

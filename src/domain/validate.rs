//! Request-body validation with Auth0's messages.
//!
//! Auth0 validates bodies against its JSON schema and reports the first problem as
//! `Payload validation error: '<what>' on property <path> (<description>).`; unknown
//! properties are refused. [`Body`] reads a JSON object field by field, remembering which
//! properties it was asked about, and [`Body::finish`] refuses anything left over — so a
//! request type's whole schema is visible in the one function that reads it.

use serde_json::{Map, Value};

use super::DomainError;

/// The JSON type name as Auth0's validator prints it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Builds `Payload validation error: '<what>' on property <path> (<description>).` The
/// description shows only where the served schema has none for `path`: over HTTP a property
/// is described in Auth0's words (`http::extract::Payload::read`).
pub fn payload_error(what: &str, path: &str, description: &str) -> DomainError {
    DomainError::Payload {
        what: what.to_string(),
        path: path.to_string(),
        description: description.to_string(),
    }
}

/// Builds `Payload validation error: '<what>'.` for errors that concern the whole body.
pub fn body_error(what: &str) -> DomainError {
    DomainError::InvalidBody(format!("Payload validation error: '{what}'."))
}

/// The state of a property that may be sent as `null` to clear it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Not in the body: leave unchanged.
    #[default]
    Absent,
    /// Sent as `null`: clear.
    Null,
    /// Sent with a value.
    Value(T),
}

impl<T> Patch<T> {
    /// Whether the property was sent at all.
    pub fn is_present(&self) -> bool {
        !matches!(self, Patch::Absent)
    }
}

/// A pattern check and the pattern as Auth0 prints it.
pub type Pattern = (fn(&str) -> bool, &'static str);

/// Limits for a string property.
#[derive(Debug, Clone, Copy, Default)]
pub struct Str {
    /// Minimum length in characters.
    pub min: usize,
    /// Maximum length in characters.
    pub max: Option<usize>,
    /// Allowed values, if an enum.
    pub one_of: Option<&'static [&'static str]>,
    /// A pattern check and its printed form.
    pub pattern: Option<Pattern>,
}

impl Str {
    /// Any string.
    pub const ANY: Str = Str {
        min: 0,
        max: None,
        one_of: None,
        pattern: None,
    };

    /// A string whose limits (length, enum, pattern) are all Auth0's, stated by the schema of
    /// the operation: the served schema checks them before the domain reads the body
    /// (`http::schema`), so the domain writes none of them again. Only a limit of Clavis's own
    /// (stricter than Auth0's, or where Auth0 states none) is written in the domain.
    pub const SCHEMA: Str = Str::ANY;

    /// A string of at most `max` characters.
    pub const fn max(max: usize) -> Str {
        Str {
            min: 0,
            max: Some(max),
            one_of: None,
            pattern: None,
        }
    }

    /// A string of `min..=max` characters.
    pub const fn len(min: usize, max: usize) -> Str {
        Str {
            min,
            max: Some(max),
            one_of: None,
            pattern: None,
        }
    }

    /// One of the given values.
    pub const fn one_of(values: &'static [&'static str]) -> Str {
        Str {
            min: 0,
            max: None,
            one_of: Some(values),
            pattern: None,
        }
    }

    /// Checks `value`, returning the validator's text for the first problem.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let chars = value.chars().count();
        if chars < self.min {
            return Err(format!(
                "String is too short ({chars} chars), minimum {}",
                self.min
            ));
        }
        if let Some(max) = self.max
            && chars > max
        {
            return Err(format!("String is too long ({chars} chars), maximum {max}"));
        }
        if let Some(values) = self.one_of
            && !values.contains(&value)
        {
            return Err(format!("No enum match for: \"{}\"", truncate(value, 64)));
        }
        if let Some((matches, printed)) = self.pattern
            && !matches(value)
        {
            return Err(format!(
                "String does not match pattern {printed}: {}",
                truncate(value, 64)
            ));
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// A request body being read. See the module documentation.
pub struct Body<'a> {
    obj: &'a Map<String, Value>,
    seen: Vec<&'a str>,
    /// Values came from a form body: scalars arrive as strings and are coerced.
    form: bool,
    prefix: String,
}

impl<'a> Body<'a> {
    /// Starts reading `value`, which must be a JSON object.
    pub fn new(value: &'a Value) -> Result<Self, DomainError> {
        Self::nested(value, "", false)
    }

    /// Starts reading a body that came as `application/x-www-form-urlencoded`.
    pub fn new_form(value: &'a Value) -> Result<Self, DomainError> {
        Self::nested(value, "", true)
    }

    /// Reads a nested object; `prefix` is its path (e.g. `jwt_configuration`).
    pub fn nested(value: &'a Value, prefix: &str, form: bool) -> Result<Self, DomainError> {
        match value {
            Value::Object(obj) => Ok(Self {
                obj,
                seen: Vec::new(),
                form,
                prefix: prefix.to_string(),
            }),
            other if prefix.is_empty() => Err(body_error(&format!(
                "Expected type object but found type {}",
                type_name(other)
            ))),
            other => Err(payload_error(
                &format!("Expected type object but found type {}", type_name(other)),
                prefix,
                "",
            )),
        }
    }

    /// Whether the body has no properties at all.
    pub fn is_empty(&self) -> bool {
        self.obj.is_empty()
    }

    /// Whether `key` is present (with any value, including null).
    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// A property's raw value, without reading it (it still counts as unknown until read).
    pub fn peek(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    fn take(&mut self, key: &'a str) -> Option<&'a Value> {
        self.seen.push(key);
        self.obj.get(key)
    }

    /// The error for `key` with text `what`.
    pub fn error(&self, key: &str, what: &str, description: &str) -> DomainError {
        payload_error(what, &self.path(key), description)
    }

    fn type_error(
        &self,
        key: &str,
        expected: &str,
        found: &Value,
        description: &str,
    ) -> DomainError {
        self.error(
            key,
            &format!(
                "Expected type {expected} but found type {}",
                type_name(found)
            ),
            description,
        )
    }

    /// Marks `key` as known and returns its raw value (including null), for properties that
    /// are kept as opaque JSON.
    pub fn raw(&mut self, key: &'a str) -> Option<&'a Value> {
        self.take(key)
    }

    /// A required property's raw value.
    pub fn required_raw(&mut self, key: &'a str) -> Result<&'a Value, DomainError> {
        match self.take(key) {
            Some(v) => Ok(v),
            None => Err(body_error(&format!(
                "Missing required property: {}",
                self.path(key)
            ))),
        }
    }

    /// An optional string; `null` is a type error.
    pub fn string(
        &mut self,
        key: &'a str,
        rules: Str,
        description: &str,
    ) -> Result<Option<String>, DomainError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                rules
                    .check(s)
                    .map_err(|what| self.error(key, &what, description))?;
                Ok(Some(s.clone()))
            }
            Some(other) => Err(self.type_error(key, "string", other, description)),
        }
    }

    /// A required string.
    pub fn required_string(
        &mut self,
        key: &'a str,
        rules: Str,
        description: &str,
    ) -> Result<String, DomainError> {
        if !self.obj.contains_key(key) {
            self.seen.push(key);
            return Err(body_error(&format!(
                "Missing required property: {}",
                self.path(key)
            )));
        }
        self.string(key, rules, description)?
            .ok_or_else(|| body_error(&format!("Missing required property: {key}")))
    }

    /// A string that may be sent as `null`.
    pub fn nullable_string(
        &mut self,
        key: &'a str,
        rules: Str,
        description: &str,
    ) -> Result<Patch<String>, DomainError> {
        match self.obj.get(key) {
            Some(Value::Null) => {
                self.seen.push(key);
                Ok(Patch::Null)
            }
            _ => Ok(match self.string(key, rules, description)? {
                Some(s) => Patch::Value(s),
                None => Patch::Absent,
            }),
        }
    }

    /// An optional boolean (form bodies may send `true`/`false` as text).
    pub fn bool(&mut self, key: &'a str, description: &str) -> Result<Option<bool>, DomainError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if self.form && (s == "true" || s == "false") => {
                Ok(Some(s == "true"))
            }
            Some(other) => Err(self.type_error(key, "boolean", other, description)),
        }
    }

    /// An optional integer within `min..=max`.
    pub fn integer(
        &mut self,
        key: &'a str,
        min: i64,
        max: i64,
        description: &str,
    ) -> Result<Option<i64>, DomainError> {
        let value = match self.take(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => i,
                None => {
                    return Err(self.type_error(
                        key,
                        "integer",
                        &Value::Number(n.clone()),
                        description,
                    ));
                }
            },
            Some(Value::String(s)) if self.form => match s.parse::<i64>() {
                Ok(i) => i,
                Err(_) => {
                    return Err(self.type_error(
                        key,
                        "integer",
                        &Value::String(s.clone()),
                        description,
                    ));
                }
            },
            Some(other) => return Err(self.type_error(key, "integer", other, description)),
        };
        if value < min {
            return Err(self.error(
                key,
                &format!("Value {value} is less than minimum {min}"),
                description,
            ));
        }
        if value > max {
            return Err(self.error(
                key,
                &format!("Value {value} is greater than maximum {max}"),
                description,
            ));
        }
        Ok(Some(value))
    }

    /// An optional array of strings, each checked with `rules`, at most `max_items`.
    pub fn string_array(
        &mut self,
        key: &'a str,
        rules: Str,
        max_items: usize,
        description: &str,
    ) -> Result<Option<Vec<String>>, DomainError> {
        let items = match self.take(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.type_error(key, "array", other, description)),
        };
        if items.len() > max_items {
            return Err(self.error(
                key,
                &format!("Array is too long ({}), maximum {max_items}", items.len()),
                description,
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{key}[{i}]");
            match item {
                Value::String(s) => {
                    rules
                        .check(s)
                        .map_err(|what| self.error(&path, &what, description))?;
                    out.push(s.clone());
                }
                other => return Err(self.type_error(&path, "string", other, description)),
            }
        }
        Ok(Some(out))
    }

    /// Refuses properties that were never asked about.
    pub fn finish(self) -> Result<(), DomainError> {
        let unknown: Vec<&str> = self
            .obj
            .keys()
            .map(String::as_str)
            .filter(|k| !self.seen.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let what = format!("Additional properties not allowed: {}", unknown.join(","));
        if self.prefix.is_empty() {
            Err(body_error(&what))
        } else {
            Err(payload_error(&what, &self.prefix, ""))
        }
    }
}

/// Checks that a JSON value has the given basic type; used for properties Clavis stores
/// verbatim without interpreting them.
pub fn expect_type(value: &Value, expected: &[&str], path: &str) -> Result<(), DomainError> {
    let found = type_name(value);
    let ok = expected
        .iter()
        .any(|e| *e == found || (*e == "number" && found == "integer"));
    if ok {
        Ok(())
    } else {
        Err(payload_error(
            &format!(
                "Expected type {} but found type {found}",
                expected.join(",")
            ),
            path,
            "",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_property_is_refused() {
        let v = json!({"name": "a", "colour": "red"});
        let mut b = Body::new(&v).unwrap();
        b.string("name", Str::ANY, "").unwrap();
        let err = b.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Payload validation error: 'Additional properties not allowed: colour'."
        );
    }

    #[test]
    fn type_error_names_property_and_description() {
        let v = json!({"name": 5});
        let mut b = Body::new(&v).unwrap();
        let err = b.string("name", Str::max(128), "The name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Payload validation error: 'Expected type string but found type integer' on property name (The name)."
        );
    }

    #[test]
    fn length_and_enum_limits() {
        let v = json!({"name": "x".repeat(129), "alg": "HS256"});
        let mut b = Body::new(&v).unwrap();
        assert!(b.string("name", Str::max(128), "").is_err());
        let err = b.string("alg", Str::one_of(&["RS256"]), "").unwrap_err();
        assert!(err.to_string().contains("No enum match for: \"HS256\""));
    }

    #[test]
    fn null_versus_absent() {
        let v = json!({"expires_at": null});
        let mut b = Body::new(&v).unwrap();
        assert_eq!(
            b.nullable_string("expires_at", Str::ANY, "").unwrap(),
            Patch::Null
        );
        assert_eq!(
            b.nullable_string("other", Str::ANY, "").unwrap(),
            Patch::Absent
        );
    }

    #[test]
    fn non_object_body() {
        let v = json!([1, 2]);
        assert!(Body::new(&v).is_err());
    }

    #[test]
    fn integer_bounds() {
        let v = json!({"n": 5, "m": 1.5});
        let mut b = Body::new(&v).unwrap();
        assert!(b.integer("n", 10, 20, "").is_err());
        assert!(b.integer("m", 0, 20, "").is_err());
    }
}

//! Auth0's own schema as data, for the properties Clavis keeps verbatim.
//!
//! Clavis types and checks by hand what it acts on; the long tail of properties it stores and
//! returns unchanged (`STORED_PROPERTIES` of clients, client grants and resource servers) is
//! checked against the property's schema in Auth0's published document (docs/auth0/, compiled
//! into the binary), so that a value Auth0 refuses — an out-of-enum `consent_policy`, an
//! `authorization_details_types` item of 300 characters, `addons.slack` without `team` — is
//! refused here too, with Auth0's wording, and never stored.
//!
//! One validator per request schema (e.g. `CreateResourceServerRequestContent`), built on first
//! use from one shared registry holding the documents, validates an object of the verbatim
//! properties only (the document's `required` and `additionalProperties` are left to the
//! hand-written checks, which know which properties Clavis acts on or refuses).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Registry, Validator};
use serde_json::{Map, Value, json};

use super::DomainError;
use super::validate::{payload_error, type_name};

/// Auth0's documents, in the order a schema name is looked up.
const DOCUMENTS: [(&str, &str); 2] = [
    (
        "urn:clavis:auth0-subset",
        include_str!("../../docs/auth0/auth0-management-openapi-subset.json"),
    ),
    (
        "urn:clavis:auth0-next",
        include_str!("../../docs/auth0/auth0-management-openapi-next.json"),
    ),
];

struct Documents {
    parsed: Vec<(&'static str, Value)>,
    registry: Registry<'static>,
}

static DOCS: LazyLock<Option<Documents>> = LazyLock::new(|| {
    let parsed: Vec<(&'static str, Value)> = DOCUMENTS
        .iter()
        .filter_map(|(uri, text)| Some((*uri, serde_json::from_str(text).ok()?)))
        .collect();
    let mut builder = Registry::new();
    for (uri, doc) in &parsed {
        builder = builder.add(*uri, doc.clone()).ok()?;
    }
    let registry = builder.prepare().ok()?;
    Some(Documents { parsed, registry })
});

/// Validators by request schema name; `None` when the documents have no such schema.
type Validators = HashMap<&'static str, Option<Arc<Validator>>>;
static VALIDATORS: LazyLock<Mutex<Validators>> = LazyLock::new(Mutex::default);

/// The validator of the properties of `schema` (a name under `components/schemas`).
fn validator(schema: &'static str) -> Option<Arc<Validator>> {
    let mut cache = VALIDATORS.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(schema)
        .or_insert_with(|| {
            let docs = DOCS.as_ref()?;
            let (uri, doc) = docs
                .parsed
                .iter()
                .find(|(_, doc)| doc["components"]["schemas"].get(schema).is_some())?;
            // The properties of the schema, each by reference into the document, with
            // neither `required` nor `additionalProperties`.
            let properties: Map<String, Value> = doc["components"]["schemas"][schema]["properties"]
                .as_object()?
                .keys()
                .map(|key| {
                    let pointer = format!(
                        "{uri}#/components/schemas/{schema}/properties/{}",
                        key.replace('~', "~0").replace('/', "~1")
                    );
                    (key.clone(), json!({ "$ref": pointer }))
                })
                .collect();
            let wrapper = json!({"type": "object", "properties": properties});
            jsonschema::options()
                .with_registry(&docs.registry)
                .build(&wrapper)
                .map_err(|e| tracing::error!(schema, error = %e, "Auth0 schema does not compile"))
                .ok()
                .map(Arc::new)
        })
        .clone()
}

/// Auth0's documents, parsed: (base URI, document), in lookup order.
pub fn documents() -> &'static [(&'static str, Value)] {
    DOCS.as_ref().map_or(&[], |docs| docs.parsed.as_slice())
}

/// Whether Auth0's documents describe `schema` (tests).
pub fn knows(schema: &'static str) -> bool {
    validator(schema).is_some()
}

/// Checks `value` of the property `key` against Auth0's schema `schema`; the error is Auth0's
/// `Payload validation error` for the first problem. A schema or property the documents do
/// not describe passes (the hand-written checks still apply).
pub fn check_property(schema: &'static str, key: &str, value: &Value) -> Result<(), DomainError> {
    let Some(validator) = validator(schema) else {
        return Ok(());
    };
    let mut object = Map::new();
    object.insert(key.to_string(), value.clone());
    let object = Value::Object(object);
    let Some(error) = validator.iter_errors(&object).next() else {
        return Ok(());
    };
    let path = property_path(error.instance_path().as_str());
    let what = describe(error.kind(), error.instance());
    Err(payload_error(&what, &path, ""))
}

/// `/addons/slack/team` → `addons.slack.team`; `/a/0` → `a[0]`.
pub fn property_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// Auth0's (z-schema's) text for a validation failure.
pub fn describe(kind: &ValidationErrorKind, instance: &Value) -> String {
    let shown = |v: &Value| {
        let text = v.to_string();
        if text.chars().count() > 64 {
            format!("{}…", text.chars().take(64).collect::<String>())
        } else {
            text
        }
    };
    match kind {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                // As Auth0's documents write them: `null` last.
                TypeKind::Multiple(set) => {
                    let mut types: Vec<String> = set.iter().map(|t| t.to_string()).collect();
                    types.sort_by_key(|t| t == "null");
                    types.join(",")
                }
            };
            format!(
                "Expected type {expected} but found type {}",
                type_name(instance)
            )
        }
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => {
            format!("No enum match for: {}", shown(instance))
        }
        ValidationErrorKind::MaxLength { limit } => format!(
            "String is too long ({} chars), maximum {limit}",
            instance.as_str().map_or(0, |s| s.chars().count())
        ),
        ValidationErrorKind::MinLength { limit } => format!(
            "String is too short ({} chars), minimum {limit}",
            instance.as_str().map_or(0, |s| s.chars().count())
        ),
        ValidationErrorKind::MaxItems { limit } => format!(
            "Array is too long ({}), maximum {limit}",
            instance.as_array().map_or(0, Vec::len)
        ),
        ValidationErrorKind::MinItems { limit } => format!(
            "Array is too short ({}), minimum {limit}",
            instance.as_array().map_or(0, Vec::len)
        ),
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("Value {instance} is greater than maximum {limit}")
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("Value {instance} is less than minimum {limit}")
        }
        ValidationErrorKind::Required { property } => format!(
            "Missing required property: {}",
            property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string)
        ),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            format!(
                "Additional properties not allowed: {}",
                unexpected.join(",")
            )
        }
        ValidationErrorKind::Pattern { pattern } => {
            // The string itself, as z-schema prints it (an enum miss prints it as JSON).
            let text = instance
                .as_str()
                .map_or_else(|| instance.to_string(), str::to_string);
            let text = if text.chars().count() > 64 {
                format!("{}…", text.chars().take(64).collect::<String>())
            } else {
                text
            };
            format!("String does not match pattern {pattern}: {text}")
        }
        ValidationErrorKind::Format { format } => format!(
            "Object didn't pass validation for format {format}: {}",
            shown(instance)
        ),
        ValidationErrorKind::AnyOf { .. }
        | ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => {
            "Data does not match any schemas from 'oneOf'".to_string()
        }
        ValidationErrorKind::MinProperties { limit } => format!(
            "Too few properties defined ({}), minimum {limit}",
            instance.as_object().map_or(0, Map::len)
        ),
        ValidationErrorKind::MaxProperties { limit } => format!(
            "Too many properties defined ({}), maximum {limit}",
            instance.as_object().map_or(0, Map::len)
        ),
        ValidationErrorKind::UniqueItems => "Array items are not unique".to_string(),
        _ => "Value does not match Auth0's schema".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn message(e: DomainError) -> String {
        match e {
            DomainError::InvalidBody(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_request_schemas_clavis_checks_against_are_in_the_documents() {
        for schema in super::super::VERBATIM_SCHEMAS {
            assert!(knows(schema), "{schema}");
        }
    }

    #[test]
    fn values_auth0_refuses_are_refused_with_auth0s_wording() {
        const RS: &str = "CreateResourceServerRequestContent";
        check_property(RS, "consent_policy", &json!(null)).unwrap();
        check_property(
            RS,
            "consent_policy",
            &json!("transactional-authorization-with-mfa"),
        )
        .unwrap();
        let e = check_property(RS, "consent_policy", &json!("null")).unwrap_err();
        assert_eq!(
            message(e),
            "Payload validation error: 'No enum match for: \"null\"' on property consent_policy."
        );
        let e = check_property(
            "UpdateClientGrantRequestContent",
            "authorization_details_types",
            &json!(["ok", "t".repeat(256)]),
        )
        .unwrap_err();
        assert_eq!(
            message(e),
            "Payload validation error: 'String is too long (256 chars), maximum 255' on property authorization_details_types[1]."
        );
        let e = check_property(
            "CreateClientRequestContent",
            "redirection_policy",
            &json!("sometimes"),
        )
        .unwrap_err();
        assert!(message(e).contains("No enum match for: \"sometimes\""));
    }

    #[test]
    fn paths_read_as_auth0_writes_them() {
        assert_eq!(property_path("/addons/slack/team"), "addons.slack.team");
        assert_eq!(property_path("/a/0/b"), "a[0].b");
        assert_eq!(property_path("/x~1y"), "x/y");
    }
}

//! Auth0's own schema as data: its published documents (docs/auth0/, compiled into the
//! binary), and how its validator (z-schema) words a failure.
//!
//! The served document takes each Management request and response schema from these
//! documents (`http::schema`), and every request is checked against it before any rule of
//! the domain, so that a value Auth0 refuses — an out-of-enum `consent_policy`, an
//! `authorization_details_types` item of 300 characters, `addons.slack` without `team` — is
//! refused here too, with Auth0's wording, and never stored.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Map, Value};

use super::validate::type_name;

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

static DOCS: LazyLock<Vec<(&'static str, Value)>> = LazyLock::new(|| {
    DOCUMENTS
        .iter()
        .filter_map(|(uri, text)| Some((*uri, serde_json::from_str(text).ok()?)))
        .collect()
});

/// Auth0's documents, parsed: (base URI, document), in lookup order.
pub fn documents() -> &'static [(&'static str, Value)] {
    DOCS.as_slice()
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
    use super::*;

    #[test]
    fn both_documents_are_read() {
        assert_eq!(documents().len(), 2);
    }

    #[test]
    fn paths_read_as_auth0_writes_them() {
        assert_eq!(property_path("/addons/slack/team"), "addons.slack.team");
        assert_eq!(property_path("/a/0/b"), "a[0].b");
        assert_eq!(property_path("/x~1y"), "x/y");
    }
}

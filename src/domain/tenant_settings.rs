//! The tenant's settings (`GET`/`PATCH /api/v2/tenants/settings`): one stored document.
//! What Clavis does with each of Auth0's properties is declared in
//! `properties::TENANT_SETTINGS`; only `default_token_quota` acts (the token quota of every
//! client and organization without one of its own), four labels are kept, and the rest is
//! refused.

use serde_json::{Map, Value};

use super::DomainError;
use super::token_quota::{self, QuotaLimits};
use super::validate::{Body, Str, payload_error};

/// The stored settings: the properties that were set, as Auth0 returns them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantSettings {
    /// `default_token_quota` and the labels.
    pub values: Map<String, Value>,
}

/// The token quotas that apply to clients and organizations without one of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultQuotas {
    /// `default_token_quota.clients.client_credentials`.
    pub clients: Option<QuotaLimits>,
    /// `default_token_quota.organizations.client_credentials`.
    pub organizations: Option<QuotaLimits>,
}

impl TenantSettings {
    /// The settings stored as `text` (a JSON object); empty for anything else.
    pub fn from_stored(text: Option<&str>) -> Self {
        let values = text
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        Self { values }
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        Value::Object(self.values.clone()).to_string()
    }

    /// The defaults of `default_token_quota`.
    pub fn default_quotas(&self) -> DefaultQuotas {
        let dtq = self.values.get("default_token_quota");
        DefaultQuotas {
            clients: QuotaLimits::from_stored(dtq.and_then(|d| d.get("clients"))),
            organizations: QuotaLimits::from_stored(dtq.and_then(|d| d.get("organizations"))),
        }
    }
}

const DTQ_DESC: &str = "Token Quota configuration, to configure quotas for token issuance for clients and organizations. Applied to all clients and organizations unless overridden in individual client or organization settings.";

/// A validated `PATCH /tenants/settings` body: each property set (`Some`) or removed
/// (`None`).
#[derive(Debug, Clone, Default)]
pub struct TenantSettingsUpdate {
    changes: Vec<(&'static str, Option<Value>)>,
}

/// Auth0's `absolute-uri-or-empty`.
fn absolute_uri_or_empty(s: &str) -> bool {
    s.is_empty() || url::Url::parse(s).is_ok()
}

/// Auth0's `email-or-empty`: empty, or `local@domain` without spaces.
fn email_or_empty(s: &str) -> bool {
    s.is_empty()
        || s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        })
}

type Format = (&'static str, fn(&str) -> bool);

const LABELS: &[(&str, &str, Option<Format>)] = &[
    ("friendly_name", "Friendly name for this tenant.", None),
    (
        "picture_url",
        "URL of logo to be shown for this tenant (recommended size: 150x150)",
        Some(("absolute-uri-or-empty", absolute_uri_or_empty)),
    ),
    (
        "support_email",
        "End-user support email.",
        Some(("email-or-empty", email_or_empty)),
    ),
    (
        "support_url",
        "End-user support url.",
        Some(("absolute-uri-or-empty", absolute_uri_or_empty)),
    ),
];

impl TenantSettingsUpdate {
    /// Reads the body: refused properties are a 400 naming them (`properties`), the labels
    /// are strings of Auth0's formats, `default_token_quota` is Auth0's `DefaultTokenQuota`
    /// or `null`.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        super::properties::refuse(&body, super::properties::TENANT_SETTINGS)?;
        let mut changes = Vec::new();
        for (key, description, format) in LABELS {
            if let Some(v) = body.string(key, Str::max(2048), description)? {
                if let Some((name, ok)) = format
                    && !ok(&v)
                {
                    return Err(payload_error(
                        &format!("Object didn't pass validation for format {name}: {v}"),
                        key,
                        description,
                    ));
                }
                changes.push((*key, Some(Value::String(v))));
            }
        }
        if let Some(v) = body.raw("default_token_quota") {
            check_default_token_quota(v)?;
            changes.push(("default_token_quota", (!v.is_null()).then(|| v.clone())));
        }
        // Refused properties sent as `null` (or `false` where only `true` is refused) are
        // accepted and not kept.
        for property in super::properties::TENANT_SETTINGS {
            if matches!(property.meaning, super::properties::Meaning::Refused { .. }) {
                body.raw(property.name);
            }
        }
        body.finish()?;
        Ok(Self { changes })
    }

    /// Applies the update; the settings stay in the order of Auth0's schema.
    pub fn apply(&self, settings: &mut TenantSettings) {
        for (key, value) in &self.changes {
            match value {
                Some(v) => {
                    settings.values.insert((*key).to_string(), v.clone());
                }
                None => {
                    settings.values.remove(*key);
                }
            }
        }
        let mut ordered = Map::new();
        for property in super::properties::TENANT_SETTINGS {
            if let Some(v) = settings.values.remove(property.name) {
                ordered.insert(property.name.to_string(), v);
            }
        }
        settings.values = ordered;
    }
}

/// Auth0's `DefaultTokenQuota`: `{clients?, organizations?}` (at least one), each
/// `{client_credentials}`; or `null`.
fn check_default_token_quota(v: &Value) -> Result<(), DomainError> {
    if v.is_null() {
        return Ok(());
    }
    let mut b = Body::nested(v, "default_token_quota", false)?;
    if b.is_empty() {
        return Err(payload_error(
            "Too few properties defined (0), minimum 1",
            "default_token_quota",
            DTQ_DESC,
        ));
    }
    for key in ["clients", "organizations"] {
        if let Some(q) = b.raw(key) {
            token_quota::check(q, &format!("default_token_quota.{key}"), false)?;
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn update(v: Value) -> Result<TenantSettingsUpdate, DomainError> {
        TenantSettingsUpdate::parse(Body::new(&v).unwrap())
    }

    #[test]
    fn default_token_quota_is_set_and_removed() {
        let mut s = TenantSettings::default();
        update(json!({"default_token_quota": {
            "clients": {"client_credentials": {"per_hour": 10}},
            "organizations": {"client_credentials": {"per_day": 5, "enforce": false}}
        }, "friendly_name": "Acme"}))
        .unwrap()
        .apply(&mut s);
        let d = s.default_quotas();
        assert_eq!(d.clients.unwrap().per_hour, Some(10));
        assert!(!d.organizations.unwrap().enforce);
        let stored = TenantSettings::from_stored(Some(&s.to_stored()));
        assert_eq!(stored, s);
        update(json!({"default_token_quota": null}))
            .unwrap()
            .apply(&mut s);
        assert_eq!(s.default_quotas(), DefaultQuotas::default());
        assert_eq!(s.values["friendly_name"], "Acme");
    }

    #[test]
    fn bad_and_refused_values_are_400s() {
        for bad in [
            json!({"default_token_quota": {}}),
            json!({"default_token_quota": {"clients": {}}}),
            json!({"default_token_quota": {"clients": {"client_credentials": {"per_hour": 0}}}}),
            json!({"default_token_quota": {"users": {"client_credentials": {"per_hour": 1}}}}),
            json!({"default_token_quota": 5}),
            json!({"flags": {"enable_sso": true}}),
            json!({"session_lifetime": 10}),
            json!({"allow_organization_name_in_authentication_api": true}),
            json!({"support_email": "nope"}),
            json!({"picture_url": "not a url"}),
            json!({"friendly_name": 3}),
            json!({"no_such_setting": 1}),
        ] {
            assert!(update(bad.clone()).is_err(), "{bad}");
        }
        let mut s = TenantSettings::default();
        update(json!({"flags": null, "allow_organization_name_in_authentication_api": false, "support_email": ""}))
            .unwrap()
            .apply(&mut s);
        assert_eq!(s.values.keys().collect::<Vec<_>>(), ["support_email"]);
    }
}

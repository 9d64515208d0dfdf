//! Auth0's fine-grained machine-to-machine token quotas: `token_quota.client_credentials`
//! (`per_hour`, `per_day`, `enforce`) on clients and organizations, and the tenant's
//! `default_token_quota` for each. Validated here against Auth0's schema (`TokenQuota`,
//! `TokenQuotaClientCredentials`); counted by `crate::quota`.

use serde_json::Value;

use super::DomainError;
use super::validate::{Body, payload_error};

const PER_DAY_DESC: &str = "Maximum number of issued tokens per day";
const PER_HOUR_DESC: &str = "Maximum number of issued tokens per hour";
const ENFORCE_DESC: &str = "If enabled, the quota will be enforced and requests in excess of the quota will fail. If disabled, the quota will not be enforced, but notifications for requests exceeding the quota will be available in logs.";

/// Largest `per_hour` / `per_day` (Auth0's schema).
pub const MAX_QUOTA: i64 = 2_147_483_647;

/// A quota for client-credentials tokens. At least one of the two limits is set (a
/// configuration with neither limits nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Tokens per UTC hour.
    pub per_hour: Option<u32>,
    /// Tokens per UTC day.
    pub per_day: Option<u32>,
    /// Refuse requests beyond the quota (Auth0's default, `true`); otherwise count and
    /// report only.
    pub enforce: bool,
}

impl QuotaLimits {
    /// The quota a stored `{"client_credentials": {...}}` (already validated) describes;
    /// `None` for `null`, for anything else, and for one that limits nothing.
    pub fn from_stored(v: Option<&Value>) -> Option<Self> {
        let cc = v?.get("client_credentials")?;
        let limit = |key: &str| {
            cc.get(key)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let limits = Self {
            per_hour: limit("per_hour"),
            per_day: limit("per_day"),
            enforce: cc.get("enforce").and_then(Value::as_bool).unwrap_or(true),
        };
        (limits.per_hour.is_some() || limits.per_day.is_some()).then_some(limits)
    }
}

/// Checks `{"client_credentials": {"per_hour", "per_day", "enforce"}}` (Auth0's
/// `TokenQuota`; `client_credentials` required, at least one of its properties, limits
/// 1–2147483647, nothing else) at `path`. `null` is accepted when `nullable` (it clears the
/// quota).
pub fn check(v: &Value, path: &str, nullable: bool) -> Result<(), DomainError> {
    if v.is_null() && nullable {
        return Ok(());
    }
    let mut b = Body::nested(v, path, false)?;
    let cc = match b.raw("client_credentials") {
        Some(cc) => cc,
        None => {
            return Err(payload_error(
                "Missing required property: client_credentials",
                path,
                "",
            ));
        }
    };
    check_client_credentials(cc, &format!("{path}.client_credentials"))?;
    b.finish()
}

/// Checks Auth0's `TokenQuotaClientCredentials` at `path`.
pub fn check_client_credentials(v: &Value, path: &str) -> Result<(), DomainError> {
    let mut c = Body::nested(v, path, false)?;
    if c.is_empty() {
        return Err(payload_error(
            "Too few properties defined (0), minimum 1",
            path,
            "The token quota configuration",
        ));
    }
    c.integer("per_hour", 1, MAX_QUOTA, PER_HOUR_DESC)?;
    c.integer("per_day", 1, MAX_QUOTA, PER_DAY_DESC)?;
    c.bool("enforce", ENFORCE_DESC)?;
    c.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn auth0_schema_is_checked() {
        let ok = json!({"client_credentials": {"per_hour": 10, "per_day": 50, "enforce": true}});
        check(&ok, "token_quota", true).unwrap();
        check(&Value::Null, "token_quota", true).unwrap();
        for bad in [
            json!(null),
            json!({}),
            json!({"client_credentials": {}}),
            json!({"client_credentials": {"per_hour": 0}}),
            json!({"client_credentials": {"per_hour": 2_147_483_648_i64}}),
            json!({"client_credentials": {"per_day": "10"}}),
            json!({"client_credentials": {"enforce": "yes"}}),
            json!({"client_credentials": {"per_day": 1, "per_minute": 1}}),
            json!({"client_credentials": {"per_day": 1}, "other": {}}),
            json!([1]),
        ] {
            assert!(check(&bad, "token_quota", false).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_quota_is_read() {
        let q = QuotaLimits::from_stored(Some(&json!({"client_credentials": {"per_day": 5}})));
        assert_eq!(
            q,
            Some(QuotaLimits {
                per_hour: None,
                per_day: Some(5),
                enforce: true
            })
        );
        let q = QuotaLimits::from_stored(Some(
            &json!({"client_credentials": {"per_hour": 2, "enforce": false}}),
        ));
        assert_eq!(q.map(|q| (q.per_hour, q.enforce)), Some((Some(2), false)));
        assert_eq!(
            QuotaLimits::from_stored(Some(&json!({"client_credentials": {"enforce": true}}))),
            None
        );
        assert_eq!(QuotaLimits::from_stored(Some(&Value::Null)), None);
        assert_eq!(QuotaLimits::from_stored(None), None);
    }
}

//! Organizations: the customers on whose behalf machine-to-machine clients obtain tokens
//! (Auth0's "organizations for M2M"). A client grant names which organizations it serves
//! (`organization_usage`, `allow_any_organization`, associations); a token obtained for one
//! carries its `org_id`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time::Timestamp;
use super::validate::{Body, Patch, Str, payload_error};
use super::{DomainError, ids};

/// An organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// `org_` + 16 alphanumerics.
    pub id: String,
    /// Unique name: lowercase letters, digits, `_` and `-`, 1–50 characters.
    pub name: String,
    /// Friendly name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `branding` and `metadata`, kept verbatim (inert).
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Organization {
    /// The API representation.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        if let Some(d) = &self.display_name {
            m.insert("display_name".into(), Value::String(d.clone()));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

/// Auth0's description of `name`.
pub const NAME_DESC: &str = "The name of this organization.";
const DISPLAY_NAME_DESC: &str = "Friendly name of this organization.";

/// Whether `name` is a valid organization name: 1–50 characters, lowercase letters, digits,
/// `_` and `-` (Auth0: "May contain lowercase alphabetical characters, numbers, underscores
/// (_), and dashes (-). Can start with a number. Must be between 1 and 50 characters.").
pub fn is_valid_name(name: &str) -> bool {
    (1..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` has the shape of an organization id (`org_` + alphanumerics, at most 50).
pub fn is_organization_id(s: &str) -> bool {
    s.len() <= 50
        && s.strip_prefix("org_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn read_name(body: &mut Body<'_>, required: bool) -> Result<Option<String>, DomainError> {
    let name = if required {
        Some(body.required_string("name", Str::SCHEMA, NAME_DESC)?)
    } else {
        body.string("name", Str::SCHEMA, NAME_DESC)?
    };
    if let Some(n) = &name
        && !is_valid_name(n)
    {
        return Err(payload_error(
            &format!("Object didn't pass validation for format organization-name: {n}"),
            "name",
            NAME_DESC,
        ));
    }
    Ok(name)
}

/// `metadata`: an object of at most 25 string (or null) values of at most 255 characters;
/// keys with `null` are dropped. `None` when absent; `Some(None)` when `null`.
fn read_metadata(body: &mut Body<'_>) -> Result<Option<Option<Value>>, DomainError> {
    let Some(v) = body.raw("metadata") else {
        return Ok(None);
    };
    // Its shape (at most 25 properties, each a string of at most 255 characters or `null`)
    // is Auth0's schema, checked before; a `null` value sets nothing.
    let Value::Object(obj) = v else {
        return Ok(Some(None));
    };
    let kept: Map<String, Value> = obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Some(Some(Value::Object(kept))))
}

/// `branding`: `{logo_url, colors: {primary, page_background}}`, checked for shape and kept
/// verbatim (login pages, which Clavis does not serve). `Some(None)` when `null`.
fn read_branding(body: &mut Body<'_>) -> Result<Option<Option<Value>>, DomainError> {
    let Some(v) = body.raw("branding") else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(Some(None));
    }
    let mut b = Body::nested(v, "branding", false)?;
    b.string(
        "logo_url",
        Str::max(2048),
        "URL of logo to display on login page.",
    )?;
    if let Some(colors) = b.raw("colors") {
        let mut c = Body::nested(colors, "branding.colors", false)?;
        c.required_string(
            "primary",
            Str::len(1, 64),
            "HEX Color for primary elements.",
        )?;
        c.required_string(
            "page_background",
            Str::len(1, 64),
            "HEX Color for background.",
        )?;
        c.finish()?;
    }
    b.finish()?;
    Ok(Some(Some(v.clone())))
}

fn set_extra(extra: &mut Map<String, Value>, key: &str, value: Option<Option<Value>>) {
    match value {
        None => {}
        Some(None) => {
            extra.remove(key);
        }
        Some(Some(v)) => {
            extra.insert(key.to_string(), v);
        }
    }
}

/// `token_quota` (Auth0's `TokenQuota`, or `null` to clear it).
fn read_token_quota(body: &mut Body<'_>) -> Result<Option<Option<Value>>, DomainError> {
    let Some(v) = body.raw("token_quota") else {
        return Ok(None);
    };
    super::token_quota::check(v, "token_quota", true)?;
    Ok(Some((!v.is_null()).then(|| v.clone())))
}

impl Organization {
    /// Its own `token_quota` for client-credentials tokens, if it has one.
    pub fn token_quota(&self) -> Option<super::token_quota::QuotaLimits> {
        super::token_quota::QuotaLimits::from_stored(self.extra.get("token_quota"))
    }
}

/// A validated `POST /organizations` body.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    name: String,
    display_name: Option<String>,
    extra: Map<String, Value>,
}

impl NewOrganization {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        super::properties::refuse(&body, super::properties::ORGANIZATION)?;
        let name = read_name(&mut body, true)?.unwrap_or_default();
        let display_name = body.string("display_name", Str::SCHEMA, DISPLAY_NAME_DESC)?;
        let mut extra = Map::new();
        let branding = read_branding(&mut body)?;
        set_extra(&mut extra, "branding", branding);
        let metadata = read_metadata(&mut body)?;
        set_extra(&mut extra, "metadata", metadata);
        let token_quota = read_token_quota(&mut body)?;
        set_extra(&mut extra, "token_quota", token_quota);
        body.finish()?;
        Ok(Self {
            name,
            display_name,
            extra,
        })
    }

    /// The organization, with a fresh id.
    pub fn build(self, now: Timestamp) -> Organization {
        Organization {
            id: ids::new_organization_id(),
            name: self.name,
            display_name: self.display_name,
            extra: self.extra,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A validated `PATCH /organizations/{id}` body.
#[derive(Debug, Clone)]
pub struct OrganizationUpdate {
    name: Option<String>,
    display_name: Patch<String>,
    branding: Option<Option<Value>>,
    metadata: Option<Option<Value>>,
    token_quota: Option<Option<Value>>,
}

impl OrganizationUpdate {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        super::properties::refuse(&body, super::properties::ORGANIZATION)?;
        let name = read_name(&mut body, false)?;
        let display_name = body.nullable_string("display_name", Str::SCHEMA, DISPLAY_NAME_DESC)?;
        let branding = read_branding(&mut body)?;
        let metadata = read_metadata(&mut body)?;
        let token_quota = read_token_quota(&mut body)?;
        body.finish()?;
        Ok(Self {
            name,
            display_name,
            branding,
            metadata,
            token_quota,
        })
    }

    /// Applies the update. `metadata` replaces the stored object.
    pub fn apply(&self, org: &mut Organization, now: Timestamp) -> Result<(), DomainError> {
        if let Some(name) = &self.name {
            org.name = name.clone();
        }
        match &self.display_name {
            Patch::Absent => {}
            Patch::Null => org.display_name = None,
            Patch::Value(d) => org.display_name = Some(d.clone()),
        }
        set_extra(&mut org.extra, "branding", self.branding.clone());
        set_extra(&mut org.extra, "metadata", self.metadata.clone());
        set_extra(&mut org.extra, "token_quota", self.token_quota.clone());
        org.updated_at = now;
        Ok(())
    }
}

/// Checks a client's `default_organization` (when not `null`): Auth0's
/// `{organization_id, flows: ["client_credentials"]}`, both required.
pub fn check_default_organization(v: &Value) -> Result<(), DomainError> {
    if v.is_null() {
        return Ok(());
    }
    let mut b = Body::nested(v, "default_organization", false)?;
    let id = b.required_string(
        "organization_id",
        Str::len(1, 50),
        "The default Organization ID to be used",
    )?;
    if !is_organization_id(&id) {
        return Err(payload_error(
            &format!("Object didn't pass validation for format organization-id: {id}"),
            "default_organization.organization_id",
            "The default Organization ID to be used",
        ));
    }
    b.required_raw("flows")?;
    b.string_array("flows", Str::SCHEMA, 10, "The default Organization usage")?;
    b.finish()
}

/// The organization a stored `default_organization` names for `client_credentials`.
pub fn default_organization_for_client_credentials(v: &Value) -> Option<&str> {
    let flows = v.get("flows")?.as_array()?;
    if !flows.iter().any(|f| f == "client_credentials") {
        return None;
    }
    v.get("organization_id")?.as_str()
}

/// A validated `POST /organizations/{id}/client-grants` body.
#[derive(Debug, Clone)]
pub struct Association {
    /// The grant to associate.
    pub grant_id: String,
}

impl Association {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let grant_id = body.required_string(
            "grant_id",
            Str::len(1, 64),
            "A Client Grant ID to add to the organization.",
        )?;
        body.finish()?;
        Ok(Self { grant_id })
    }
}

/// Most client grants associated with one organization (Auth0: "Quota exceeded; cannot add
/// more than 100 client grants to a single organization").
pub const MAX_GRANTS_PER_ORGANIZATION: usize = 100;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_valid_name("acme-1_x"));
        assert!(is_valid_name("1acme"));
        assert!(!is_valid_name("Acme"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(51)));
        assert!(is_organization_id(&ids::new_organization_id()));
        assert!(!is_organization_id("acme"));
    }

    #[test]
    fn create_and_update() {
        let v = json!({"name": "acme", "display_name": "Acme", "metadata": {"tier": "gold", "gone": null}});
        let org = NewOrganization::parse(Body::new(&v).unwrap())
            .unwrap()
            .build(Timestamp::now());
        assert_eq!(org.to_json()["metadata"], json!({"tier": "gold"}));
        let bad = json!({"name": "Acme"});
        assert!(NewOrganization::parse(Body::new(&bad).unwrap()).is_err());
        let mut org = org;
        let patch = json!({"display_name": null, "name": "acme-2"});
        OrganizationUpdate::parse(Body::new(&patch).unwrap())
            .unwrap()
            .apply(&mut org, Timestamp::now())
            .unwrap();
        assert_eq!(org.name, "acme-2");
        assert_eq!(org.display_name, None);
    }
}

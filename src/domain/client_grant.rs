//! Client grants: which client may obtain tokens for which audience, with which scopes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::resource_server::ResourceServer;
use super::time::Timestamp;
use super::validate::{Body, Patch, Str, payload_error};
use super::{DomainError, ids};

/// A client grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientGrant {
    /// `cgr_` + 16 alphanumerics.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The resource server's identifier.
    pub audience: String,
    /// Granted scopes.
    pub scope: Vec<String>,
    /// Auth0 properties kept verbatim.
    pub extra: Map<String, Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Auth0 client-grant properties that Clavis keeps verbatim (it does not act on them beyond the
/// rules beside their reading). Their JSON schema, Auth0's, is checked with the whole body
/// before (`http::schema`); anything not here and not a core field is refused.
pub const STORED_PROPERTIES: &[&str] = &[
    "organization_usage",
    "allow_any_organization",
    "subject_type",
    "authorization_details_types",
    "allow_all_scopes",
    super::claims::PROPERTY,
];

impl ClientGrant {
    /// The API representation.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("client_id".into(), Value::String(self.client_id.clone()));
        m.insert("audience".into(), Value::String(self.audience.clone()));
        m.insert(
            "scope".into(),
            Value::Array(
                self.scope
                    .iter()
                    .map(|s| Value::String(s.clone()))
                    .collect(),
            ),
        );
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// Whether all of the resource server's scopes are granted, present and future.
    pub fn allows_all_scopes(&self) -> bool {
        self.extra.get("allow_all_scopes") == Some(&Value::Bool(true))
    }

    /// Whom it grants access to: `subject_type`, `client` when absent (Auth0's default).
    pub fn subject_type(&self) -> SubjectType {
        match self.extra.get("subject_type").and_then(Value::as_str) {
            Some("user") => SubjectType::User,
            _ => SubjectType::Client,
        }
    }

    /// `organization_usage` (`deny`, `allow`, `require`), when set.
    pub fn organization_usage(&self) -> Option<&str> {
        self.extra.get("organization_usage").and_then(Value::as_str)
    }

    /// `allow_any_organization: true`: tokens for any organization, not only associated ones.
    pub fn allows_any_organization(&self) -> bool {
        self.extra.get("allow_any_organization") == Some(&Value::Bool(true))
    }

    /// `token_claims` (a Clavis extension): the claims every token of the grant carries.
    pub fn token_claims(&self) -> Option<&Map<String, Value>> {
        self.extra
            .get(super::claims::PROPERTY)
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
    }

    /// Whether it authorizes the `client_credentials` grant: its `subject_type` is `client`.
    /// A `user` grant authorizes user flows only, which Clavis does not serve.
    pub fn authorizes_client_credentials(&self) -> bool {
        self.subject_type() == SubjectType::Client
    }
}

/// Auth0's `subject_type` of a grant. A client holds at most one grant of each type per
/// audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectType {
    /// Machine-to-machine access (`client_credentials`).
    Client,
    /// Access on behalf of users (user flows; stored, never used by Clavis's token endpoint).
    User,
}

impl SubjectType {
    /// Every subject type, in Auth0's enum order.
    pub const ALL: [Self; 2] = [Self::Client, Self::User];

    /// By Auth0's name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Auth0's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::User => "user",
        }
    }
}

/// Auth0's description of `subject_type`.
pub const SUBJECT_TYPE_DESC: &str = "The type of application access the client grant allows";

/// Auth0's only `default_for` value: the grant applies to every third-party client.
pub const DEFAULT_FOR_THIRD_PARTY: &str = "third_party_clients";

/// Auth0's description of `default_for` (shortened: Auth0's own carries a link).
pub const DEFAULT_FOR_DESC: &str =
    "Applies this client grant as the default for all clients in the specified group";

/// The `organization_usage` values Clavis enforces at the token endpoint: Auth0's enum, which
/// `tests/openapi.rs` keeps equal to this.
pub const ORGANIZATION_USAGES: &[&str] = &["deny", "allow", "require"];

fn read_extra(body: &mut Body<'_>, skip: &[&str]) -> Result<Map<String, Value>, DomainError> {
    let mut extra = Map::new();
    // Their JSON schema (Auth0's) was checked with the whole body (`http::schema`).
    for key in STORED_PROPERTIES {
        if skip.contains(key) {
            continue;
        }
        if let Some(v) = body.raw(key) {
            check_value(key, v)?;
            extra.insert((*key).to_string(), v.clone());
        }
    }
    Ok(extra)
}

/// The rules of the stored properties beyond their JSON type.
fn check_value(key: &str, v: &Value) -> Result<(), DomainError> {
    match key {
        "subject_type" if v.as_str().and_then(SubjectType::parse).is_none() => {
            Err(payload_error("No enum match for", key, SUBJECT_TYPE_DESC))
        }
        "organization_usage"
            if !v.is_null() && !v.as_str().is_some_and(|u| ORGANIZATION_USAGES.contains(&u)) =>
        {
            Err(payload_error(
                "No enum match for",
                key,
                "Defines whether organizations can be used with client credentials exchanges for this grant.",
            ))
        }
        super::claims::PROPERTY => match v.as_object() {
            Some(claims) => super::claims::check_declared(claims, false),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Claims declared for the Management API must be namespaced (Auth0 adds no other custom
/// claim to its tokens); checked once the grant's API is known.
fn check_claims_for(extra: &Map<String, Value>, rs: &ResourceServer) -> Result<(), DomainError> {
    match extra
        .get(super::claims::PROPERTY)
        .and_then(Value::as_object)
    {
        Some(claims) if rs.is_system => super::claims::check_declared(claims, true),
        _ => Ok(()),
    }
}

const SCOPE_DESC: &str = "Scopes allowed for this client grant.";

/// Checks that each scope is defined by the resource server.
pub fn check_scopes(scope: &[String], rs: &ResourceServer) -> Result<(), DomainError> {
    for s in scope {
        if !rs.defines_scope(s) {
            return Err(payload_error(
                &format!(
                    "Scope {s} is not defined by the resource server {}",
                    rs.identifier
                ),
                "scope",
                SCOPE_DESC,
            ));
        }
    }
    Ok(())
}

/// A validated `POST /client-grants` body.
#[derive(Debug, Clone)]
pub struct NewClientGrant {
    /// The client.
    pub client_id: String,
    /// The audience.
    pub audience: String,
    scope: Vec<String>,
    extra: Map<String, Value>,
}

/// The refusal of `allow_any_organization: true` for a third-party client (Auth0: "not
/// available for third-party clients").
pub fn any_organization_third_party_error() -> DomainError {
    payload_error(
        "allow_any_organization is not available for third-party clients",
        "allow_any_organization",
        "",
    )
}

impl NewClientGrant {
    /// Whether it sets `allow_any_organization: true`.
    pub fn allows_any_organization(&self) -> bool {
        self.extra.get("allow_any_organization") == Some(&Value::Bool(true))
    }

    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        // A default grant (`default_for`) has no client and applies to every third-party client
        // without a grant of its own; Clavis refuses it (`properties::CLIENT_GRANT`).
        super::properties::refuse(&body, super::properties::CLIENT_GRANT)?;
        let client_id = body.required_string("client_id", Str::len(1, 64), "ID of the client.")?;
        let audience = body.required_string(
            "audience",
            Str::len(1, 600),
            "The audience (API identifier) of this client grant",
        )?;
        let scope = body
            .string_array("scope", Str::SCHEMA, 1000, SCOPE_DESC)?
            .unwrap_or_default();
        let extra = read_extra(&mut body, &[])?;
        body.finish()?;
        Ok(Self {
            client_id,
            audience,
            scope: dedup(scope),
            extra,
        })
    }

    /// Builds the grant after checking its scopes against the resource server.
    pub fn build(self, rs: &ResourceServer, now: Timestamp) -> Result<ClientGrant, DomainError> {
        check_scopes(&self.scope, rs)?;
        check_claims_for(&self.extra, rs)?;
        Ok(ClientGrant {
            id: ids::new_client_grant_id(),
            client_id: self.client_id,
            audience: self.audience,
            scope: self.scope,
            extra: self
                .extra
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect(),
            created_at: now,
            updated_at: now,
        })
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

/// A validated `PATCH /client-grants/{id}` body.
#[derive(Debug, Clone)]
pub struct ClientGrantUpdate {
    scope: Patch<Vec<String>>,
    extra: Map<String, Value>,
}

impl ClientGrantUpdate {
    /// Whether it sets `allow_any_organization: true`.
    pub fn allows_any_organization(&self) -> bool {
        self.extra.get("allow_any_organization") == Some(&Value::Bool(true))
    }

    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let scope = if body.raw("scope").is_some_and(Value::is_null) {
            Patch::Null
        } else {
            match body.string_array("scope", Str::SCHEMA, 1000, SCOPE_DESC)? {
                Some(s) => Patch::Value(dedup(s)),
                None => Patch::Absent,
            }
        };
        let extra = read_extra(&mut body, &["subject_type"])?;
        body.finish()?;
        Ok(Self { scope, extra })
    }

    /// Applies the update (scope checked against the resource server).
    pub fn apply(
        &self,
        grant: &mut ClientGrant,
        rs: Option<&ResourceServer>,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        match &self.scope {
            Patch::Absent => {}
            Patch::Null => grant.scope.clear(),
            Patch::Value(scope) => {
                if let Some(rs) = rs {
                    check_scopes(scope, rs)?;
                }
                grant.scope = scope.clone();
            }
        }
        if let Some(rs) = rs {
            check_claims_for(&self.extra, rs)?;
        }
        for (k, v) in &self.extra {
            if v.is_null() {
                grant.extra.remove(k);
            } else {
                grant.extra.insert(k.clone(), v.clone());
            }
        }
        grant.updated_at = now;
        Ok(())
    }
}

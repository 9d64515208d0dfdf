//! Client grants: which client may obtain tokens for which audience, with which scopes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::resource_server::ResourceServer;
use super::time::Timestamp;
use super::validate::{Body, Patch, Str, expect_type, payload_error};
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

pub const STORED_PROPERTIES: &[(&str, &[&str])] = &[
    ("organization_usage", &["string", "null"]),
    ("allow_any_organization", &["boolean", "null"]),
    ("subject_type", &["string"]),
    ("authorization_details_types", &["array"]),
    ("allow_all_scopes", &["boolean", "null"]),
    ("default_for", &["string"]),
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

    /// Whether it authorizes the `client_credentials` grant: its `subject_type` is `client`
    /// (Auth0's default). A `user` grant authorizes user flows only, which Clavis does not
    /// serve.
    pub fn authorizes_client_credentials(&self) -> bool {
        self.extra.get("subject_type").and_then(Value::as_str) != Some("user")
    }
}

/// Auth0's `subject_type` values.
const SUBJECT_TYPES: &[&str] = &["client", "user"];

fn read_extra(body: &mut Body<'_>, skip: &[&str]) -> Result<Map<String, Value>, DomainError> {
    let mut extra = Map::new();
    for (key, types) in STORED_PROPERTIES {
        if skip.contains(key) {
            continue;
        }
        if let Some(v) = body.raw(key) {
            expect_type(v, types, key)?;
            if *key == "subject_type" && !v.as_str().is_some_and(|t| SUBJECT_TYPES.contains(&t)) {
                return Err(payload_error(
                    "No enum match for",
                    key,
                    "The type of application access the client grant allows",
                ));
            }
            extra.insert((*key).to_string(), v.clone());
        }
    }
    Ok(extra)
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

impl NewClientGrant {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let client_id = body.required_string("client_id", Str::len(1, 64), "ID of the client.")?;
        let audience = body.required_string(
            "audience",
            Str::len(1, 600),
            "The audience (API identifier) of this client grant",
        )?;
        let scope = body
            .string_array("scope", Str::len(1, 280), 1000, SCOPE_DESC)?
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
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let scope = if body.raw("scope").is_some_and(Value::is_null) {
            Patch::Null
        } else {
            match body.string_array("scope", Str::len(1, 280), 1000, SCOPE_DESC)? {
                Some(s) => Patch::Value(dedup(s)),
                None => Patch::Absent,
            }
        };
        let extra = read_extra(&mut body, &["subject_type", "default_for"])?;
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

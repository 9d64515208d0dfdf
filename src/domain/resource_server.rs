//! Resource servers (APIs): the audiences tokens are issued for.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time::Timestamp;
use super::validate::{Body, Str, payload_error};
use super::{DomainError, ids};

/// Default access-token lifetime (seconds).
pub const DEFAULT_TOKEN_LIFETIME: i64 = 86_400;
/// Longest access-token lifetime (seconds).
pub const MAX_TOKEN_LIFETIME: i64 = 2_592_000;
/// The name of the system resource server for the Management API: Auth0's exact name, which
/// tools recognise it by (auth0-deploy-cli leaves the API of this name out of its exports and
/// never updates or deletes it). Stores created under the earlier name are renamed by a
/// migration (`migrations/*/..._management_api_name.sql`).
pub const MANAGEMENT_API_NAME: &str = "Auth0 Management API";

/// A scope a resource server defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDef {
    /// The scope string.
    pub value: String,
    /// Optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A resource server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceServer {
    /// 24 hex digits.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The audience (immutable).
    pub identifier: String,
    /// Scopes it defines.
    pub scopes: Vec<ScopeDef>,
    /// Access-token signing algorithm: `RS256`, `RS512`, `PS256` (the tenant's key) or
    /// `HS256` (the API's `signing_secret`).
    pub signing_alg: String,
    /// The `signing_secret`, sealed with the master key (its own column, never in the
    /// stored document); set whenever the API has signed with HS256 or was given one.
    #[serde(skip)]
    pub sealed_signing_secret: Option<Vec<u8>>,
    /// Access-token lifetime in seconds (`expires_in`).
    pub token_lifetime: i64,
    /// Whether refresh tokens may be issued (kept for compatibility).
    pub allow_offline_access: bool,
    /// Kept for compatibility.
    pub skip_consent_for_verifiable_first_party_clients: bool,
    /// The Management API itself: cannot be changed or deleted.
    pub is_system: bool,
    /// Auth0 properties kept verbatim.
    pub extra: Map<String, Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Auth0 resource-server properties that Clavis keeps verbatim (it does not act on them beyond the
/// rules beside their reading). Their JSON schema, Auth0's, is checked with the whole body
/// before (`http::schema`); anything not here and not a core field is refused.
pub const STORED_PROPERTIES: &[&str] = &[
    "allow_online_access",
    // Inert, as `allow_online_access` (online refresh tokens, which Clavis does not issue):
    // Auth0 resource servers carry it and auth0-deploy-cli exports and imports it.
    "allow_online_access_with_ephemeral_sessions",
    "token_dialect",
    "enforce_policies",
    "token_encryption",
    // Inert: the lifetime of tokens from the implicit and hybrid flows, which Clavis does not
    // serve. Auth0's exports carry it (auth0-deploy-cli sends it back on import).
    "token_lifetime_for_web",
    "consent_policy",
    "authorization_details",
    "proof_of_possession",
    "subject_type_authorization",
    "authorization_policy",
];

/// Clavis's name for the HS256 algorithm.
pub const HS256: &str = "HS256";

/// The algorithms Clavis signs an API's tokens with: Auth0's `SigningAlgorithmEnum`, which
/// `tests/openapi.rs` keeps equal to this (a value Auth0 adds is refused here until Clavis
/// can sign with it, rather than stored and signed otherwise).
pub const SIGNING_ALGS: &[&str] = &[HS256, "RS256", "RS512", "PS256"];

/// Auth0's description of `signing_secret`.
const SIGNING_SECRET_DESCRIPTION: &str =
    "Secret used to sign tokens when using symmetric algorithms (HS256).";

/// A `signing_secret` in clear, between the request and its sealing (or its unsealing and
/// the response). Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    /// A new random secret (48 random bytes, base64url: 64 characters), for an API that
    /// signs with HS256 and was given none.
    pub fn generate() -> Self {
        Self(clavis_crypto::secret::generate_client_secret())
    }

    /// A secret read from the store (unsealed) or a request.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

/// Seals a signing secret for the resource server of the given id (the service's master
/// key).
pub type SealSecret<'a> = &'a dyn Fn(&str, &SigningSecret) -> Vec<u8>;

impl ResourceServer {
    /// The associated data its `signing_secret` is sealed under: its id.
    pub fn sealing_context(&self) -> &[u8] {
        self.id.as_bytes()
    }

    /// Whether its tokens are signed with HS256 (its `signing_secret`).
    pub fn signs_with_secret(&self) -> bool {
        self.signing_alg == HS256
    }

    /// Gives it a sealed secret when it signs with HS256 and has none.
    fn ensure_secret(&mut self, seal: SealSecret<'_>) {
        if self.signs_with_secret() && self.sealed_signing_secret.is_none() {
            self.sealed_signing_secret = Some(seal(&self.id, &SigningSecret::generate()));
        }
    }

    /// Whether its client access policy (`subject_type_authorization.client.policy`) is
    /// `deny_all`: no machine-to-machine token for it, grant or not.
    pub fn denies_clients(&self) -> bool {
        self.extra
            .get("subject_type_authorization")
            .and_then(|s| s.get("client"))
            .and_then(|c| c.get("policy"))
            .and_then(Value::as_str)
            == Some("deny_all")
    }

    /// Whether its tokens must be certificate-bound: `proof_of_possession` with mechanism
    /// `mtls` and `required`, for all clients (machine-to-machine clients are confidential, so
    /// `required_for: public_clients` does not concern them).
    pub fn requires_certificate_binding(&self) -> bool {
        let Some(pop) = self.extra.get("proof_of_possession") else {
            return false;
        };
        pop.get("mechanism").and_then(Value::as_str) == Some("mtls")
            && pop.get("required").and_then(Value::as_bool) == Some(true)
            && pop.get("required_for").and_then(Value::as_str) != Some("public_clients")
    }

    /// Its `token_dialect` (Auth0's default when unset).
    pub fn token_dialect(&self) -> TokenDialect {
        self.extra
            .get("token_dialect")
            .and_then(Value::as_str)
            .and_then(TokenDialect::parse)
            .unwrap_or_default()
    }

    /// Whether tokens carry `permissions`: an `_authz` dialect with `enforce_policies` (RBAC)
    /// on. For a machine-to-machine token the permissions are its granted scopes.
    pub fn token_permissions(&self) -> bool {
        self.token_dialect().authz()
            && self.extra.get("enforce_policies").and_then(Value::as_bool) == Some(true)
    }

    /// The API representation, with its `signing_secret` (in clear) when it has one.
    pub fn to_json(&self, signing_secret: Option<&SigningSecret>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        if self.is_system {
            m.insert("is_system".into(), Value::Bool(true));
        }
        m.insert("identifier".into(), Value::String(self.identifier.clone()));
        m.insert(
            "allow_offline_access".into(),
            Value::Bool(self.allow_offline_access),
        );
        m.insert(
            "skip_consent_for_verifiable_first_party_clients".into(),
            Value::Bool(self.skip_consent_for_verifiable_first_party_clients),
        );
        m.insert("token_lifetime".into(), Value::from(self.token_lifetime));
        m.insert(
            "signing_alg".into(),
            Value::String(self.signing_alg.clone()),
        );
        if let Some(secret) = signing_secret {
            m.insert(
                "signing_secret".into(),
                Value::String(secret.expose().to_owned()),
            );
        }
        m.insert(
            "scopes".into(),
            serde_json::to_value(&self.scopes).unwrap_or(Value::Array(Vec::new())),
        );
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// Whether the resource server defines `scope`.
    pub fn defines_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.value == scope)
    }
}

/// Fields shared by create and update.
#[derive(Debug, Clone, Default)]
pub struct ResourceServerFields {
    name: Option<String>,
    scopes: Option<Vec<ScopeDef>>,
    signing_alg: Option<String>,
    signing_secret: Option<SigningSecret>,
    token_lifetime: Option<i64>,
    allow_offline_access: Option<bool>,
    skip_consent: Option<bool>,
    extra: Map<String, Value>,
}

fn read_scopes(v: &Value) -> Result<Vec<ScopeDef>, DomainError> {
    let Value::Array(items) = v else {
        return Err(payload_error(
            &format!(
                "Expected type array but found type {}",
                super::validate::type_name(v)
            ),
            "scopes",
            "List of permissions (scopes) that this API uses.",
        ));
    };
    if items.len() > 1000 {
        return Err(payload_error(
            &format!("Array is too long ({}), maximum 1000", items.len()),
            "scopes",
            "",
        ));
    }
    let mut out: Vec<ScopeDef> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("scopes[{i}]");
        let mut b = Body::nested(item, &path, false)?;
        let value = b.required_string("value", Str::SCHEMA, "Value of this scope.")?;
        let description = b.string(
            "description",
            Str::SCHEMA,
            "User-friendly description of this scope.",
        )?;
        b.finish()?;
        if value.contains(char::is_whitespace) {
            return Err(payload_error(
                "Scope values cannot contain whitespace",
                &path,
                "",
            ));
        }
        if out.iter().any(|s| s.value == value) {
            return Err(payload_error(
                &format!("Duplicate scope: {value}"),
                "scopes",
                "",
            ));
        }
        out.push(ScopeDef { value, description });
    }
    Ok(out)
}

fn read_fields(body: &mut Body<'_>) -> Result<ResourceServerFields, DomainError> {
    let mut f = ResourceServerFields {
        name: body.string(
            "name",
            Str::SCHEMA,
            "Friendly name for this resource server. Can not contain `<` or `>` characters.",
        )?,
        ..Default::default()
    };
    if let Some(v) = body.raw("scopes") {
        f.scopes = Some(read_scopes(v)?);
    }
    f.signing_alg = body.string(
        "signing_alg",
        Str::one_of(SIGNING_ALGS),
        "Algorithm used to sign JWTs.",
    )?;
    f.signing_secret = body
        .string("signing_secret", Str::SCHEMA, SIGNING_SECRET_DESCRIPTION)?
        .map(SigningSecret);
    f.token_lifetime = body.integer(
        "token_lifetime",
        0,
        MAX_TOKEN_LIFETIME,
        "Expiration value (in seconds) for access tokens issued for this API from the token endpoint.",
    )?;
    f.allow_offline_access = body.bool(
        "allow_offline_access",
        "Whether refresh tokens can be issued for this API (true) or not (false).",
    )?;
    f.skip_consent = body.bool(
        "skip_consent_for_verifiable_first_party_clients",
        "Whether to skip user consent for applications flagged as first party (true) or not (false).",
    )?;
    super::properties::refuse(body, super::properties::RESOURCE_SERVER)?;
    // Their JSON schema (Auth0's: shapes, enums, required members) was checked with the whole
    // body (`http::schema`); what remains is Clavis's own rule.
    for key in STORED_PROPERTIES {
        if let Some(v) = body.raw(key) {
            if *key == "proof_of_possession" {
                refuse_unserved_mechanism(v)?;
            }
            if *key == "subject_type_authorization" {
                refuse_unserved_client_policy(v)?;
            }
            if *key == "token_dialect" && v.as_str().and_then(TokenDialect::parse).is_none() {
                return Err(super::validate::payload_error(
                    "No enum match for",
                    key,
                    "Dialect of issued access token",
                ));
            }
            f.extra.insert((*key).to_string(), v.clone());
        }
    }
    Ok(f)
}

/// Auth0's access-token profiles (`token_dialect`): which header and claims a token for the
/// API carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenDialect {
    /// `access_token` (the default): Auth0's claims (`azp`, `gty`), `typ: JWT`.
    #[default]
    AccessToken,
    /// `access_token_authz`: the same, with `permissions` when policies are enforced.
    AccessTokenAuthz,
    /// `rfc9068_profile`: RFC 9068 (`typ: at+jwt`, `client_id`, `jti`; no `azp`, `gty`).
    Rfc9068,
    /// `rfc9068_profile_authz`: the same, with `permissions` when policies are enforced.
    Rfc9068Authz,
}

impl TokenDialect {
    /// Every dialect by its wire name: Auth0's enum, which `tests/openapi.rs` keeps equal to
    /// this.
    pub const NAMES: [(&'static str, Self); 4] = [
        ("access_token", Self::AccessToken),
        ("access_token_authz", Self::AccessTokenAuthz),
        ("rfc9068_profile", Self::Rfc9068),
        ("rfc9068_profile_authz", Self::Rfc9068Authz),
    ];

    /// From its wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
    }

    /// An RFC 9068 profile.
    pub fn rfc9068(self) -> bool {
        matches!(self, Self::Rfc9068 | Self::Rfc9068Authz)
    }

    /// A dialect that carries RBAC `permissions`.
    pub fn authz(self) -> bool {
        matches!(self, Self::AccessTokenAuthz | Self::Rfc9068Authz)
    }
}

/// The `proof_of_possession` mechanisms Clavis enforces: `mtls`, at the token endpoint
/// ([`ResourceServer::requires_certificate_binding`]). Any other (Auth0's `dpop`) is refused
/// until Clavis speaks it: a requirement it could not honour would be a setting stored and
/// ignored. The rest of the object's shape is Auth0's schema, checked before.
pub const POP_MECHANISMS: &[&str] = &["mtls"];

fn refuse_unserved_mechanism(v: &Value) -> Result<(), DomainError> {
    match v.get("mechanism").and_then(Value::as_str) {
        Some(m) if !POP_MECHANISMS.contains(&m) => Err(super::validate::payload_error(
            &format!("Clavis does not support {m}; the only mechanism is mtls"),
            "proof_of_possession.mechanism",
            "Intended mechanism for Proof-of-Possession",
        )),
        _ => Ok(()),
    }
}

/// The `subject_type_authorization.client.policy` values Clavis enforces at the token endpoint
/// ([`ResourceServer::denies_clients`]): Auth0's enum, which `tests/openapi.rs` keeps equal
/// to this. `user.policy` governs user flows, which Clavis does not serve: Auth0's schema
/// alone checks it.
pub const CLIENT_POLICIES: &[&str] = &["deny_all", "require_client_grant"];

fn refuse_unserved_client_policy(v: &Value) -> Result<(), DomainError> {
    match v.pointer("/client/policy").and_then(Value::as_str) {
        Some(p) if !CLIENT_POLICIES.contains(&p) => Err(super::validate::payload_error(
            "No enum match for",
            "subject_type_authorization.client.policy",
            "Defines the client flows policy for the resource server",
        )),
        _ => Ok(()),
    }
}

/// A validated `POST /resource-servers` body.
#[derive(Debug, Clone)]
pub struct NewResourceServer {
    identifier: String,
    fields: ResourceServerFields,
}

impl NewResourceServer {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let identifier = body.required_string(
            "identifier",
            Str::SCHEMA,
            "Unique identifier for the API used as the audience parameter on authorization calls. Can not be changed once set.",
        )?;
        let fields = read_fields(&mut body)?;
        body.finish()?;
        Ok(Self { identifier, fields })
    }

    /// Builds the resource server, its `signing_secret` sealed with `seal`: the one given,
    /// else a new one when it signs with HS256 (as Auth0 creates one).
    pub fn build(self, now: Timestamp, seal: SealSecret<'_>) -> ResourceServer {
        let f = self.fields;
        let mut rs = ResourceServer {
            id: ids::new_resource_server_id(),
            name: f.name.unwrap_or_else(|| self.identifier.clone()),
            identifier: self.identifier,
            scopes: f.scopes.unwrap_or_default(),
            signing_alg: f.signing_alg.unwrap_or_else(|| "RS256".into()),
            sealed_signing_secret: None,
            token_lifetime: f.token_lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME),
            allow_offline_access: f.allow_offline_access.unwrap_or(false),
            skip_consent_for_verifiable_first_party_clients: f.skip_consent.unwrap_or(false),
            is_system: false,
            extra: f.extra.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            created_at: now,
            updated_at: now,
        };
        if let Some(secret) = &f.signing_secret {
            rs.sealed_signing_secret = Some(seal(&rs.id, secret));
        }
        rs.ensure_secret(seal);
        rs
    }
}

/// A validated `PATCH /resource-servers/{id}` body.
#[derive(Debug, Clone)]
pub struct ResourceServerUpdate {
    fields: ResourceServerFields,
}

impl ResourceServerUpdate {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let fields = read_fields(&mut body)?;
        body.finish()?;
        Ok(Self { fields })
    }

    /// Applies the update; the system API refuses changes. A `signing_secret` given is sealed
    /// with `seal`; an API switched to HS256 without one, and with none stored, gets a new one.
    pub fn apply(
        &self,
        rs: &mut ResourceServer,
        now: Timestamp,
        seal: SealSecret<'_>,
    ) -> Result<(), DomainError> {
        if rs.is_system {
            return Err(system_api_error());
        }
        let f = &self.fields;
        if let Some(v) = &f.name {
            rs.name = v.clone();
        }
        if let Some(v) = &f.scopes {
            rs.scopes = v.clone();
        }
        if let Some(v) = &f.signing_alg {
            rs.signing_alg = v.clone();
        }
        if let Some(secret) = &f.signing_secret {
            rs.sealed_signing_secret = Some(seal(&rs.id, secret));
        }
        rs.ensure_secret(seal);
        if let Some(v) = f.token_lifetime {
            rs.token_lifetime = v;
        }
        if let Some(v) = f.allow_offline_access {
            rs.allow_offline_access = v;
        }
        if let Some(v) = f.skip_consent {
            rs.skip_consent_for_verifiable_first_party_clients = v;
        }
        for (k, v) in &f.extra {
            if v.is_null() {
                rs.extra.remove(k);
            } else {
                rs.extra.insert(k.clone(), v.clone());
            }
        }
        rs.updated_at = now;
        Ok(())
    }
}

/// The error for changing or deleting the Management API's own resource server.
pub fn system_api_error() -> DomainError {
    DomainError::Forbidden {
        code: "operation_not_supported",
        message: "The system resource server (Management API) cannot be modified or deleted".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_order() {
        let body =
            json!({"identifier": "https://api.example.com/", "scopes": [{"value": "read:x"}]});
        let rs = NewResourceServer::parse(Body::new(&body).unwrap())
            .unwrap()
            .build(Timestamp::now(), &fake_seal);
        assert_eq!(rs.name, "https://api.example.com/");
        assert_eq!(rs.token_lifetime, 86_400);
        let keys: Vec<_> = rs.to_json(None).keys().cloned().collect();
        assert_eq!(keys[0..3], ["id", "name", "identifier"]);
    }

    #[test]
    fn identifier_is_immutable_and_lifetime_capped() {
        let body = json!({"identifier": "x"});
        assert!(ResourceServerUpdate::parse(Body::new(&body).unwrap()).is_err());
        let body = json!({"identifier": "x", "token_lifetime": 2_592_001});
        assert!(NewResourceServer::parse(Body::new(&body).unwrap()).is_err());
    }

    #[test]
    fn system_api_cannot_change() {
        let body = json!({"identifier": "https://h/api/v2/"});
        let mut rs = NewResourceServer::parse(Body::new(&body).unwrap())
            .unwrap()
            .build(Timestamp::now(), &fake_seal);
        rs.is_system = true;
        for change in [json!({"name": "x"}), json!({"signing_alg": "HS256"})] {
            let update = ResourceServerUpdate::parse(Body::new(&change).unwrap()).unwrap();
            assert!(update.apply(&mut rs, Timestamp::now(), &fake_seal).is_err());
        }
        assert_eq!(rs.signing_alg, "RS256");
        assert_eq!(rs.sealed_signing_secret, None);
    }

    /// "Seals" by prefixing the id: enough to see what was sealed, and for whom.
    fn fake_seal(id: &str, secret: &SigningSecret) -> Vec<u8> {
        format!("{id}:{}", secret.expose()).into_bytes()
    }

    fn build(body: Value) -> Result<ResourceServer, DomainError> {
        Ok(
            NewResourceServer::parse(Body::new(&body).unwrap())?
                .build(Timestamp::now(), &fake_seal),
        )
    }

    #[test]
    fn signing_secret_given_generated_or_refused() {
        // Given: sealed for this API, whatever the algorithm.
        for alg in ["HS256", "RS256"] {
            let rs = build(json!({"identifier": "a", "signing_alg": alg, "signing_secret": "0123456789abcdef"})).unwrap();
            let sealed = String::from_utf8(rs.sealed_signing_secret.unwrap()).unwrap();
            assert_eq!(sealed, format!("{}:0123456789abcdef", rs.id));
        }
        // HS256 without one: a new one (64 characters).
        let rs = build(json!({"identifier": "a", "signing_alg": "HS256"})).unwrap();
        let sealed = String::from_utf8(rs.sealed_signing_secret.clone().unwrap()).unwrap();
        assert_eq!(sealed.len(), rs.id.len() + 1 + 64);
        // The asymmetric algorithms need none.
        for alg in ["RS256", "RS512", "PS256"] {
            let rs = build(json!({"identifier": "a", "signing_alg": alg})).unwrap();
            assert_eq!(rs.signing_alg, alg);
            assert_eq!(rs.sealed_signing_secret, None);
        }
        // Not a string, an algorithm Clavis does not sign with (too short a secret is Auth0's
        // schema's: `tests/api/schema.rs`).
        for body in [
            json!({"identifier": "a", "signing_secret": 1234567890123456_i64}),
            json!({"identifier": "a", "signing_alg": "ES256"}),
        ] {
            assert!(build(body).is_err());
        }
        // Secrets never show in Debug output.
        let body = json!({"signing_secret": "a-secret-nobody-may-see"});
        let update = ResourceServerUpdate::parse(Body::new(&body).unwrap()).unwrap();
        assert!(!format!("{update:?}").contains("nobody"));
    }

    #[test]
    fn switching_to_hs256_keeps_or_creates_the_secret() {
        let mut rs = build(json!({"identifier": "a"})).unwrap();
        let update = |body: Value| ResourceServerUpdate::parse(Body::new(&body).unwrap()).unwrap();
        update(json!({"signing_alg": "HS256"}))
            .apply(&mut rs, Timestamp::now(), &fake_seal)
            .unwrap();
        let first = rs.sealed_signing_secret.clone().unwrap();
        // Back to RS256 and to HS256 again: the stored secret stays.
        for alg in ["RS256", "HS256"] {
            update(json!({ "signing_alg": alg }))
                .apply(&mut rs, Timestamp::now(), &fake_seal)
                .unwrap();
            assert_eq!(rs.sealed_signing_secret.as_ref(), Some(&first));
        }
        // A new one replaces it.
        update(json!({"signing_secret": "fedcba9876543210"}))
            .apply(&mut rs, Timestamp::now(), &fake_seal)
            .unwrap();
        assert_eq!(
            rs.sealed_signing_secret,
            Some(format!("{}:fedcba9876543210", rs.id).into_bytes())
        );
    }
}

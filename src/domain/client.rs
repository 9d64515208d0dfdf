//! Clients (applications) and the rules that tie them to their credentials.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::credential::{Credential, CredentialType, NewCredential};
use super::time::Timestamp;
use super::validate::{Body, Patch, Str, expect_type, payload_error};
use super::{DomainError, ids};

/// The default `grant_types` of a new client (Auth0's).
pub const DEFAULT_GRANT_TYPES: [&str; 4] = [
    "authorization_code",
    "implicit",
    "refresh_token",
    "client_credentials",
];

/// The methods a client may authenticate with at the token endpoint by a secret, or none:
/// Auth0's enum for `token_endpoint_auth_method`, which `tests/openapi.rs` keeps equal to
/// this (Clavis acts on the value).
pub const TOKEN_ENDPOINT_AUTH_METHODS: &[&str] =
    &["none", "client_secret_post", "client_secret_basic"];

/// Auth0 client properties that Clavis keeps verbatim (it does not act on them beyond the
/// rules beside their reading). Their JSON schema, Auth0's, is checked with the whole body
/// before (`http::schema`); anything not here and not a core field is refused.
pub const STORED_PROPERTIES: &[&str] = &[
    "logo_uri",
    "callbacks",
    "oidc_logout",
    "oidc_backchannel_logout",
    "session_transfer",
    "allowed_origins",
    "web_origins",
    "client_aliases",
    "allowed_clients",
    "allowed_logout_urls",
    "is_token_endpoint_ip_header_trusted",
    "oidc_conformant",
    "encryption_key",
    "sso",
    "cross_origin_authentication",
    "cross_origin_loc",
    "sso_disabled",
    "custom_login_page_on",
    "custom_login_page",
    "custom_login_page_preview",
    "form_template",
    "addons",
    "mobile",
    "initiate_login_uri",
    "native_social_login",
    "refresh_token",
    "default_organization",
    "organization_usage",
    "organization_require_behavior",
    "organization_discovery_methods",
    "require_pushed_authorization_requests",
    "require_proof_of_possession",
    "signed_request_object",
    "compliance_level",
    "skip_non_verifiable_callback_uri_confirmation_prompt",
    "token_exchange",
    "par_request_expiry",
    "token_quota",
    "resource_server_identifier",
    "third_party_security_mode",
    "redirection_policy",
    "express_configuration",
    "my_organization_configuration",
    "async_approval_notification_channels",
];

/// The authentication methods that use credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethodKind {
    /// JWT assertion signed with a `public_key` credential.
    PrivateKeyJwt,
    /// mTLS with a CA-issued certificate matched by `cert_subject_dn`.
    TlsClientAuth,
    /// mTLS with a pinned `x509_cert`.
    SelfSignedTlsClientAuth,
}

impl AuthMethodKind {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// The credential type this method authenticates with.
    pub fn credential_type(self) -> CredentialType {
        match self {
            Self::PrivateKeyJwt => CredentialType::PublicKey,
            Self::TlsClientAuth => CredentialType::CertSubjectDn,
            Self::SelfSignedTlsClientAuth => CredentialType::X509Cert,
        }
    }

    const ALL: [AuthMethodKind; 3] = [
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];
}

/// `client_authentication_methods`: exactly one method with its attached credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethods {
    /// The method in use.
    pub kind: AuthMethodKind,
    /// Attached credential ids, in the order given.
    pub credential_ids: Vec<String>,
}

impl AuthMethods {
    /// `{"<method>": {"credentials": [{"id": ...}]}}`
    pub fn to_json(&self) -> Value {
        let creds: Vec<Value> = self
            .credential_ids
            .iter()
            .map(|id| serde_json::json!({ "id": id }))
            .collect();
        let mut m = Map::new();
        m.insert(
            self.kind.as_str().to_string(),
            serde_json::json!({ "credentials": creds }),
        );
        Value::Object(m)
    }
}

/// `jwt_configuration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JwtConfiguration {
    /// Signing algorithm of ID tokens.
    pub alg: String,
    /// Lifetime of ID tokens.
    pub lifetime_in_seconds: i64,
    /// Whether the secret is base64 encoded.
    pub secret_encoded: bool,
    /// Scopes configuration (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Value>,
}

impl Default for JwtConfiguration {
    fn default() -> Self {
        Self {
            alg: "RS256".into(),
            lifetime_in_seconds: 36000,
            secret_encoded: false,
            scopes: None,
        }
    }
}

/// A client as stored (the secret is kept sealed beside it, see [`ClientAggregate`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Client {
    /// 32 alphanumerics.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Application type.
    pub app_type: Option<String>,
    /// First-party application.
    pub is_first_party: bool,
    /// Enabled grants.
    pub grant_types: Vec<String>,
    /// Secret-based method, when no credentials method is used.
    pub token_endpoint_auth_method: Option<String>,
    /// Credential-based method.
    pub client_authentication_methods: Option<AuthMethods>,
    /// ID token settings.
    pub jwt_configuration: JwtConfiguration,
    /// String metadata.
    pub client_metadata: Map<String, Value>,
    /// Auth0 properties kept verbatim.
    pub extra: Map<String, Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Client {
    /// Whether the client authenticates with its secret (and so the secret is shown).
    pub fn uses_secret(&self) -> bool {
        self.client_authentication_methods.is_none()
            && matches!(
                self.token_endpoint_auth_method.as_deref(),
                Some("client_secret_post" | "client_secret_basic")
            )
    }

    /// The ids of the credentials its authentication method uses, in the order given
    /// (none for a client that authenticates with its secret). A credential not named
    /// here authenticates nothing.
    pub fn attached_credential_ids(&self) -> &[String] {
        self.client_authentication_methods
            .as_ref()
            .map_or(&[], |m| m.credential_ids.as_slice())
    }

    /// Whether its authentication method uses the credential `id`.
    pub fn uses_credential(&self, id: &str) -> bool {
        self.attached_credential_ids().iter().any(|a| a == id)
    }

    /// Whether `client_credentials` is among the grant types.
    pub fn allows_client_credentials(&self) -> bool {
        self.grant_types.iter().any(|g| g == "client_credentials")
    }

    /// The organization `default_organization` names for `client_credentials` requests
    /// that name none.
    pub fn default_organization(&self) -> Option<&str> {
        super::organization::default_organization_for_client_credentials(
            self.extra.get("default_organization")?,
        )
    }

    /// Its own `token_quota` for client-credentials tokens, if it has one.
    pub fn token_quota(&self) -> Option<super::token_quota::QuotaLimits> {
        super::token_quota::QuotaLimits::from_stored(self.extra.get("token_quota"))
    }

    /// `require_proof_of_possession`: its tokens only certificate-bound (mTLS, `cnf`).
    pub fn requires_proof_of_possession(&self) -> bool {
        self.extra
            .get("require_proof_of_possession")
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// The API representation, in Clavis's fixed key order. `secret` is included when given:
    /// the caller decides visibility (see `uses_secret`).
    pub fn to_json(&self, secret: Option<&str>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("client_id".into(), Value::String(self.client_id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        if let Some(d) = &self.description {
            m.insert("description".into(), Value::String(d.clone()));
        }
        if let Some(a) = &self.app_type {
            m.insert("app_type".into(), Value::String(a.clone()));
        }
        m.insert("is_first_party".into(), Value::Bool(self.is_first_party));
        if let Some(secret) = secret {
            m.insert("client_secret".into(), Value::String(secret.to_string()));
        }
        if self.client_authentication_methods.is_none()
            && let Some(method) = &self.token_endpoint_auth_method
        {
            m.insert(
                "token_endpoint_auth_method".into(),
                Value::String(method.clone()),
            );
        }
        if let Some(methods) = &self.client_authentication_methods {
            m.insert("client_authentication_methods".into(), methods.to_json());
        }
        m.insert(
            "grant_types".into(),
            Value::Array(
                self.grant_types
                    .iter()
                    .map(|g| Value::String(g.clone()))
                    .collect(),
            ),
        );
        m.insert(
            "jwt_configuration".into(),
            serde_json::to_value(&self.jwt_configuration).unwrap_or(Value::Null),
        );
        if !self.client_metadata.is_empty() {
            m.insert(
                "client_metadata".into(),
                Value::Object(self.client_metadata.clone()),
            );
        }
        // No `created_at`: Auth0's `Client` has none, and auth0-deploy-cli sends every field
        // it read back on import, where an unknown one is refused.
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

/// A client with its credentials: the unit that one transaction reads and writes, so the
/// rules between them (caps, attachment, deletion) hold under concurrency.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientAggregate {
    /// The client.
    pub client: Client,
    /// The client's secret, sealed with the master key (`None` never happens for clients
    /// created by Clavis, but the type does not assume it).
    pub sealed_secret: Option<Vec<u8>>,
    /// Its credentials, in creation order.
    pub credentials: Vec<Credential>,
}

/// Configurable caps (Auth0's defaults: 4 per client, 2 per method).
#[derive(Clone, Copy, Debug)]
pub struct CredentialLimits {
    /// Credentials on one client.
    pub per_client: usize,
    /// Credentials attached to the authentication method.
    pub per_method: usize,
}

impl Default for CredentialLimits {
    fn default() -> Self {
        Self {
            per_client: 4,
            per_method: 2,
        }
    }
}

impl ClientAggregate {
    /// Gives the client a new (sealed) secret; refused for a client that authenticates with
    /// credentials (Auth0's rotate-secret rule).
    pub fn replace_secret(&mut self, sealed: Vec<u8>, now: Timestamp) -> Result<(), DomainError> {
        if self.client.client_authentication_methods.is_some() {
            return Err(DomainError::rule(
                "invalid_body",
                "Cannot rotate the secret of a client that uses client_authentication_methods",
            ));
        }
        self.sealed_secret = Some(sealed);
        self.client.updated_at = now;
        Ok(())
    }

    /// The credential with this id, if it belongs to this client.
    pub fn credential(&self, id: &str) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.id == id)
    }

    /// Adds a credential, enforcing the per-client cap and refusing a key (or certificate)
    /// already on the client, or a `kid` already in use.
    pub fn add_credential(
        &mut self,
        credential: Credential,
        limits: CredentialLimits,
    ) -> Result<(), DomainError> {
        if self.credentials.len() >= limits.per_client {
            return Err(DomainError::rule(
                "invalid_body",
                format!(
                    "A client can have a maximum of {} credentials.",
                    limits.per_client
                ),
            ));
        }
        if let Some(t) = &credential.key_thumbprint
            && self
                .credentials
                .iter()
                .any(|c| c.key_thumbprint.as_ref() == Some(t))
        {
            return Err(DomainError::rule(
                "invalid_body",
                "credentials contains public keys that already exist in client",
            ));
        }
        if let Some(kid) = &credential.kid
            && self.credentials.iter().any(|c| c.kid.as_ref() == Some(kid))
        {
            return Err(DomainError::rule(
                "invalid_body",
                "A credential with this kid already exists on the client",
            ));
        }
        self.credentials.push(credential);
        Ok(())
    }

    /// Applies the seed's PATCH to one credential.
    pub fn set_credential_expiry(
        &mut self,
        credential_id: &str,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<&Credential, DomainError> {
        let credential = self
            .credentials
            .iter_mut()
            .find(|c| c.id == credential_id)
            .ok_or_else(DomainError::credential_not_found)?;
        credential.set_expiry(expires_at, now);
        Ok(credential)
    }

    /// Deletes a credential; refused while it is attached to the authentication method.
    pub fn remove_credential(&mut self, credential_id: &str) -> Result<Credential, DomainError> {
        let index = self
            .credentials
            .iter()
            .position(|c| c.id == credential_id)
            .ok_or_else(DomainError::credential_not_found)?;
        if self
            .client
            .client_authentication_methods
            .as_ref()
            .is_some_and(|m| m.credential_ids.iter().any(|id| id == credential_id))
        {
            return Err(DomainError::rule(
                "invalid_body",
                "Cannot delete credential still associated with a client",
            ));
        }
        Ok(self.credentials.remove(index))
    }

    /// Checks that every attached credential exists on this client, has the method's type,
    /// and that the method holds at most `per_method` of them.
    pub fn check_authentication_methods(
        &self,
        limits: CredentialLimits,
    ) -> Result<(), DomainError> {
        let Some(methods) = &self.client.client_authentication_methods else {
            return Ok(());
        };
        let path = format!(
            "client_authentication_methods.{}.credentials",
            methods.kind.as_str()
        );
        if methods.credential_ids.len() > limits.per_method {
            return Err(payload_error(
                &format!(
                    "Array is too long ({}), maximum {}",
                    methods.credential_ids.len(),
                    limits.per_method
                ),
                &path,
                "",
            ));
        }
        for (i, id) in methods.credential_ids.iter().enumerate() {
            if methods.credential_ids[..i].contains(id) {
                return Err(payload_error(
                    &format!("Array items are not unique: {id}"),
                    &path,
                    "",
                ));
            }
            let Some(credential) = self.credential(id) else {
                return Err(DomainError::rule(
                    "invalid_body",
                    format!("The credential {id} does not exist on this client"),
                ));
            };
            if credential.credential_type != methods.kind.credential_type() {
                return Err(DomainError::rule(
                    "invalid_body",
                    format!(
                        "The credential {id} is of type {} and cannot be used for {}",
                        credential.credential_type.as_str(),
                        methods.kind.as_str()
                    ),
                ));
            }
        }
        if self.client.token_endpoint_auth_method.is_some() {
            return Err(DomainError::rule(
                "invalid_body",
                "token_endpoint_auth_method and client_authentication_methods cannot both be set; send \"token_endpoint_auth_method\": null",
            ));
        }
        Ok(())
    }
}

/// What `client_authentication_methods` holds in a request.
#[derive(Debug, Clone)]
pub enum MethodsInput<T> {
    /// `null`: no credential method.
    Clear,
    /// One method with its credential entries.
    Set(AuthMethodKind, Vec<T>),
}

/// Fields common to create and update, parsed.
#[derive(Debug, Clone, Default)]
pub struct ClientFields {
    /// `name`
    pub name: Option<String>,
    /// `description`
    pub description: Option<String>,
    /// `app_type`
    pub app_type: Option<String>,
    /// `is_first_party`
    pub is_first_party: Option<bool>,
    /// `grant_types`
    pub grant_types: Option<Vec<String>>,
    /// `token_endpoint_auth_method` (may be null on update)
    pub token_endpoint_auth_method: Patch<String>,
    /// `jwt_configuration`
    pub jwt_configuration: Option<JwtConfiguration>,
    /// `client_metadata` (a patch: null values remove keys on update)
    pub client_metadata: Option<Map<String, Value>>,
    /// Stored-verbatim properties; `Value::Null` removes on update.
    pub extra: Map<String, Value>,
}

fn read_common(body: &mut Body<'_>, creating: bool) -> Result<ClientFields, DomainError> {
    super::properties::refuse(body, super::properties::CLIENT)?;
    let mut f = ClientFields {
        name: if creating {
            Some(body.required_string("name", Str::SCHEMA, "The name of the client")?)
        } else {
            body.string("name", Str::SCHEMA, "The name of the client")?
        },
        description: body.string(
            "description",
            Str::SCHEMA,
            "Free text description of the purpose of the Client",
        )?,
        app_type: body.string(
            "app_type",
            Str::SCHEMA,
            "The type of application this client represents",
        )?,
        is_first_party: body.bool(
            "is_first_party",
            "Whether this client a first party client or not",
        )?,
        grant_types: body.string_array(
            "grant_types",
            Str::len(1, 100),
            20,
            "A set of grant types that the client is authorized to use",
        )?,
        token_endpoint_auth_method: if creating {
            match body.string(
                "token_endpoint_auth_method",
                Str::one_of(TOKEN_ENDPOINT_AUTH_METHODS),
                "Defines the requested authentication method for the token endpoint.",
            )? {
                Some(m) => Patch::Value(m),
                None => Patch::Absent,
            }
        } else {
            body.nullable_string(
                "token_endpoint_auth_method",
                Str::one_of(TOKEN_ENDPOINT_AUTH_METHODS),
                "Defines the requested authentication method for the token endpoint.",
            )?
        },
        ..ClientFields::default()
    };
    if let Some(v) = body.raw("jwt_configuration") {
        f.jwt_configuration = Some(read_jwt_configuration(v)?);
    }
    if let Some(v) = body.raw("client_metadata") {
        f.client_metadata = Some(read_metadata(v)?);
    }
    // Their JSON schema (Auth0's) was checked with the whole body (`http::schema`).
    for key in STORED_PROPERTIES {
        if !creating && *key == "resource_server_identifier" {
            continue;
        }
        if let Some(v) = body.raw(key) {
            if *key == "signed_request_object" {
                check_signed_request_object(v)?;
            }
            if *key == "default_organization" {
                super::organization::check_default_organization(v)?;
            }
            if *key == "token_quota" {
                super::token_quota::check(v, key, true)?;
            }
            f.extra.insert((*key).to_string(), v.clone());
        }
    }
    Ok(f)
}

/// `signed_request_object` is inert (JAR belongs to /authorize), but Auth0 turns the
/// `credentials` of a create or update body into client credentials and answers their ids;
/// Clavis would store the keys and echo them back in a shape Auth0 never answers, so a body
/// that brings any is refused.
fn check_signed_request_object(v: &Value) -> Result<(), DomainError> {
    if v.get("credentials")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        return Err(payload_error(
            "Clavis does not support credentials for signed request objects (JAR is part of /authorize, which Clavis does not serve)",
            "signed_request_object.credentials",
            "",
        ));
    }
    Ok(())
}

fn read_jwt_configuration(v: &Value) -> Result<JwtConfiguration, DomainError> {
    let mut b = Body::nested(v, "jwt_configuration", false)?;
    let defaults = JwtConfiguration::default();
    let cfg = JwtConfiguration {
        lifetime_in_seconds: b
            .integer(
                "lifetime_in_seconds",
                0,
                2_592_000,
                "Number of seconds the JWT will be valid for",
            )?
            .unwrap_or(defaults.lifetime_in_seconds),
        secret_encoded: b
            .bool(
                "secret_encoded",
                "Whether the client secret is base64 encoded",
            )?
            .unwrap_or(false),
        alg: b
            .string("alg", Str::SCHEMA, "Algorithm used to sign JWTs")?
            .unwrap_or(defaults.alg),
        scopes: match b.raw("scopes") {
            Some(s) => {
                expect_type(s, &["object"], "jwt_configuration.scopes")?;
                Some(s.clone())
            }
            None => None,
        },
    };
    b.finish()?;
    Ok(cfg)
}

fn read_metadata(v: &Value) -> Result<Map<String, Value>, DomainError> {
    let Value::Object(obj) = v else {
        return Err(payload_error(
            &format!(
                "Expected type object but found type {}",
                super::validate::type_name(v)
            ),
            "client_metadata",
            "",
        ));
    };
    for (k, val) in obj {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(payload_error(
                "Invalid metadata key",
                "client_metadata",
                "Field names max 255 chars",
            ));
        }
        match val {
            Value::String(s) if s.chars().count() <= 255 => {}
            Value::Null => {}
            Value::String(_) => {
                return Err(payload_error(
                    "String is too long, maximum 255",
                    &format!("client_metadata.{k}"),
                    "",
                ));
            }
            other => {
                return Err(payload_error(
                    &format!(
                        "Expected type string but found type {}",
                        super::validate::type_name(other)
                    ),
                    &format!("client_metadata.{k}"),
                    "",
                ));
            }
        }
    }
    Ok(obj.clone())
}

/// Reads `client_authentication_methods` (an object with exactly one method, or null) and
/// hands each credential entry to `entry`.
fn read_methods<T>(
    v: &Value,
    mut entry: impl FnMut(&Value, &str) -> Result<T, DomainError>,
) -> Result<MethodsInput<T>, DomainError> {
    const PATH: &str = "client_authentication_methods";
    if v.is_null() {
        return Ok(MethodsInput::Clear);
    }
    let mut body = Body::nested(v, PATH, false)?;
    let mut chosen = None;
    for kind in AuthMethodKind::ALL {
        if let Some(method) = body.raw(kind.as_str()) {
            if chosen.is_some() {
                return Err(payload_error(
                    "Only one authentication method may be set",
                    PATH,
                    "",
                ));
            }
            chosen = Some((kind, method));
        }
    }
    body.finish()?;
    let Some((kind, method)) = chosen else {
        return Err(payload_error(
            "Too few properties defined (0), minimum 1",
            PATH,
            "",
        ));
    };
    let method_path = format!("{PATH}.{}", kind.as_str());
    let mut mb = Body::nested(method, &method_path, false)?;
    let creds = mb.required_raw("credentials")?;
    mb.finish()?;
    let Value::Array(items) = creds else {
        return Err(payload_error(
            &format!(
                "Expected type array but found type {}",
                super::validate::type_name(creds)
            ),
            &format!("{method_path}.credentials"),
            "",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(entry(item, &format!("{method_path}.credentials[{i}]"))?);
    }
    Ok(MethodsInput::Set(kind, out))
}

/// A validated `POST /clients` body.
#[derive(Debug, Clone)]
pub struct NewClient {
    fields: ClientFields,
    methods: Option<MethodsInput<NewCredential>>,
}

impl NewClient {
    /// The organization its `default_organization` names, if any (to check that it exists).
    pub fn default_organization(&self) -> Option<&str> {
        self.fields
            .extra
            .get("default_organization")?
            .get("organization_id")?
            .as_str()
    }

    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let fields = read_common(&mut body, true)?;
        let methods = match body.raw("client_authentication_methods") {
            None => None,
            Some(v) => Some(read_methods(v, |item, path| {
                NewCredential::parse(Body::nested(item, path, false)?)
            })?),
        };
        body.finish()?;
        Ok(Self { fields, methods })
    }

    /// Builds the aggregate: client, inline credentials (parsed and attached), rules checked.
    /// The secret is sealed by the caller and set on the result.
    pub fn build(
        self,
        client_id: Option<String>,
        limits: CredentialLimits,
        now: Timestamp,
    ) -> Result<ClientAggregate, DomainError> {
        let f = self.fields;
        let client_id = client_id.unwrap_or_else(ids::new_client_id);
        let mut client = Client {
            client_id: client_id.clone(),
            name: f.name.unwrap_or_default(),
            description: f.description,
            app_type: f.app_type,
            is_first_party: f.is_first_party.unwrap_or(true),
            grant_types: f
                .grant_types
                .unwrap_or_else(|| DEFAULT_GRANT_TYPES.iter().map(|g| g.to_string()).collect()),
            token_endpoint_auth_method: match f.token_endpoint_auth_method {
                Patch::Value(m) => Some(m),
                Patch::Null | Patch::Absent => None,
            },
            client_authentication_methods: None,
            jwt_configuration: f.jwt_configuration.unwrap_or_default(),
            client_metadata: f
                .client_metadata
                .map(|m| m.into_iter().filter(|(_, v)| !v.is_null()).collect())
                .unwrap_or_default(),
            extra: f.extra.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            created_at: now,
            updated_at: now,
        };
        let mut aggregate = ClientAggregate {
            client: client.clone(),
            sealed_secret: None,
            credentials: Vec::new(),
        };
        match self.methods {
            Some(MethodsInput::Set(kind, entries)) => {
                let mut attached = Vec::with_capacity(entries.len());
                for entry in entries {
                    let credential = entry.build(&client_id, now)?;
                    attached.push(credential.id.clone());
                    aggregate.add_credential(credential, limits)?;
                }
                client.client_authentication_methods = Some(AuthMethods {
                    kind,
                    credential_ids: attached,
                });
            }
            Some(MethodsInput::Clear) | None => {
                if client.token_endpoint_auth_method.is_none() {
                    client.token_endpoint_auth_method = Some("client_secret_post".into());
                }
            }
        }
        aggregate.client = client;
        aggregate.check_authentication_methods(limits)?;
        Ok(aggregate)
    }
}

/// A validated `PATCH /clients/{id}` body.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    fields: ClientFields,
    /// New secret given explicitly.
    pub client_secret: Option<String>,
    methods: Option<MethodsInput<String>>,
}

impl ClientUpdate {
    /// The organization its `default_organization` names, if any (to check that it exists).
    pub fn default_organization(&self) -> Option<&str> {
        self.fields
            .extra
            .get("default_organization")?
            .get("organization_id")?
            .as_str()
    }

    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let fields = read_common(&mut body, false)?;
        let client_secret = body.string(
            "client_secret",
            Str::len(1, 512),
            "The secret used to sign tokens for the client",
        )?;
        let methods = match body.raw("client_authentication_methods") {
            None => None,
            Some(v) => Some(read_methods(v, |item, path| {
                let mut b = Body::nested(item, path, false)?;
                let id = b.required_string("id", Str::len(1, 64), "Credential ID")?;
                b.finish()?;
                Ok(id)
            })?),
        };
        body.finish()?;
        Ok(Self {
            fields,
            client_secret,
            methods,
        })
    }

    /// Applies the update to the aggregate and checks the rules. Pure and repeatable (a
    /// store may retry it).
    pub fn apply(
        &self,
        aggregate: &mut ClientAggregate,
        limits: CredentialLimits,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let f = &self.fields;
        let c = &mut aggregate.client;
        if let Some(v) = &f.name {
            c.name = v.clone();
        }
        if let Some(v) = &f.description {
            c.description = Some(v.clone());
        }
        if let Some(v) = &f.app_type {
            c.app_type = Some(v.clone());
        }
        if let Some(v) = f.is_first_party {
            c.is_first_party = v;
        }
        if let Some(v) = &f.grant_types {
            c.grant_types = v.clone();
        }
        match &f.token_endpoint_auth_method {
            Patch::Absent => {}
            Patch::Null => c.token_endpoint_auth_method = None,
            Patch::Value(m) => c.token_endpoint_auth_method = Some(m.clone()),
        }
        if let Some(v) = &f.jwt_configuration {
            c.jwt_configuration = v.clone();
        }
        if let Some(patch) = &f.client_metadata {
            for (k, v) in patch {
                if v.is_null() {
                    c.client_metadata.remove(k);
                } else {
                    c.client_metadata.insert(k.clone(), v.clone());
                }
            }
            if c.client_metadata.len() > 10 {
                return Err(payload_error(
                    &format!(
                        "Too many properties defined ({}), maximum 10",
                        c.client_metadata.len()
                    ),
                    "client_metadata",
                    "",
                ));
            }
        }
        for (k, v) in &f.extra {
            if v.is_null() {
                c.extra.remove(k);
            } else {
                c.extra.insert(k.clone(), v.clone());
            }
        }
        match &self.methods {
            None => {}
            Some(MethodsInput::Clear) => c.client_authentication_methods = None,
            Some(MethodsInput::Set(kind, ids)) => {
                c.client_authentication_methods = Some(AuthMethods {
                    kind: *kind,
                    credential_ids: ids.clone(),
                });
            }
        }
        c.updated_at = now;
        aggregate.check_authentication_methods(limits)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn aggregate() -> ClientAggregate {
        let body = json!({"name": "svc", "app_type": "non_interactive", "grant_types": ["client_credentials"]});
        NewClient::parse(Body::new(&body).unwrap())
            .unwrap()
            .build(None, CredentialLimits::default(), Timestamp::now())
            .unwrap()
    }

    fn dn_credential(id: &str, client_id: &str) -> Credential {
        let now = Timestamp::now();
        Credential {
            id: id.into(),
            client_id: client_id.into(),
            credential_type: CredentialType::CertSubjectDn,
            name: String::new(),
            kid: None,
            alg: None,
            subject_dn: Some(format!("CN={id}")),
            thumbprint_sha256: None,
            pem: None,
            key_thumbprint: None,
            cert_not_after: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
        }
    }

    #[test]
    fn new_client_defaults() {
        let a = aggregate();
        assert_eq!(a.client.client_id.len(), 32);
        assert!(a.client.is_first_party);
        assert_eq!(
            a.client.token_endpoint_auth_method.as_deref(),
            Some("client_secret_post")
        );
        assert!(a.client.uses_secret());
    }

    #[test]
    fn per_client_cap() {
        let mut a = aggregate();
        let limits = CredentialLimits::default();
        for i in 0..4 {
            a.add_credential(dn_credential(&format!("cred_{i}"), "c"), limits)
                .unwrap();
        }
        let err = a
            .add_credential(dn_credential("cred_5", "c"), limits)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "A client can have a maximum of 4 credentials."
        );
    }

    #[test]
    fn attach_requires_matching_type_and_nulled_secret_method() {
        let mut a = aggregate();
        let limits = CredentialLimits::default();
        a.add_credential(dn_credential("cred_a", "c"), limits)
            .unwrap();
        let body = json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": "cred_a"}]}}, "token_endpoint_auth_method": null});
        let update = ClientUpdate::parse(Body::new(&body).unwrap()).unwrap();
        let err = update
            .apply(&mut a.clone(), limits, Timestamp::now())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot be used for private_key_jwt")
        );

        let body = json!({"client_authentication_methods": {"tls_client_auth": {"credentials": [{"id": "cred_a"}]}}});
        let update = ClientUpdate::parse(Body::new(&body).unwrap()).unwrap();
        let err = update
            .apply(&mut a.clone(), limits, Timestamp::now())
            .unwrap_err();
        assert!(err.to_string().contains("token_endpoint_auth_method"));

        let body = json!({"client_authentication_methods": {"tls_client_auth": {"credentials": [{"id": "cred_a"}]}}, "token_endpoint_auth_method": null});
        let update = ClientUpdate::parse(Body::new(&body).unwrap()).unwrap();
        update.apply(&mut a, limits, Timestamp::now()).unwrap();
        assert!(!a.client.uses_secret());
        let err = a.remove_credential("cred_a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot delete credential still associated with a client"
        );
    }

    #[test]
    fn per_method_cap() {
        let mut a = aggregate();
        let limits = CredentialLimits::default();
        for id in ["cred_a", "cred_b", "cred_c"] {
            a.add_credential(dn_credential(id, "c"), limits).unwrap();
        }
        let body = json!({"client_authentication_methods": {"tls_client_auth": {"credentials": [{"id": "cred_a"}, {"id": "cred_b"}, {"id": "cred_c"}]}}, "token_endpoint_auth_method": null});
        let update = ClientUpdate::parse(Body::new(&body).unwrap()).unwrap();
        let err = update.apply(&mut a, limits, Timestamp::now()).unwrap_err();
        assert!(err.to_string().contains("Array is too long (3), maximum 2"));
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let body = json!({"client_authentication_methods": {"tls_client_auth": {"credentials": []}, "private_key_jwt": {"credentials": []}}});
        assert!(ClientUpdate::parse(Body::new(&body).unwrap()).is_err());
    }

    #[test]
    fn unknown_property_refused_known_auth0_property_kept() {
        let body = json!({"name": "x", "callbacks": ["https://a"], "nope": 1});
        assert!(NewClient::parse(Body::new(&body).unwrap()).is_err());
        let body = json!({"name": "x", "callbacks": ["https://a"]});
        let a = NewClient::parse(Body::new(&body).unwrap())
            .unwrap()
            .build(None, CredentialLimits::default(), Timestamp::now())
            .unwrap();
        assert_eq!(a.client.to_json(None)["callbacks"], json!(["https://a"]));
    }
}

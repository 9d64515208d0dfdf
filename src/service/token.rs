//! `POST /oauth/token` for `grant_type=client_credentials`: authenticate the client from the
//! read model, authorize against its grant, sign an RS256 access token. Nothing here reads
//! the store.

use std::sync::Arc;

use clavis_crypto::jws::{CompactJws, JwsAlg};
use clavis_crypto::secret::SecretDigest;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Clavis;
use super::replay::{Durable, Recorded};

/// A verified assertion: its client, `jti`, `exp`, `iat` and the verifying key's expiry.
type CheckedAssertion = (
    Arc<ClientEntry>,
    String,
    i64,
    Option<i64>,
    Option<Timestamp>,
);
use crate::audit::Origin;
use crate::domain::time::Timestamp;
use crate::model::{
    ApiEntry, ApiSigner, AttachedKey, ClientAuth, ClientEntry, GrantEntry, OrganizationUsage,
};
use crate::mtls::PresentedCertificate;
use crate::quota::{Applied, Entity as QuotaEntity, QuotaReport};
use crate::store::{JtiRecord, StoreError};

mod custom_claims;

/// `client_assertion_type` for `private_key_jwt` (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Allowed clock skew on `iat`, `nbf` and `exp`.
pub const CLOCK_SKEW_SECONDS: i64 = 10;
/// Longest accepted assertion lifetime.
pub const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 300;
/// Longest `iss`, `sub` and `jti`.
pub const MAX_CLAIM_LENGTH: usize = 64;

/// The parameters of a token request, whatever the body encoding.
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    /// `grant_type`
    pub grant_type: Option<String>,
    /// `client_id` in the body.
    pub client_id: Option<String>,
    /// `client_secret` in the body (`client_secret_post`).
    pub client_secret: Option<String>,
    /// Credentials from `Authorization: Basic` (`client_secret_basic`).
    pub basic: Option<(String, String)>,
    /// `client_assertion_type`
    pub client_assertion_type: Option<String>,
    /// `client_assertion`
    pub client_assertion: Option<String>,
    /// `audience`
    pub audience: Option<String>,
    /// `scope` (space separated)
    pub scope: Option<String>,
    /// `organization` (an id or name), when not empty.
    pub organization: Option<String>,
    /// The client certificate presented with the request (TLS handshake or trusted proxy).
    pub certificate: Option<PresentedCertificate>,
}

impl TokenRequest {
    /// The client id the request names (body or Basic), before anything is verified.
    pub fn named_client(&self) -> Option<&str> {
        self.client_id
            .as_deref()
            .or(self.basic.as_ref().map(|(id, _)| id.as_str()))
    }
}

impl std::fmt::Display for TokenRequest {
    // Never prints secrets or assertions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "grant_type={:?} client_id={:?} audience={:?}",
            self.grant_type, self.client_id, self.audience
        )
    }
}

/// A successful token response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Granted scopes (omitted when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// For the audit event: what was issued, to whom (not part of the response).
    #[serde(skip)]
    pub issued: Issued,
    /// The token quotas that counted it (response headers).
    #[serde(skip)]
    pub quota: Vec<QuotaReport>,
}

/// What a token was issued for, for its `seccft` event.
#[derive(Debug, Clone, Default)]
pub struct Issued {
    /// The client.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// The audience.
    pub audience: String,
    /// The token's `jti`, in the dialects that have one.
    pub jti: Option<String>,
    /// The thumbprint (`x5t#S256`) of the certificate the token is bound to.
    pub thumbprint: Option<String>,
}

/// What went wrong, as OAuth says it (RFC 6749 §5.2 and the codes Auth0 adds). The token
/// endpoint's HTTP layer alone gives each its status (`http::oauth::status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    InvalidRequest,
    /// `invalid_scope` (a token hook's denial).
    InvalidScope,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `access_denied` for a client secret that does not authenticate (Auth0's answer).
    SecretRejected,
    /// `invalid_client`: an assertion or certificate does not authenticate.
    InvalidClient,
    /// `unauthorized_client`: the client may not use the grant.
    UnauthorizedClient,
    /// `access_denied`: authenticated, but not authorized for what it asks.
    AccessDenied,
    /// `too_many_requests`: a rate limit or quota refuses.
    TooManyRequests,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`: try again.
    Unavailable,
}

impl OAuthErrorKind {
    /// The `error` code.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::SecretRejected | Self::AccessDenied => "access_denied",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::TooManyRequests => "too_many_requests",
            Self::ServerError => "server_error",
            Self::Unavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error (`{"error", "error_description"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// What went wrong (its `error` code).
    pub kind: OAuthErrorKind,
    /// `error_description`
    pub description: String,
    /// For the audit event (never sent): why, when the description does not say.
    pub reason: Option<Box<str>>,
    /// For the audit event: the client the failure concerns, once known.
    pub client_id: Option<String>,
    /// For the audit event: the credential involved, when one was.
    pub credential_id: Option<String>,
    /// The token quota that refused the request (its response headers).
    pub quota: Option<Box<QuotaReport>>,
}

impl OAuthError {
    pub(crate) fn new(kind: OAuthErrorKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
            reason: None,
            client_id: None,
            credential_id: None,
            quota: None,
        }
    }

    /// The same error, with the reason the audit event gives.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into().into_boxed_str());
        self
    }

    /// The same error, about this client and credential (kept when already set).
    pub fn concerning(mut self, client_id: Option<&str>, credential_id: Option<&str>) -> Self {
        if self.client_id.is_none() {
            self.client_id = client_id.map(str::to_string);
        }
        if self.credential_id.is_none() {
            self.credential_id = credential_id.map(str::to_string);
        }
        self
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidRequest, description)
    }

    /// The `error` code.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// 401 `access_denied` / `Unauthorized`, for secret authentication failures.
    pub fn secret_denied() -> Self {
        Self::new(OAuthErrorKind::SecretRejected, "Unauthorized")
    }

    /// 401 `invalid_client`, for assertion and certificate failures.
    pub fn invalid_client() -> Self {
        Self::new(
            OAuthErrorKind::InvalidClient,
            "Client authentication failed",
        )
    }

    /// 429 `too_many_requests`: the authenticated client's rate budget is spent.
    pub fn too_many_requests() -> Self {
        Self::new(
            OAuthErrorKind::TooManyRequests,
            "Global limit has been reached",
        )
    }

    /// 500 `server_error` (signing failed).
    pub fn server_error() -> Self {
        Self::new(OAuthErrorKind::ServerError, "The token could not be issued")
    }

    /// 503 `temporarily_unavailable` (the replay record could not be written).
    pub fn unavailable() -> Self {
        Self::new(
            OAuthErrorKind::Unavailable,
            "The service is temporarily unavailable, please retry",
        )
    }
}

/// The claims of an access token, in the API's dialect: Auth0's (`gty`, `azp`) or RFC 9068's
/// (`client_id`, `jti`), with `permissions` for the `_authz` dialects.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    /// The organization the token was obtained for.
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gty: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<&'a [&'a str]>,
    /// Certificate binding (RFC 8705 §3.1), for tokens issued through mTLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// The standard claims followed by custom ones (the grant's `token_claims`, the token
/// hook's), none of which has a standard claim's name (`domain::claims::RESTRICTED` holds
/// them all). Tokens without custom claims are serialized without it.
#[derive(Serialize)]
struct WithCustomClaims<'a> {
    #[serde(flatten)]
    standard: &'a AccessTokenClaims<'a>,
    #[serde(flatten)]
    custom: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct Confirmation<'a> {
    #[serde(rename = "x5t#S256")]
    x5t_s256: &'a str,
}

/// Asked once a client has proven who it is, before anything is written or signed for it:
/// whether its request may go on (the HTTP layer's per-client rate limit). A request that
/// never gets this far did not authenticate, and is accounted to its sender instead.
pub type Admit<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// An authenticated client.
struct Authenticated {
    client: Arc<ClientEntry>,
    /// The thumbprint of the certificate it authenticated with, to which the token is bound.
    bound_to: Option<String>,
    /// For an assertion: its id's record, which must be durable before the token leaves.
    replay_record: Option<Durable>,
    /// When the credential it authenticated with expires (a key's `expires_at`; a
    /// certificate's notAfter or its credential's expiry, the earlier); none for a secret.
    credential_expires_at: Option<Timestamp>,
}

/// The answer when an assertion's id could not be recorded or made durable: 503 when the
/// store is unavailable (the client may retry), 500 otherwise.
fn replay_failure(client_id: &str, e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(cause) => {
            tracing::warn!(%client_id, %cause, "assertion refused: replay record could not be written");
            OAuthError::unavailable().because("the assertion id could not be recorded")
        }
        e => {
            tracing::error!(%client_id, error = %e, "replay record failed");
            OAuthError::server_error().because("the assertion id could not be recorded")
        }
    }
}

/// A digest compared when the client does not exist, so an unknown client costs the same
/// as a wrong secret.
fn decoy_digest() -> SecretDigest {
    SecretDigest::of("clavis-decoy-secret-for-unknown-clients")
}

impl Clavis {
    /// Runs the client-credentials grant for a request from `origin`; `admit` is asked once
    /// the client has authenticated.
    pub async fn issue_token(
        &self,
        req: &TokenRequest,
        origin: &Origin,
        admit: Admit<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        match req.grant_type.as_deref() {
            None | Some("") => {
                return Err(OAuthError::invalid_request(
                    "Missing required parameter: grant_type",
                ));
            }
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    OAuthErrorKind::UnsupportedGrantType,
                    format!("Unsupported grant type: {}", truncate(other)),
                ));
            }
        }
        let authenticated = self.authenticate(req, admit).await?;
        let client_id = authenticated.client.client_id.clone();
        self.issue_for(req, origin, authenticated)
            .await
            .map_err(|e| e.concerning(Some(&client_id), None))
    }

    /// The grant for an authenticated client.
    async fn issue_for(
        &self,
        req: &TokenRequest,
        origin: &Origin,
        authenticated: Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let Authenticated {
            client,
            bound_to,
            replay_record,
            credential_expires_at,
        } = authenticated;
        if !client.allows_client_credentials {
            return Err(OAuthError::new(
                OAuthErrorKind::UnauthorizedClient,
                "Grant type 'client_credentials' not allowed for the client.",
            ));
        }
        let audience = match req.audience.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => a.to_string(),
            None => self.issuer.default_audience.clone().ok_or_else(|| {
                OAuthError::new(
                    OAuthErrorKind::AccessDenied,
                    "No audience parameter was provided, and no default audience has been configured",
                )
            })?,
        };
        let api = self.model.api(&audience).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!("Service not enabled within domain: {}", truncate(&audience)),
            )
        })?;
        if api.denies_clients {
            return Err(OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!(
                    "Client is not authorized to access \"{}\": the API's client access policy is deny_all.",
                    truncate(&audience)
                ),
            ));
        }
        let grant = self.model.grant(&client.client_id, &audience).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!(
                    "Client is not authorized to access \"{}\". You might probably want to create a \"client-grant\" associated to this API.",
                    truncate(&audience)
                ),
            )
        })?;
        let org_id = self.organization_for(req, &client, &grant, &audience)?;
        let granted: Vec<&str> = if grant.all_scopes {
            api.scopes.iter().map(String::as_str).collect()
        } else {
            grant
                .scope
                .iter()
                .map(String::as_str)
                .filter(|s| api.scopes.iter().any(|a| a == s))
                .collect()
        };
        let scope: Vec<&str> = match req
            .scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => granted,
            Some(requested) => {
                let requested: Vec<&str> = requested.split_whitespace().collect();
                granted
                    .into_iter()
                    .filter(|s| requested.contains(s))
                    .collect()
            }
        };
        // Bound to the certificate presented with the request, whatever authenticated the
        // client (RFC 8705 §3); required when the API or the client asks for it.
        let bound_to = bound_to.or_else(|| {
            req.certificate
                .as_ref()
                .and_then(super::mtls::binding_thumbprint)
        });
        if bound_to.is_none() && (api.requires_binding || client.requires_binding) {
            let whose = if api.requires_binding {
                "this API"
            } else {
                "this client"
            };
            return Err(OAuthError::invalid_request(format!(
                "Proof of possession is required for {whose}: present a client certificate (mTLS) to get a certificate-bound token"
            )));
        }
        let quota = self.count_quota(&client, org_id.as_deref()).await?;
        // Custom claims: the grant's, then the token hook's over them (as a later
        // `setCustomClaim`). Without a hook, nothing is built. For an assertion, the hook runs
        // while its `jti` record is being made durable.
        let hooked = match &self.token_hook {
            None => None,
            Some(h) => {
                self.ask_hook(
                    h,
                    req,
                    origin,
                    &client,
                    &audience,
                    &grant,
                    org_id.as_deref(),
                    &scope,
                )
                .await?
            }
        };
        let custom = hooked.as_ref().or(grant.claims.as_deref());
        let permissions = api.permissions.then_some(scope.as_slice());
        let scope_claim = (!scope.is_empty()).then(|| scope.join(" "));
        let now = Timestamp::now().unix_seconds();
        // Opt-in: no token outlives the credential that obtained it.
        let lifetime = match credential_expires_at {
            Some(until) if self.issuer.cap_token_expiry_at_credential => {
                api.token_lifetime.min(until.unix_seconds() - now).max(0)
            }
            _ => api.token_lifetime,
        };
        let (auth0, rfc9068) = (!api.rfc9068, api.rfc9068);
        let jti =
            rfc9068.then(|| clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 24));
        let claims = AccessTokenClaims {
            iss: &self.issuer.issuer,
            sub: format!("{}@clients", client.client_id),
            aud: &audience,
            iat: now,
            exp: now + lifetime,
            scope: scope_claim.as_deref(),
            org_id: org_id.as_deref(),
            gty: auth0.then_some("client-credentials"),
            azp: auth0.then_some(client.client_id.as_str()),
            client_id: rfc9068.then_some(client.client_id.as_str()),
            jti: jti.clone(),
            permissions,
            cnf: bound_to
                .as_deref()
                .map(|x5t_s256| Confirmation { x5t_s256 }),
        };
        let signed = match custom {
            None => self.sign(&api, &claims)?,
            Some(custom) => self.sign(
                &api,
                &WithCustomClaims {
                    standard: &claims,
                    custom,
                },
            )?,
        };
        let access_token = signed.map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            OAuthError::server_error()
        })?;
        // Signed while the assertion's id was being made durable; sent only once it is.
        if let Some(durable) = replay_record {
            durable
                .wait()
                .await
                .map_err(|e| replay_failure(&client.client_id, e))?;
        }
        Ok(TokenResponse {
            access_token,
            scope: scope_claim,
            expires_in: lifetime,
            token_type: "Bearer",
            issued: Issued {
                client_id: client.client_id.clone(),
                client_name: client.name.clone(),
                audience,
                jti,
                thumbprint: bound_to,
            },
            quota,
        })
    }

    /// Counts the token against the quotas that apply (the client's own or the tenant's
    /// default for clients; with an organization, also its own or the default for
    /// organizations), or refuses it with 429 when an enforced one is spent. With no quota
    /// anywhere, only the read model is looked at.
    async fn count_quota(
        &self,
        client: &ClientEntry,
        org_id: Option<&str>,
    ) -> Result<Vec<QuotaReport>, OAuthError> {
        let defaults = self.model.default_quotas();
        let org = org_id.and_then(|id| {
            self.model
                .organization(id)
                .and_then(|o| o.token_quota)
                .or(defaults.organizations)
                .map(|limits| (id, limits))
        });
        let client_quota = client.token_quota.or(defaults.clients);
        if client_quota.is_none() && org.is_none() {
            return Ok(Vec::new());
        }
        let mut applied = Vec::with_capacity(2);
        if let Some(limits) = client_quota {
            applied.push(Applied {
                entity: QuotaEntity::Client,
                id: &client.client_id,
                limits,
            });
        }
        if let Some((id, limits)) = org {
            applied.push(Applied {
                entity: QuotaEntity::Organization,
                id,
                limits,
            });
        }
        let (reports, allowed) = self.quotas.take(&applied).await.map_err(|e| {
            tracing::warn!(client_id = %client.client_id, error = %e, "token quota could not be counted");
            match e {
                StoreError::Unavailable(_) => OAuthError::unavailable(),
                _ => OAuthError::server_error(),
            }
            .because("the token quota could not be counted")
        })?;
        if allowed {
            return Ok(reports);
        }
        // The client's quota first, when both refuse.
        let refusing = reports.into_iter().find(|r| r.refused_by.is_some());
        let description = match refusing.as_ref().map(|r| r.entity) {
            Some(QuotaEntity::Organization) => "Organization quota exceeded",
            _ => "Client quota exceeded",
        };
        let mut e = OAuthError::new(OAuthErrorKind::TooManyRequests, description);
        e.quota = refusing.map(Box::new);
        Err(e)
    }

    /// Signs `claims` as the API signs its tokens.
    fn sign<T: Serialize>(
        &self,
        api: &ApiEntry,
        claims: &T,
    ) -> Result<Result<String, clavis_crypto::CryptoError>, OAuthError> {
        Ok(match &api.signer {
            ApiSigner::Rsa(alg) => self.model.keys().current.sign_token(*alg, api.typ, claims),
            ApiSigner::Hmac(key) => key.sign_token(api.typ, claims),
            ApiSigner::Unavailable => {
                tracing::error!(audience = %api.identifier, "no signing secret for this HS256 API");
                return Err(OAuthError::server_error());
            }
        })
    }

    /// The organization a token is for, from the read model: the request's `organization`
    /// (an organization id), else the client's `default_organization` when the grant
    /// requires one; checked against the grant's `organization_usage` and its
    /// organizations (`allow_any_organization` or an association).
    fn organization_for(
        &self,
        req: &TokenRequest,
        client: &ClientEntry,
        grant: &GrantEntry,
        audience: &str,
    ) -> Result<Option<String>, OAuthError> {
        // Auth0 validates `organization` on every request (since June 2025): one that does
        // not exist is refused, whatever the grant says.
        let named = match &req.organization {
            Some(org) => Some(self.model.organization(org).ok_or_else(|| {
                OAuthError::invalid_request(format!(
                    "Organization \"{}\" does not exist",
                    truncate(org)
                ))
            })?),
            None => None,
        };
        let org = match (grant.organization_usage, named) {
            (OrganizationUsage::Deny, Some(_)) => {
                return Err(OAuthError::new(
                    OAuthErrorKind::AccessDenied,
                    format!(
                        "Client is not authorized to access \"{}\" on behalf of an organization: the client grant's organization_usage is deny.",
                        truncate(audience)
                    ),
                ));
            }
            (OrganizationUsage::Deny, None) => return Ok(None),
            (_, Some(org)) => org,
            (OrganizationUsage::Allow, None) => return Ok(None),
            (OrganizationUsage::Require, None) => client
                .default_organization
                .as_deref()
                .and_then(|id| self.model.organization(id))
                .ok_or_else(|| {
                    OAuthError::new(
                        OAuthErrorKind::AccessDenied,
                        format!(
                            "Client is not authorized to access \"{}\" without an organization: the client grant's organization_usage is require.",
                            truncate(audience)
                        ),
                    )
                })?,
        };
        if !grant.any_organization && !org.grant_ids.contains(&grant.id) {
            return Err(OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!(
                    "Client is not authorized to access \"{}\" on behalf of organization \"{}\": the client grant is not associated with the organization.",
                    truncate(audience),
                    org.id
                ),
            ));
        }
        Ok(Some(org.id.clone()))
    }

    /// Authenticates the client with exactly one method. With a certificate, also returns
    /// its thumbprint, to which the token is bound.
    async fn authenticate(
        &self,
        req: &TokenRequest,
        admit: Admit<'_>,
    ) -> Result<Authenticated, OAuthError> {
        let has_assertion = req.client_assertion.is_some() || req.client_assertion_type.is_some();
        let has_post_secret = req.client_secret.is_some();
        let has_basic = req.basic.is_some();
        if [has_assertion, has_post_secret, has_basic]
            .iter()
            .filter(|b| **b)
            .count()
            > 1
        {
            return Err(OAuthError::invalid_request(
                "Multiple client authentication methods were used; use exactly one",
            ));
        }
        let (client_id, secret) = match (&req.basic, &req.client_secret) {
            (Some((id, secret)), _) => {
                if req.client_id.as_ref().is_some_and(|body_id| body_id != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body does not match the Authorization header",
                    ));
                }
                (id.as_str(), Some(secret.as_str()))
            }
            (None, secret) => {
                let id = req.client_id.as_deref().unwrap_or_default();
                (id, secret.as_deref())
            }
        };
        if has_assertion {
            let (client, durable, key_expires_at) = self.authenticate_assertion(req, admit).await?;
            return Ok(Authenticated {
                client,
                bound_to: None,
                replay_record: Some(durable),
                credential_expires_at: key_expires_at,
            });
        }
        if client_id.is_empty() {
            return Err(OAuthError::invalid_request(
                "Missing required parameter: client_id",
            ));
        }
        let Some(secret) = secret else {
            // Neither secret nor assertion: a certificate client (see `service::mtls`).
            if let Some(c) = self.authenticate_certificate(client_id, req.certificate.as_ref())? {
                if !admit(&c.client.client_id) {
                    return Err(
                        OAuthError::too_many_requests().concerning(Some(&c.client.client_id), None)
                    );
                }
                return Ok(Authenticated {
                    client: c.client,
                    bound_to: Some(c.thumbprint),
                    replay_record: None,
                    credential_expires_at: Some(c.expires_at),
                });
            }
            tracing::info!(client_id = %truncate(client_id), "token request without client authentication");
            return Err(OAuthError::secret_denied().because("no client authentication"));
        };
        let client = self.model.client(client_id);
        let digest = match client.as_deref().map(|c| &c.auth) {
            Some(ClientAuth::Secret(digest)) => *digest,
            _ => decoy_digest(),
        };
        let matched = digest.matches(secret);
        match client {
            Some(c) if matched && matches!(c.auth, ClientAuth::Secret(_)) => {
                if !admit(&c.client_id) {
                    return Err(
                        OAuthError::too_many_requests().concerning(Some(&c.client_id), None)
                    );
                }
                Ok(Authenticated {
                    client: c,
                    bound_to: None,
                    replay_record: None,
                    credential_expires_at: None,
                })
            }
            Some(c) => {
                let reason = if matches!(c.auth, ClientAuth::Secret(_)) {
                    "wrong client secret"
                } else {
                    "client does not authenticate with a secret"
                };
                tracing::info!(client_id = %c.client_id, reason, "token request refused");
                Err(OAuthError::secret_denied().because(reason))
            }
            None => {
                tracing::info!(client_id = %truncate(client_id), reason = "unknown client", "token request refused");
                Err(OAuthError::secret_denied().because("unknown client"))
            }
        }
    }

    /// `private_key_jwt` (RFC 7523): the assertion must verify with one of the client's
    /// attached, unexpired `public_key` credentials of the header's `alg`, carry valid
    /// claims, and use a `jti` never seen before. The client learns only `invalid_client`;
    /// the operator's log says why.
    async fn authenticate_assertion(
        &self,
        req: &TokenRequest,
        admit: Admit<'_>,
    ) -> Result<(Arc<ClientEntry>, Durable, Option<Timestamp>), OAuthError> {
        match req.client_assertion_type.as_deref() {
            Some(JWT_BEARER) => {}
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "Unsupported client_assertion_type",
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "Missing required parameter: client_assertion_type",
                ));
            }
        }
        let Some(assertion) = req.client_assertion.as_deref() else {
            return Err(OAuthError::invalid_request(
                "Missing required parameter: client_assertion",
            ));
        };
        let now = Timestamp::now();
        let checked = self.check_assertion(assertion, req.client_id.as_deref(), now);
        let (client, jti, exp, iat, key_expires_at) = match checked {
            Ok(ok) => ok,
            Err(failure) => {
                tracing::info!(
                    client_id = failure.client_id.as_deref().map(truncate),
                    credential_id = failure.credential_id,
                    reason = %failure.reason,
                    "client assertion refused"
                );
                return Err(OAuthError::invalid_client()
                    .because(failure.reason)
                    .concerning(
                        failure.client_id.as_deref(),
                        failure.credential_id.as_deref(),
                    ));
            }
        };
        // Before the `jti` is recorded: a refused request leaves its assertion unused.
        if !admit(&client.client_id) {
            return Err(OAuthError::too_many_requests().concerning(Some(&client.client_id), None));
        }
        let record = JtiRecord {
            client_id: client.client_id.clone(),
            jti,
            expires_at: exp + CLOCK_SKEW_SECONDS,
        };
        let reason = match self.replay.record(record, iat).await {
            Ok(Recorded::Fresh(durable)) => return Ok((client, durable, key_expires_at)),
            Ok(Recorded::Replay) => "jti already used (replay)",
            Ok(Recorded::IssuedBeforeCrash) => {
                "issued before the server's unclean stop, when used ids may have been lost: sign a new assertion"
            }
            Err(e) => return Err(replay_failure(&client.client_id, e)),
        };
        tracing::info!(client_id = %client.client_id, reason, "client assertion refused");
        Err(OAuthError::invalid_client()
            .because(reason)
            .concerning(Some(&client.client_id), None))
    }

    /// Everything about an assertion that needs no write: signature, key choice, claims.
    /// Returns the client, the `jti`, `exp`, `iat` and the verifying key's expiry.
    fn check_assertion(
        &self,
        assertion: &str,
        client_id_param: Option<&str>,
        now: Timestamp,
    ) -> Result<CheckedAssertion, AssertionFailure> {
        let fail = AssertionFailure::new;
        let jws =
            CompactJws::parse(assertion).map_err(|e| fail(format!("malformed assertion: {e}")))?;
        let Some(alg) = JwsAlg::parse(&jws.header.alg) else {
            return Err(fail(format!(
                "alg {} is not accepted",
                truncate(&jws.header.alg)
            )));
        };
        // The claims are read before the signature is checked only to find the client;
        // nothing else is trusted until the signature verifies.
        let claims: serde_json::Map<String, Value> = jws
            .claims()
            .map_err(|_| fail("claims are not a JSON object".into()))?;
        let iss = string_claim(&claims, "iss").map_err(fail)?;
        let sub = string_claim(&claims, "sub").map_err(fail)?;
        let client_id = iss.clone();
        let fail_for = |reason: String| AssertionFailure {
            client_id: Some(client_id.clone()),
            credential_id: None,
            reason,
        };
        if iss != sub {
            return Err(fail_for("iss and sub differ".into()));
        }
        if let Some(param) = client_id_param
            && param != iss
        {
            return Err(fail_for("client_id parameter differs from iss".into()));
        }
        let client = self
            .model
            .client(&client_id)
            .ok_or_else(|| fail_for("unknown client".into()))?;
        let ClientAuth::PrivateKeyJwt(keys) = &client.auth else {
            return Err(fail_for(
                "client is not configured for private_key_jwt".into(),
            ));
        };
        let key = select_key(keys, &jws, alg, now).map_err(fail_for)?;
        let key_expires_at = key.expires_at;
        let with_credential = |reason: String| AssertionFailure {
            client_id: Some(client_id.clone()),
            credential_id: Some(key.credential_id.clone()),
            reason,
        };
        let now_s = now.unix_seconds();
        let exp = numeric_claim(&claims, "exp")
            .map_err(&with_credential)?
            .ok_or_else(|| with_credential("exp is missing".into()))?;
        if exp + CLOCK_SKEW_SECONDS <= now_s {
            return Err(with_credential(format!("assertion expired at {exp}")));
        }
        let iat = numeric_claim(&claims, "iat").map_err(&with_credential)?;
        if let Some(iat) = iat
            && iat > now_s + CLOCK_SKEW_SECONDS
        {
            return Err(with_credential(format!("iat {iat} is in the future")));
        }
        if let Some(nbf) = numeric_claim(&claims, "nbf").map_err(&with_credential)?
            && nbf > now_s + CLOCK_SKEW_SECONDS
        {
            return Err(with_credential(format!("nbf {nbf} is in the future")));
        }
        let lifetime = exp - iat.unwrap_or(now_s);
        if lifetime > MAX_ASSERTION_LIFETIME_SECONDS {
            return Err(with_credential(format!(
                "lifetime {lifetime}s exceeds {MAX_ASSERTION_LIFETIME_SECONDS}s"
            )));
        }
        self.audience_accepted(claims.get("aud"))
            .map_err(|reason| with_credential(reason.into()))?;
        let jti = string_claim(&claims, "jti").map_err(&with_credential)?;
        if jti.is_empty() {
            return Err(with_credential("jti is empty".into()));
        }
        Ok((client, jti, exp, iat, key_expires_at))
    }

    /// `aud` must be this issuer, as one string, with or without its trailing slash
    /// (draft-ietf-oauth-rfc7523bis: an audience the client was tricked into addressing to
    /// several servers is refused). With `--legacy-assertion-audience`, also the token
    /// endpoint URL and arrays holding any of these.
    fn audience_accepted(&self, aud: Option<&Value>) -> Result<(), &'static str> {
        let issuer = self.issuer.issuer.as_str();
        let legacy = self.issuer.legacy_assertion_audience;
        let is_issuer = |a: &str| a == issuer || a == issuer.trim_end_matches('/');
        let accepted = |a: &str| is_issuer(a) || (legacy && a == self.issuer.token_endpoint);
        match aud {
            Some(Value::String(a)) if accepted(a) => Ok(()),
            Some(Value::String(a)) if *a == self.issuer.token_endpoint => Err(
                "aud is the token endpoint URL, not the issuer (accepted only with --legacy-assertion-audience)",
            ),
            Some(Value::String(_)) => Err("aud is not this issuer"),
            Some(Value::Array(items)) if legacy => {
                if items.iter().any(|v| v.as_str().is_some_and(accepted)) {
                    Ok(())
                } else {
                    Err("aud does not hold this issuer")
                }
            }
            Some(Value::Array(_)) => Err(
                "aud is an array; it must be the issuer as one string (arrays are accepted only with --legacy-assertion-audience)",
            ),
            Some(_) => Err("aud is not a string"),
            None => Err("aud is missing"),
        }
    }
}

/// Why an assertion was refused, for the operator's log.
struct AssertionFailure {
    client_id: Option<String>,
    credential_id: Option<String>,
    reason: String,
}

impl AssertionFailure {
    fn new(reason: String) -> Self {
        Self {
            client_id: None,
            credential_id: None,
            reason,
        }
    }
}

/// The attached key that verifies the signature: only keys of the header's `alg` that have
/// not expired; with a `kid`, only that key.
fn select_key<'a>(
    keys: &'a [AttachedKey],
    jws: &CompactJws,
    alg: JwsAlg,
    now: Timestamp,
) -> Result<&'a AttachedKey, String> {
    if keys.is_empty() {
        return Err("no credential is attached to private_key_jwt".into());
    }
    let kid = jws.header.kid.as_deref();
    let mut candidates = 0;
    let mut expired = Vec::new();
    for key in keys {
        if kid.is_some_and(|kid| kid != key.kid) || key.alg != alg {
            continue;
        }
        if let Some(exp) = key.expires_at
            && exp <= now
        {
            expired.push(format!("{} (expired at {exp})", key.credential_id));
            continue;
        }
        candidates += 1;
        if key.key().is_some_and(|k| jws.verify(k, alg).is_ok()) {
            return Ok(key);
        }
    }
    Err(match (candidates, expired.is_empty()) {
        (0, false) => format!("matching credentials have expired: {}", expired.join(", ")),
        (0, true) => format!(
            "no attached credential for alg {}{}",
            alg.as_str(),
            kid.map(|k| format!(" and kid {}", truncate(k)))
                .unwrap_or_default()
        ),
        _ => "signature does not verify with any attached credential".into(),
    })
}

fn string_claim(claims: &serde_json::Map<String, Value>, name: &str) -> Result<String, String> {
    match claims.get(name) {
        Some(Value::String(s)) if s.len() <= MAX_CLAIM_LENGTH => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!(
            "{name} is longer than {MAX_CLAIM_LENGTH} characters"
        )),
        Some(_) => Err(format!("{name} is not a string")),
        None => Err(format!("{name} is missing")),
    }
}

/// A NumericDate claim (integer or fractional seconds), floored.
fn numeric_claim(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("{name} is out of range")),
        Some(_) => Err(format!("{name} is not a number")),
    }
}

/// Caps user-supplied text echoed in errors and logs.
fn truncate(s: &str) -> String {
    if s.len() <= 200 {
        s.to_string()
    } else {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

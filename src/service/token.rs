//! `POST /oauth/token` for `grant_type=client_credentials`, as a pipeline of typed steps
//! over the in-memory read model (nothing here reads the store):
//!
//! 1. the HTTP layer parses the request into a [`TokenRequest`]: a [`GrantType`] and the one
//!    [`ClientAuthentication`] its parameters make (or the `invalid_request` they earn);
//! 2. [`Clavis::authenticate`] proves the client ([`Authenticated`], `authenticate.rs`);
//! 3. [`Clavis::authorize`] decides everything the token says and counts it
//!    ([`Authorization`], with its [`AccessTokenFormat`], `authorize.rs`);
//! 4. [`Clavis::mint`] writes and signs it ([`AccessToken`], `mint.rs`).
//!
//! [`Clavis::issue_token`] runs them in order, and sends the token only once an assertion's
//! `jti` record is durable.

use super::Clavis;
use crate::audit::Origin;
use crate::metrics::TokenMethod;
use crate::mtls::PresentedCertificate;
use crate::quota::QuotaReport;
use crate::store::StoreError;

mod authenticate;
mod authorize;
mod custom_claims;
mod mint;

pub use authenticate::Authenticated;
pub use authorize::Authorization;
pub use mint::{AccessToken, AccessTokenFormat, ClaimSet, TokenAlg};

/// `client_assertion_type` for `private_key_jwt` (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Allowed clock skew on `iat`, `nbf` and `exp`.
pub const CLOCK_SKEW_SECONDS: i64 = 10;
/// Longest accepted assertion lifetime.
pub const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 300;
/// Longest `iss`, `sub` and `jti`.
pub const MAX_CLAIM_LENGTH: usize = 64;

/// `grant_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantType {
    /// `client_credentials`, the one grant Clavis serves.
    ClientCredentials,
    /// Any other: refused with `unsupported_grant_type`.
    Unsupported(String),
}

impl GrantType {
    /// The parameter's value; `None` for an empty one (a missing `grant_type`).
    pub fn parse(value: String) -> Option<Self> {
        match value.as_str() {
            "" => None,
            "client_credentials" => Some(Self::ClientCredentials),
            _ => Some(Self::Unsupported(value)),
        }
    }

    /// The value as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Unsupported(other) => other,
        }
    }
}

/// How a token request authenticates its client, decided from its parameters alone
/// (RFC 6749 §2.3, RFC 7523, RFC 8705): exactly one method, or the `invalid_request` the
/// parameters earn, answered once the grant type is checked.
#[derive(Debug, Clone)]
pub enum ClientAuthentication {
    /// `client_secret_basic`: `Authorization: Basic` (a body `client_id`, if any, is the same).
    SecretBasic {
        /// The client (not empty).
        client_id: String,
        /// Its secret.
        secret: String,
    },
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    SecretPost {
        /// The client (not empty).
        client_id: String,
        /// Its secret.
        secret: String,
    },
    /// `private_key_jwt`: a `client_assertion` of type [`JWT_BEARER`], whose `iss` names the
    /// client.
    PrivateKeyJwt {
        /// The body's `client_id`, which must then equal the assertion's `iss`.
        client_id: Option<String>,
        /// The assertion (a compact JWS).
        assertion: String,
    },
    /// `tls_client_auth` or `self_signed_tls_client_auth`: a certificate presented with
    /// neither secret nor assertion.
    Mtls {
        /// The client (not empty).
        client_id: String,
    },
    /// No client authentication: refused, unless the client is registered for a
    /// certificate (then refused for not presenting one).
    None {
        /// The client (not empty).
        client_id: String,
    },
    /// No single valid method.
    Malformed {
        /// The client the request names, if any.
        client_id: Option<String>,
        /// The method it attempts (the metrics' label).
        method: TokenMethod,
        /// The answer.
        error: OAuthError,
    },
}

impl ClientAuthentication {
    /// The method the parameters make, from what a request carries: the body's `client_id`,
    /// `client_secret`, `client_assertion_type` and `client_assertion`, the `Authorization:
    /// Basic` credentials, and whether a certificate was presented.
    pub fn decide(
        client_id: Option<String>,
        client_secret: Option<String>,
        assertion_type: Option<String>,
        assertion: Option<String>,
        basic: Option<(String, String)>,
        certificate: bool,
    ) -> Self {
        let malformed = |client_id, method, description: &str| Self::Malformed {
            client_id,
            method,
            error: OAuthError::invalid_request(description),
        };
        let has_assertion = assertion.is_some() || assertion_type.is_some();
        let methods = [has_assertion, client_secret.is_some(), basic.is_some()];
        if methods.iter().filter(|b| **b).count() > 1 {
            return malformed(
                client_id.or(basic.map(|(id, _)| id)),
                TokenMethod::None,
                "Multiple client authentication methods were used; use exactly one",
            );
        }
        if has_assertion {
            let method = TokenMethod::PrivateKeyJwt;
            return match (assertion_type.as_deref(), assertion) {
                (None, _) => malformed(
                    client_id,
                    method,
                    "Missing required parameter: client_assertion_type",
                ),
                (Some(JWT_BEARER), Some(assertion)) => Self::PrivateKeyJwt {
                    client_id,
                    assertion,
                },
                (Some(JWT_BEARER), None) => malformed(
                    client_id,
                    method,
                    "Missing required parameter: client_assertion",
                ),
                (Some(_), _) => malformed(client_id, method, "Unsupported client_assertion_type"),
            };
        }
        let (client_id, secret, method) = match (basic, client_secret) {
            (Some((id, secret)), _) => {
                if client_id.as_ref().is_some_and(|body_id| *body_id != id) {
                    return malformed(
                        client_id,
                        TokenMethod::ClientSecretBasic,
                        "client_id in the body does not match the Authorization header",
                    );
                }
                (Some(id), Some(secret), TokenMethod::ClientSecretBasic)
            }
            (None, Some(secret)) => (client_id, Some(secret), TokenMethod::ClientSecretPost),
            (None, None) if certificate => (client_id, None, TokenMethod::Mtls),
            (None, None) => (client_id, None, TokenMethod::None),
        };
        let client_id = match client_id {
            Some(id) if !id.is_empty() => id,
            client_id => {
                return malformed(client_id, method, "Missing required parameter: client_id");
            }
        };
        match (method, secret) {
            (TokenMethod::ClientSecretBasic, Some(secret)) => {
                Self::SecretBasic { client_id, secret }
            }
            (_, Some(secret)) => Self::SecretPost { client_id, secret },
            (TokenMethod::Mtls, None) => Self::Mtls { client_id },
            (_, None) => Self::None { client_id },
        }
    }

    /// The client the request names, before anything is verified.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::SecretBasic { client_id, .. }
            | Self::SecretPost { client_id, .. }
            | Self::Mtls { client_id }
            | Self::None { client_id } => Some(client_id),
            Self::PrivateKeyJwt { client_id, .. } | Self::Malformed { client_id, .. } => {
                client_id.as_deref()
            }
        }
    }

    /// The method (the metrics' label).
    pub fn method(&self) -> TokenMethod {
        match self {
            Self::SecretBasic { .. } => TokenMethod::ClientSecretBasic,
            Self::SecretPost { .. } => TokenMethod::ClientSecretPost,
            Self::PrivateKeyJwt { .. } => TokenMethod::PrivateKeyJwt,
            Self::Mtls { .. } => TokenMethod::Mtls,
            Self::None { .. } => TokenMethod::None,
            Self::Malformed { method, .. } => *method,
        }
    }
}

/// A token request, parsed.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `grant_type`; `None` when missing or empty.
    pub grant_type: Option<GrantType>,
    /// How the client authenticates.
    pub client: ClientAuthentication,
    /// `audience`
    pub audience: Option<String>,
    /// `scope` (space separated)
    pub scope: Option<String>,
    /// `organization` (an organization id), when not empty.
    pub organization: Option<String>,
    /// The client certificate presented with the request (TLS handshake or trusted proxy).
    pub certificate: Option<PresentedCertificate>,
}

impl TokenRequest {
    /// The client id the request names (body or Basic), before anything is verified.
    pub fn named_client(&self) -> Option<&str> {
        self.client.client_id()
    }
}

impl std::fmt::Display for TokenRequest {
    // Never prints secrets or assertions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "grant_type={:?} client_id={:?} audience={:?}",
            self.grant_type.as_ref().map(GrantType::as_str),
            self.named_client(),
            self.audience
        )
    }
}

/// A token issued: what the response carries, and what the audit event and the response
/// headers need.
#[derive(Debug)]
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// Granted scopes (omitted when none).
    pub scope: Option<String>,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// What was issued, to whom (the audit event).
    pub issued: Issued,
    /// The token quotas that counted it (response headers).
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
    /// Every kind (the token endpoint's documented answers are generated from them).
    pub const ALL: [Self; 10] = [
        Self::InvalidRequest,
        Self::InvalidScope,
        Self::UnsupportedGrantType,
        Self::SecretRejected,
        Self::InvalidClient,
        Self::UnauthorizedClient,
        Self::AccessDenied,
        Self::TooManyRequests,
        Self::ServerError,
        Self::Unavailable,
    ];

    /// When it is answered (the token endpoint's documentation).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::InvalidRequest => {
                "a parameter is missing, repeated or malformed, proof of possession is required, \
                 or the token hook denied the exchange with it"
            }
            Self::InvalidScope => "the token hook denied the exchange with it",
            Self::UnsupportedGrantType => "a grant type other than `client_credentials`",
            Self::SecretRejected => {
                "a client secret that does not authenticate, or no client authentication at all"
            }
            Self::InvalidClient => "an assertion or a certificate that does not authenticate",
            Self::UnauthorizedClient => "the client may not use `client_credentials`",
            Self::AccessDenied => {
                "no grant for the audience, an unknown audience or one denying clients, or an \
                 organization the grant does not allow"
            }
            Self::TooManyRequests => {
                "a rate limit or a token quota is spent (with `retry-after`; a quota also sends \
                 `Auth0-Client-Quota-Limit` or `Auth0-Organization-Quota-Limit`)"
            }
            Self::ServerError => {
                "the token could not be signed, or the token hook failed (fail-closed) or denied \
                 the exchange with it"
            }
            Self::Unavailable => "the store cannot be reached; retry",
        }
    }

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

/// Asked once a client has proven who it is, before anything is written or signed for it:
/// whether its request may go on (the HTTP layer's per-client rate limit). A request that
/// never gets this far did not authenticate, and is accounted to its sender instead.
pub type Admit<'a> = &'a (dyn Fn(&str) -> bool + Sync);

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

impl Clavis {
    /// Runs the client-credentials grant for a request from `origin`: authenticate, then
    /// authorize and mint; `admit` is asked once the client has authenticated.
    pub async fn issue_token(
        &self,
        req: &TokenRequest,
        origin: &Origin,
        admit: Admit<'_>,
    ) -> Result<IssuedToken, OAuthError> {
        match &req.grant_type {
            None => {
                return Err(OAuthError::invalid_request(
                    "Missing required parameter: grant_type",
                ));
            }
            Some(GrantType::ClientCredentials) => {}
            Some(GrantType::Unsupported(other)) => {
                return Err(OAuthError::new(
                    OAuthErrorKind::UnsupportedGrantType,
                    format!("Unsupported grant type: {}", truncate(other)),
                ));
            }
        }
        let mut authenticated = self.authenticate(req, admit).await?;
        let replay_record = authenticated.replay_record.take();
        let client_id = authenticated.client.client_id.clone();
        self.authorize_and_mint(req, origin, authenticated, replay_record)
            .await
            .map_err(|e| e.concerning(Some(&client_id), None))
    }

    /// The token for an authenticated client, sent once its assertion's `jti` record (if
    /// any) is durable.
    async fn authorize_and_mint(
        &self,
        req: &TokenRequest,
        origin: &Origin,
        authenticated: Authenticated,
        replay_record: Option<crate::service::replay::Durable>,
    ) -> Result<IssuedToken, OAuthError> {
        let authorization = self.authorize(req, origin, authenticated).await?;
        let token = self.mint(&authorization)?;
        // Signed while the assertion's id was being made durable; sent only once it is.
        if let Some(durable) = replay_record {
            durable
                .wait()
                .await
                .map_err(|e| replay_failure(&authorization.client.client_id, e))?;
        }
        let Authorization {
            client,
            audience,
            scope,
            bound_to,
            quota,
            ..
        } = authorization;
        Ok(IssuedToken {
            access_token: token.token,
            scope,
            expires_in: token.expires_in,
            issued: Issued {
                client_id: client.client_id.clone(),
                client_name: client.name.clone(),
                audience,
                jti: token.jti,
                thumbprint: bound_to,
            },
            quota,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_is_listed_once() {
        // `code` matches every variant: a new one fails to compile there, and here until
        // `ALL` holds it.
        let count = |k: OAuthErrorKind| OAuthErrorKind::ALL.iter().filter(|a| **a == k).count();
        for kind in OAuthErrorKind::ALL {
            assert_eq!(count(kind), 1, "{kind:?}");
            let listed = match kind {
                OAuthErrorKind::InvalidRequest
                | OAuthErrorKind::InvalidScope
                | OAuthErrorKind::UnsupportedGrantType
                | OAuthErrorKind::SecretRejected
                | OAuthErrorKind::InvalidClient
                | OAuthErrorKind::UnauthorizedClient
                | OAuthErrorKind::AccessDenied
                | OAuthErrorKind::TooManyRequests
                | OAuthErrorKind::ServerError
                | OAuthErrorKind::Unavailable => true,
            };
            assert!(listed);
        }
    }

    fn decide(
        client_id: Option<&str>,
        secret: Option<&str>,
        assertion_type: Option<&str>,
        assertion: Option<&str>,
        basic: Option<(&str, &str)>,
        certificate: bool,
    ) -> ClientAuthentication {
        let own = |s: Option<&str>| s.map(str::to_string);
        ClientAuthentication::decide(
            own(client_id),
            own(secret),
            own(assertion_type),
            own(assertion),
            basic.map(|(i, s)| (i.to_string(), s.to_string())),
            certificate,
        )
    }

    fn refusal(auth: &ClientAuthentication) -> Option<(&str, TokenMethod)> {
        match auth {
            ClientAuthentication::Malformed { error, method, .. } => {
                Some((error.description.as_str(), *method))
            }
            _ => None,
        }
    }

    #[test]
    fn client_authentication_is_decided_from_the_parameters() {
        use ClientAuthentication as A;
        assert!(matches!(
            decide(Some("c"), Some("s"), None, None, None, false),
            A::SecretPost { client_id, secret } if client_id == "c" && secret == "s"
        ));
        assert!(matches!(
            decide(None, None, None, None, Some(("c", "s")), true),
            A::SecretBasic { client_id, .. } if client_id == "c"
        ));
        assert!(matches!(
            decide(None, None, Some(JWT_BEARER), Some("a.b.c"), None, false),
            A::PrivateKeyJwt { client_id: None, assertion } if assertion == "a.b.c"
        ));
        assert!(matches!(
            decide(Some("c"), None, None, None, None, true),
            A::Mtls { .. }
        ));
        assert!(matches!(
            decide(Some("c"), None, None, None, None, false),
            A::None { .. }
        ));
        let several = decide(Some("c"), Some("s"), None, None, Some(("c", "s")), false);
        assert_eq!(
            refusal(&several),
            Some((
                "Multiple client authentication methods were used; use exactly one",
                TokenMethod::None
            ))
        );
        assert_eq!(several.client_id(), Some("c"));
        let mismatch = decide(Some("d"), None, None, None, Some(("c", "s")), false);
        assert_eq!(
            refusal(&mismatch),
            Some((
                "client_id in the body does not match the Authorization header",
                TokenMethod::ClientSecretBasic
            ))
        );
        assert_eq!(mismatch.client_id(), Some("d"));
        assert_eq!(
            refusal(&decide(None, None, Some("other"), Some("x"), None, false)),
            Some((
                "Unsupported client_assertion_type",
                TokenMethod::PrivateKeyJwt
            ))
        );
        assert_eq!(
            refusal(&decide(None, None, None, Some("x"), None, false)),
            Some((
                "Missing required parameter: client_assertion_type",
                TokenMethod::PrivateKeyJwt
            ))
        );
        assert_eq!(
            refusal(&decide(None, None, Some(JWT_BEARER), None, None, false)),
            Some((
                "Missing required parameter: client_assertion",
                TokenMethod::PrivateKeyJwt
            ))
        );
        let empty = decide(Some(""), Some("s"), None, None, None, false);
        assert_eq!(
            refusal(&empty),
            Some((
                "Missing required parameter: client_id",
                TokenMethod::ClientSecretPost
            ))
        );
        assert_eq!(empty.client_id(), Some(""));
        assert_eq!(
            refusal(&decide(None, None, None, None, None, true)),
            Some(("Missing required parameter: client_id", TokenMethod::Mtls))
        );
    }

    #[test]
    fn grant_types() {
        assert_eq!(GrantType::parse(String::new()), None);
        assert_eq!(
            GrantType::parse("client_credentials".into()),
            Some(GrantType::ClientCredentials)
        );
        let other = GrantType::parse("password".into());
        assert_eq!(other, Some(GrantType::Unsupported("password".into())));
        assert_eq!(other.as_ref().map(GrantType::as_str), Some("password"));
    }
}

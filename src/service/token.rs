//! `POST /oauth/token` for `grant_type=client_credentials`: authenticate the client from the
//! read model, authorize against its grant, sign an RS256 access token. Nothing here reads
//! the store.

use clavis_crypto::secret::SecretDigest;
use serde::Serialize;

use super::Clavis;
use crate::domain::time::Timestamp;
use crate::model::{ClientAuth, ClientEntry};

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
}

/// An OAuth error (`{"error", "error_description"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// `error`
    pub error: &'static str,
    /// `error_description`
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    /// 401 `access_denied` / `Unauthorized`, for secret authentication failures.
    pub fn secret_denied() -> Self {
        Self::new(401, "access_denied", "Unauthorized")
    }

    /// 401 `invalid_client`, for assertion and certificate failures.
    pub fn invalid_client() -> Self {
        Self::new(401, "invalid_client", "Client authentication failed")
    }

    /// 500 `server_error` (signing failed).
    pub fn server_error() -> Self {
        Self::new(500, "server_error", "The token could not be issued")
    }
}

#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    gty: &'static str,
    azp: &'a str,
}

/// A digest compared when the client does not exist, so an unknown client costs the same
/// as a wrong secret.
fn decoy_digest() -> SecretDigest {
    SecretDigest::of("clavis-decoy-secret-for-unknown-clients")
}

impl Clavis {
    /// Runs the client-credentials grant.
    pub fn issue_token(&self, req: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        match req.grant_type.as_deref() {
            None | Some("") => {
                return Err(OAuthError::invalid_request(
                    "Missing required parameter: grant_type",
                ));
            }
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    400,
                    "unsupported_grant_type",
                    format!("Unsupported grant type: {}", truncate(other)),
                ));
            }
        }
        let client = self.authenticate(req)?;
        if !client.allows_client_credentials {
            return Err(OAuthError::new(
                403,
                "unauthorized_client",
                "Grant type 'client_credentials' not allowed for the client.",
            ));
        }
        let audience = match req.audience.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => a.to_string(),
            None => self.issuer.default_audience.clone().ok_or_else(|| {
                OAuthError::new(
                    403,
                    "access_denied",
                    "No audience parameter was provided, and no default audience has been configured",
                )
            })?,
        };
        let api = self.model.api(&audience).ok_or_else(|| {
            OAuthError::new(
                403,
                "access_denied",
                format!("Service not enabled within domain: {}", truncate(&audience)),
            )
        })?;
        let grant = self.model.grant(&client.client_id, &audience).ok_or_else(|| {
            OAuthError::new(
                403,
                "access_denied",
                format!(
                    "Client is not authorized to access \"{}\". You might probably want to create a \"client-grant\" associated to this API.",
                    truncate(&audience)
                ),
            )
        })?;
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
        let scope = (!scope.is_empty()).then(|| scope.join(" "));
        let now = Timestamp::now().unix_seconds();
        let claims = AccessTokenClaims {
            iss: &self.issuer.issuer,
            sub: format!("{}@clients", client.client_id),
            aud: &audience,
            iat: now,
            exp: now + api.token_lifetime,
            scope: scope.as_deref(),
            gty: "client-credentials",
            azp: &client.client_id,
        };
        let keys = self.model.keys();
        let access_token = keys.current.sign_jwt(&claims).map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            OAuthError::server_error()
        })?;
        Ok(TokenResponse {
            access_token,
            scope,
            expires_in: api.token_lifetime,
            token_type: "Bearer",
        })
    }

    /// Authenticates the client with exactly one method.
    fn authenticate(&self, req: &TokenRequest) -> Result<std::sync::Arc<ClientEntry>, OAuthError> {
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
            return self.authenticate_assertion(req);
        }
        if client_id.is_empty() {
            return Err(OAuthError::invalid_request(
                "Missing required parameter: client_id",
            ));
        }
        let Some(secret) = secret else {
            // No client authentication at all (a certificate-based client arrives here
            // once mTLS is wired in; until then it cannot authenticate).
            tracing::info!(client_id = %truncate(client_id), "token request without client authentication");
            return Err(OAuthError::secret_denied());
        };
        let client = self.model.client(client_id);
        let digest = match client.as_deref().map(|c| &c.auth) {
            Some(ClientAuth::Secret(digest)) => *digest,
            _ => decoy_digest(),
        };
        let matched = digest.matches(secret);
        match client {
            Some(c) if matched && matches!(c.auth, ClientAuth::Secret(_)) => Ok(c),
            Some(c) => {
                let reason = if matches!(c.auth, ClientAuth::Secret(_)) {
                    "wrong client secret"
                } else {
                    "client does not authenticate with a secret"
                };
                tracing::info!(client_id = %c.client_id, reason, "token request refused");
                Err(OAuthError::secret_denied())
            }
            None => {
                tracing::info!(client_id = %truncate(client_id), reason = "unknown client", "token request refused");
                Err(OAuthError::secret_denied())
            }
        }
    }

    /// `private_key_jwt`: not accepted until assertion verification is enabled.
    fn authenticate_assertion(
        &self,
        req: &TokenRequest,
    ) -> Result<std::sync::Arc<ClientEntry>, OAuthError> {
        tracing::info!(client_id = ?req.client_id.as_deref().map(truncate), reason = "client assertions are not supported yet", "token request refused");
        Err(OAuthError::invalid_client())
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

//! Step 3 of the pipeline: the signed access token of an [`Authorization`], written in its
//! [`AccessTokenFormat`] — the header (`alg`, `typ`, and `kid` for the tenant's keys), the
//! claim set of the API's token dialect, and the lifetime.
//!
//! A new dialect is a [`ClaimSet`] variant (and its arm in [`ClaimSet::of`] and in
//! [`Clavis::mint`]'s claims); a new signing algorithm is a [`TokenAlg`] variant (and its
//! arm in [`TokenAlg::of`] and in the signing `match`).

use clavis_crypto::jws::{JwtTyp, RsaSigningAlg};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::OAuthError;
use super::authorize::Authorization;
use crate::domain::time::Timestamp;
use crate::model::{ApiEntry, ApiSigner};
use crate::service::{Clavis, Issuer};

/// The claims a token carries besides the standard ones, by the API's `token_dialect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimSet {
    /// `access_token`, `access_token_authz`: Auth0's (`gty`, `azp`).
    Auth0,
    /// `rfc9068_profile`, `rfc9068_profile_authz`: RFC 9068's (`client_id`, `jti`).
    Rfc9068,
}

impl ClaimSet {
    /// The API's.
    pub fn of(api: &ApiEntry) -> Self {
        if api.rfc9068 {
            Self::Rfc9068
        } else {
            Self::Auth0
        }
    }
}

/// The header's `alg`, and the key that signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAlg {
    /// RS256, RS512 or PS256 with the tenant's current signing key (its `kid`).
    Rsa(RsaSigningAlg),
    /// HS256 with the API's `signing_secret`.
    Hs256,
}

impl TokenAlg {
    /// The API's (`signing_alg`).
    pub fn of(api: &ApiEntry) -> Self {
        match api.signer {
            ApiSigner::Rsa(alg) => Self::Rsa(alg),
            ApiSigner::Hmac(_) | ApiSigner::Unavailable => Self::Hs256,
        }
    }
}

/// How an access token is written: decided by [`Clavis::authorize`], applied by
/// [`Clavis::mint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenFormat {
    /// The header's `alg` (and so its `kid`).
    pub alg: TokenAlg,
    /// The header's `typ` (`at+jwt` for the RFC 9068 profiles).
    pub typ: JwtTyp,
    /// The claim set.
    pub claims: ClaimSet,
    /// With `permissions` (the granted scopes): an `_authz` dialect with policies enforced.
    pub permissions: bool,
    /// Seconds from `iat` to `exp` (the API's `token_lifetime`)…
    pub lifetime: i64,
    /// …but never past this instant (the credential that obtained the token expires then,
    /// with `--cap-token-expiry-at-credential`).
    pub expires_by: Option<Timestamp>,
}

impl AccessTokenFormat {
    /// The format of the API's tokens, for a client whose credential expires at
    /// `credential_expires_at`.
    pub fn of(api: &ApiEntry, credential_expires_at: Option<Timestamp>, issuer: &Issuer) -> Self {
        Self {
            alg: TokenAlg::of(api),
            typ: api.typ,
            claims: ClaimSet::of(api),
            permissions: api.permissions,
            lifetime: api.token_lifetime,
            expires_by: credential_expires_at.filter(|_| issuer.cap_token_expiry_at_credential),
        }
    }

    /// The token's lifetime when issued at `now` (Unix seconds).
    fn lifetime_at(&self, now: i64) -> i64 {
        match self.expires_by {
            Some(until) => self.lifetime.min(until.unix_seconds() - now).max(0),
            None => self.lifetime,
        }
    }
}

/// A signed access token.
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Its lifetime in seconds (`expires_in`).
    pub expires_in: i64,
    /// Its `jti`, in the claim sets that have one.
    pub jti: Option<String>,
}

/// The standard claims of an access token, in its [`ClaimSet`], with `permissions` when
/// the format asks.
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
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Permissions<'a>>,
    /// Certificate binding (RFC 8705 §3.1), for tokens issued through mTLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// The granted scopes as an array, from their space-separated form (scope values hold no
/// whitespace).
struct Permissions<'a>(Option<&'a str>);

impl Serialize for Permissions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.into_iter().flat_map(|s| s.split(' ')))
    }
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

impl Clavis {
    /// Writes and signs the token `authorization` decided, in its format.
    pub fn mint(&self, authorization: &Authorization) -> Result<AccessToken, OAuthError> {
        let Authorization {
            client,
            audience,
            scope,
            organization,
            bound_to,
            format,
            ..
        } = authorization;
        let now = Timestamp::now().unix_seconds();
        let lifetime = format.lifetime_at(now);
        let (auth0, rfc9068) = match format.claims {
            ClaimSet::Auth0 => (true, false),
            ClaimSet::Rfc9068 => (false, true),
        };
        let jti =
            rfc9068.then(|| clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 24));
        let claims = AccessTokenClaims {
            iss: &self.issuer.issuer,
            sub: format!("{}@clients", client.client_id),
            aud: audience,
            iat: now,
            exp: now + lifetime,
            scope: scope.as_deref(),
            org_id: organization.as_deref(),
            gty: auth0.then_some("client-credentials"),
            azp: auth0.then_some(client.client_id.as_str()),
            client_id: rfc9068.then_some(client.client_id.as_str()),
            jti: jti.as_deref(),
            permissions: format.permissions.then_some(Permissions(scope.as_deref())),
            cnf: bound_to
                .as_deref()
                .map(|x5t_s256| Confirmation { x5t_s256 }),
        };
        let signed = match authorization.custom_claims() {
            None => self.sign(authorization, &claims)?,
            Some(custom) => self.sign(
                authorization,
                &WithCustomClaims {
                    standard: &claims,
                    custom,
                },
            )?,
        };
        let token = signed.map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            OAuthError::server_error()
        })?;
        Ok(AccessToken {
            token,
            expires_in: lifetime,
            jti,
        })
    }

    /// Signs `claims` with the format's algorithm and `typ`.
    fn sign<T: Serialize>(
        &self,
        authorization: &Authorization,
        claims: &T,
    ) -> Result<Result<String, clavis_crypto::CryptoError>, OAuthError> {
        let AccessTokenFormat { alg, typ, .. } = authorization.format;
        Ok(match (alg, &authorization.api.signer) {
            (TokenAlg::Rsa(alg), _) => self.model.keys().current.sign_token(alg, typ, claims),
            (TokenAlg::Hs256, ApiSigner::Hmac(key)) => key.sign_token(typ, claims),
            (TokenAlg::Hs256, _) => {
                tracing::error!(audience = %authorization.api.identifier, "no signing secret for this HS256 API");
                return Err(OAuthError::server_error());
            }
        })
    }
}

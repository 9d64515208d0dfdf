//! Verification of the Bearer tokens that call the Management API: tokens Clavis itself
//! issued for the Management API audience.

use clavis_crypto::jws::{CompactJws, JwsAlg};
use serde::Deserialize;

use super::Clavis;
use crate::domain::time::Timestamp;

/// A verified management token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client the token was issued to (`azp`, else `sub` without `@clients`).
    pub client_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

impl Caller {
    /// Whether the caller holds any of `scopes`.
    pub fn has_any(&self, scopes: &[&str]) -> bool {
        self.scopes.iter().any(|s| scopes.contains(&s.as_str()))
    }
}

/// Why a token was refused; the `Display` text is the 401 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// No `Authorization: Bearer` header.
    #[error("Missing authentication")]
    Missing,
    /// Malformed, unknown key, bad signature, wrong issuer.
    #[error("Invalid token")]
    Invalid,
    /// Not issued for the Management API.
    #[error("Bad audience")]
    BadAudience,
    /// Past `exp`.
    #[error("Expired token")]
    Expired,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

impl Clavis {
    /// Verifies a management API Bearer token.
    pub fn verify_management_token(&self, token: &str) -> Result<Caller, TokenRejection> {
        let jws = CompactJws::parse(token).map_err(|_| TokenRejection::Invalid)?;
        if JwsAlg::parse(&jws.header.alg) != Some(JwsAlg::RS256) {
            return Err(TokenRejection::Invalid);
        }
        let kid = jws.header.kid.as_deref().ok_or(TokenRejection::Invalid)?;
        let keys = self.model.keys();
        let key = keys.verifiers.get(kid).ok_or(TokenRejection::Invalid)?;
        jws.verify(&key.key, JwsAlg::RS256)
            .map_err(|_| TokenRejection::Invalid)?;
        let claims: Claims = jws.claims().map_err(|_| TokenRejection::Invalid)?;
        if claims.iss != self.issuer.issuer {
            return Err(TokenRejection::Invalid);
        }
        let audience_ok = match &claims.aud {
            Audience::One(a) => *a == self.issuer.management_audience,
            Audience::Many(list) => list.contains(&self.issuer.management_audience),
        };
        if !audience_ok {
            return Err(TokenRejection::BadAudience);
        }
        if claims.exp <= Timestamp::now().unix_seconds() {
            return Err(TokenRejection::Expired);
        }
        let client_id = claims.azp.unwrap_or_else(|| {
            claims
                .sub
                .strip_suffix("@clients")
                .unwrap_or(&claims.sub)
                .to_string()
        });
        Ok(Caller {
            client_id,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }
}

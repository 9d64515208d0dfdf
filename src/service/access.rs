//! Verification of the Bearer tokens that call the Management API: tokens Clavis itself
//! issued for the Management API audience.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use clavis_crypto::jws::{CompactJws, JwsAlg};
use serde::Deserialize;

use super::Clavis;
use crate::domain::time::Timestamp;
use crate::model::KeyRing;

/// A verified management token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client the token was issued to (`azp`, else `sub` without `@clients`).
    pub client_id: String,
    /// Its scopes.
    pub scopes: Arc<[String]>,
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
    nbf: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

/// Management tokens already verified. A client reuses its token for the token's whole
/// lifetime (the SDKs cache it), so only its first call pays for the RSA verification.
///
/// An entry is keyed by the whole token text, so only the exact bytes that verified match.
/// It is used only while the key ring that verified it is still the current one — a
/// rotation or revocation replaces the ring — and `exp` is checked again on every use.
/// Bounded: when full, the cache starts over.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<Box<str>, Verified>>,
}

#[derive(Debug)]
struct Verified {
    caller: Caller,
    exp: i64,
    ring: Weak<KeyRing>,
}

/// Most tokens remembered.
const MAX_VERIFIED_TOKENS: usize = 4096;

impl VerifiedTokens {
    fn get(
        &self,
        token: &str,
        ring: &Arc<KeyRing>,
        now: i64,
    ) -> Option<Result<Caller, TokenRejection>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = entries.get(token)?;
        if !std::ptr::eq(hit.ring.as_ptr(), Arc::as_ptr(ring)) {
            return None;
        }
        Some(if hit.exp <= now {
            Err(TokenRejection::Expired)
        } else {
            Ok(hit.caller.clone())
        })
    }

    fn put(&self, token: &str, caller: &Caller, exp: i64, ring: &Arc<KeyRing>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_VERIFIED_TOKENS {
            entries.clear();
        }
        entries.insert(
            token.into(),
            Verified {
                caller: caller.clone(),
                exp,
                ring: Arc::downgrade(ring),
            },
        );
    }
}

impl Clavis {
    /// Verifies a management API Bearer token (the signature once per token and key ring,
    /// see [`VerifiedTokens`]), then holds it to what would be issued now: the token is
    /// refused once its client is deleted, no longer allows `client_credentials` or has no
    /// grant for the Management API, and it keeps only the scopes that grant still holds.
    /// Read from the read model, like the token endpoint: no store read per request.
    pub fn verify_management_token(&self, token: &str) -> Result<Caller, TokenRejection> {
        let keys = self.model.keys();
        let now = Timestamp::now().unix_seconds();
        let caller = match self.verified_tokens.get(token, &keys, now) {
            Some(known) => known?,
            None => {
                let (caller, exp) = self.verify_management_token_uncached(token, &keys, now)?;
                self.verified_tokens.put(token, &caller, exp, &keys);
                caller
            }
        };
        self.still_granted(caller)
    }

    /// The caller as its client's current grant allows it, or `Invalid` when nothing allows
    /// it any more.
    fn still_granted(&self, caller: Caller) -> Result<Caller, TokenRejection> {
        let client = self
            .model
            .client(&caller.client_id)
            .filter(|c| c.allows_client_credentials);
        let grant = client.and_then(|_| {
            self.model
                .grant(&caller.client_id, &self.issuer.management_audience)
        });
        let Some(grant) = grant else {
            tracing::debug!(client_id = %caller.client_id, "management token refused: its client or its grant is gone");
            return Err(TokenRejection::Invalid);
        };
        let granted = |s: &String| grant.all_scopes || grant.scope.contains(s);
        if caller.scopes.iter().all(granted) {
            return Ok(caller);
        }
        Ok(Caller {
            scopes: caller
                .scopes
                .iter()
                .filter(|s| granted(s))
                .cloned()
                .collect(),
            client_id: caller.client_id,
        })
    }

    fn verify_management_token_uncached(
        &self,
        token: &str,
        keys: &KeyRing,
        now: i64,
    ) -> Result<(Caller, i64), TokenRejection> {
        let jws = CompactJws::parse(token).map_err(|_| TokenRejection::Invalid)?;
        if JwsAlg::parse(&jws.header.alg) != Some(JwsAlg::RS256) {
            return Err(TokenRejection::Invalid);
        }
        let kid = jws.header.kid.as_deref().ok_or(TokenRejection::Invalid)?;
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
        if claims.exp <= now {
            return Err(TokenRejection::Expired);
        }
        // Not cached while it is not yet valid; Clavis's own tokens carry no `nbf`.
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now + super::token::CLOCK_SKEW_SECONDS)
        {
            return Err(TokenRejection::Invalid);
        }
        let client_id = claims.azp.unwrap_or_else(|| {
            claims
                .sub
                .strip_suffix("@clients")
                .unwrap_or(&claims.sub)
                .to_string()
        });
        let caller = Caller {
            client_id,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        };
        Ok((caller, claims.exp))
    }
}

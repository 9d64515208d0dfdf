//! Token request bodies made before the timed phase: each `private_key_jwt` body carries a
//! freshly signed assertion with a unique `jti` and a valid lifetime, so the load generator
//! spends no CPU on signing while it measures the server.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use clavis_crypto::jws::SigningKey;
use serde::Serialize;

use crate::load::Req;

/// `client_assertion_type` of RFC 7523.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the body names the API: Auth0's `audience` (Clavis) or RFC 8707 `resource`
/// (oidc-provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// `audience=` (Clavis, Auth0).
    Audience,
    /// `resource=` (oidc-provider).
    Resource,
}

/// A client that signs assertions.
pub struct Signer {
    /// Client id (`iss`, `sub`).
    pub client_id: String,
    /// Its key.
    pub key: SigningKey,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: i64,
    exp: i64,
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Bytes::from(s.finish())
}

/// Makes `count` `private_key_jwt` bodies, spread over `signers`, on all cores. `aud` is the
/// server's issuer; `tag` makes the `jti`s unique across runs.
pub fn private_key_jwt(
    signers: Arc<Vec<Signer>>,
    aud: &str,
    api: &str,
    scope: &str,
    dialect: Dialect,
    count: usize,
    tag: &str,
) -> Result<Vec<Req>> {
    if signers.is_empty() {
        return Err(anyhow!("no signing clients"));
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let api_param = match dialect {
        Dialect::Audience => "audience",
        Dialect::Resource => "resource",
    };
    let chunk = count.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let signers = signers.clone();
            let (aud, api, scope, tag) = (
                aud.to_string(),
                api.to_string(),
                scope.to_string(),
                tag.to_string(),
            );
            std::thread::spawn(move || -> Result<Vec<Req>> {
                let from = t * chunk;
                let to = ((t + 1) * chunk).min(count);
                let mut out = Vec::with_capacity(to.saturating_sub(from));
                for i in from..to {
                    let signer = &signers[i % signers.len()];
                    let jti = format!("{tag}-{i}");
                    let assertion = signer
                        .key
                        .sign_jwt(&AssertionClaims {
                            iss: &signer.client_id,
                            sub: &signer.client_id,
                            aud: &aud,
                            jti: &jti,
                            // Valid for 295 s from generation: the run must end before that.
                            iat: now - 5,
                            exp: now + 290,
                        })
                        .map_err(|e| anyhow!("{e}"))?;
                    out.push(Req {
                        path: "/oauth/token".into(),
                        body: form(&[
                            ("grant_type", "client_credentials"),
                            ("client_assertion_type", JWT_BEARER),
                            ("client_assertion", &assertion),
                            (api_param, &api),
                            ("scope", &scope),
                        ]),
                    });
                }
                Ok(out)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for h in handles {
        all.extend(h.join().map_err(|_| anyhow!("assertion thread failed"))??);
    }
    Ok(all)
}

/// One `client_secret_post` body (reusable: secrets are not single-use).
pub fn client_secret_post(
    client_id: &str,
    secret: &str,
    api: &str,
    scope: &str,
    dialect: Dialect,
) -> Req {
    let api_param = match dialect {
        Dialect::Audience => "audience",
        Dialect::Resource => "resource",
    };
    Req {
        path: "/oauth/token".into(),
        body: form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            (api_param, api),
            ("scope", scope),
        ]),
    }
}

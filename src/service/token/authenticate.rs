//! Step 1 of the pipeline: who is asking. The [`ClientAuthentication`] the request was
//! parsed into is checked against the read model — a secret (constant-time, the same cost
//! for an unknown client), an assertion (`private_key_jwt`, whose `jti` is recorded once),
//! or a certificate (`service::mtls`) — and the client's rate budget is asked (`admit`)
//! before anything is written for it.

use std::sync::Arc;

use clavis_crypto::jws::{CompactJws, JwsAlg};
use clavis_crypto::secret::SecretDigest;
use serde_json::Value;

use super::{
    Admit, CLOCK_SKEW_SECONDS, ClientAuthentication, MAX_ASSERTION_LIFETIME_SECONDS,
    MAX_CLAIM_LENGTH, OAuthError, TokenRequest, replay_failure, truncate,
};
use crate::domain::time::Timestamp;
use crate::model::{AttachedKey, ClientAuth, ClientEntry};
use crate::service::Clavis;
use crate::service::replay::{Durable, Recorded};
use crate::store::JtiRecord;

/// A verified assertion: its client, `jti`, `exp`, `iat` and the verifying key's expiry.
type CheckedAssertion = (
    Arc<ClientEntry>,
    String,
    i64,
    Option<i64>,
    Option<Timestamp>,
);

/// A client that proved who it is, and what its proof implies for the token.
pub struct Authenticated {
    /// The client.
    pub client: Arc<ClientEntry>,
    /// The thumbprint of the certificate it authenticated with, to which the token is bound.
    pub bound_to: Option<String>,
    /// For an assertion: its id's record, which must be durable before the token leaves.
    pub replay_record: Option<Durable>,
    /// When the credential it authenticated with expires (a key's `expires_at`; a
    /// certificate's notAfter or its credential's expiry, the earlier); none for a secret.
    pub credential_expires_at: Option<Timestamp>,
}

impl Authenticated {
    fn new(client: Arc<ClientEntry>) -> Self {
        Self {
            client,
            bound_to: None,
            replay_record: None,
            credential_expires_at: None,
        }
    }
}

/// A digest compared when the client does not exist, so an unknown client costs the same
/// as a wrong secret.
fn decoy_digest() -> SecretDigest {
    SecretDigest::of("clavis-decoy-secret-for-unknown-clients")
}

impl Clavis {
    /// Authenticates the client by the one method its request uses; `admit` is asked once
    /// it has (a refusal is 429, and an assertion's `jti` is then left unused).
    pub async fn authenticate(
        &self,
        req: &TokenRequest,
        admit: Admit<'_>,
    ) -> Result<Authenticated, OAuthError> {
        let admitted = |authenticated: Authenticated| {
            if admit(&authenticated.client.client_id) {
                Ok(authenticated)
            } else {
                Err(OAuthError::too_many_requests()
                    .concerning(Some(&authenticated.client.client_id), None))
            }
        };
        match &req.client {
            ClientAuthentication::SecretBasic { client_id, secret }
            | ClientAuthentication::SecretPost { client_id, secret } => {
                admitted(self.authenticate_secret(client_id, secret)?)
            }
            ClientAuthentication::PrivateKeyJwt {
                client_id,
                assertion,
            } => {
                self.authenticate_assertion(assertion, client_id.as_deref(), admit)
                    .await
            }
            ClientAuthentication::Mtls { client_id } | ClientAuthentication::None { client_id } => {
                // Neither secret nor assertion: a certificate client (see `service::mtls`).
                match self.authenticate_certificate(client_id, req.certificate.as_ref())? {
                    Some(c) => admitted(Authenticated {
                        bound_to: Some(c.thumbprint),
                        credential_expires_at: Some(c.expires_at),
                        ..Authenticated::new(c.client)
                    }),
                    None => {
                        tracing::info!(client_id = %truncate(client_id), "token request without client authentication");
                        Err(OAuthError::secret_denied().because("no client authentication"))
                    }
                }
            }
            ClientAuthentication::Malformed { error, .. } => Err(error.clone()),
        }
    }

    /// `client_secret_basic` and `client_secret_post`: the secret's digest, compared in
    /// constant time (with a decoy's for an unknown client or one without a secret).
    fn authenticate_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Authenticated, OAuthError> {
        let client = self.model.client(client_id);
        let digest = match client.as_deref().map(|c| &c.auth) {
            Some(ClientAuth::Secret(digest)) => *digest,
            _ => decoy_digest(),
        };
        let matched = digest.matches(secret);
        match client {
            Some(c) if matched && matches!(c.auth, ClientAuth::Secret(_)) => {
                Ok(Authenticated::new(c))
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
        assertion: &str,
        client_id_param: Option<&str>,
        admit: Admit<'_>,
    ) -> Result<Authenticated, OAuthError> {
        let now = Timestamp::now();
        let checked = self.check_assertion(assertion, client_id_param, now);
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
            Ok(Recorded::Fresh(durable)) => {
                return Ok(Authenticated {
                    replay_record: Some(durable),
                    credential_expires_at: key_expires_at,
                    ..Authenticated::new(client)
                });
            }
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

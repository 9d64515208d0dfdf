//! The token hook: an HTTPS endpoint of the operator's, called synchronously on each
//! client-credentials exchange once the client has authenticated and its grant allows the
//! request, before the token is signed — Clavis's counterpart of Auth0's
//! `credentials-exchange` Actions.
//!
//! Clavis POSTs an event modelled on the Action's `event` object (`client`,
//! `resource_server`, `request`, `transaction`, `accessToken`, `organization`), with
//! `Authorization: Bearer <secret>` so the hook can tell Clavis from anyone else. The hook
//! answers `200` with `{"claims": {...}}` (claims to add, as `api.accessToken.setCustomClaim`)
//! or `{"deny": {"code", "reason"}}` (as `api.access.deny`). Anything else — a timeout, no
//! connection, another status, an answer that is not one of these — is a failure: the
//! exchange is refused (`server_error`, the default) or, with `fail_open`, goes on without
//! the hook's claims.
//!
//! Calls are bounded: at most `max_connections` at once (the pool holds no more), each
//! within `timeout`, waiting for a free connection included.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::claims;

/// Largest answer read from the hook (bytes).
pub const MAX_ANSWER_BYTES: usize = 128 * 1024;
/// Longest `reason` of a denial kept (characters).
const MAX_REASON: usize = 500;

/// How the token hook is called (`--token-hook-*`).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHookOptions {
    /// The endpoint (https).
    pub url: url::Url,
    /// Sent as `Authorization: Bearer <secret>`.
    pub secret: String,
    /// Longest a call may take, waiting for a connection included.
    pub timeout: Duration,
    /// On a failure, issue the token without the hook's claims (default: refuse it).
    pub fail_open: bool,
    /// PEM bundle of the CAs that verify the hook's certificate (only these); default: the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// Most calls (and connections) at once.
    pub max_connections: usize,
}

impl std::fmt::Debug for TokenHookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHookOptions")
            .field("url", &self.url.as_str())
            .field("secret", &"..")
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .field("ca_file", &self.ca_file)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Default `--token-hook-timeout-ms`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);
/// Default `--token-hook-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
/// Shortest hook secret accepted.
pub const MIN_SECRET: usize = 16;

/// The event sent to the hook (Auth0's `credentials-exchange` event, the parts Clavis has).
#[derive(Serialize)]
pub struct HookEvent<'a> {
    /// `event.client`.
    pub client: HookClient<'a>,
    /// `event.resource_server`.
    pub resource_server: HookResourceServer<'a>,
    /// `event.request`.
    pub request: HookRequest<'a>,
    /// `event.transaction`.
    pub transaction: HookTransaction<'a>,
    /// `event.accessToken`: what the token will carry (granted scopes, declared claims).
    #[serde(rename = "accessToken")]
    pub access_token: HookAccessToken<'a>,
    /// `event.organization`, when the token is for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<HookOrganization<'a>>,
}

/// `event.client`.
#[derive(Serialize)]
pub struct HookClient<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its `client_metadata` (`{}` when none).
    pub metadata: &'a Map<String, Value>,
}

/// `event.resource_server`.
#[derive(Serialize)]
pub struct HookResourceServer<'a> {
    /// The audience.
    pub identifier: &'a str,
}

/// `event.request`.
#[derive(Serialize)]
pub struct HookRequest<'a> {
    /// The caller's address.
    pub ip: &'a str,
    /// Its `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    /// The host of this server's issuer URL.
    pub hostname: &'a str,
    /// Always `POST`.
    pub method: &'static str,
    /// The request's parameters, never its secrets or assertion.
    pub body: HookRequestBody<'a>,
}

/// `event.request.body`: the token request's parameters without credentials.
#[derive(Serialize)]
pub struct HookRequestBody<'a> {
    /// `grant_type`.
    pub grant_type: &'static str,
    /// `client_id` (the authenticated client).
    pub client_id: &'a str,
    /// `audience`.
    pub audience: &'a str,
    /// `scope`, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    /// `organization`, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<&'a str>,
}

/// `event.transaction`.
#[derive(Serialize)]
pub struct HookTransaction<'a> {
    /// The scopes the request asked for (`scope`, split), empty when it named none.
    pub requested_scopes: Vec<&'a str>,
}

/// `event.accessToken`.
#[derive(Serialize)]
pub struct HookAccessToken<'a> {
    /// The scopes the token will carry.
    pub scope: &'a [&'a str],
    /// The claims the grant declares (`token_claims`).
    #[serde(rename = "customClaims")]
    pub custom_claims: &'a Map<String, Value>,
}

/// `event.organization`.
#[derive(Serialize)]
pub struct HookOrganization<'a> {
    /// `org_…`.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    /// Its metadata (`{}` when none).
    pub metadata: &'a Value,
}

/// What the hook decided.
#[derive(Debug)]
pub enum Outcome {
    /// Claims to add (restricted names and the like already dropped).
    Claims(Map<String, Value>),
    /// `api.access.deny(code, reason)`.
    Deny {
        /// `invalid_scope`, `invalid_request` or `server_error`.
        code: &'static str,
        /// The hook's reason, when it gave one.
        reason: Option<String>,
    },
    /// The hook could not be asked, or answered nonsense (why, for the audit trail: never a
    /// secret).
    Failed(String),
}

/// The codes of `api.access.deny`.
pub const DENY_CODES: [&str; 3] = ["invalid_scope", "invalid_request", "server_error"];

/// A configured token hook.
pub struct TokenHook {
    client: reqwest::Client,
    url: url::Url,
    authorization: HeaderValue,
    timeout: Duration,
    /// Refused exchanges or tokens without the hook's claims, on a failure.
    pub fail_open: bool,
    permits: tokio::sync::Semaphore,
    hostname: String,
}

impl std::fmt::Debug for TokenHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHook")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenHook {
    /// Builds the client (at start-up): reads the CA file, bounds the pool. `hostname`: this
    /// server's (its issuer URL's host), for `event.request.hostname`.
    pub fn new(options: &TokenHookOptions, hostname: &str) -> Result<Self, String> {
        if options.url.scheme() != "https" {
            return Err("--token-hook-url must be an https URL".into());
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", options.secret))
            .map_err(|_| "CLAVIS_TOKEN_HOOK_SECRET must be printable ASCII".to_string())?;
        authorization.set_sensitive(true);
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .pool_max_idle_per_host(options.max_connections)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--token-hook-ca-file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("--token-hook-ca-file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--token-hook-ca-file {}: no certificate",
                    path.display()
                ));
            }
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| format!("token hook: cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            url: options.url.clone(),
            authorization,
            timeout: options.timeout,
            fail_open: options.fail_open,
            permits: tokio::sync::Semaphore::new(options.max_connections.max(1)),
            hostname: hostname.to_string(),
        })
    }

    /// This server's host name, as the events carry it.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Calls the hook with `event`; `management`: the token is for the Management API
    /// (only namespaced claims are kept, as Auth0 does).
    pub async fn call(&self, event: &HookEvent<'_>, management: bool) -> Outcome {
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(format!("token hook: event not serialised: {e}")),
        };
        let answer = tokio::time::timeout(self.timeout, async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| "token hook: closed".to_string())?;
            let response = self
                .client
                .post(self.url.clone())
                .header(header::AUTHORIZATION, self.authorization.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(describe)?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("token hook answered HTTP {}", status.as_u16()));
            }
            read_limited(response).await
        })
        .await;
        match answer {
            Err(_) => Outcome::Failed(format!(
                "token hook timed out after {} ms",
                self.timeout.as_millis()
            )),
            Ok(Err(why)) => Outcome::Failed(why),
            Ok(Ok(bytes)) => interpret(&bytes, management),
        }
    }
}

/// Why a request failed, without the URL's secrets (reqwest's messages hold the URL, which
/// holds nothing secret: the secret travels in a header).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "token hook timed out".into()
    } else if e.is_connect() {
        "token hook unreachable (connection failed)".into()
    } else {
        // The causes say what went wrong (a closed connection, a TLS failure, ...).
        let e = e.without_url();
        let mut text = format!("token hook request failed: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("token hook answer not read: {}", e.without_url()))?
    {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "token hook answer larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads the hook's answer: `{"claims": {...}}` or `{"deny": {"code", "reason"}}` (an empty
/// object or `{"claims": {}}` adds nothing).
pub fn interpret(bytes: &[u8], management: bool) -> Outcome {
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(bytes) else {
        return Outcome::Failed("token hook answer is not a JSON object".into());
    };
    if let Some(deny) = answer.remove("deny") {
        let code = deny.get("code").and_then(Value::as_str);
        let reason = deny
            .get("reason")
            .and_then(Value::as_str)
            .map(|r| r.chars().take(MAX_REASON).collect::<String>())
            .filter(|r| !r.is_empty());
        // A denial with a code outside Auth0's three is still a denial.
        let code = DENY_CODES
            .into_iter()
            .find(|c| Some(*c) == code)
            .unwrap_or("server_error");
        return Outcome::Deny { code, reason };
    }
    let claims = match answer.remove("claims") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Outcome::Failed("token hook answer: claims is not an object".into()),
    };
    let size = serde_json::to_vec(&claims).map_or(usize::MAX, |v| v.len());
    if size > claims::MAX_TOKEN_CLAIMS_BYTES {
        return Outcome::Failed(format!(
            "token hook answer: claims take {size} bytes; at most {}",
            claims::MAX_TOKEN_CLAIMS_BYTES
        ));
    }
    // As Auth0: a claim that may not be set is not added, and the exchange goes on.
    let kept = claims
        .into_iter()
        .filter(|(name, _)| match claims::name_problem(name, management) {
            None => true,
            Some(problem) => {
                tracing::warn!(claim = %truncated(name), %problem, "token hook claim dropped");
                false
            }
        })
        .collect();
    Outcome::Claims(kept)
}

fn truncated(s: &str) -> String {
    s.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn answers_are_read_as_auth0s_api_would_have_them() {
        match interpret(
            br#"{"claims":{"tier":"gold","sub":"x","scope":"all"}}"#,
            false,
        ) {
            Outcome::Claims(c) => assert_eq!(Value::Object(c), serde_json::json!({"tier":"gold"})),
            other => panic!("{other:?}"),
        }
        match interpret(br#"{"claims":{"tier":"gold","https://a/b":1}}"#, true) {
            Outcome::Claims(c) => {
                assert_eq!(Value::Object(c), serde_json::json!({"https://a/b":1}))
            }
            other => panic!("{other:?}"),
        }
        match interpret(br#"{"deny":{"code":"invalid_scope","reason":"no"}}"#, false) {
            Outcome::Deny { code, reason } => {
                assert_eq!((code, reason.as_deref()), ("invalid_scope", Some("no")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret(br#"{"deny":{"code":"nope"}}"#, false),
            Outcome::Deny {
                code: "server_error",
                reason: None
            }
        ));
        assert!(matches!(interpret(b"[]", false), Outcome::Failed(_)));
        assert!(matches!(
            interpret(br#"{"claims":[1]}"#, false),
            Outcome::Failed(_)
        ));
        assert!(matches!(interpret(br#"{}"#, false), Outcome::Claims(c) if c.is_empty()));
    }
}

//! The audit events of HTTP requests: token requests (`seccft`, `feccft`), Management API
//! writes (`sapi`) and reads that return a secret (`mgmt_api_read`), and rate-limit
//! refusals (`api_limit`). Events are queued ([`crate::audit::AuditLog::record`]); nothing
//! here waits on the store.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::extract::read_body;
use crate::audit::{Event, Origin, clean, types};
use crate::service::Clavis;
use crate::service::token::{IssuedToken, OAuthError, TokenRequest};

/// What replaces a secret in a logged body.
pub const REDACTED: &str = "[redacted]";

/// Where a request came from: the peer address and the `User-Agent` header.
pub fn origin(req: &Request) -> Origin {
    Origin {
        ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_default(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// A client's name, or the empty string when it is unknown (Auth0: "May be empty string").
/// An event about a client's request: its `client_id`, `client_name`, origin and
/// `isMobile` (always false for machine-to-machine traffic), as every such event of Auth0's.
fn client_event(
    app: &Clavis,
    kind: &str,
    description: &str,
    client_id: Option<&str>,
    origin: &Origin,
) -> Event {
    Event::new(kind, description)
        .text("client_id", client_id)
        .text("client_name", Some(&client_name(app, client_id)))
        .origin(origin)
        .value("isMobile", Value::Bool(false))
}

fn client_name(app: &Clavis, client_id: Option<&str>) -> String {
    client_id
        .and_then(|id| app.model.client(id))
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// The `seccft` or `feccft` event of a token request (`request` is `None` when its body
/// could not be read). A request refused by a rate limit records `api_limit` instead.
pub fn token_event(
    app: &Clavis,
    origin: &Origin,
    request: Option<&TokenRequest>,
    result: Result<&IssuedToken, &OAuthError>,
) {
    if !app.audit.is_on() {
        return;
    }
    let event = match result {
        Ok(response) => {
            let issued = &response.issued;
            let mut event = Event::new(
                types::SECCFT,
                "Successful exchange of Access Token for a Client Credentials Grant",
            )
            .text("client_id", Some(&issued.client_id))
            .text("client_name", Some(&issued.client_name))
            .origin(origin)
            .text("audience", Some(&issued.audience))
            .text("scope", response.scope.as_deref())
            .text("mtls_thumbprint_sha256", issued.thumbprint.as_deref())
            .value("isMobile", Value::Bool(false));
            if let Some(jti) = &issued.jti {
                event = event.value("details", json!({ "access_token_jti": jti }));
            }
            event
        }
        Err(e) => {
            let client_id = e
                .client_id
                .as_deref()
                .or_else(|| request.and_then(TokenRequest::named_client));
            let audience = request
                .and_then(|r| r.audience.as_deref())
                .filter(|a| !a.is_empty())
                .or(app.issuer.default_audience.as_deref())
                .unwrap_or_default();
            let mut details = Map::new();
            details.insert("error".into(), Value::String(e.code().into()));
            details.insert(
                "error_description".into(),
                Value::String(clean(&e.description)),
            );
            if let Some(credential_id) = &e.credential_id {
                details.insert("credential_id".into(), Value::String(clean(credential_id)));
            }
            client_event(
                app,
                types::FECCFT,
                e.reason.as_deref().unwrap_or(e.description.as_str()),
                client_id,
                origin,
            )
            .text("audience", Some(audience))
            .text("scope", request.and_then(|r| r.scope.as_deref()))
            .value("details", Value::Object(details))
        }
    };
    app.audit.record(event);
}

/// The `api_limit` event of a request a rate limit refused.
pub fn rate_limited(
    app: &Clavis,
    origin: &Origin,
    (method, path): (&str, &str),
    client_id: Option<&str>,
    bucket: &str,
    size: u32,
) {
    if !app.audit.is_on() {
        return;
    }
    let event = client_event(
        app,
        types::API_LIMIT,
        "Global limit has been reached",
        client_id,
        origin,
    )
    .value(
        "details",
        json!({
            "limit": {"bucket": bucket, "global": false, "size": size},
            "request": {"method": method, "path": clean(path)},
        }),
    );
    app.audit.record(event);
}

/// Auth0's `token_quota_consumption_warning` for each quota bucket a token request took to
/// 60, 80 or 100 % of its quota (once per node, bucket and window).
pub fn quota_warnings(
    app: &Clavis,
    origin: &Origin,
    client_id: Option<&str>,
    reports: &[crate::quota::QuotaReport],
) {
    for report in reports {
        for bucket in &report.buckets {
            let Some(pct) = bucket.warning else {
                continue;
            };
            let event = client_event(
                app,
                types::TOKEN_QUOTA_CONSUMPTION_WARNING,
                &format!(
                    "{pct}% of {} {} quota consumed",
                    report.entity.name(),
                    bucket.name()
                ),
                client_id,
                origin,
            )
            .value(
                "details",
                json!({
                    "bucket": bucket.name(),
                    "entity_type": report.entity.name(),
                    "entity_id": clean(&report.id),
                    "quota": bucket.quota,
                    "quota_consumption_percentage": pct,
                    "quota_consumption": bucket.consumed(),
                }),
            );
            app.audit.record(event);
        }
    }
}

/// The client that called a Management API endpoint, set by the `Auth` extractor for the
/// audit middleware.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<String>>);

impl CallerSlot {
    /// Records the caller.
    pub fn set(&self, client_id: &str) {
        let _ = self.0.set(client_id.to_string());
    }

    fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Whether a successful `GET` of this path can return a secret (`client_secret`,
/// `signing_secret`), so that its response is looked at.
fn may_return_secrets(path: &str) -> bool {
    let rest = path.trim_start_matches("/api/v2");
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["clients"]
            | ["clients", _]
            | ["resource-servers"]
            | ["resource-servers", _]
            | ["log-streams"]
            | ["log-streams", _]
    )
}

/// Whether `key` names a secret that a logged body must not hold (a log stream's
/// `httpAuthorization` included). Credential `pem`s stay: they are public keys and
/// certificates.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "secret"
        || key == "httpauthorization"
        || key == "authorization"
        || key.ends_with("_secret")
        || key.contains("password")
        || key.contains("private")
        || key == "client_assertion"
        || key == "access_token"
}

/// Replaces every secret in `value` by [`REDACTED`], at any depth; collects the names of
/// the secrets that had a value (Auth0's `accessedSecrets`).
pub fn redact(value: &mut Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret(key) {
                    if !inner.is_null() {
                        if !found.contains(key) {
                            found.push(key.clone());
                        }
                        *inner = Value::String(REDACTED.into());
                    }
                } else {
                    redact(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, found)),
        _ => {}
    }
}

/// A logged body: the JSON (or form) body with its secrets redacted; a body that is
/// neither is not kept.
fn logged_body(bytes: &[u8], found: &mut Vec<String>) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    let mut value = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => v,
        Err(_) => {
            let form: Map<String, Value> = url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            if form.is_empty() {
                return Value::String(REDACTED.into());
            }
            Value::Object(form)
        }
    };
    redact(&mut value, found);
    value
}

/// What Auth0's `description` of a `sapi` event says: the operation.
fn describe(method: &Method, path: &str) -> String {
    let rest = path.trim_start_matches("/api/v2");
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let verb = match *method {
        Method::POST => "Create",
        Method::PATCH | Method::PUT => "Update",
        Method::DELETE => "Delete",
        _ => "Call",
    };
    let what = match segments.as_slice() {
        ["clients", _, "rotate-secret"] => return "Rotate a client secret".into(),
        ["keys", "signing", "rotate"] => return "Rotate the signing key".into(),
        ["keys", "signing", _, "revoke"] => return "Revoke a signing key".into(),
        ["tenants", "settings"] => "tenant settings",
        ["clients"] | ["clients", _] => "a client",
        ["clients", _, "credentials"] | ["clients", _, "credentials", _] => "a client credential",
        ["resource-servers"] | ["resource-servers", _] => "a resource server",
        ["client-grants"] | ["client-grants", _] => "a client grant",
        ["log-streams"] | ["log-streams", _] => "a log stream",
        _ => return format!("{method} {}", clean(path)),
    };
    format!("{verb} {what}")
}

/// The middleware of the Management API routes: records `sapi` for every successful write
/// and `mgmt_api_read` for every successful read that returned a secret.
pub async fn management(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if !app.audit.is_on() {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let write = matches!(
        method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    // The whole path (the router nested under `/api/v2` sees it without the prefix).
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path(), |OriginalUri(uri)| uri.path())
        .to_string();
    let secret_read = method == Method::GET && may_return_secrets(&path);
    if !(write || secret_read) {
        return next.run(req).await;
    }
    let origin = origin(&req);
    let query: Map<String, Value> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(clean(&v))))
                .collect()
        })
        .unwrap_or_default();
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut secrets = Vec::new();
    let (req, body) = if write {
        let (parts, body) = req.into_parts();
        let bytes = match read_body(Request::new(body)).await {
            Ok(bytes) => bytes,
            Err(e) => return e.into_response(),
        };
        let logged = logged_body(&bytes, &mut secrets);
        (Request::from_parts(parts, Body::from(bytes)), logged)
    } else {
        (req, Value::Null)
    };
    let response = next.run(req).await;
    let status = response.status();
    if !status.is_success() {
        return response;
    }
    // The response is already whole in memory (the handlers render JSON bytes).
    let (parts, response_body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(response_body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut response_secrets = Vec::new();
    let mut logged_response = logged_body(&bytes, &mut response_secrets);
    for s in response_secrets {
        if !secrets.contains(&s) {
            secrets.push(s);
        }
    }
    let response = Response::from_parts(parts, Body::from(bytes));
    if !write && secrets.is_empty() {
        return response;
    }
    let caller = slot.get();
    let mut request = Map::new();
    request.insert("method".into(), Value::String(method.to_string()));
    request.insert("path".into(), Value::String(clean(&path)));
    request.insert("query".into(), Value::Object(query));
    if write {
        request.insert("body".into(), body);
    }
    request.insert("ip".into(), Value::String(origin.ip.clone()));
    if let Some(ua) = &origin.user_agent {
        request.insert("userAgent".into(), Value::String(clean(ua)));
    }
    let mut details = Map::new();
    details.insert("request".into(), Value::Object(request));
    let mut response_detail = Map::new();
    response_detail.insert("statusCode".into(), Value::from(status.as_u16()));
    if write {
        response_detail.insert("body".into(), logged_response.take());
    }
    details.insert("response".into(), Value::Object(response_detail));
    if !secrets.is_empty() || !write {
        details.insert(
            "accessedSecrets".into(),
            Value::Array(secrets.into_iter().map(Value::String).collect()),
        );
    }
    let (kind, description) = if write {
        (types::SAPI, describe(&method, &path))
    } else {
        (
            types::MGMT_API_READ,
            "API GET operation returning secrets".into(),
        )
    };
    let event = client_event(&app, kind, &description, caller, &origin)
        .value("details", Value::Object(details));
    app.audit.record(event);
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_public_keys_stay() {
        let mut found = Vec::new();
        let logged = logged_body(
            br#"{"name":"a","client_secret":"s3cr3t","signing_secret":null,
                "credentials":[{"pem":"-----BEGIN PUBLIC KEY-----","private_key":"k"}]}"#,
            &mut found,
        );
        assert_eq!(logged["client_secret"], REDACTED);
        assert_eq!(logged["signing_secret"], Value::Null);
        assert_eq!(
            logged["credentials"][0]["pem"],
            "-----BEGIN PUBLIC KEY-----"
        );
        assert_eq!(logged["credentials"][0]["private_key"], REDACTED);
        assert_eq!(found, ["client_secret", "private_key"]);
        let mut found = Vec::new();
        let logged = logged_body(
            br#"{"sink":{"httpAuthorization":"Bearer x"},"subject_type_authorization":{"client":{"policy":"deny_all"}}}"#,
            &mut found,
        );
        assert_eq!(logged["sink"]["httpAuthorization"], REDACTED);
        assert_eq!(
            logged["subject_type_authorization"]["client"]["policy"],
            "deny_all"
        );
        assert_eq!(found, ["httpAuthorization"]);
        let form = logged_body(b"client_secret=x&name=y", &mut Vec::new());
        assert_eq!(form, json!({"client_secret": REDACTED, "name": "y"}));
    }

    #[test]
    fn descriptions_name_the_operation() {
        assert_eq!(
            describe(&Method::PATCH, "/api/v2/clients/abc/credentials/cred_1"),
            "Update a client credential"
        );
        assert_eq!(
            describe(&Method::POST, "/api/v2/clients"),
            "Create a client"
        );
        assert_eq!(
            describe(&Method::PATCH, "/api/v2/tenants/settings"),
            "Update tenant settings"
        );
        assert!(may_return_secrets("/api/v2/clients/abc"));
        assert!(!may_return_secrets("/api/v2/clients/abc/credentials"));
    }
}

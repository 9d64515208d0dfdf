//! `POST /oauth/token`, discovery and JWKS.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::audit;
use super::extract::{is_form, read_body};
use super::ratelimit::{Decision, TokenGate};
use super::strict::{self, BodyError};
use super::{AppState, json_response};
use crate::metrics::{Bucket, TokenMethod};
use crate::service::token::{OAuthError, OAuthErrorKind, TokenRequest};

/// The status of each OAuth error (Auth0's: a secret that does not authenticate is 401
/// `access_denied`, an authenticated client without the grant 403 `access_denied`).
fn status(kind: OAuthErrorKind) -> StatusCode {
    match kind {
        OAuthErrorKind::InvalidRequest
        | OAuthErrorKind::InvalidScope
        | OAuthErrorKind::UnsupportedGrantType => StatusCode::BAD_REQUEST,
        OAuthErrorKind::SecretRejected | OAuthErrorKind::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorKind::UnauthorizedClient | OAuthErrorKind::AccessDenied => StatusCode::FORBIDDEN,
        OAuthErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        OAuthErrorKind::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn oauth_error(e: &OAuthError) -> Response {
    let status = status(e.kind);
    let mut response = json_response(
        status,
        &json!({"error": e.code(), "error_description": e.description}),
    );
    no_store(response.headers_mut());
    if e.kind == OAuthErrorKind::InvalidClient {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    }
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `client_id:client_secret` from `Authorization: Basic`, form-decoded per RFC 6749 §2.3.1.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_request("Malformed Authorization header"))?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_request(
            "Malformed Authorization header",
        ));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_request("Malformed Basic credentials"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| OAuthError::invalid_request("Malformed Basic credentials"))?;
    let (id, secret) = text
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_request("Malformed Basic credentials"))?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Reads a token request from a form or JSON body. Unknown and null parameters are ignored;
/// a parameter that is not a string is refused.
async fn parse_token_request(app: &AppState, req: Request) -> Result<TokenRequest, OAuthError> {
    let certificate = app
        .mtls
        .presented_certificate(req.headers(), req.extensions())
        .map_err(OAuthError::invalid_request)?;
    let form = is_form(&req);
    let headers = req.headers().clone();
    let bytes = read_body(req)
        .await
        .map_err(|_| OAuthError::invalid_request("Request body too large"))?;
    Ok(TokenRequest {
        certificate,
        ..parse_token_body(&headers, &bytes, form)?
    })
}

/// The pure part of [`parse_token_request`]: `Authorization` header plus body bytes
/// (`form` = `application/x-www-form-urlencoded`, else JSON) to a [`TokenRequest`].
pub fn parse_token_body(
    headers: &HeaderMap,
    bytes: &[u8],
    form: bool,
) -> Result<TokenRequest, OAuthError> {
    let basic = basic_credentials(headers)?;
    let parsed = if form {
        strict::form(bytes).map(Value::Object)
    } else {
        strict::json(bytes)
    };
    let object = match parsed {
        Ok(Value::Object(m)) => m,
        Err(BodyError::Repeated(name)) => {
            return Err(OAuthError::invalid_request(format!(
                "Parameter {name} is included more than once"
            )));
        }
        Ok(_) | Err(BodyError::Malformed) => {
            return Err(OAuthError::invalid_request(
                "Invalid request body: expected a JSON object or a form",
            ));
        }
    };
    let field = |name: &str| -> Result<Option<String>, OAuthError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(OAuthError::invalid_request(format!(
                "Invalid parameter {name}: expected a string"
            ))),
        }
    };
    Ok(TokenRequest {
        grant_type: field("grant_type")?,
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
        basic,
        client_assertion_type: field("client_assertion_type")?,
        client_assertion: field("client_assertion")?,
        audience: field("audience")?,
        scope: field("scope")?,
        organization: field("organization")?.filter(|o| !o.is_empty()),
        certificate: None,
    })
}

/// `POST /oauth/token`.
#[utoipa::path(
    post, path = "/oauth/token", operation_id = "post_token", tag = "oauth",
    request_body(content((crate::http::openapi::TokenRequest = "application/x-www-form-urlencoded"), (crate::http::openapi::TokenRequest = "application/json")), description = "Client authentication: `client_secret` (post), HTTP Basic (`client_secret_basic`), or `client_assertion` (`private_key_jwt`)."),
    security((), ("clientSecretBasic" = [])),
    responses(
        (status = 200, description = "An access token (`cache-control: no-store`).", body = crate::http::openapi::TokenResponse),
        (status = 400, description = "`invalid_request` or `unsupported_grant_type`; `invalid_scope` or `invalid_request` when the token hook denies the exchange.", body = crate::http::openapi::OAuthErrorBody),
        (status = 401, description = "`access_denied` (secrets) or `invalid_client` (assertions).", body = crate::http::openapi::OAuthErrorBody),
        (status = 403, description = "`unauthorized_client` or `access_denied` (no grant, unknown audience).", body = crate::http::openapi::OAuthErrorBody),
        (status = 408, description = "The request body did not arrive within the request timeout.", body = crate::http::openapi::OAuthErrorBody),
        (status = 429, description = "Rate limit reached, or a token quota spent (`too_many_requests`, with `retry-after`; a quota also sends `Auth0-Client-Quota-Limit` or `Auth0-Organization-Quota-Limit`).", body = crate::http::openapi::OAuthErrorBody),
        (status = 500, description = "`server_error`: the token could not be signed, or the token hook failed (fail-closed) or denied the exchange with `server_error`.", body = crate::http::openapi::OAuthErrorBody),
        (status = 503, description = "The store cannot be reached (`temporarily_unavailable`); retry.", body = crate::http::openapi::OAuthErrorBody),
    ),
)]
pub async fn token(State(app): State<AppState>, mut req: Request) -> Response {
    let started = Instant::now();
    let gate = req.extensions_mut().remove::<TokenGate>();
    let origin = audit::origin(&req);
    let request = match parse_token_request(&app, req).await {
        Ok(r) => r,
        Err(e) => {
            audit::token_event(&app, &origin, None, Err(&e));
            let decision = gate.as_ref().and_then(|g| g.failed(""));
            app.metrics
                .token(TokenMethod::None, Some(e.code()), started.elapsed());
            return labelled(oauth_error(&e), decision);
        }
    };
    let method = TokenMethod::of(&request);
    let named = request.named_client().unwrap_or_default();
    if let Some(refusal) = gate.as_ref().and_then(|g| g.refusal(named)) {
        let e = OAuthError::too_many_requests();
        app.metrics.rate_limited(Bucket::FailedAuthentication);
        app.metrics.token(method, Some(e.code()), started.elapsed());
        audit::rate_limited(
            &app,
            &origin,
            ("POST", "/oauth/token"),
            Some(named).filter(|n| !n.is_empty()),
            "authentication failures",
            refusal.limit,
        );
        return labelled(oauth_error(&e), Some(refusal));
    }
    // Set once the client has authenticated, with its bucket's decision.
    let admitted: OnceLock<Option<Decision>> = OnceLock::new();
    let admit = |client_id: &str| {
        let decision = gate.as_ref().and_then(|g| g.admit(client_id));
        let _ = admitted.set(decision);
        decision.is_none_or(|d| d.allowed)
    };
    let mut result = app.issue_token(&request, &origin, &admit).await;
    let decision = match admitted.into_inner() {
        Some(decision) => {
            if decision.is_some_and(|d| !d.allowed) {
                app.metrics.rate_limited(Bucket::TokenClient);
            }
            decision
        }
        None => gate.as_ref().and_then(|g| g.failed(named)),
    };
    let quota: Vec<crate::quota::QuotaReport> = match &mut result {
        Ok(body) => std::mem::take(&mut body.quota),
        Err(e) => e.quota.clone().map(|q| vec![*q]).unwrap_or_default(),
    };
    match (&result, decision) {
        // A rate limit's refusal (a quota's is a failed exchange, `feccft`).
        (Err(e), Some(d)) if e.kind == OAuthErrorKind::TooManyRequests && e.quota.is_none() => {
            audit::rate_limited(
                &app,
                &origin,
                ("POST", "/oauth/token"),
                e.client_id.as_deref().or(Some(named)),
                "token client",
                d.limit,
            )
        }
        _ => audit::token_event(&app, &origin, Some(&request), result.as_ref()),
    }
    if !quota.is_empty() {
        let client_id = match &result {
            Ok(body) => Some(body.issued.client_id.as_str()),
            Err(e) => e.client_id.as_deref(),
        };
        audit::quota_warnings(&app, &origin, client_id, &quota);
    }
    let response = match result {
        Ok(body) => {
            let mut response = json_response(StatusCode::OK, &body);
            no_store(response.headers_mut());
            app.metrics.token(method, None, started.elapsed());
            response
        }
        Err(e) => {
            app.metrics.token(method, Some(e.code()), started.elapsed());
            oauth_error(&e)
        }
    };
    let mut response = labelled(response, decision);
    with_quota(response.headers_mut(), &quota);
    response
}

/// Adds Auth0's quota headers (`Auth0-Client-Quota-Limit`, `Auth0-Organization-Quota-Limit`)
/// and, when a quota refused the request, the `x-ratelimit-*` and `retry-after` of the bucket
/// that did (Auth0's answer).
fn with_quota(headers: &mut HeaderMap, quota: &[crate::quota::QuotaReport]) {
    use axum::http::HeaderName;
    for report in quota {
        if let Ok(value) = HeaderValue::from_str(&report.header_value()) {
            headers.insert(HeaderName::from_static(report.header_name()), value);
        }
        if let Some(bucket) = report.refused_by {
            let now = crate::domain::time::Timestamp::now().unix_seconds();
            let wait = bucket.reset_after.max(1);
            let mut set = |name: &'static str, value: u64| {
                headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
            };
            set("x-ratelimit-limit", bucket.quota);
            set("x-ratelimit-remaining", 0);
            set(
                "x-ratelimit-reset",
                u64::try_from(now + wait).unwrap_or_default(),
            );
            set("retry-after", u64::try_from(wait).unwrap_or(1));
        }
    }
}

/// Adds the rate-limit headers of the bucket the request was charged to.
fn labelled(mut response: Response, decision: Option<Decision>) -> Response {
    if let Some(d) = decision {
        d.apply(response.headers_mut());
    }
    response
}

/// `GET /.well-known/jwks.json`.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", operation_id = "get_jwks", tag = "oauth",
    responses((status = 200, description = "The public signing keys.", body = crate::http::openapi::Jwks)),
)]
pub async fn jwks(State(app): State<AppState>) -> Response {
    let jwks = app.model.jwks();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
        ],
        axum::body::Bytes::copy_from_slice(&jwks),
    )
        .into_response()
}

/// `GET /.well-known/openid-configuration`.
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", operation_id = "get_openid_configuration", tag = "oauth",
    responses((status = 200, description = "Discovery metadata.", body = crate::http::openapi::OpenIdConfiguration)),
)]
pub async fn openid_configuration(State(app): State<AppState>) -> Response {
    let issuer = &app.issuer;
    let mut methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let mtls_methods = app.mtls.auth_methods();
    let mtls = !mtls_methods.is_empty();
    methods.extend(mtls_methods);
    let mut doc = json!({
        "issuer": issuer.issuer,
        "token_endpoint": issuer.token_endpoint,
        "jwks_uri": format!("{}.well-known/jwks.json", issuer.issuer),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "PS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": [],
    });
    if mtls && let Value::Object(map) = &mut doc {
        // RFC 8705 §3.3 and §5: one listener serves both, so the alias is the endpoint itself.
        map.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            Value::Bool(true),
        );
        map.insert(
            "mtls_endpoint_aliases".into(),
            json!({"token_endpoint": issuer.token_endpoint}),
        );
    }
    json_response(StatusCode::OK, &doc)
}

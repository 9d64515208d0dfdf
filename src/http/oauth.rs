//! `POST /oauth/token`, discovery and JWKS.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::audit;
use super::extract::{is_form, read_body};
use super::ratelimit::{Decision, TokenGate};
use super::strict::{self, BodyError, FieldError};
use super::{AppState, json_response};
use crate::metrics::{Bucket, TokenMethod};
use crate::mtls::PresentedCertificate;
use crate::service::token::{
    ClientAuthentication, GrantType, IssuedToken, OAuthError, OAuthErrorKind, TokenRequest,
};

// ----- the wire types (the served document's schemas are derived from them) -----

/// `POST /oauth/token` parameters (form or JSON). Unknown and `null` parameters are
/// ignored. Exactly one client authentication: `client_secret` (post), HTTP Basic, or
/// `client_assertion` (`private_key_jwt`); or, with mTLS, a client certificate and
/// `client_id` alone (`tls_client_auth`, `self_signed_tls_client_auth`).
#[derive(Deserialize, ToSchema)]
#[schema(as = TokenRequest, example = json!({
    "grant_type": "client_credentials",
    "client_id": "8mQxKq0e0p0Yr4N6y1uTTKcN3cUe0Zz1",
    "client_secret": "…",
    "audience": "https://127.0.0.1:8443/api/v2/"
}))]
pub struct TokenParameters {
    /// Only `client_credentials`.
    #[schema(required = true, nullable = false)]
    grant_type: Option<String>,
    /// The client.
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[schema(nullable = false)]
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with `client_assertion`.
    #[schema(nullable = false)]
    client_assertion_type: Option<String>,
    /// A JWT signed with a `public_key` credential of the client.
    #[schema(nullable = false)]
    client_assertion: Option<String>,
    /// The API identifier; required unless a default audience is configured.
    #[schema(nullable = false)]
    audience: Option<String>,
    /// Space-separated scopes; default: everything granted.
    #[schema(nullable = false)]
    scope: Option<String>,
    /// The organization (its id) the token is for.
    #[schema(nullable = false)]
    organization: Option<String>,
}

impl TokenParameters {
    /// The typed request: the grant type and the one client authentication method.
    fn into_request(
        self,
        basic: Option<(String, String)>,
        certificate: Option<PresentedCertificate>,
    ) -> TokenRequest {
        TokenRequest {
            grant_type: self.grant_type.and_then(GrantType::parse),
            client: ClientAuthentication::decide(
                self.client_id,
                self.client_secret,
                self.client_assertion_type,
                self.client_assertion,
                basic,
                certificate.is_some(),
            ),
            audience: self.audience,
            scope: self.scope,
            organization: self.organization.filter(|o| !o.is_empty()),
            certificate,
        }
    }
}

/// A token answer (sent with `cache-control: no-store`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse<'a> {
    /// A JWT, signed with the API's `signing_alg`.
    access_token: &'a str,
    /// Granted scopes, space separated; omitted when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<&'a str>,
    /// Seconds until the token expires (the API's `token_lifetime`).
    expires_in: i64,
    /// Always `Bearer`.
    token_type: &'static str,
}

impl<'a> From<&'a IssuedToken> for TokenResponse<'a> {
    fn from(token: &'a IssuedToken) -> Self {
        Self {
            access_token: &token.access_token,
            scope: token.scope.as_deref(),
            expires_in: token.expires_in,
            token_type: "Bearer",
        }
    }
}

/// An OAuth 2.0 error (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthErrorBody<'a> {
    /// The error code; the token endpoint's answers list each with its status.
    pub error: &'static str,
    /// Human-readable detail.
    pub error_description: &'a str,
}

/// OpenID Connect discovery metadata (the parts a client-credentials server has).
#[derive(Serialize, ToSchema)]
pub struct OpenIdConfiguration<'a> {
    /// `https://{domain}/`.
    issuer: &'a str,
    /// The token endpoint URL.
    token_endpoint: &'a str,
    /// The JWKS URL.
    jwks_uri: String,
    grant_types_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    token_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    id_token_signing_alg_values_supported: &'static [&'static str],
    scopes_supported: &'static [&'static str],
    /// With mTLS on: tokens from a certificate-authenticated request are bound to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    tls_client_certificate_bound_access_tokens: Option<bool>,
    /// With mTLS on (RFC 8705 §5): one listener serves both, so the alias is the endpoint
    /// itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    mtls_endpoint_aliases: Option<MtlsEndpointAliases<'a>>,
}

/// RFC 8705 §5 `mtls_endpoint_aliases`.
#[derive(Serialize, ToSchema)]
pub struct MtlsEndpointAliases<'a> {
    /// The token endpoint for mTLS clients.
    token_endpoint: &'a str,
}

/// The error answers of `POST /oauth/token`, generated from [`status`]: each status with
/// the OAuth error codes it carries and when each is answered
/// ([`OAuthErrorKind::meaning`]), plus the body timeout's 408.
pub struct TokenErrors;

impl utoipa::IntoResponses for TokenErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for kind in OAuthErrorKind::ALL {
            by_status
                .entry(status(kind).as_u16())
                .or_default()
                .push(format!("`{}`: {}", kind.code(), kind.meaning()));
        }
        by_status
            .entry(StatusCode::REQUEST_TIMEOUT.as_u16())
            .or_default()
            .push(format!(
                "`{}`: {}",
                OAuthErrorKind::InvalidRequest.code(),
                super::hardening::BODY_TIMEOUT
            ));
        let body = RefOr::Ref(Ref::from_schema_name(
            <OAuthErrorBody as utoipa::ToSchema>::name(),
        ));
        by_status
            .into_iter()
            .map(|(status, lines)| {
                let response = ResponseBuilder::new()
                    .description(format!("{}.", lines.join("; ")))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(body.clone())).build(),
                    )
                    .build();
                (status.to_string(), RefOr::T(response))
            })
            .collect()
    }
}

/// The status of each OAuth error (Auth0's: a secret that does not authenticate is 401
/// `access_denied`, an authenticated client without the grant 403 `access_denied`).
pub fn status(kind: OAuthErrorKind) -> StatusCode {
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
        &OAuthErrorBody {
            error: e.code(),
            error_description: &e.description,
        },
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
    parse_token_body(&headers, &bytes, form, certificate)
}

/// The pure part of `parse_token_request`: `Authorization` header plus body bytes
/// (`form` = `application/x-www-form-urlencoded`, else JSON) and the certificate presented
/// with them to a [`TokenRequest`], through its wire type [`TokenParameters`].
pub fn parse_token_body(
    headers: &HeaderMap,
    bytes: &[u8],
    form: bool,
    certificate: Option<PresentedCertificate>,
) -> Result<TokenRequest, OAuthError> {
    let basic = basic_credentials(headers)?;
    let parsed = if form {
        strict::form(bytes).map(Value::Object)
    } else {
        strict::json(bytes)
    };
    let malformed =
        || OAuthError::invalid_request("Invalid request body: expected a JSON object or a form");
    let object = match parsed {
        Ok(Value::Object(m)) => m,
        Err(BodyError::Repeated(name)) => {
            return Err(OAuthError::invalid_request(format!(
                "Parameter {name} is included more than once"
            )));
        }
        Ok(_) | Err(BodyError::Malformed) => return Err(malformed()),
    };
    let parameters: TokenParameters = strict::fields(object).map_err(|e| match e {
        FieldError::Invalid(name) => {
            OAuthError::invalid_request(format!("Invalid parameter {name}: expected a string"))
        }
        FieldError::Other(_) => malformed(),
    })?;
    Ok(parameters.into_request(basic, certificate))
}

/// `POST /oauth/token`.
#[utoipa::path(
    post, path = "/oauth/token", operation_id = "post_token", tag = "oauth",
    request_body(content((TokenParameters = "application/x-www-form-urlencoded"), (TokenParameters = "application/json")), description = "Client authentication: `client_secret` (post), HTTP Basic (`client_secret_basic`), or `client_assertion` (`private_key_jwt`)."),
    security((), ("clientSecretBasic" = [])),
    responses(
        (status = 200, description = "An access token (`cache-control: no-store`).", body = TokenResponse),
        TokenErrors,
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
        Ok(issued) => std::mem::take(&mut issued.quota),
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
        Ok(issued) => {
            let mut response = json_response(StatusCode::OK, &TokenResponse::from(&issued));
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
    responses((status = 200, description = "The public signing keys.", body = crate::model::Jwks)),
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
    responses((status = 200, description = "Discovery metadata.", body = OpenIdConfiguration)),
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
    let doc = OpenIdConfiguration {
        issuer: &issuer.issuer,
        token_endpoint: &issuer.token_endpoint,
        jwks_uri: format!("{}.well-known/jwks.json", issuer.issuer),
        grant_types_supported: &["client_credentials"],
        response_types_supported: &["token"],
        token_endpoint_auth_methods_supported: methods,
        token_endpoint_auth_signing_alg_values_supported: &["RS256", "RS384", "PS256"],
        id_token_signing_alg_values_supported: &["RS256"],
        scopes_supported: &[],
        tls_client_certificate_bound_access_tokens: mtls.then_some(true),
        mtls_endpoint_aliases: mtls.then_some(MtlsEndpointAliases {
            token_endpoint: &issuer.token_endpoint,
        }),
    };
    json_response(StatusCode::OK, &doc)
}

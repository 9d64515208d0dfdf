//! `GET /metrics` (Prometheus text format), and the middleware that counts Management API
//! requests by route template. Never public by default: served on the main listener only
//! with a bearer token (`CLAVIS_METRICS_TOKEN`), or on a listener of its own
//! (`--metrics-listen`), which also asks for the token when one is set. Otherwise `/metrics`
//! does not exist (404).

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clavis_crypto::secret::SecretDigest;
use prometheus_client::registry::Registry;

use super::AppState;

/// What `/metrics` serves, and who may read it.
pub struct MetricsEndpoint {
    registry: Registry,
    /// The digest of the bearer token, compared in constant time; `None` = no token asked.
    token: Option<SecretDigest>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl MetricsEndpoint {
    /// The endpoint of a server, asking for `token` when given.
    pub fn new(app: &AppState, token: Option<&str>) -> Arc<Self> {
        Arc::new(Self {
            registry: crate::metrics::registry(app),
            token: token.map(SecretDigest::of),
        })
    }
}

/// `/metrics` alone, to merge into the main router (which answers everything else).
pub fn route(endpoint: Arc<MetricsEndpoint>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(endpoint)
}

/// The router of the separate metrics listener: `/metrics`, and 404 for anything else.
pub fn listener_router(endpoint: Arc<MetricsEndpoint>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(endpoint)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn scrape(State(endpoint): State<Arc<MetricsEndpoint>>, headers: HeaderMap) -> Response {
    if let Some(expected) = &endpoint.token
        && !bearer(&headers).is_some_and(|t| expected.matches(t))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        )
            .into_response();
    }
    match crate::metrics::encode(&endpoint.registry) {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    ),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            text,
        )
            .into_response(),
        Err(_) => {
            tracing::error!("encoding the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Route layer of the Management API: counts each answered request by method, route
/// template and status.
pub async fn count_management(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    if let Some(route) = route {
        app.metrics
            .management(method, route.as_str(), response.status().as_u16());
    }
    response
}

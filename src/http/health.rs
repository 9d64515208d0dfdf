//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{AppState, json_response};

/// `GET /healthz`: the process serves requests.
#[utoipa::path(
    get, path = "/healthz", operation_id = "get_healthz", tag = "health",
    responses((status = 200, description = "The process serves requests.", body = crate::http::openapi::HealthStatus)),
)]
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers.
#[utoipa::path(
    get, path = "/readyz", operation_id = "get_readyz", tag = "health",
    responses((status = 200, description = "The store answers.", body = crate::http::openapi::HealthStatus), (status = 503, description = "The store does not answer.", body = crate::http::openapi::HealthStatus)),
)]
pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.ping().await {
        Ok(()) => json_response(StatusCode::OK, &json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable"}),
            )
        }
    }
}

//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::{AppState, json_response};

/// Liveness and readiness answers.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthStatus {
    /// What the check found.
    status: Health,
}

/// `ok` (live), `ready` or `unavailable`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The process serves requests.
    Ok,
    /// The store answers.
    Ready,
    /// The store does not answer.
    Unavailable,
}

fn answer(status: StatusCode, health: Health) -> Response {
    json_response(status, &HealthStatus { status: health })
}

/// `GET /healthz`: the process serves requests.
#[utoipa::path(
    get, path = "/healthz", operation_id = "get_healthz", tag = "health",
    responses((status = 200, description = "The process serves requests.", body = HealthStatus)),
)]
pub async fn healthz() -> Response {
    answer(StatusCode::OK, Health::Ok)
}

/// `GET /readyz`: the store answers.
#[utoipa::path(
    get, path = "/readyz", operation_id = "get_readyz", tag = "health",
    responses((status = 200, description = "The store answers.", body = HealthStatus), (status = 503, description = "The store does not answer.", body = HealthStatus)),
)]
pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.ping().await {
        Ok(()) => answer(StatusCode::OK, Health::Ready),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            answer(StatusCode::SERVICE_UNAVAILABLE, Health::Unavailable)
        }
    }
}

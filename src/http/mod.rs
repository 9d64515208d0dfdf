//! The HTTP surface: the router and what every handler shares. Handlers are thin: they
//! extract, call `service`, and render; the Management router checks scopes before them.

pub mod audit;
pub mod console;
pub mod error;
pub mod extract;
pub mod hardening;
pub mod health;
pub mod management;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod ratelimit;
pub mod schema;
pub mod strict;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::Clavis;

/// Shared state of every handler.
pub type AppState = Arc<Clavis>;

/// A JSON response with Auth0's content type.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The documented routes outside the Management API, each registered with its
/// `#[utoipa::path]`.
pub fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::jwks))
        .routes(routes!(oauth::openid_configuration))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::serve))
}

/// The whole application's routes.
pub fn router(state: AppState) -> Router {
    schema::warm();
    let (public, _) = public_routes().split_for_parts();
    let (management, _) = management::routes().split_for_parts();
    let management = management
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            management::authorize,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::management,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_management,
        ));
    Router::new()
        .merge(public)
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/config.json", get(console::config))
        .route("/console/{*file}", get(console::file))
        .merge(management)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::route_not_found()
}

async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed")
}

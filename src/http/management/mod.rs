//! The Management API (`/api/v2`). One file per resource; each handler checks its scope,
//! reads its input, calls the service and renders the Auth0 shape.

pub mod client_grants;
pub mod clients;
pub mod credentials;
pub mod log_streams;
pub mod logs;
pub mod organizations;
pub mod resource_servers;
pub mod signing_keys;
pub mod tenant_settings;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use super::error::ApiError;

/// Routes under `/api/v2`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients", get(clients::list).post(clients::create))
        .route(
            "/clients/{client_id}",
            get(clients::get)
                .patch(clients::update)
                .delete(clients::delete),
        )
        .route(
            "/clients/{client_id}/rotate-secret",
            post(clients::rotate_secret),
        )
        .route(
            "/clients/{client_id}/credentials",
            get(credentials::list).post(credentials::create),
        )
        .route(
            "/clients/{client_id}/credentials/{credential_id}",
            get(credentials::get)
                .patch(credentials::update)
                .delete(credentials::delete),
        )
        .route("/credentials/expiring", get(credentials::expiring))
        .route(
            "/resource-servers",
            get(resource_servers::list).post(resource_servers::create),
        )
        .route(
            "/resource-servers/{id}",
            get(resource_servers::get)
                .patch(resource_servers::update)
                .delete(resource_servers::delete),
        )
        .route(
            "/tenants/settings",
            get(tenant_settings::get).patch(tenant_settings::update),
        )
        .route("/keys/signing", get(signing_keys::list))
        .route(
            "/keys/signing/rotate",
            post(signing_keys::rotate).get(signing_keys::get_rotate),
        )
        .route("/keys/signing/{kid}", get(signing_keys::get))
        .route(
            "/keys/signing/{kid}/revoke",
            axum::routing::put(signing_keys::revoke),
        )
        .route(
            "/client-grants",
            get(client_grants::list).post(client_grants::create),
        )
        .route("/logs", get(logs::list))
        .route("/logs/{id}", get(logs::get))
        .route(
            "/log-streams",
            get(log_streams::list).post(log_streams::create),
        )
        .route(
            "/log-streams/{id}",
            get(log_streams::get)
                .patch(log_streams::update)
                .delete(log_streams::delete),
        )
        .route(
            "/client-grants/{id}",
            get(client_grants::get)
                .patch(client_grants::update)
                .delete(client_grants::delete),
        )
        .route(
            "/client-grants/{id}/organizations",
            get(organizations::grant_organizations),
        )
        .route(
            "/organizations",
            get(organizations::list).post(organizations::create),
        )
        .route(
            "/organizations/name/{name}",
            get(organizations::get_by_name),
        )
        .route(
            "/organizations/{id}",
            get(organizations::get)
                .patch(organizations::update)
                .delete(organizations::delete),
        )
        .route(
            "/organizations/{id}/client-grants",
            get(organizations::list_grants).post(organizations::associate),
        )
        .route(
            "/organizations/{id}/client-grants/{grant_id}",
            axum::routing::delete(organizations::dissociate),
        )
}

/// Path segments longer than this are refused before any lookup.
const MAX_PATH_PARAM: usize = 600;

/// Checks a path parameter's length (a 400 `invalid_uri` like Auth0's path validation).
pub fn path_param<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() || value.len() > MAX_PATH_PARAM {
        return Err(ApiError::invalid_uri(format!(
            "Path validation error: 'String length is out of range' on property {name}."
        )));
    }
    Ok(value)
}

/// 204 No Content.
pub fn no_content() -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::http::StatusCode::NO_CONTENT.into_response()
}

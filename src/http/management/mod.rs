//! The Management API (`/api/v2`). One file per resource; each handler declares its route,
//! documentation and scopes in its `#[utoipa::path]`, reads its input, calls the service and
//! renders the Auth0 shape.

pub mod client_grants;
pub mod clients;
pub mod credentials;
pub mod log_streams;
pub mod logs;
pub mod organizations;
pub mod resource_servers;
pub mod signing_keys;
pub mod tenant_settings;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, MatchedOperation, matched_operation};

/// Every Management operation, each registered with its handler's `#[utoipa::path]`: the
/// route, its documentation and the scopes it accepts (the attribute's `security`) are one
/// declaration. [`authorize`] enforces those scopes on every route registered here.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(clients::list))
        .routes(routes!(clients::create))
        .routes(routes!(clients::get))
        .routes(routes!(clients::update))
        .routes(routes!(clients::delete))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(credentials::list))
        .routes(routes!(credentials::create))
        .routes(routes!(credentials::get))
        .routes(routes!(credentials::update))
        .routes(routes!(credentials::delete))
        .routes(routes!(credentials::expiring))
        .routes(routes!(resource_servers::list))
        .routes(routes!(resource_servers::create))
        .routes(routes!(resource_servers::get))
        .routes(routes!(resource_servers::update))
        .routes(routes!(resource_servers::delete))
        .routes(routes!(client_grants::list))
        .routes(routes!(client_grants::create))
        .routes(routes!(client_grants::get))
        .routes(routes!(client_grants::update))
        .routes(routes!(client_grants::delete))
        .routes(routes!(organizations::list))
        .routes(routes!(organizations::create))
        .routes(routes!(organizations::get))
        .routes(routes!(organizations::get_by_name))
        .routes(routes!(organizations::update))
        .routes(routes!(organizations::delete))
        .routes(routes!(organizations::list_grants))
        .routes(routes!(organizations::associate))
        .routes(routes!(organizations::dissociate))
        .routes(routes!(organizations::grant_organizations))
        .routes(routes!(signing_keys::list))
        .routes(routes!(signing_keys::get))
        .routes(routes!(signing_keys::rotate))
        .routes(routes!(signing_keys::revoke))
        .routes(routes!(logs::list))
        .routes(routes!(logs::get))
        .routes(routes!(log_streams::list))
        .routes(routes!(log_streams::create))
        .routes(routes!(log_streams::get))
        .routes(routes!(log_streams::update))
        .routes(routes!(log_streams::delete))
        .routes(routes!(tenant_settings::get))
        .routes(routes!(tenant_settings::update))
        .route(ALIASES[0].1, axum::routing::get(signing_keys::get_rotate))
}

/// Routes served beyond the document, each answering as a documented operation whose scopes
/// and request schemas it takes: (method, route, the documented route).
pub const ALIASES: &[(&str, &str, &str)] = &[(
    "GET",
    "/api/v2/keys/signing/rotate",
    "/api/v2/keys/signing/{kid}",
)];

/// Authenticates every Management request (401) and admits it only with one of the scopes
/// its operation declares (403), before any handler or extractor reads it. A route that no
/// operation of the served document describes is refused: no handler runs unchecked.
pub async fn authorize(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let auth = Auth::from_request_parts(&mut parts, &state).await?;
    let Some(operation) = matched_operation(&parts.method, &parts.extensions) else {
        tracing::error!(method = %parts.method, path = %parts.uri.path(), "a Management route without an operation in the served document");
        return Err(ApiError::route_not_found());
    };
    auth.require(&operation.scopes)?;
    // The handler's `Auth` takes the verified caller from here, and its `Payload` and
    // `Query` the operation.
    parts.extensions.insert(auth.0);
    parts.extensions.insert(MatchedOperation(operation));
    Ok(next.run(Request::from_parts(parts, body)).await)
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

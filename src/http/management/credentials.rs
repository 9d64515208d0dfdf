//! `/api/v2/clients/{client_id}/credentials` — list, create, get, update (the seed's
//! PATCH of `expires_at`), delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{no_content, path_param};
use crate::domain::credential::{NewCredential, parse_patch};
use crate::domain::scopes::required;
use crate::http::error::ApiError;
use crate::http::extract::{Auth, Path, Payload};
use crate::http::{AppState, json_response};

/// `GET .../credentials`: every credential of the client, in creation order.
#[utoipa::path(
    get, path = "/api/v2/clients/{client_id}/credentials", operation_id = "get_credentials", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 200, description = "The client's credentials, in creation order.", body = Vec<crate::http::openapi::ClientCredential>)),
)]
pub async fn list(
    State(app): State<AppState>,
    auth: Auth,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(required::READ_CREDENTIALS)?;
    let aggregate = app.client(path_param("client_id", &client_id)?).await?;
    let views: Vec<_> = aggregate.credentials.iter().map(|c| c.view()).collect();
    Ok(json_response(StatusCode::OK, &views))
}

/// `POST .../credentials`: 201 with the credential.
#[utoipa::path(
    post, path = "/api/v2/clients/{client_id}/credentials", operation_id = "post_credentials", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client.")),
    request_body(content((crate::http::openapi::PostClientCredentialRequestContent = "application/json"), (crate::http::openapi::PostClientCredentialRequestContent = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "The new credential.", body = crate::http::openapi::ClientCredential)),
)]
pub async fn create(
    State(app): State<AppState>,
    auth: Auth,
    Path(client_id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    auth.require(required::CREATE_CREDENTIALS)?;
    let client_id = path_param("client_id", &client_id)?;
    let new = NewCredential::parse(payload.body()?)?;
    let credential = app.create_credential(client_id, new).await?;
    Ok(json_response(StatusCode::CREATED, &credential.view()))
}

/// `GET .../credentials/{credential_id}`.
#[utoipa::path(
    get, path = "/api/v2/clients/{client_id}/credentials/{credential_id}", operation_id = "get_credentials_by_credential_id", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client."), ("credential_id" = String, Path, description = "ID of the credential.")),
    responses((status = 200, description = "The credential.", body = crate::http::openapi::ClientCredential)),
)]
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path((client_id, credential_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    auth.require(required::READ_CREDENTIALS)?;
    let credential = app
        .credential(
            path_param("client_id", &client_id)?,
            path_param("credential_id", &credential_id)?,
        )
        .await?;
    Ok(json_response(StatusCode::OK, &credential.view()))
}

/// `PATCH .../credentials/{credential_id}` with `{"expires_at": <date-time> | null}`.
#[utoipa::path(
    patch, path = "/api/v2/clients/{client_id}/credentials/{credential_id}", operation_id = "patch_credentials_by_credential_id", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client."), ("credential_id" = String, Path, description = "ID of the credential.")),
    request_body(content((crate::http::openapi::PatchClientCredentialRequestContent = "application/json"), (crate::http::openapi::PatchClientCredentialRequestContent = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "The credential with its new expiry.", body = crate::http::openapi::ClientCredential)),
)]
pub async fn update(
    State(app): State<AppState>,
    auth: Auth,
    Path((client_id, credential_id)): Path<(String, String)>,
    payload: Payload,
) -> Result<Response, ApiError> {
    auth.require(required::UPDATE_CREDENTIALS)?;
    let client_id = path_param("client_id", &client_id)?;
    let credential_id = path_param("credential_id", &credential_id)?;
    let expires_at = parse_patch(payload.body()?)?;
    let credential = app
        .set_credential_expiry(client_id, credential_id, expires_at)
        .await?;
    Ok(json_response(StatusCode::OK, &credential.view()))
}

/// `DELETE .../credentials/{credential_id}`: 204; refused while attached.
#[utoipa::path(
    delete, path = "/api/v2/clients/{client_id}/credentials/{credential_id}", operation_id = "delete_credentials_by_credential_id", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client."), ("credential_id" = String, Path, description = "ID of the credential.")),
    responses((status = 204, description = "Deleted (refused with 400 while attached to the client's authentication method).")),
)]
pub async fn delete(
    State(app): State<AppState>,
    auth: Auth,
    Path((client_id, credential_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    auth.require(required::DELETE_CREDENTIALS)?;
    app.delete_credential(
        path_param("client_id", &client_id)?,
        path_param("credential_id", &credential_id)?,
    )
    .await?;
    Ok(no_content())
}

//! `/api/v2/clients` — list, create, get, update, delete, rotate-secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{no_content, path_param};
use crate::domain::client::{ClientUpdate, NewClient};
use crate::http::error::ApiError;
use crate::http::extract::{Auth, Fields, Path, Payload, Query, QueryParams, page_json};
use crate::http::{AppState, json_response};
use crate::store::ClientFilter;

/// Auth0's filters of `GET /clients`: `is_global`, `is_first_party` (booleans) and
/// `app_type` (a comma-separated list of application types). The query was checked against
/// Auth0's schema of each (`app_type`'s pattern lists the types) before.
fn client_filter(q: &QueryParams) -> Result<ClientFilter, ApiError> {
    Ok(ClientFilter {
        is_global: q.boolean("is_global")?,
        is_first_party: q.boolean("is_first_party")?,
        app_types: q
            .get("app_type")
            .map(|list| list.split(',').map(str::to_string).collect()),
    })
}

/// `GET /clients`.
#[utoipa::path(
    get, path = "/api/v2/clients", operation_id = "get_clients", tag = "clients",
    responses((status = 200, description = "A page of clients.")),
    security(("oAuth2ClientCredentials" = ["read:clients", "read:client_keys", "read:client_credentials"])),
)]
pub async fn list(
    State(app): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Response, ApiError> {
    let q = query.params()?;
    let paging = q.paging()?;
    let filter = Fields::parse(&q)?;
    let clients = client_filter(&q)?;
    let with_secrets = filter.as_ref().is_none_or(|f| f.shows("client_secret"));
    let page = app
        .list_clients_for(&auth.0, &clients, paging.request, with_secrets)
        .await?;
    let page = page.map(|json| Value::Object(Fields::select(filter.as_ref(), json)));
    Ok(json_response(
        StatusCode::OK,
        &page_json("clients", paging, page),
    ))
}

/// `POST /clients`: 201 with the client and its secret.
#[utoipa::path(
    post, path = "/api/v2/clients", operation_id = "post_clients", tag = "clients",
    responses((status = 201, description = "The new client, with its secret."), (status = 409, description = "A client with this id exists.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["create:clients"])),
)]
pub async fn create(
    State(app): State<AppState>,
    auth: Auth,
    payload: Payload,
) -> Result<Response, ApiError> {
    let new = payload.read(NewClient::parse)?;
    let client = app.create_client_for(&auth.0, new, &payload.value).await?;
    Ok(json_response(StatusCode::CREATED, &client))
}

/// `GET /clients/{client_id}`.
#[utoipa::path(
    get, path = "/api/v2/clients/{client_id}", operation_id = "get_clients_by_id", tag = "clients",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 200, description = "The client.")),
    security(("oAuth2ClientCredentials" = ["read:clients", "read:client_keys", "read:client_credentials"])),
)]
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path(client_id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    let q = query.params()?;
    let filter = Fields::parse(&q)?;
    let client_id = path_param("client_id", &client_id)?;
    let json = app.client_for(&auth.0, client_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &Fields::select(filter.as_ref(), json),
    ))
}

/// `PATCH /clients/{client_id}`.
#[utoipa::path(
    patch, path = "/api/v2/clients/{client_id}", operation_id = "patch_clients_by_id", tag = "clients",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 200, description = "The updated client.")),
    security(("oAuth2ClientCredentials" = ["update:clients", "update:client_keys", "update:client_credentials"])),
)]
pub async fn update(
    State(app): State<AppState>,
    auth: Auth,
    Path(client_id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let client_id = path_param("client_id", &client_id)?;
    let update = payload.read(ClientUpdate::parse)?;
    let client = app
        .update_client_for(&auth.0, client_id, update, &payload.value)
        .await?;
    Ok(json_response(StatusCode::OK, &client))
}

/// `DELETE /clients/{client_id}`: 204; credentials and grants go with it.
#[utoipa::path(
    delete, path = "/api/v2/clients/{client_id}", operation_id = "delete_clients_by_id", tag = "clients",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 204, description = "Deleted, with its credentials and grants.")),
    security(("oAuth2ClientCredentials" = ["delete:clients"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_client(path_param("client_id", &client_id)?)
        .await?;
    Ok(no_content())
}

/// `POST /clients/{client_id}/rotate-secret`: 200 with the client and its new secret.
#[utoipa::path(
    post, path = "/api/v2/clients/{client_id}/rotate-secret", operation_id = "post_rotate-secret", tag = "clients",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 200, description = "The client with its new secret.")),
    security(("oAuth2ClientCredentials" = ["update:client_keys"])),
)]
pub async fn rotate_secret(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    let (aggregate, secret) = app
        .rotate_secret(path_param("client_id", &client_id)?)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &aggregate.client.to_json(Some(&secret)),
    ))
}

//! `/api/v2/resource-servers` — `{id}` is the id or the URL-encoded identifier.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{no_content, path_param};
use crate::domain::resource_server::{NewResourceServer, ResourceServerUpdate};
use crate::http::error::ApiError;
use crate::http::extract::{Path, Payload, Query, page_json};
use crate::http::{AppState, json_response};

/// `GET /resource-servers`.
#[utoipa::path(
    get, path = "/api/v2/resource-servers", operation_id = "get_resource-servers", tag = "resource servers",
    responses((status = 200, description = "A page of resource servers.")),
    security(("oAuth2ClientCredentials" = ["read:resource_servers"])),
)]
pub async fn list(State(app): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let paging = query.params()?.paging()?;
    let page = app.list_resource_servers(paging.request).await?;
    let page = page.map(|rs| Value::Object(app.resource_server_json(&rs)));
    Ok(json_response(
        StatusCode::OK,
        &page_json("resource_servers", paging, page),
    ))
}

/// `POST /resource-servers`: 201; 409 for a duplicate identifier.
#[utoipa::path(
    post, path = "/api/v2/resource-servers", operation_id = "post_resource-servers", tag = "resource servers",
    responses((status = 201, description = "The new resource server."), (status = 409, description = "The identifier is taken.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["create:resource_servers"])),
)]
pub async fn create(State(app): State<AppState>, payload: Payload) -> Result<Response, ApiError> {
    let new = payload.read(NewResourceServer::parse)?;
    let rs = app.create_resource_server(new).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &app.resource_server_json(&rs),
    ))
}

/// `GET /resource-servers/{id}`.
#[utoipa::path(
    get, path = "/api/v2/resource-servers/{id}", operation_id = "get_resource-servers_by_id", tag = "resource servers",
    params(("id" = String, Path, description = "ID or URL-encoded identifier of the resource server.")),
    responses((status = 200, description = "The resource server.")),
    security(("oAuth2ClientCredentials" = ["read:resource_servers"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rs = app.resource_server(path_param("id", &id)?).await?;
    Ok(json_response(
        StatusCode::OK,
        &app.resource_server_json(&rs),
    ))
}

/// `PATCH /resource-servers/{id}`.
#[utoipa::path(
    patch, path = "/api/v2/resource-servers/{id}", operation_id = "patch_resource-servers_by_id", tag = "resource servers",
    params(("id" = String, Path, description = "ID or URL-encoded identifier of the resource server.")),
    responses((status = 200, description = "The updated resource server.")),
    security(("oAuth2ClientCredentials" = ["update:resource_servers"])),
)]
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let update = payload.read(ResourceServerUpdate::parse)?;
    let rs = app.update_resource_server(id, update).await?;
    Ok(json_response(
        StatusCode::OK,
        &app.resource_server_json(&rs),
    ))
}

/// `DELETE /resource-servers/{id}`: 204; its client grants go with it.
#[utoipa::path(
    delete, path = "/api/v2/resource-servers/{id}", operation_id = "delete_resource-servers_by_id", tag = "resource servers",
    params(("id" = String, Path, description = "ID or URL-encoded identifier of the resource server.")),
    responses((status = 204, description = "Deleted, with its client grants.")),
    security(("oAuth2ClientCredentials" = ["delete:resource_servers"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_resource_server(path_param("id", &id)?).await?;
    Ok(no_content())
}

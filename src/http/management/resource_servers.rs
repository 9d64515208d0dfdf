//! `/api/v2/resource-servers` — `{id}` is the id or the URL-encoded identifier.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{no_content, path_param};
use crate::domain::resource_server::{NewResourceServer, ResourceServerUpdate};
use crate::domain::scopes::required;
use crate::http::error::ApiError;
use crate::http::extract::{Auth, Path, Payload, QueryParams, page_json};
use crate::http::{AppState, json_response};

/// `GET /resource-servers`.
pub async fn list(
    State(app): State<AppState>,
    auth: Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    auth.require(required::READ_RESOURCE_SERVERS)?;
    let paging = QueryParams::parse(query.as_deref()).paging()?;
    let page = app.store.list_resource_servers(paging.request).await?;
    let page = page.map(|rs| Value::Object(rs.to_json()));
    Ok(json_response(
        StatusCode::OK,
        &page_json("resource_servers", paging, page),
    ))
}

/// `POST /resource-servers`: 201; 409 for a duplicate identifier.
pub async fn create(
    State(app): State<AppState>,
    auth: Auth,
    payload: Payload,
) -> Result<Response, ApiError> {
    auth.require(required::CREATE_RESOURCE_SERVERS)?;
    let new = NewResourceServer::parse(payload.body()?)?;
    let rs = app.create_resource_server(new).await?;
    Ok(json_response(StatusCode::CREATED, &rs.to_json()))
}

/// `GET /resource-servers/{id}`.
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(required::READ_RESOURCE_SERVERS)?;
    let rs = app.resource_server(path_param("id", &id)?).await?;
    Ok(json_response(StatusCode::OK, &rs.to_json()))
}

/// `PATCH /resource-servers/{id}`.
pub async fn update(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    auth.require(required::UPDATE_RESOURCE_SERVERS)?;
    let id = path_param("id", &id)?;
    let update = ResourceServerUpdate::parse(payload.body()?)?;
    let rs = app.update_resource_server(id, update).await?;
    Ok(json_response(StatusCode::OK, &rs.to_json()))
}

/// `DELETE /resource-servers/{id}`: 204; its client grants go with it.
pub async fn delete(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(required::DELETE_RESOURCE_SERVERS)?;
    app.delete_resource_server(path_param("id", &id)?).await?;
    Ok(no_content())
}

//! `/api/v2/log-streams`: Auth0's `http` log streams (delivery: [`crate::log_streams`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{no_content, path_param};
use crate::domain::log_stream::{LogStreamUpdate, NewLogStream};
use crate::http::error::ApiError;
use crate::http::extract::{Path, Payload};
use crate::http::{AppState, json_response};

/// `GET /log-streams`: every stream, oldest first (Auth0 pages none).
#[utoipa::path(
    get, path = "/api/v2/log-streams", operation_id = "get_log-streams", tag = "log streams",
    responses((status = 200, description = "Returning log streams")),
    security(("oAuth2ClientCredentials" = ["read:log_streams"])),
)]
pub async fn list(State(app): State<AppState>) -> Result<Response, ApiError> {
    let streams: Vec<Value> = app
        .log_streams()
        .await?
        .iter()
        .map(|r| Value::Object(app.log_stream_json(r)))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(streams)))
}

/// `POST /log-streams`: 200 (Auth0's status) with the stream; `type` other than `http` is a
/// 400.
#[utoipa::path(
    post, path = "/api/v2/log-streams", operation_id = "post_log-streams", tag = "log streams",
    responses((status = 200, description = "Log stream created"), (status = 400, description = "Invalid request body, or a type other than http.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["create:log_streams"])),
)]
pub async fn create(State(app): State<AppState>, payload: Payload) -> Result<Response, ApiError> {
    let new = payload.read(NewLogStream::parse)?;
    let record = app.create_log_stream(new).await?;
    Ok(json_response(StatusCode::OK, &app.log_stream_json(&record)))
}

/// `GET /log-streams/{id}`.
#[utoipa::path(
    get, path = "/api/v2/log-streams/{id}", operation_id = "get_log-streams_by_id", tag = "log streams",
    params(("id" = String, Path, description = "The id of the log stream to get")),
    responses((status = 200, description = "Returning log stream."), (status = 404, description = "The log stream does not exist.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["read:log_streams"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = app.log_stream(path_param("id", &id)?).await?;
    Ok(json_response(StatusCode::OK, &app.log_stream_json(&record)))
}

/// `PATCH /log-streams/{id}`: `status: active` resumes a paused or suspended stream from
/// its cursor.
#[utoipa::path(
    patch, path = "/api/v2/log-streams/{id}", operation_id = "patch_log-streams_by_id", tag = "log streams",
    params(("id" = String, Path, description = "The id of the log stream to get")),
    responses((status = 200, description = "Log stream updated"), (status = 404, description = "The log stream does not exist.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["update:log_streams"])),
)]
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let update = payload.read(LogStreamUpdate::parse)?;
    let record = app.update_log_stream(id, update).await?;
    Ok(json_response(StatusCode::OK, &app.log_stream_json(&record)))
}

/// `DELETE /log-streams/{id}`: 204.
#[utoipa::path(
    delete, path = "/api/v2/log-streams/{id}", operation_id = "delete_log-streams_by_id", tag = "log streams",
    params(("id" = String, Path, description = "The id of the log stream to delete")),
    responses((status = 204, description = "The log stream was deleted."), (status = 404, description = "The log stream does not exist.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["delete:log_streams"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_log_stream(path_param("id", &id)?).await?;
    Ok(no_content())
}

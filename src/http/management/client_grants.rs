//! `/api/v2/client-grants` — offset and checkpoint paging; Auth0's filters `audience`,
//! `client_id`, `subject_type`, `allow_any_organization`, `default_for`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{no_content, path_param};
use crate::domain::client_grant::{
    ClientGrantUpdate, DEFAULT_FOR_DESC, DEFAULT_FOR_THIRD_PARTY, NewClientGrant,
    SUBJECT_TYPE_DESC, SubjectType,
};
use crate::http::error::ApiError;
use crate::http::extract::{Path, Payload, Query, page_json};
use crate::http::{AppState, json_response};
use crate::store::GrantFilter;

/// `GET /client-grants`.
#[utoipa::path(
    get, path = "/api/v2/client-grants", operation_id = "get_client-grants", tag = "client grants",
    responses((status = 200, description = "A page of client grants.")),
    security(("oAuth2ClientCredentials" = ["read:client_grants"])),
)]
pub async fn list(State(app): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let q = query.params()?;
    let paging = q.paging()?;
    let filter = GrantFilter {
        audience: q
            .get("audience")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        client_id: q
            .get("client_id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        subject_type: q.enumerated("subject_type", SubjectType::parse, SUBJECT_TYPE_DESC)?,
        // Auth0's enum for this filter has one value, `true`.
        allow_any_organization: q
            .enumerated(
                "allow_any_organization",
                |v| (v == "true").then_some(()),
                "Optional filter on allow_any_organization.",
            )?
            .is_some(),
        default_grants_only: q
            .enumerated(
                "default_for",
                |v| (v == DEFAULT_FOR_THIRD_PARTY).then_some(()),
                DEFAULT_FOR_DESC,
            )?
            .is_some(),
        ..Default::default()
    };
    let page = app.list_client_grants(&filter, paging.request).await?;
    let page = page.map(|g| Value::Object(g.to_json()));
    Ok(json_response(
        StatusCode::OK,
        &page_json("client_grants", paging, page),
    ))
}

/// `POST /client-grants`: 201; 404 for an unknown client or audience; 409 for a duplicate.
#[utoipa::path(
    post, path = "/api/v2/client-grants", operation_id = "post_client-grants", tag = "client grants",
    responses((status = 201, description = "The new client grant."), (status = 409, description = "The client already has a grant for this audience.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["create:client_grants"])),
)]
pub async fn create(State(app): State<AppState>, payload: Payload) -> Result<Response, ApiError> {
    let new = payload.read(NewClientGrant::parse)?;
    let grant = app.create_client_grant(new).await?;
    Ok(json_response(StatusCode::CREATED, &grant.to_json()))
}

/// `GET /client-grants/{id}`.
#[utoipa::path(
    get, path = "/api/v2/client-grants/{id}", operation_id = "get_client-grant", tag = "client grants",
    params(("id" = String, Path, description = "ID of the client grant.")),
    responses((status = 200, description = "The client grant.")),
    security(("oAuth2ClientCredentials" = ["read:client_grants"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let grant = app.client_grant(path_param("id", &id)?).await?;
    Ok(json_response(StatusCode::OK, &grant.to_json()))
}

/// `PATCH /client-grants/{id}`.
#[utoipa::path(
    patch, path = "/api/v2/client-grants/{id}", operation_id = "patch_client-grants_by_id", tag = "client grants",
    params(("id" = String, Path, description = "ID of the client grant.")),
    responses((status = 200, description = "The updated client grant.")),
    security(("oAuth2ClientCredentials" = ["update:client_grants"])),
)]
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let update = payload.read(ClientGrantUpdate::parse)?;
    let grant = app.update_client_grant(id, update).await?;
    Ok(json_response(StatusCode::OK, &grant.to_json()))
}

/// `DELETE /client-grants/{id}`: 204.
#[utoipa::path(
    delete, path = "/api/v2/client-grants/{id}", operation_id = "delete_client-grants_by_id", tag = "client grants",
    params(("id" = String, Path, description = "ID of the client grant.")),
    responses((status = 204, description = "Deleted.")),
    security(("oAuth2ClientCredentials" = ["delete:client_grants"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_client_grant(path_param("id", &id)?).await?;
    Ok(no_content())
}

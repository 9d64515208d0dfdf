//! `/api/v2/clients/{client_id}/credentials` — list, create, get, update (the seed's
//! PATCH of `expires_at`), delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{no_content, path_param};
use crate::domain::credential::{NewCredential, parse_patch};
use crate::http::error::ApiError;
use crate::http::extract::{Path, Payload};
use crate::http::{AppState, json_response};

/// `GET .../credentials`: every credential of the client, in creation order.
#[utoipa::path(
    get, path = "/api/v2/clients/{client_id}/credentials", operation_id = "get_credentials", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 200, description = "The client's credentials, in creation order.")),
    security(("oAuth2ClientCredentials" = ["read:client_credentials"])),
)]
pub async fn list(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    let aggregate = app.client(path_param("client_id", &client_id)?).await?;
    let views: Vec<_> = aggregate.credentials.iter().map(|c| c.view()).collect();
    Ok(json_response(StatusCode::OK, &views))
}

/// `POST .../credentials`: 201 with the credential.
#[utoipa::path(
    post, path = "/api/v2/clients/{client_id}/credentials", operation_id = "post_credentials", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client.")),
    responses((status = 201, description = "The new credential.")),
    security(("oAuth2ClientCredentials" = ["create:client_credentials"])),
)]
pub async fn create(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let client_id = path_param("client_id", &client_id)?;
    let new = payload.read(NewCredential::parse)?;
    let credential = app.create_credential(client_id, new).await?;
    Ok(json_response(StatusCode::CREATED, &credential.view()))
}

/// `GET .../credentials/{credential_id}`.
#[utoipa::path(
    get, path = "/api/v2/clients/{client_id}/credentials/{credential_id}", operation_id = "get_credentials_by_credential_id", tag = "client credentials",
    params(("client_id" = String, Path, description = "ID of the client."), ("credential_id" = String, Path, description = "ID of the credential.")),
    responses((status = 200, description = "The credential.")),
    security(("oAuth2ClientCredentials" = ["read:client_credentials"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path((client_id, credential_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
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
    responses((status = 200, description = "The credential with its new expiry.")),
    security(("oAuth2ClientCredentials" = ["update:client_credentials"])),
)]
pub async fn update(
    State(app): State<AppState>,
    Path((client_id, credential_id)): Path<(String, String)>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let client_id = path_param("client_id", &client_id)?;
    let credential_id = path_param("credential_id", &credential_id)?;
    let expires_at = payload.read(parse_patch)?;
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
    security(("oAuth2ClientCredentials" = ["delete:client_credentials"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path((client_id, credential_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app.delete_credential(
        path_param("client_id", &client_id)?,
        path_param("credential_id", &credential_id)?,
    )
    .await?;
    Ok(no_content())
}

/// Reads `before`: an RFC 3339 date-time, or a date (`YYYY-MM-DD`, its midnight UTC).
fn parse_before(text: &str) -> Option<crate::domain::time::Timestamp> {
    crate::domain::time::Timestamp::parse(text).or_else(|| {
        if text.len() == 10 {
            crate::domain::time::Timestamp::parse(&format!("{text}T00:00:00Z"))
        } else {
            None
        }
    })
}

/// `GET /credentials/expiring` (Clavis's own): every credential a client authenticates with
/// whose effective expiry is before `before` (every one that expires, without it), soonest
/// first, each as `GET .../credentials/{id}` shows it plus `client_id` and `client_name`.
#[utoipa::path(
    get, path = "/api/v2/credentials/expiring", operation_id = "get_expiring_credentials", tag = "client credentials",
    responses(
        (status = 200, description = "A page of the attached credentials that expire before `before` (already expired ones included), soonest first (ties by credential id); a plain array, `{start, limit, total, credentials}` with `include_totals=true`, or `{next, credentials}` with `take`/`from` (`next` is a position in the list)."),
        (status = 400, description = "`before` is not a date or date-time.", body = crate::http::error::ErrorBody),
    ),
    security(("oAuth2ClientCredentials" = ["read:client_credentials"])),
)]
pub async fn expiring(
    State(app): State<AppState>,
    query: crate::http::extract::Query,
) -> Result<Response, ApiError> {
    use serde_json::Value;

    use crate::http::extract::page_json;
    use crate::store::{Page, PageRequest};
    let q = query.params()?;
    let before = match q.get("before").filter(|b| !b.is_empty()) {
        None => None,
        Some(text) => Some(parse_before(text).ok_or_else(|| {
            ApiError::invalid_query(
                "Query validation error: 'Object didn't pass validation for format date-time' on property before (Credentials expiring before this date or date-time.).",
            )
        })?),
    };
    let paging = q.paging()?;
    let all = app.model.expiring_credentials(before);
    let total = all.len() as u64;
    let (start, count) = match paging.request {
        PageRequest::Offset { page, per_page } => (page.saturating_mul(per_page), per_page),
        PageRequest::Checkpoint { after, take } => (after.unwrap_or(0) as u64, take),
    };
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(all.len());
    let end = start
        .saturating_add(usize::try_from(count).unwrap_or(usize::MAX))
        .min(all.len());
    let mut items = Vec::with_capacity(end - start);
    for c in &all[start..end] {
        // Detached or deleted since the model was read: left out.
        let Ok(credential) = app.credential(&c.client_id, &c.credential_id).await else {
            continue;
        };
        let Ok(Value::Object(mut item)) = serde_json::to_value(credential.view()) else {
            continue;
        };
        item.insert("client_id".into(), Value::String(c.client_id.clone()));
        item.insert("client_name".into(), Value::String(c.client_name.clone()));
        items.push(Value::Object(item));
    }
    let next = (matches!(paging.request, PageRequest::Checkpoint { .. }) && end < all.len())
        .then_some(end as i64);
    let page = Page {
        items,
        total: Some(total),
        next,
    };
    Ok(json_response(
        StatusCode::OK,
        &page_json("credentials", paging, page),
    ))
}

//! `/api/v2/clients` — list, create, get, update, delete, rotate-secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::{no_content, path_param};
use crate::domain::client::{Client, ClientUpdate, NewClient};
use crate::domain::scopes::{SEE_SECRET, fields};
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

/// Renders a client; the secret only while a secret method is in use and only for callers
/// allowed to see it.
fn render(client: &Client, secret: Option<&str>, auth: &Auth) -> Map<String, Value> {
    let secret = secret.filter(|_| client.uses_secret() && auth.has_any(SEE_SECRET));
    client.to_json(secret)
}

/// Renders a client for a read: only the properties the caller's read scopes show
/// ([`fields::READ_CLIENT`]).
fn render_read(client: &Client, secret: Option<&str>, auth: &Auth) -> Map<String, Value> {
    let mut json = render(client, secret, auth);
    auth.visible_fields(&fields::READ_CLIENT, &mut json);
    json
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
    let page = app.list_clients(&clients, paging.request).await?;
    let show_secrets =
        auth.has_any(SEE_SECRET) && filter.as_ref().is_none_or(|f| f.shows("client_secret"));
    let page = page.map(|row| {
        let client = &row.client;
        // Secrets are unsealed only when they will be shown.
        let secret = if show_secrets && client.uses_secret() {
            app.open_secret(&client.client_id, row.sealed_secret.as_deref())
        } else {
            None
        };
        let json = render_read(client, secret.as_deref(), &auth);
        Value::Object(Fields::select(filter.as_ref(), json))
    });
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
    let new = NewClient::parse(payload.body()?)?;
    auth.require_fields(&fields::CREATE_CLIENT, &payload.value, true)?;
    let (aggregate, secret) = app.create_client(new).await?;
    // The creator sees the new secret (unless the client uses credentials): it is the only
    // moment it is handed out without a read scope.
    let secret = Some(secret.as_str()).filter(|_| aggregate.client.uses_secret());
    Ok(json_response(
        StatusCode::CREATED,
        &aggregate.client.to_json(secret),
    ))
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
    let aggregate = app.client(client_id).await?;
    let secret = app.open_secret(client_id, aggregate.sealed_secret.as_deref());
    let json = render_read(&aggregate.client, secret.as_deref(), &auth);
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
    let update = ClientUpdate::parse(payload.body()?)?;
    auth.require_fields(&fields::UPDATE_CLIENT, &payload.value, false)?;
    let aggregate = app.update_client(client_id, update).await?;
    let secret = app.open_secret(client_id, aggregate.sealed_secret.as_deref());
    Ok(json_response(
        StatusCode::OK,
        &render(&aggregate.client, secret.as_deref(), &auth),
    ))
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

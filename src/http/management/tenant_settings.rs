//! `/api/v2/tenants/settings`: the tenant's `default_token_quota` and labels (what Clavis
//! does with every other setting of Auth0's is declared in `properties::TENANT_SETTINGS`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::domain::tenant_settings::TenantSettingsUpdate;
use crate::http::error::ApiError;
use crate::http::extract::{Fields, Payload, Query};
use crate::http::{AppState, json_response};

/// `GET /tenants/settings`.
#[utoipa::path(
    get, path = "/api/v2/tenants/settings", operation_id = "tenant_settings_route", tag = "tenants",
    responses((status = 200, description = "Tenant settings successfully retrieved: the ones that were set.")),
    security(("oAuth2ClientCredentials" = ["read:tenant_settings"])),
)]
pub async fn get(State(app): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let q = query.params()?;
    let settings = app.tenant_settings().await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(Fields::select(Fields::parse(&q)?.as_ref(), settings.values)),
    ))
}

/// `PATCH /tenants/settings`.
#[utoipa::path(
    patch, path = "/api/v2/tenants/settings", operation_id = "patch_settings", tag = "tenants",
    responses(
        (status = 200, description = "Tenant settings successfully updated."),
        (status = 400, description = "Invalid request body, or a setting Clavis refuses (the contract's table).", body = crate::http::error::ErrorBody),
    ),
    security(("oAuth2ClientCredentials" = ["update:tenant_settings"])),
)]
pub async fn update(State(app): State<AppState>, payload: Payload) -> Result<Response, ApiError> {
    let update = payload.read(TenantSettingsUpdate::parse)?;
    let settings = app.update_tenant_settings(update).await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(settings.values),
    ))
}

//! `/api/v2/tenants/settings`: the tenant's `default_token_quota` and labels (what Clavis
//! does with every other setting of Auth0's is declared in `properties::TENANT_SETTINGS`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::domain::scopes::required;
use crate::domain::tenant_settings::TenantSettingsUpdate;
use crate::http::error::ApiError;
use crate::http::extract::{Auth, Payload, Query, QueryParams};
use crate::http::{AppState, json_response};

/// `fields` / `include_fields` of `GET /tenants/settings`.
fn select(q: &QueryParams, mut values: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let Some(fields) = q.get("fields").filter(|f| !f.is_empty()) else {
        return Ok(values);
    };
    let fields: Vec<&str> = fields.split(',').map(str::trim).collect();
    if fields.iter().any(|f| f.is_empty() || f.len() > 100) {
        return Err(ApiError::invalid_query(
            "Query validation error: 'String does not match pattern' on property fields (Comma-separated list of fields to include or exclude (based on value provided for include_fields) in the result. Leave empty to retrieve all fields.).",
        ));
    }
    let include = q.boolean("include_fields")?.unwrap_or(true);
    values.retain(|k, _| fields.contains(&k.as_str()) == include);
    Ok(values)
}

/// `GET /tenants/settings`.
#[utoipa::path(
    get, path = "/api/v2/tenants/settings", operation_id = "tenant_settings_route", tag = "tenants",
    params(
        ("fields" = Option<String>, Query, description = "Comma-separated list of fields to include or exclude (based on value provided for include_fields) in the result. Leave empty to retrieve all fields."),
        ("include_fields" = Option<bool>, Query, description = "Whether specified fields are to be included (true) or excluded (false)."),
    ),
    responses((status = 200, description = "Tenant settings successfully retrieved: the ones that were set.")),
)]
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Response, ApiError> {
    auth.require(required::READ_TENANT_SETTINGS)?;
    let q = query.params()?;
    let settings = app.tenant_settings().await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(select(&q, settings.values)?),
    ))
}

/// `PATCH /tenants/settings`.
#[utoipa::path(
    patch, path = "/api/v2/tenants/settings", operation_id = "patch_settings", tag = "tenants",
    responses(
        (status = 200, description = "Tenant settings successfully updated."),
        (status = 400, description = "Invalid request body, or a setting Clavis refuses (the contract's table).", body = crate::http::error::ErrorBody),
    ),
)]
pub async fn update(
    State(app): State<AppState>,
    auth: Auth,
    payload: Payload,
) -> Result<Response, ApiError> {
    auth.require(required::UPDATE_TENANT_SETTINGS)?;
    let update = TenantSettingsUpdate::parse(payload.body()?)?;
    let settings = app.update_tenant_settings(update).await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Object(settings.values),
    ))
}

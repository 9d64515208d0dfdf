//! `/api/v2/organizations` (offset and checkpoint paging), `/organizations/name/{name}`,
//! `/organizations/{id}/client-grants` and `/client-grants/{id}/organizations`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{no_content, path_param};
use crate::domain::organization::{Association, NewOrganization, OrganizationUpdate};
use crate::http::error::ApiError;
use crate::http::extract::{Path, Payload, Query, QueryParams, page_json};
use crate::http::{AppState, json_response};
use crate::store::{GrantFilter, OrganizationFilter, OrganizationSort, PageRequest};

/// Most `grant_ids` values in one list request (Auth0: "max 10").
const MAX_GRANT_IDS: usize = 10;

/// `GET /organizations`.
#[utoipa::path(
    get, path = "/api/v2/organizations", operation_id = "get_organizations", tag = "organizations",
    responses((status = 200, description = "A page of organizations.")),
    security(("oAuth2ClientCredentials" = ["read:organizations"])),
)]
pub async fn list(State(app): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let q = query.params()?;
    let sort = q
        .get("sort")
        .filter(|s| !s.is_empty())
        .map(|s| {
            OrganizationSort::parse(s).ok_or_else(|| {
                ApiError::invalid_query(format!(
                    "Query validation error: 'String does not match pattern ^((display_name)|(created_at)|(name))\\:(1|-1)$: {s}' on property sort (Field to sort by. Use field:order where order is 1 for ascending and -1 for descending. Defaults to created_at:1.)."
                ))
            })
        })
        .transpose()?
        .filter(|s| !s.is_creation_order());
    if let Some(sort) = sort
        && (q.get("take").is_some() || q.get("from").is_some_and(|f| !f.is_empty()))
    {
        return sorted_checkpoint_page(&app, &q, sort).await;
    }
    let paging = q.paging()?;
    let filter = OrganizationFilter {
        sort,
        ..Default::default()
    };
    let page = app
        .list_organizations(&filter, paging.request)
        .await?
        .map(|o| Value::Object(o.to_json()));
    Ok(json_response(
        StatusCode::OK,
        &page_json("organizations", paging, page),
    ))
}

/// Checkpoint paging (`from`/`take`) in another order than creation order: the cursor is the
/// position in that order (`off:<n>`, base64url), so a list that changes between pages may
/// repeat or skip an item, as offset paging does.
async fn sorted_checkpoint_page(
    app: &AppState,
    q: &QueryParams,
    sort: OrganizationSort,
) -> Result<Response, ApiError> {
    const TAKE_DESC: &str = "Number of results per page. Defaults to 50.";
    let take: u64 = match q.get("take") {
        None => 50,
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_query(format!(
                    "Query validation error: 'Expected an integer from 1 to 100' on property take ({TAKE_DESC})."
                ))
            })?,
    };
    let invalid = || {
        ApiError::invalid_query(
            "Query validation error: 'Invalid checkpoint' on property from (Optional Id from which to start selection.).",
        )
    };
    let offset: u64 = match q.get("from").filter(|f| !f.is_empty()) {
        None => 0,
        Some(from) => clavis_crypto::encoding::b64url_decode(from)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.strip_prefix("off:").and_then(|n| n.parse().ok()))
            .filter(|n: &u64| n.is_multiple_of(take))
            .ok_or_else(invalid)?,
    };
    let filter = OrganizationFilter {
        sort: Some(sort),
        ..Default::default()
    };
    let page = app
        .list_organizations(
            &filter,
            PageRequest::Offset {
                page: offset / take,
                per_page: take,
            },
        )
        .await?;
    let seen = offset + page.items.len() as u64;
    let mut body = serde_json::Map::new();
    if !page.items.is_empty() && seen < page.total.unwrap_or(0) {
        body.insert(
            "next".into(),
            Value::String(clavis_crypto::encoding::b64url(
                format!("off:{seen}").as_bytes(),
            )),
        );
    }
    body.insert(
        "organizations".into(),
        Value::Array(
            page.items
                .into_iter()
                .map(|o| Value::Object(o.to_json()))
                .collect(),
        ),
    );
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}

/// `POST /organizations`: 201; 409 for a name already taken.
#[utoipa::path(
    post, path = "/api/v2/organizations", operation_id = "post_organizations", tag = "organizations",
    responses((status = 201, description = "Organization successfully created."), (status = 409, description = "An organization with this name already exists.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["create:organizations"])),
)]
pub async fn create(State(app): State<AppState>, payload: Payload) -> Result<Response, ApiError> {
    let new = payload.read(NewOrganization::parse)?;
    let org = app.create_organization(new).await?;
    Ok(json_response(StatusCode::CREATED, &org.to_json()))
}

/// `GET /organizations/{id}`.
#[utoipa::path(
    get, path = "/api/v2/organizations/{id}", operation_id = "get_organizations_by_id", tag = "organizations",
    params(("id" = String, Path, description = "ID of the organization to retrieve.")),
    responses((status = 200, description = "Organization successfully retrieved."), (status = 404, description = "No organization found by that id or name.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["read:organizations"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let org = app.organization(path_param("id", &id)?).await?;
    Ok(json_response(StatusCode::OK, &org.to_json()))
}

/// `GET /organizations/name/{name}`.
#[utoipa::path(
    get, path = "/api/v2/organizations/name/{name}", operation_id = "get_name_by_name", tag = "organizations",
    params(("name" = String, Path, description = "name of the organization to retrieve.")),
    responses((status = 200, description = "Organization successfully retrieved."), (status = 404, description = "No organization found by that id or name.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["read:organizations"])),
)]
pub async fn get_by_name(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if name.is_empty() || name.chars().count() > 50 {
        return Err(ApiError::invalid_uri(
            "Path validation error: 'String length is out of range' on property name (name of the organization to retrieve.).",
        ));
    }
    let org = app.organization_by_name(&name).await?;
    Ok(json_response(StatusCode::OK, &org.to_json()))
}

/// `PATCH /organizations/{id}`.
#[utoipa::path(
    patch, path = "/api/v2/organizations/{id}", operation_id = "patch_organizations_by_id", tag = "organizations",
    params(("id" = String, Path, description = "ID of the organization to update.")),
    responses((status = 200, description = "Organization successfully updated."), (status = 409, description = "An organization with this name already exists.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["update:organizations"])),
)]
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let update = payload.read(OrganizationUpdate::parse)?;
    let org = app.update_organization(id, update).await?;
    Ok(json_response(StatusCode::OK, &org.to_json()))
}

/// `DELETE /organizations/{id}`: 204; its client-grant associations go with it.
#[utoipa::path(
    delete, path = "/api/v2/organizations/{id}", operation_id = "delete_organizations_by_id", tag = "organizations",
    params(("id" = String, Path, description = "Organization identifier.")),
    responses((status = 204, description = "The organization was deleted."), (status = 404, description = "The organization does not exist.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["delete:organizations"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_organization(path_param("id", &id)?).await?;
    Ok(no_content())
}

/// Every value of a repeated query parameter.
fn repeated(raw: Option<&str>, key: &str) -> Vec<String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    })
    .unwrap_or_default()
}

/// `GET /organizations/{id}/client-grants`: the associated grants, in grant creation order.
#[utoipa::path(
    get, path = "/api/v2/organizations/{id}/client-grants", operation_id = "get_organization-client-grants", tag = "organizations",
    params(("id" = String, Path, description = "Organization identifier.")),
    responses((status = 200, description = "Client grants successfully retrieved."), (status = 404, description = "No organization found by that id or name.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["read:organization_client_grants"])),
)]
pub async fn list_grants(
    State(app): State<AppState>,
    Path(id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let q = query.params()?;
    let paging = q.offset_paging()?;
    let grant_ids = repeated(query.as_deref(), "grant_ids");
    if grant_ids.len() > MAX_GRANT_IDS {
        return Err(ApiError::invalid_query(format!(
            "Query validation error: 'Array is too long ({}), maximum {MAX_GRANT_IDS}' on property grant_ids (Optional filter on the ID of the client grant.).",
            grant_ids.len()
        )));
    }
    // 404 for an unknown organization rather than an empty list.
    app.organization(id).await?;
    let filter = GrantFilter {
        audience: q
            .get("audience")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        client_id: q
            .get("client_id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        organization_id: Some(id.to_string()),
        ids: (!grant_ids.is_empty()).then_some(grant_ids),
        ..Default::default()
    };
    let page = app
        .list_client_grants(&filter, paging.request)
        .await?
        .map(|g| Value::Object(organization_grant_json(&g)));
    Ok(json_response(
        StatusCode::OK,
        &page_json("client_grants", paging, page),
    ))
}

/// Auth0's `OrganizationClientGrant`: the grant's id, client, audience, scope and
/// organization settings.
fn organization_grant_json(
    grant: &crate::domain::client_grant::ClientGrant,
) -> serde_json::Map<String, Value> {
    let mut m = grant.to_json();
    m.retain(|k, _| {
        matches!(
            k.as_str(),
            "id" | "client_id"
                | "audience"
                | "scope"
                | "organization_usage"
                | "allow_any_organization"
        )
    });
    m
}

/// `POST /organizations/{id}/client-grants`: 201 with the grant; 404 for an unknown
/// organization or grant; 409 when already associated.
#[utoipa::path(
    post, path = "/api/v2/organizations/{id}/client-grants", operation_id = "create_organization-client-grants", tag = "organizations",
    params(("id" = String, Path, description = "Organization identifier.")),
    responses((status = 201, description = "Client Grant successfully associated with Organization."), (status = 404, description = "The grant or the organization does not exist.", body = crate::http::error::ErrorBody), (status = 409, description = "The client grant has already been added to this organization.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["create:organization_client_grants"])),
)]
pub async fn associate(
    State(app): State<AppState>,
    Path(id): Path<String>,
    payload: Payload,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let association = payload.read(Association::parse)?;
    let grant = app
        .associate_client_grant(id, &association.grant_id)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &organization_grant_json(&grant),
    ))
}

/// `DELETE /organizations/{id}/client-grants/{grant_id}`: 204 (also when the grant was not
/// associated); 404 for an unknown organization.
#[utoipa::path(
    delete, path = "/api/v2/organizations/{id}/client-grants/{grant_id}", operation_id = "delete_client-grants_by_grant_id", tag = "organizations",
    params(("id" = String, Path, description = "Organization identifier."), ("grant_id" = String, Path, description = "The Client Grant ID to remove from the organization")),
    responses((status = 204, description = "The Client Grant was removed from the Organization."), (status = 404, description = "No organization found by that id.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["delete:organization_client_grants"])),
)]
pub async fn dissociate(
    State(app): State<AppState>,
    Path((id, grant_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app.dissociate_client_grant(path_param("id", &id)?, path_param("grant_id", &grant_id)?)
        .await?;
    Ok(no_content())
}

/// `GET /client-grants/{id}/organizations`: the organizations a grant is associated with.
#[utoipa::path(
    get, path = "/api/v2/client-grants/{id}/organizations", operation_id = "get_client-grant-organizations", tag = "organizations",
    params(("id" = String, Path, description = "ID of the client grant")),
    responses((status = 200, description = "Organizations successfully retrieved."), (status = 404, description = "The client grant does not exist.", body = crate::http::error::ErrorBody)),
    security(("oAuth2ClientCredentials" = ["read:organization_client_grants"])),
)]
pub async fn grant_organizations(
    State(app): State<AppState>,
    Path(id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    let q = query.params()?;
    let paging = q.paging()?;
    app.client_grant(id).await?;
    let filter = OrganizationFilter {
        grant_id: Some(id.to_string()),
        ..Default::default()
    };
    let page = app
        .list_organizations(&filter, paging.request)
        .await?
        .map(|o| Value::Object(o.to_json()));
    Ok(json_response(
        StatusCode::OK,
        &page_json("organizations", paging, page),
    ))
}

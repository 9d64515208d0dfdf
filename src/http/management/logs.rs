//! `/api/v2/logs` — the audit trail: search (page mode), checkpoint export, one event.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value};

use super::path_param;
use crate::domain::log_query::{self, log_id, log_id_seq};
use crate::http::error::ApiError;
use crate::http::extract::{Fields, Path, Query};
use crate::http::{AppState, json_response};
use crate::store::{LogRow, LogSearch};

/// Most events per page (`per_page`, `take`).
pub const MAX_PER_PAGE: i64 = 100;
/// Most events a search pages through (page × per_page).
pub const MAX_SEARCH_RESULTS: u64 = 1_000;
/// Events per page when the request does not say.
const DEFAULT_PER_PAGE: i64 = 50;

/// The fields `sort` and `fields` accept (Auth0's pattern for them).
const FIELDS: &[&str] = &[
    "date",
    "connection",
    "client_id",
    "client_name",
    "ip",
    "user_id",
    "user_name",
    "description",
    "user_agent",
    "type",
    "details",
    "strategy",
    "strategy_type",
];

/// The column a sort field orders by; `seq` for the fields no event has.
fn sort_column(field: &str) -> &'static str {
    match field {
        "date" => "date_ms",
        "client_id" => "client_id",
        "client_name" => "client_name",
        "ip" => "ip",
        "description" => "description",
        "user_agent" => "user_agent",
        "type" => "type",
        _ => "seq",
    }
}

fn pattern_error(property: &str) -> ApiError {
    ApiError::invalid_query(format!(
        "Query validation error: 'String does not match pattern' on property {property}."
    ))
}

/// An event as served: its document with its `log_id`.
fn render(row: &LogRow) -> Result<Map<String, Value>, ApiError> {
    let mut doc: Map<String, Value> = serde_json::from_str(&row.doc).map_err(|e| {
        tracing::error!(seq = row.seq, error = %e, "stored log event is not JSON");
        ApiError::internal()
    })?;
    doc.insert("log_id".into(), Value::String(log_id(row.seq)));
    Ok(doc)
}

/// `GET /logs`.
#[utoipa::path(
    get, path = "/api/v2/logs", operation_id = "get_logs", tag = "logs",
    responses(
        (status = 200, description = "Events: a plain array (checkpoint, or page without totals), or `{logs, start, limit, length, total}` with `include_totals=true`. Checkpoint answers carry `Link: <…>; rel=\"next\"`."),
        (status = 400, description = "A malformed parameter or search query, or a search paging beyond 1,000 results.", body = crate::http::error::ErrorBody),
    ),
    security(("oAuth2ClientCredentials" = ["read:logs"])),
)]
pub async fn list(State(app): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let q = query.params()?;
    // This node's queued events are written first: a caller reads what it just did.
    app.audit.flush().await;
    let from = q.get("from").filter(|f| !f.is_empty());
    let take = q.integer(
        "take",
        1,
        MAX_PER_PAGE,
        "Number of entries to retrieve when using the from parameter. Default 50, max 100",
    )?;
    if from.is_some() || take.is_some() {
        // Checkpoint: every other parameter is ignored (Auth0).
        let after = match from {
            None => 0,
            Some(from) => log_id_seq(from).ok_or_else(|| {
                ApiError::invalid_query(
                    "Query validation error: 'Invalid log_id' on property from (Log Event Id from which to start selection from.).",
                )
            })?,
        };
        let take = take.unwrap_or(DEFAULT_PER_PAGE);
        let rows = app.logs_after(after, take as u64).await?;
        let last = rows.last().map_or(after, |r| r.seq);
        let items = rows
            .iter()
            .map(|r| render(r).map(Value::Object))
            .collect::<Result<Vec<_>, _>>()?;
        let mut response = json_response(StatusCode::OK, &items);
        let next = format!(
            "<{}api/v2/logs?from={}&take={take}>; rel=\"next\"",
            app.issuer.issuer,
            log_id(last)
        );
        if let Ok(value) = HeaderValue::from_str(&next) {
            response.headers_mut().insert(header::LINK, value);
        }
        return Ok(response);
    }
    let page = q.integer(
        "page",
        0,
        i64::from(u32::MAX),
        "Page index of the results to return. First page is 0.",
    )?;
    let per_page = q.integer(
        "per_page",
        0,
        MAX_PER_PAGE,
        "Number of results per page. Paging is disabled if parameter not sent. Default: 50. Max value: 100",
    )?;
    let page = page.unwrap_or(0) as u64;
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE) as u64;
    if page.saturating_add(1).saturating_mul(per_page) > MAX_SEARCH_RESULTS {
        return Err(ApiError::invalid_query(format!(
            "You can only page through the first {MAX_SEARCH_RESULTS} results: refine the search, or read the logs by checkpoint (from, take)."
        )));
    }
    let (sort, descending) = match q.get("sort").filter(|s| !s.is_empty()) {
        None => ("date_ms", true),
        Some(sort) => {
            let (field, direction) = sort.split_once(':').ok_or_else(|| pattern_error("sort"))?;
            let descending = match direction {
                "1" => false,
                "-1" => true,
                _ => return Err(pattern_error("sort")),
            };
            if !FIELDS.contains(&field) {
                return Err(pattern_error("sort"));
            }
            (sort_column(field), descending)
        }
    };
    let fields = Fields::parse(&q)?;
    let include_totals = q.boolean("include_totals")?.unwrap_or(false);
    let text = q.get("q").or_else(|| q.get("search")).unwrap_or_default();
    let filter = log_query::parse(text)
        .map_err(|e| ApiError::invalid_query(format!("Invalid search query: {}", e.0)))?;
    let search = LogSearch {
        filter,
        sort,
        descending,
        offset: page * per_page,
        limit: per_page,
        totals: include_totals,
    };
    let (rows, total) = app.search_logs(&search).await?;
    let items = rows
        .iter()
        .map(|r| render(r).map(|doc| Value::Object(Fields::select(fields.as_ref(), doc))))
        .collect::<Result<Vec<_>, _>>()?;
    if !include_totals {
        return Ok(json_response(StatusCode::OK, &items));
    }
    let mut body = Map::new();
    body.insert("start".into(), Value::from(page * per_page));
    body.insert("limit".into(), Value::from(per_page));
    body.insert("length".into(), Value::from(items.len()));
    body.insert("total".into(), Value::from(total.unwrap_or(0)));
    body.insert("logs".into(), Value::Array(items));
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /logs/{id}`.
#[utoipa::path(
    get, path = "/api/v2/logs/{id}", operation_id = "get_logs_by_id", tag = "logs",
    params(("id" = String, Path, description = "log_id of the log to retrieve.")),
    responses(
        (status = 200, description = "The event."),
        (status = 404, description = "Log not found.", body = crate::http::error::ErrorBody),
    ),
    security(("oAuth2ClientCredentials" = ["read:logs"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_param("id", &id)?;
    app.audit.flush().await;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Some("inexistent_log"),
            "Log not found",
        )
    };
    let seq = log_id_seq(id).ok_or_else(not_found)?;
    let row = app.log(seq).await?.ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &render(&row)?))
}

//! Request extractors shared by the Management API handlers: the Bearer token with its
//! scopes, the JSON (or form) body with Auth0's error messages, and paging parameters.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, Method, header};
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use super::schema;
use super::strict::{self, BodyError};
use crate::domain::DomainError;
use crate::domain::validate::Body;
use crate::service::access::{Caller, TokenRejection};
use crate::store::PageRequest;

/// Largest request body accepted by the Management API and the token endpoint.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The authenticated caller of a Management API endpoint.
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl Auth {
    /// Fails with 403 unless the caller holds one of `scopes`.
    pub fn require(&self, scopes: &[&'static str]) -> Result<(), ApiError> {
        if self.0.has_any(scopes) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(scopes))
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let slot = parts.extensions.get::<super::audit::CallerSlot>().cloned();
        let auth = Self::verify(parts, state)?;
        if let Some(slot) = slot {
            slot.set(&auth.0.client_id);
        }
        Ok(auth)
    }
}

impl Auth {
    fn verify(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Verified already by the rate limiter (which keys the request by its client).
        if let Some(caller) = parts.extensions.remove::<Caller>() {
            return Ok(Auth(caller));
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(TokenRejection::Missing)?
            .to_str()
            .map_err(|_| TokenRejection::Invalid)?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(TokenRejection::Missing)?;
        Ok(Auth(state.verify_management_token(token)?))
    }
}

/// A request body as JSON: parsed from `application/json`, or built from
/// `application/x-www-form-urlencoded` (values are strings then).
#[derive(Clone)]
pub struct Payload {
    /// The body.
    pub value: Value,
    /// Whether it came as a form.
    pub form: bool,
    /// The operation of the served document the request matched (its request schema).
    operation: Option<&'static schema::Operation>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("value", &self.value)
            .field("form", &self.form)
            .field("operation", &self.operation.map(|o| o.id.as_str()))
            .finish()
    }
}

/// The operation a Management request matched, found once by `management::authorize` and
/// read from the request's extensions by the extractors after it.
#[derive(Clone, Copy)]
pub struct MatchedOperation(pub &'static schema::Operation);

/// The operation of the served document a request matched (through its alias for a route
/// served beyond the document, `management::ALIASES`).
pub fn matched_operation(
    method: &Method,
    extensions: &Extensions,
) -> Option<&'static schema::Operation> {
    if let Some(MatchedOperation(operation)) = extensions.get::<MatchedOperation>() {
        return Some(operation);
    }
    let path = extensions.get::<MatchedPath>()?.as_str();
    let path = super::management::ALIASES
        .iter()
        .find(|(m, route, _)| *m == method.as_str() && *route == path)
        .map_or(path, |(_, _, documented)| documented);
    schema::operation(method, path)
}

impl Payload {
    /// The body, checked against the operation's request schema (Auth0's, as the served
    /// document shows it; [`schema::check_body`]), then read by the domain's rules.
    fn body(&self) -> Result<Body<'_>, ApiError> {
        if let Some(operation) = self.operation {
            schema::check_body(operation, &self.value)?;
        }
        let body = if self.form {
            Body::new_form(&self.value)
        } else {
            Body::new(&self.value)
        };
        Ok(body?)
    }

    /// The body checked against the operation's schema, then read by the domain's `read`. A
    /// property the domain refuses is described as the served schema describes it (Auth0's
    /// words, or none where Auth0 gives none), so the domain's own copy of a description
    /// reaches the wire only for a property the schema does not have.
    pub fn read<T>(
        &self,
        read: impl FnOnce(Body<'_>) -> Result<T, DomainError>,
    ) -> Result<T, ApiError> {
        read(self.body()?).map_err(|e| match (e, self.operation) {
            (
                DomainError::Payload {
                    what,
                    path,
                    description,
                },
                Some(operation),
            ) => {
                let description =
                    schema::property_description(operation, &path).unwrap_or(description);
                DomainError::Payload {
                    what,
                    path,
                    description,
                }
                .into()
            }
            (e, _) => e.into(),
        })
    }
}

/// Reads the whole body up to [`MAX_BODY_BYTES`]; 413 beyond.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                Some("payload_too_large"),
                format!("Request payload is larger than {MAX_BODY_BYTES} bytes"),
            )
        })
}

/// Whether the request declares a form body.
pub fn is_form(req: &Request) -> bool {
    media_type(req) == Some(Media::Form)
}

/// What a request body declares itself to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Form,
    Other,
}

/// The declared media type; `None` without a `content-type` header.
fn media_type(req: &Request) -> Option<Media> {
    let value = req.headers().get(header::CONTENT_TYPE)?;
    let essence = value
        .to_str()
        .ok()
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    Some(if essence.eq_ignore_ascii_case("application/json") {
        Media::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Media::Form
    } else {
        Media::Other
    })
}

/// Whether a form body is really a JSON document (what `curl -d '{...}'` sends without
/// `-H 'content-type: application/json'`).
fn json_sent_as_form(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii();
    (text.starts_with(b"{") && text.ends_with(b"}"))
        || (text.starts_with(b"[") && text.ends_with(b"]"))
}

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        // Without a content-type the body is read as JSON (as Auth0's API does); a body of
        // another type is refused with 415 unless it is empty.
        let media = media_type(&req);
        let operation = matched_operation(req.method(), req.extensions());
        let bytes = read_body(req).await?;
        let form = match media {
            Some(Media::Form) => true,
            None | Some(Media::Json) => false,
            Some(Media::Other) if bytes.iter().all(u8::is_ascii_whitespace) => false,
            Some(Media::Other) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    "Unsupported Media Type: send the body as application/json",
                ));
            }
        };
        if form && json_sent_as_form(&bytes) {
            return Err(ApiError::invalid_body(
                "Payload validation error: the body is JSON but its content-type is \
                 application/x-www-form-urlencoded; send it with content-type: application/json.",
            ));
        }
        if form {
            let mut value = strict::form(&bytes).map_err(body_error)?;
            if let Some(operation) = operation {
                schema::coerce_form(operation, &mut value);
            }
            return Ok(Payload {
                value: Value::Object(value),
                form: true,
                operation,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Payload {
                value: Value::Object(Map::new()),
                form: false,
                operation,
            });
        }
        let value = strict::json(&bytes).map_err(body_error)?;
        Ok(Payload {
            value,
            form: false,
            operation,
        })
    }
}

fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::Malformed => ApiError::invalid_body("Invalid request payload JSON format"),
        BodyError::Repeated(key) => ApiError::invalid_body(format!(
            "Payload validation error: 'Property given more than once' on property {key}."
        )),
    }
}

/// Path parameters, like `axum::extract::Path`, but a segment that cannot be decoded (not
/// UTF-8 once percent-decoded) is a 400 `invalid_uri` with Auth0's error body instead of
/// axum's plain-text rejection.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => Err(ApiError::invalid_uri(
                "Path validation error: 'Invalid path parameter'.",
            )),
        }
    }
}

/// The query string of a Management request and the operation it matched; read it with
/// [`Query::params`], which checks it against the operation's query parameters first.
#[derive(Default)]
pub struct Query {
    raw: Option<String>,
    operation: Option<&'static schema::Operation>,
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            raw: parts.uri.query().map(str::to_string),
            operation: matched_operation(&parts.method, &parts.extensions),
        })
    }
}

impl Query {
    /// The raw query string (for parameters given more than once).
    pub fn as_deref(&self) -> Option<&str> {
        self.raw.as_deref()
    }

    /// The parameters, checked against the operation's (Auth0's schema of each, as the
    /// served document shows it; [`schema::check_query`]).
    pub fn params(&self) -> Result<QueryParams, ApiError> {
        let params = QueryParams::parse(self.raw.as_deref());
        if let Some(operation) = self.operation {
            schema::check_query(operation, |name| params.get(name))?;
        }
        Ok(params)
    }
}

/// Query parameters, parsed once.
#[derive(Debug, Default)]
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    /// From the raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// A string parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// An integer parameter within `[min, max]`; `desc` is Auth0's description of it.
    pub fn integer(
        &self,
        key: &str,
        min: i64,
        max: i64,
        desc: &str,
    ) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let value: i64 = raw.parse().map_err(|_| {
            ApiError::invalid_query(format!(
                "Query validation error: 'Expected type integer but found type string' on property {key} ({desc})."
            ))
        })?;
        if value < min {
            return Err(ApiError::invalid_query(format!(
                "Query validation error: 'Value {value} is less than minimum {min}' on property {key} ({desc})."
            )));
        }
        if value > max {
            return Err(ApiError::invalid_query(format!(
                "Query validation error: 'Value {value} is greater than maximum {max}' on property {key} ({desc})."
            )));
        }
        Ok(Some(value))
    }

    /// A boolean parameter (`true`/`false`).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid_query(format!(
                "Query validation error: 'Expected type boolean but found type string' on property {key}."
            ))),
        }
    }

    /// A parameter with a fixed set of values (Auth0's enum for it), read by `parse`.
    pub fn enumerated<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
        desc: &str,
    ) -> Result<Option<T>, ApiError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        parse(raw).map(Some).ok_or_else(|| {
            ApiError::invalid_query(format!(
                "Query validation error: 'No enum match for: \"{raw}\"' on property {key} ({desc})."
            ))
        })
    }

    /// The paging the caller asked for.
    pub fn paging(&self) -> Result<Paging, ApiError> {
        let include_totals = self.boolean("include_totals")?.unwrap_or(false);
        let take = self.integer(
            "take",
            1,
            100,
            "Number of results per page. Defaults to 50.",
        )?;
        if let Some(from) = self.get("from").filter(|f| !f.is_empty()) {
            let after = decode_cursor(from).ok_or_else(|| {
                ApiError::invalid_query(
                    "Query validation error: 'Invalid checkpoint' on property from (Optional Id from which to start selection.).",
                )
            })?;
            return Ok(Paging {
                request: PageRequest::Checkpoint {
                    after: Some(after),
                    take: take.unwrap_or(50) as u64,
                },
                include_totals,
            });
        }
        if let Some(take) = take {
            return Ok(Paging {
                request: PageRequest::Checkpoint {
                    after: None,
                    take: take as u64,
                },
                include_totals,
            });
        }
        self.offset_paging()
    }

    /// Page paging only (`page`, `per_page`, `include_totals`), for the lists whose Auth0
    /// document has no checkpoint paging: `from` and `take` are ignored there, as unknown
    /// parameters are.
    pub fn offset_paging(&self) -> Result<Paging, ApiError> {
        let include_totals = self.boolean("include_totals")?.unwrap_or(false);
        let page = self.integer(
            "page",
            0,
            i64::from(u32::MAX),
            "Page index of the results to return. First page is 0.",
        )?;
        let per_page = self.integer(
            "per_page",
            1,
            100,
            "Number of results per page. Defaults to 50.",
        )?;
        Ok(Paging {
            request: PageRequest::Offset {
                page: page.unwrap_or(0) as u64,
                per_page: per_page.unwrap_or(50) as u64,
            },
            include_totals,
        })
    }
}

/// `fields` / `include_fields`, read once for every operation whose Auth0 document takes
/// them (the names are checked beforehand against the operation's `fields` pattern, Auth0's
/// list of the resource's fields): the listed properties only, or all but them. A name
/// `a.b` selects one property of the object `a`, as Auth0's does.
#[derive(Debug, Clone)]
pub struct Fields {
    names: Vec<String>,
    include: bool,
}

impl Fields {
    /// The selection of the query; `None` without `fields`.
    pub fn parse(q: &QueryParams) -> Result<Option<Self>, ApiError> {
        let Some(list) = q.get("fields").filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Self {
            names: list
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
            include: q.boolean("include_fields")?.unwrap_or(true),
        }))
    }

    /// Whether the property `key` is shown.
    pub fn shows(&self, key: &str) -> bool {
        self.names.iter().any(|f| f == key) == self.include
    }

    /// The selected properties of `object`.
    pub fn apply(&self, object: Map<String, Value>) -> Map<String, Value> {
        let selected = |key: &str| self.names.iter().any(|f| f == key);
        if !self.include {
            return object.into_iter().filter(|(k, _)| !selected(k)).collect();
        }
        let mut out = Map::new();
        for (k, v) in object {
            if selected(&k) {
                out.insert(k, v);
            } else if let Value::Object(inner) = v {
                let prefix = format!("{k}.");
                let nested: Map<String, Value> = inner
                    .into_iter()
                    .filter(|(ik, _)| selected(&format!("{prefix}{ik}")))
                    .collect();
                if !nested.is_empty() {
                    out.insert(k, Value::Object(nested));
                }
            }
        }
        out
    }

    /// `object` as selected by `fields`, when given.
    pub fn select(fields: Option<&Self>, object: Map<String, Value>) -> Map<String, Value> {
        match fields {
            Some(f) => f.apply(object),
            None => object,
        }
    }
}

/// Paging parameters plus `include_totals`.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// What to fetch.
    pub request: PageRequest,
    /// Whether to wrap the list in an envelope with totals.
    pub include_totals: bool,
}

/// Opaque checkpoint cursor.
pub fn encode_cursor(seq: i64) -> String {
    clavis_crypto::encoding::b64url(format!("seq:{seq}").as_bytes())
}

fn decode_cursor(s: &str) -> Option<i64> {
    let bytes = clavis_crypto::encoding::b64url_decode(s).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix("seq:")?
        .parse()
        .ok()
        .filter(|n: &i64| *n >= 0)
}

/// Renders a page as Auth0 does: a bare array, an offset envelope with totals, or a
/// checkpoint envelope with `next`.
pub fn page_json(collection: &str, paging: Paging, page: crate::store::Page<Value>) -> Value {
    match paging.request {
        PageRequest::Checkpoint { .. } => {
            let mut m = Map::new();
            if let Some(next) = page.next {
                m.insert("next".into(), Value::String(encode_cursor(next)));
            }
            m.insert(collection.into(), Value::Array(page.items));
            Value::Object(m)
        }
        PageRequest::Offset { page: p, per_page } if paging.include_totals => {
            let mut m = Map::new();
            m.insert("start".into(), Value::from(p.saturating_mul(per_page)));
            m.insert("limit".into(), Value::from(per_page));
            m.insert("total".into(), Value::from(page.total.unwrap_or(0)));
            m.insert(collection.into(), Value::Array(page.items));
            Value::Object(m)
        }
        PageRequest::Offset { .. } => Value::Array(page.items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("nonsense!"), None);
    }

    #[test]
    fn paging_rules() {
        let q = QueryParams::parse(Some("per_page=101"));
        assert!(q.paging().is_err());
        let q = QueryParams::parse(Some("take=10&include_totals=true"));
        assert!(matches!(
            q.paging().map(|p| p.request),
            Ok(PageRequest::Checkpoint {
                after: None,
                take: 10
            })
        ));
        let q = QueryParams::parse(Some("page=2&per_page=5&include_totals=true"));
        assert!(matches!(
            q.paging().map(|p| p.request),
            Ok(PageRequest::Offset {
                page: 2,
                per_page: 5
            })
        ));
    }
}

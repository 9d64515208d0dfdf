//! Log streams (`/api/v2/log-streams`): Auth0's `http` type. A stream POSTs the events of
//! the audit trail to an endpoint, in batches, in one of Auth0's three content formats;
//! its `filters` choose the event categories it carries.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::DomainError;
use super::time::Timestamp;
use super::validate::{Body, Str, payload_error};

/// The only type Clavis serves.
pub const HTTP: &str = "http";
/// Auth0's statuses.
pub const STATUSES: &[&str] = &["active", "paused", "suspended"];
/// Auth0's content formats.
pub const FORMATS: &[&str] = &["JSONARRAY", "JSONLINES", "JSONOBJECT"];

/// Auth0's filter categories (`LogStreamFilterGroupNameEnum`) and the event types of Clavis
/// each one covers (Auth0's "Log Stream Filters" table); the categories of user flows
/// cover none of Clavis's events.
pub const CATEGORIES: &[(&str, &[&str])] = &[
    ("auth.login.fail", &[]),
    ("auth.login.notification", &[]),
    ("auth.login.success", &[]),
    ("auth.logout.fail", &[]),
    ("auth.logout.success", &[]),
    ("auth.signup.fail", &[]),
    ("auth.signup.success", &[]),
    ("auth.silent_auth.fail", &[]),
    ("auth.silent_auth.success", &[]),
    ("auth.token_exchange.fail", &["feccft"]),
    ("auth.token_exchange.success", &["seccft"]),
    ("management.fail", &["fapi"]),
    ("management.success", &["sapi", "mgmt_api_read"]),
    ("scim.event", &[]),
    // Clavis's own credential-expiry events are notices of the system (Auth0 has none), and
    // so are token quota warnings (Auth0's table does not name their category).
    (
        "system.notification",
        &[
            "api_limit",
            crate::expiry::EXPIRING,
            crate::expiry::EXPIRED,
            "token_quota_consumption_warning",
        ],
    ),
    ("user.fail", &[]),
    ("user.notification", &[]),
    ("user.success", &[]),
    ("actions", &[]),
    ("other", &[]),
];

const NAME_DESC: &str = "log stream name";
const ENDPOINT_DESC: &str = "HTTP endpoint";
const FILTERS_DESC: &str = "Only logs events matching these filters will be delivered by the stream. If omitted or empty, all events will be delivered.";
const PRIORITY_DESC: &str = "True for priority log streams, false for non-priority";

/// The `sink` of an `http` stream, without its authorization (sealed apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSink {
    /// `httpEndpoint`: where events are POSTed.
    pub endpoint: String,
    /// `httpContentType`: the `Content-Type` of each POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `httpContentFormat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_format: Option<String>,
    /// `httpCustomHeaders`: `(header, value)` pairs.
    #[serde(default)]
    pub custom_headers: Vec<(String, String)>,
}

/// A log stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogStream {
    /// `lst_` + 16 digits.
    pub id: String,
    /// A label.
    pub name: String,
    /// `active`, `paused` or `suspended`.
    pub status: String,
    /// Where and how.
    pub sink: HttpSink,
    /// Category names; `None` carries every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<String>>,
    /// `isPriority` (kept and returned).
    #[serde(default)]
    pub is_priority: bool,
    /// `pii_config` (kept and returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_config: Option<Value>,
}

impl LogStream {
    /// The API representation, with the authorization in clear when it has one (Auth0
    /// returns `httpAuthorization`).
    pub fn to_json(&self, authorization: Option<&str>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("type".into(), Value::String(HTTP.into()));
        m.insert("status".into(), Value::String(self.status.clone()));
        let mut sink = Map::new();
        sink.insert(
            "httpEndpoint".into(),
            Value::String(self.sink.endpoint.clone()),
        );
        if let Some(t) = &self.sink.content_type {
            sink.insert("httpContentType".into(), Value::String(t.clone()));
        }
        if let Some(f) = &self.sink.content_format {
            sink.insert("httpContentFormat".into(), Value::String(f.clone()));
        }
        if let Some(a) = authorization {
            sink.insert("httpAuthorization".into(), Value::String(a.into()));
        }
        if !self.sink.custom_headers.is_empty() {
            let headers = self
                .sink
                .custom_headers
                .iter()
                .map(|(h, v)| {
                    let mut o = Map::new();
                    o.insert("header".into(), Value::String(h.clone()));
                    o.insert("value".into(), Value::String(v.clone()));
                    Value::Object(o)
                })
                .collect();
            sink.insert("httpCustomHeaders".into(), Value::Array(headers));
        }
        m.insert("sink".into(), Value::Object(sink));
        if let Some(filters) = &self.filters {
            let filters = filters
                .iter()
                .map(|name| {
                    let mut o = Map::new();
                    o.insert("type".into(), Value::String("category".into()));
                    o.insert("name".into(), Value::String(name.clone()));
                    Value::Object(o)
                })
                .collect();
            m.insert("filters".into(), Value::Array(filters));
        }
        m.insert("isPriority".into(), Value::Bool(self.is_priority));
        if let Some(p) = &self.pii_config {
            m.insert("pii_config".into(), p.clone());
        }
        m
    }

    /// Whether the stream carries events of type `kind`.
    pub fn carries(&self, kind: &str) -> bool {
        match &self.filters {
            None => true,
            Some(filters) => filters.iter().any(|name| {
                CATEGORIES
                    .iter()
                    .any(|(category, types)| category == name && types.contains(&kind))
            }),
        }
    }

    /// The content format, `JSONLINES` when none was given.
    pub fn format(&self) -> &str {
        self.sink.content_format.as_deref().unwrap_or("JSONLINES")
    }

    /// Whether the stream delivers.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// A new stream's id: `lst_` + 16 digits (the shape of Auth0's).
pub fn new_id() -> String {
    format!("lst_{}", clavis_crypto::random::string(b"0123456789", 16))
}

/// Auth0's 404.
pub fn not_found() -> DomainError {
    DomainError::NotFound {
        code: "inexistent_log_stream",
        message: "The log stream does not exist".into(),
    }
}

/// What a sink in a request sets.
#[derive(Debug, Clone, Default)]
pub struct SinkInput {
    endpoint: String,
    content_type: Option<String>,
    content_format: Option<String>,
    authorization: Option<String>,
    custom_headers: Option<Vec<(String, String)>>,
}

/// Auth0's pattern is `^https://.*`; Clavis also takes `http://` to a loopback address (a
/// collector on the same host, and the tests).
fn is_endpoint(s: &str) -> bool {
    let Ok(u) = url::Url::parse(s) else {
        return false;
    };
    match u.scheme() {
        "https" => u.has_host(),
        "http" => match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

fn header_value_error(path: &str, description: &str) -> DomainError {
    payload_error("Invalid HTTP header value", path, description)
}

fn read_sink(v: &Value) -> Result<SinkInput, DomainError> {
    let mut b = Body::nested(v, "sink", false)?;
    let content_format = b.string(
        "httpContentFormat",
        Str::one_of(FORMATS),
        "HTTP JSON format",
    )?;
    let content_type = b.string("httpContentType", Str::max(256), "HTTP Content-Type header")?;
    let authorization = b.string(
        "httpAuthorization",
        Str::max(4096),
        "HTTP Authorization header",
    )?;
    let endpoint = b.required_string("httpEndpoint", Str::len(1, 2048), ENDPOINT_DESC)?;
    if !is_endpoint(&endpoint) {
        return Err(payload_error(
            &format!(
                "String does not match pattern ^https://.*: {}",
                endpoint.chars().take(64).collect::<String>()
            ),
            "sink.httpEndpoint",
            ENDPOINT_DESC,
        ));
    }
    let custom_headers = match b.raw("httpCustomHeaders") {
        None => None,
        Some(Value::Array(items)) => Some(read_headers(items)?),
        Some(other) => {
            return Err(payload_error(
                &format!(
                    "Expected type array but found type {}",
                    super::validate::type_name(other)
                ),
                "sink.httpCustomHeaders",
                "custom HTTP headers",
            ));
        }
    };
    b.finish()?;
    if let Some(t) = &content_type
        && axum::http::HeaderValue::from_str(t).is_err()
    {
        return Err(header_value_error(
            "sink.httpContentType",
            "HTTP Content-Type header",
        ));
    }
    // The value is never echoed: it is a secret.
    if let Some(a) = &authorization
        && axum::http::HeaderValue::from_str(a).is_err()
    {
        return Err(header_value_error(
            "sink.httpAuthorization",
            "HTTP Authorization header",
        ));
    }
    Ok(SinkInput {
        endpoint,
        content_type,
        content_format,
        authorization,
        custom_headers,
    })
}

/// Most custom headers on one stream.
const MAX_HEADERS: usize = 20;

fn read_headers(items: &[Value]) -> Result<Vec<(String, String)>, DomainError> {
    if items.len() > MAX_HEADERS {
        return Err(payload_error(
            &format!("Array is too long ({}), maximum {MAX_HEADERS}", items.len()),
            "sink.httpCustomHeaders",
            "custom HTTP headers",
        ));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("sink.httpCustomHeaders[{i}]");
        let mut h = Body::nested(item, &prefix, false)?;
        let header = h.required_string("header", Str::len(1, 256), "HTTP header name")?;
        let value = h.required_string("value", Str::max(4096), "HTTP header value")?;
        h.finish()?;
        // Headers the delivery sets itself cannot be replaced.
        let name_ok = axum::http::HeaderName::from_bytes(header.as_bytes()).is_ok_and(|n| {
            !matches!(
                n.as_str(),
                "content-type"
                    | "content-length"
                    | "host"
                    | "authorization"
                    | "transfer-encoding"
                    | "connection"
            )
        });
        if !name_ok {
            return Err(payload_error(
                &format!("Invalid or reserved HTTP header name: {header}"),
                &format!("{prefix}.header"),
                "HTTP header name",
            ));
        }
        if axum::http::HeaderValue::from_str(&value).is_err() {
            return Err(header_value_error(
                &format!("{prefix}.value"),
                "HTTP header value",
            ));
        }
        out.push((header, value));
    }
    Ok(out)
}

fn read_filters(body: &mut Body<'_>) -> Result<Option<Option<Vec<String>>>, DomainError> {
    let Some(v) = body.raw("filters") else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(payload_error(
            &format!(
                "Expected type array but found type {}",
                super::validate::type_name(v)
            ),
            "filters",
            FILTERS_DESC,
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("filters[{i}]");
        let mut f = Body::nested(item, &prefix, false)?;
        f.string(
            "type",
            Str::SCHEMA,
            "Filter type. Currently `category` is the only valid type.",
        )?;
        let name = f.string("name", Str::ANY, "Category group name")?;
        f.finish()?;
        let Some(name) = name else {
            continue;
        };
        if !CATEGORIES.iter().any(|(n, _)| *n == name) {
            return Err(payload_error(
                &format!(
                    "No enum match for: \"{}\"",
                    name.chars().take(64).collect::<String>()
                ),
                &format!("{prefix}.name"),
                "Category group name",
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    // Auth0: "If omitted or empty, all events will be delivered."
    Ok(Some(if out.is_empty() { None } else { Some(out) }))
}

/// `pii_config`: kept as sent (Clavis's events carry none of its fields); its shape is
/// Auth0's schema, checked before.
fn read_pii_config(body: &mut Body<'_>) -> Result<Option<Value>, DomainError> {
    Ok(body.raw("pii_config").cloned())
}

/// A validated `POST /log-streams` body.
#[derive(Debug, Clone)]
pub struct NewLogStream {
    stream: LogStream,
    authorization: Option<String>,
    start_from: Option<Timestamp>,
}

impl NewLogStream {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        super::properties::refuse(&body, super::properties::LOG_STREAM)?;
        let kind = body.required_string("type", Str::ANY, "")?;
        if kind != HTTP {
            return Err(payload_error(
                &format!(
                    "Clavis supports http log streams only (type {} is not served)",
                    kind.chars().take(32).collect::<String>()
                ),
                "type",
                "",
            ));
        }
        let name = body
            .string("name", Str::len(1, 300), NAME_DESC)?
            .unwrap_or_else(|| "HTTP log stream".into());
        let sink = read_sink(body.required_raw("sink")?)?;
        let filters = read_filters(&mut body)?.flatten();
        let is_priority = body.bool("isPriority", PRIORITY_DESC)?.unwrap_or(false);
        let pii_config = read_pii_config(&mut body)?;
        let start_from = body
            .string(
                "startFrom",
                Str::max(64),
                "The optional datetime (ISO 8601) to start streaming logs from",
            )?
            .map(|s| {
                Timestamp::parse(&s).ok_or_else(|| {
                    payload_error(
                        &format!(
                            "Object didn't pass validation for format date-time: {}",
                            s.chars().take(64).collect::<String>()
                        ),
                        "startFrom",
                        "The optional datetime (ISO 8601) to start streaming logs from",
                    )
                })
            })
            .transpose()?;
        body.finish()?;
        Ok(Self {
            stream: LogStream {
                id: new_id(),
                name,
                status: "active".into(),
                sink: HttpSink {
                    endpoint: sink.endpoint,
                    content_type: sink.content_type,
                    content_format: sink.content_format,
                    custom_headers: sink.custom_headers.unwrap_or_default(),
                },
                filters,
                is_priority,
                pii_config,
            },
            authorization: sink.authorization.filter(|a| !a.is_empty()),
            start_from,
        })
    }

    /// The stream.
    pub fn stream(&self) -> &LogStream {
        &self.stream
    }

    /// The authorization header, in clear (the service seals it).
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// `startFrom`: deliver the events dated from then on that are still kept; `None`, the
    /// events from creation on.
    pub fn start_from(&self) -> Option<Timestamp> {
        self.start_from
    }
}

/// A validated `PATCH /log-streams/{id}` body.
#[derive(Debug, Clone, Default)]
pub struct LogStreamUpdate {
    name: Option<String>,
    status: Option<String>,
    is_priority: Option<bool>,
    sink: Option<SinkInput>,
    filters: Option<Option<Vec<String>>>,
    pii_config: Option<Value>,
}

impl LogStreamUpdate {
    /// Reads the body.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        super::properties::refuse(&body, super::properties::LOG_STREAM)?;
        let name = body.string("name", Str::len(1, 300), NAME_DESC)?;
        let status = body.string(
            "status",
            Str::one_of(STATUSES),
            "The status of the log stream. Possible values: `active`, `paused`, `suspended`",
        )?;
        let is_priority = body.bool("isPriority", PRIORITY_DESC)?;
        let sink = body.raw("sink").map(read_sink).transpose()?;
        let filters = read_filters(&mut body)?;
        let pii_config = read_pii_config(&mut body)?;
        body.finish()?;
        Ok(Self {
            name,
            status,
            is_priority,
            sink,
            filters,
            pii_config,
        })
    }

    /// The new status, when the body sets one.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The sink's new authorization when the body sends a sink: `Some(None)` clears it
    /// (a sink without `httpAuthorization` replaces the whole sink, as Auth0's schema has
    /// it: `httpEndpoint` is required in it).
    pub fn authorization(&self) -> Option<Option<&str>> {
        self.sink
            .as_ref()
            .map(|s| s.authorization.as_deref().filter(|a| !a.is_empty()))
    }

    /// Applies the update (the authorization is the service's).
    pub fn apply(&self, stream: &mut LogStream) {
        if let Some(name) = &self.name {
            stream.name = name.clone();
        }
        if let Some(status) = &self.status {
            stream.status = status.clone();
        }
        if let Some(p) = self.is_priority {
            stream.is_priority = p;
        }
        if let Some(sink) = &self.sink {
            stream.sink = HttpSink {
                endpoint: sink.endpoint.clone(),
                content_type: sink.content_type.clone(),
                content_format: sink.content_format.clone(),
                custom_headers: sink.custom_headers.clone().unwrap_or_default(),
            };
        }
        if let Some(filters) = &self.filters {
            stream.filters = filters.clone();
        }
        if let Some(p) = &self.pii_config {
            stream.pii_config = Some(p.clone());
        }
    }
}

/// One event as a stream carries it: `{"log_id", "data"}`, `data` being the event as
/// `/api/v2/logs` serves it (Auth0's streams wrap each event so).
pub fn envelope(log_id: &str, data: Value) -> Value {
    let mut m = Map::new();
    m.insert("log_id".into(), Value::String(log_id.into()));
    m.insert("data".into(), data);
    Value::Object(m)
}

/// The bodies of the POSTs that deliver `events` in `format`: one body for `JSONARRAY` (a
/// JSON array) and `JSONLINES` (one JSON document per line), one body per event for
/// `JSONOBJECT`.
pub fn bodies(format: &str, events: &[Value]) -> Vec<Vec<u8>> {
    let encode = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    match format {
        "JSONARRAY" => vec![encode(&Value::Array(events.to_vec()))],
        "JSONOBJECT" => events.iter().map(encode).collect(),
        _ => {
            let mut out = Vec::new();
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                out.extend(encode(e));
            }
            vec![out]
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn create_validates_and_renders_auth0_shape() {
        let v = json!({"name": "s", "type": "http", "sink": {"httpEndpoint": "https://logs.example/in",
            "httpContentFormat": "JSONARRAY", "httpContentType": "application/json",
            "httpAuthorization": "Bearer x", "httpCustomHeaders": [{"header": "X-A", "value": "1"}]},
            "filters": [{"type": "category", "name": "auth.token_exchange.fail"}]});
        let new = NewLogStream::parse(Body::new(&v).unwrap()).unwrap();
        assert_eq!(new.authorization(), Some("Bearer x"));
        let json = Value::Object(new.stream().to_json(Some("Bearer x")));
        assert_eq!(json["sink"]["httpAuthorization"], "Bearer x");
        assert_eq!(json["status"], "active");
        assert!(new.stream().id.starts_with("lst_"));
        assert!(new.stream().carries("feccft"));
        assert!(!new.stream().carries("seccft"));
        let other = json!({"name": "s", "type": "datadog", "sink": {}});
        let e = NewLogStream::parse(Body::new(&other).unwrap()).unwrap_err();
        assert!(e.to_string().contains("http log streams only"), "{e}");
        for bad in [
            json!({"type": "http", "sink": {"httpEndpoint": "ftp://x"}}),
            json!({"type": "http", "sink": {"httpEndpoint": "http://logs.example/"}}),
            json!({"type": "http", "sink": {"httpEndpoint": "https://x/"},
                "filters": [{"type": "category", "name": "nope"}]}),
            json!({"type": "http", "sink": {"httpEndpoint": "https://x/",
                "httpCustomHeaders": [{"header": "Authorization", "value": "x"}]}}),
        ] {
            assert!(
                NewLogStream::parse(Body::new(&bad).unwrap()).is_err(),
                "{bad}"
            );
        }
        let local = json!({"type": "http", "sink": {"httpEndpoint": "http://127.0.0.1:9/in"}});
        assert!(NewLogStream::parse(Body::new(&local).unwrap()).is_ok());
    }

    #[test]
    fn update_changes_only_what_it_names() {
        let v = json!({"type": "http", "sink": {"httpEndpoint": "https://a.example/", "httpAuthorization": "x"}});
        let mut s = NewLogStream::parse(Body::new(&v).unwrap())
            .unwrap()
            .stream()
            .clone();
        let patch = json!({"status": "paused", "filters": []});
        let u = LogStreamUpdate::parse(Body::new(&patch).unwrap()).unwrap();
        u.apply(&mut s);
        assert_eq!(s.status, "paused");
        assert_eq!(s.sink.endpoint, "https://a.example/");
        assert!(u.authorization().is_none());
        let patch = json!({"sink": {"httpEndpoint": "https://b.example/", "httpContentFormat": "JSONOBJECT"}});
        let u = LogStreamUpdate::parse(Body::new(&patch).unwrap()).unwrap();
        u.apply(&mut s);
        assert_eq!(s.format(), "JSONOBJECT");
        assert_eq!(u.authorization(), Some(None));
    }

    #[test]
    fn formats() {
        let events = [json!({"log_id": "1"}), json!({"log_id": "2"})];
        assert_eq!(
            bodies("JSONARRAY", &events),
            vec![br#"[{"log_id":"1"},{"log_id":"2"}]"#.to_vec()]
        );
        assert_eq!(
            bodies("JSONLINES", &events),
            vec![b"{\"log_id\":\"1\"}\n{\"log_id\":\"2\"}".to_vec()]
        );
        assert_eq!(bodies("JSONOBJECT", &events).len(), 2);
    }
}

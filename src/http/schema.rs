//! Every Management request and response, declared once: Auth0's own schema for the
//! operation (its published document, `docs/auth0/`), restricted by Clavis's declaration of
//! each resource (`domain::properties::RESOURCES`).
//!
//! [`derive`] writes those schemas into the served document (`/api/v2/openapi.json`). For
//! each operation Auth0 documents, the request body and the success responses are Auth0's
//! schemas; the components they refer to are copied from Auth0's document, and those of a
//! declared resource are restricted: what Auth0 only outputs is left out, what Clavis takes
//! or returns beyond Auth0 is added with its declared schema, a refused property whose
//! declaration accepts `null` takes it, and a response schema lists exactly what Clavis
//! returns (`additionalProperties: false`). Each query parameter takes Auth0's schema for it.
//!
//! The validator is then compiled from the served document itself — one validator per
//! operation, looked up by the route a request matched — so the document and the validator
//! cannot disagree. [`check_body`] and [`check_query`] answer the first problem with Auth0's
//! error body and (z-schema's) wording, before any rule of the domain, so that nothing is
//! written when a request fails its schema.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use axum::http::Method;
use jsonschema::{Registry, Validator};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::domain::auth0_schema::{describe, documents, property_path};
use crate::domain::properties::{Meaning, NULL_CLEARS, RELAXED, RESOURCES, Resource, When};

/// Operations whose request or response is one member of Auth0's schema: Clavis serves
/// `http` log streams only, so they take Auth0's `http` member of the `oneOf` (operation,
/// request schema or `None`, response schema).
const SERVED_MEMBER: &[(&str, Option<&str>, &str)] = &[
    (
        "post_log-streams",
        Some("CreateLogStreamHttpRequestBody"),
        "LogStreamHttpResponseSchema",
    ),
    ("get_log-streams_by_id", None, "LogStreamHttpResponseSchema"),
    (
        "patch_log-streams_by_id",
        None,
        "LogStreamHttpResponseSchema",
    ),
];

/// `GET /log-streams` answers a list of `http` log streams.
const LIST_MEMBER: &[(&str, &str)] = &[("get_log-streams", "LogStreamHttpResponseSchema")];

/// The answers of Clavis's own operations, built on Auth0's components: (operation, status,
/// the list's key, its items). `GET /credentials/expiring` lists credentials as `GET
/// /clients/{id}/credentials/{id}` shows them (Auth0's `ClientCredential`) with their
/// client's id and name, in the three shapes of a list ([`list_shapes`]).
const OWN_LISTS: &[(&str, &str, &str, &str)] = &[(
    "get_expiring_credentials",
    "200",
    "credentials",
    "#/components/schemas/ExpiringCredential",
)];

/// A list's three answers, as Auth0 writes them: the bare array, the offset page (with the
/// totals) and the checkpoint page ([`checkpoint_shape`]).
fn list_shapes(key: &str, items: &str) -> Value {
    let array = json!({"type": "array", "items": {"$ref": items}});
    json!({"anyOf": [
        array,
        {"type": "object", "additionalProperties": false,
         "required": ["start", "limit", "total", key],
         "properties": {
            "start": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 0},
            "total": {"type": "integer", "minimum": 0},
            key: array}},
        checkpoint_shape(key, &array),
    ]})
}

/// Auth0's checkpoint page of a list (`{"next", <key>}`): the cursor instead of the totals.
fn checkpoint_shape(key: &str, array: &Value) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": [key],
        "properties": {
            "next": {"type": "string", "description": "Opaque identifier for use with the `from` query parameter for the next page."},
            key: array,
        },
    })
}

/// Components of Clavis's own answers: (name, schema).
const OWN_COMPONENTS: &[(&str, &str)] = &[(
    "ExpiringCredential",
    r##"{"description": "A credential with its client, as `GET /credentials/expiring` lists it.",
        "allOf": [{"$ref": "#/components/schemas/ClientCredential"}],
        "required": ["client_id", "client_name"],
        "properties": {
            "client_id": {"type": "string", "description": "The client the credential is attached to."},
            "client_name": {"type": "string", "description": "That client's name."}}}"##,
)];

/// Query parameters of an operation of Auth0's document that Clavis does not serve (they are
/// left out of the served document, so neither checked nor acted on): (operation, name, why).
pub const UNSERVED_QUERY: &[(&str, &str, &str)] = &[
    (
        "get_clients",
        "external_client_id",
        "Clavis registers no client by Client ID Metadata Document",
    ),
    (
        "get_clients",
        "q",
        "Lucene queries over clients are not served",
    ),
    (
        "get_resource-servers",
        "identifiers",
        "the filter by identifiers is not served",
    ),
    (
        "get_resource-servers",
        "include_fields",
        "Auth0 documents no `fields` for resource servers, so it selects nothing",
    ),
    (
        "get_resource-servers_by_id",
        "include_fields",
        "Auth0 documents no `fields` for resource servers, so it selects nothing",
    ),
];

/// Query parameters Clavis serves beyond Auth0's document of an operation, each the
/// parameter of that name of another operation of Auth0's: (operation, name, Auth0's
/// operation). Checkpoint paging (`from`, `take`) for resource servers and an organization's
/// grants, and the paging of Clavis's own `GET /credentials/expiring`.
const BORROWED_QUERY: &[(&str, &str, &str)] = &[
    ("get_resource-servers", "from", "get_clients"),
    ("get_resource-servers", "take", "get_clients"),
    (
        "get_organization-client-grants",
        "from",
        "get_organizations",
    ),
    (
        "get_organization-client-grants",
        "take",
        "get_organizations",
    ),
    ("get_expiring_credentials", "page", "get_clients"),
    ("get_expiring_credentials", "per_page", "get_clients"),
    ("get_expiring_credentials", "include_totals", "get_clients"),
    ("get_expiring_credentials", "from", "get_clients"),
    ("get_expiring_credentials", "take", "get_clients"),
];

/// Query parameters of Clavis's own: (operation, parameter).
const OWN_QUERY: &[(&str, &str)] = &[
    (
        "get_logs",
        r#"{"name": "q", "in": "query", "required": false, "schema": {"type": "string"},
            "description": "Search query in (a subset of) Auth0's query syntax, e.g. `type:seccft AND date:[2026-01-01 TO *]` (the same as `search`, which Auth0's SDKs send; `q` wins when both are given)."}"#,
    ),
    (
        "get_expiring_credentials",
        r#"{"name": "before", "in": "query", "required": false, "schema": {"type": "string"},
            "description": "Credentials expiring before this date or date-time."}"#,
    ),
];

/// The query parameters Clavis serves for operation `id` (Auth0's `op`, when Auth0
/// documents it).
fn query_parameters(
    id: &str,
    op: Option<&Value>,
    theirs: &HashMap<&'static str, (&'static Value, &'static Value)>,
    wanted: &mut Vec<(String, &'static Value)>,
) -> Vec<Value> {
    let query = |op: &Value| -> Vec<Value> {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    if let Some(op) = op
        && let Some((auth0, _)) = theirs.get(id)
    {
        for parameter in query(op) {
            let name = parameter["name"].as_str().unwrap_or_default();
            if !UNSERVED_QUERY
                .iter()
                .any(|(o, n, _)| *o == id && *n == name)
            {
                refs(&parameter, auth0, wanted);
                out.push(parameter);
            }
        }
    }
    for (_, name, source) in BORROWED_QUERY.iter().filter(|(o, _, _)| *o == id) {
        if let Some((auth0, source)) = theirs.get(source)
            && let Some(parameter) = query(source).into_iter().find(|p| p["name"] == *name)
        {
            refs(&parameter, auth0, wanted);
            out.push(parameter);
        }
    }
    for (_, parameter) in OWN_QUERY.iter().filter(|(o, _)| *o == id) {
        if let Ok(parameter) = serde_json::from_str::<Value>(parameter) {
            out.push(parameter);
        }
    }
    out
}

/// The first of Auth0's documents that defines component `name`.
fn defining(name: &str) -> Option<&'static Value> {
    documents()
        .iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["components"]["schemas"].get(name).is_some())
}

/// The base URI of the served document inside the validator's registry.
const SERVED: &str = "urn:clavis:served";

/// Auth0's operations by operation id: (document, operation).
fn auth0_operations() -> HashMap<&'static str, (&'static Value, &'static Value)> {
    let mut out = HashMap::new();
    for (_, doc) in documents() {
        for item in doc["paths"].as_object().into_iter().flat_map(Map::values) {
            for op in item.as_object().into_iter().flat_map(Map::values) {
                if let Some(id) = op["operationId"].as_str() {
                    out.entry(id).or_insert((doc, op));
                }
            }
        }
    }
    out
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The JSON schema of `content` (an OpenAPI content map): `application/json`'s, or the
/// first.
fn json_schema(content: &Value) -> Option<&Value> {
    let content = content.as_object()?;
    content
        .get("application/json")
        .or_else(|| content.values().next())
        .map(|c| &c["schema"])
        .filter(|s| s.is_object())
}

/// The request schema Clavis serves for operation `id` (Auth0's `op`).
fn request_schema(id: &str, op: &Value) -> Option<Value> {
    if let Some((_, Some(member), _)) = SERVED_MEMBER.iter().find(|(o, _, _)| *o == id) {
        return Some(reference(member));
    }
    json_schema(&op["requestBody"]["content"]).cloned()
}

/// The response schema Clavis serves for operation `id` (Auth0's `op`) with `status`.
fn response_schema(id: &str, op: &Value, status: &str) -> Option<Value> {
    if let Some((_, _, member)) = SERVED_MEMBER.iter().find(|(o, _, _)| *o == id) {
        return Some(reference(member));
    }
    if let Some((_, member)) = LIST_MEMBER.iter().find(|(o, _)| *o == id) {
        return Some(json!({ "type": "array", "items": reference(member) }));
    }
    json_schema(&op["responses"][status]["content"]).cloned()
}

/// The declared resource whose request (`true`) or response (`false`) schema `name` is.
fn resource_of(name: &str) -> Option<(&'static Resource, bool)> {
    RESOURCES.iter().find_map(|r| {
        if r.requests.contains(&name) {
            Some((r, true))
        } else if r.responses.contains(&name) {
            Some((r, false))
        } else {
            None
        }
    })
}

/// Auth0's component `name`, restricted by Clavis's declaration when it is one of a declared
/// resource's schemas; see the module documentation.
fn restricted(auth0: &Value, name: &str) -> Option<Value> {
    let mut schema = auth0["components"]["schemas"].get(name)?.clone();
    if name.starts_with("List") && name.ends_with("ResponseContent") {
        any_of_pages(&mut schema);
    }
    let Some((resource, request)) = resource_of(name) else {
        return Some(schema);
    };
    let kept = |property: &str| match resource.meaning(property) {
        Some(Meaning::OutputOnly(_)) => false,
        // Never kept, so never returned.
        Some(Meaning::Refused {
            when: When::Present | When::NotNull,
            ..
        }) => request,
        _ => true,
    };
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.retain(|k, _| kept(k));
        for (property, declared) in resource.beyond_auth0 {
            if !properties.contains_key(*property)
                && let Ok(declared) = serde_json::from_str::<Value>(declared)
            {
                properties.insert((*property).to_string(), declared);
            }
        }
        if request {
            for (property, value) in properties.iter_mut() {
                let accepts_null = match resource.meaning(property) {
                    Some(Meaning::Refused { when, .. }) => when.accepts_null(),
                    _ => false,
                } || NULL_CLEARS.contains(&(name, property.as_str()));
                if accepts_null {
                    *value = nullable(value.take());
                }
            }
        }
    }
    if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| r.as_str().is_some_and(kept));
    }
    if !request {
        schema["additionalProperties"] = json!(false);
    }
    Some(schema)
}

/// A list answer is a bare array or one of the paging envelopes, whose properties Auth0's
/// document leaves optional: `{"clients": []}` matches two of them, so the alternatives are
/// served as `anyOf` (the answer is the one the request's paging selects, as Auth0's).
fn any_of_pages(schema: &mut Value) {
    if let Some(Value::Object(map)) = Some(&mut *schema)
        && let Some(members) = map.remove("oneOf")
    {
        map.insert("anyOf".to_string(), members);
    }
}

/// The checkpoint page (`{"next", <list>}`) of a list whose checkpoint paging Clavis serves
/// beyond Auth0's document of the operation (`from` in [`BORROWED_QUERY`]): Auth0's offset
/// page of that list with the cursor instead of the totals, as Auth0 writes its own
/// checkpoint pages (e.g. `ListClientsPaginatedResponseContent`).
fn checkpoint_page(auth0: &Value, list: &Value) -> Option<Value> {
    let members = resolve(auth0, list);
    let members = members
        .get("anyOf")
        .or_else(|| members.get("oneOf"))?
        .as_array()?;
    let offset = members.iter().map(|m| resolve(auth0, m)).find(|m| {
        m["properties"]
            .as_object()
            .is_some_and(|p| p.contains_key("start"))
    })?;
    let (key, array) = offset["properties"]
        .as_object()?
        .iter()
        .find(|(_, v)| v["type"] == "array")?;
    Some(checkpoint_shape(key, array))
}

/// `schema`, admitting `null` too.
fn nullable(mut schema: Value) -> Value {
    match schema.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = t.clone();
            schema["type"] = json!([t, "null"]);
            schema
        }
        Some(Value::Array(types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push(json!("null"));
            }
            schema
        }
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

/// Writes the request and response schemas of the Management operations into `doc` (the
/// served document); see the module documentation.
pub fn derive(doc: &mut Value) {
    let theirs = auth0_operations();
    // Components to copy, each from the document that defines it for the operation.
    let mut wanted: Vec<(String, &'static Value)> = Vec::new();
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if !path.starts_with("/api/v2/") {
            continue;
        }
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            let Some(id) = op["operationId"].as_str().map(str::to_string) else {
                continue;
            };
            // The query parameters: Auth0's, less the unserved, plus Clavis's; path parameters
            // as the handler declares them.
            let query = query_parameters(
                &id,
                theirs.get(id.as_str()).map(|(_, op)| *op),
                &theirs,
                &mut wanted,
            );
            let mut parameters: Vec<Value> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] != "query")
                .cloned()
                .collect();
            parameters.extend(query);
            if parameters.is_empty() {
                if let Some(op) = op.as_object_mut() {
                    op.remove("parameters");
                }
            } else {
                op["parameters"] = Value::Array(parameters);
            }
            if let Some((_, status, key, items)) = OWN_LISTS.iter().find(|(o, ..)| *o == id) {
                let schema = list_shapes(key, items);
                own_refs(&schema, &mut wanted);
                op["responses"][*status]["content"] =
                    json!({ "application/json": { "schema": schema } });
            }
            let Some((auth0, their_op)) = theirs.get(id.as_str()) else {
                continue;
            };
            if let Some(schema) = request_schema(&id, their_op) {
                refs(&schema, auth0, &mut wanted);
                op["requestBody"] = json!({
                    "content": {
                        "application/json": { "schema": schema },
                        "application/x-www-form-urlencoded": { "schema": schema },
                    },
                    "required": true,
                });
            }
            let responses = op
                .get_mut("responses")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flatten();
            for (status, response) in responses {
                if !status.starts_with('2') || response.get("$ref").is_some() {
                    continue;
                }
                let Some(mut schema) = response_schema(&id, their_op, status) else {
                    continue;
                };
                any_of_pages(&mut schema);
                if status == "200"
                    && BORROWED_QUERY
                        .iter()
                        .any(|(o, name, _)| *o == id && *name == "from")
                    && let Some(page) = checkpoint_page(auth0, &schema)
                {
                    schema = json!({ "anyOf": [schema, page] });
                }
                refs(&schema, auth0, &mut wanted);
                response["content"] = json!({ "application/json": { "schema": schema } });
            }
        }
    }
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in OWN_COMPONENTS {
        if let Ok(schema) = serde_json::from_str::<Value>(schema) {
            own_refs(&schema, &mut wanted);
            schemas.insert((*name).to_string(), schema);
        }
    }
    // Copy the components (restricted), and what they refer to in turn.
    let mut copied: BTreeMap<String, Value> = BTreeMap::new();
    while let Some((name, auth0)) = wanted.pop() {
        if copied.contains_key(&name) {
            continue;
        }
        let Some(schema) = restricted(auth0, &name) else {
            continue;
        };
        refs(&schema, auth0, &mut wanted);
        copied.insert(name, schema);
    }
    schemas.extend(copied);
    for (component, property, keyword, _) in RELAXED {
        if let Some(Value::Object(schema)) = schemas
            .get_mut(*component)
            .and_then(|c| c.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
        {
            schema.remove(*keyword);
        }
    }
    schemas.sort_keys();
}

/// Adds the components of Auth0's documents that `schema` (Clavis's own) refers to.
fn own_refs(schema: &Value, out: &mut Vec<(String, &'static Value)>) {
    let mut direct = Vec::new();
    refs(schema, &Value::Null, &mut direct);
    out.extend(
        direct
            .into_iter()
            .filter_map(|(name, _)| Some((name.clone(), defining(&name)?))),
    );
}

/// Adds the components `schema` refers to directly (in `auth0`) to `out`.
fn refs(schema: &Value, auth0: &'static Value, out: &mut Vec<(String, &'static Value)>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push((name.to_string(), auth0));
            }
            for value in map.values() {
                refs(value, auth0, out);
            }
        }
        Value::Array(items) => {
            for value in items {
                refs(value, auth0, out);
            }
        }
        _ => {}
    }
}

/// One compiled schema and the schema itself (for descriptions and form coercion).
struct Compiled {
    validator: Validator,
    schema: Value,
}

/// One query parameter of an operation.
struct QueryParameter {
    name: String,
    description: String,
    compiled: Compiled,
}

/// The compiled request schemas of one operation of the served document.
pub struct Operation {
    /// Its operation id.
    pub id: String,
    /// The scopes that admit it (any one suffices): its `oAuth2ClientCredentials` security
    /// requirement, from its handler's `#[utoipa::path]`.
    pub scopes: Vec<&'static str>,
    body: Option<Compiled>,
    query: Vec<QueryParameter>,
}

impl Operation {
    /// The request body schema the validator was compiled from (tests).
    pub fn body_schema(&self) -> Option<&Value> {
        self.body.as_ref().map(|c| &c.schema)
    }

    /// The names of the query parameters it validates (tests).
    pub fn query_parameters(&self) -> Vec<&str> {
        self.query.iter().map(|p| p.name.as_str()).collect()
    }
}

struct Operations {
    by_route: HashMap<(String, String), Operation>,
}

static OPERATIONS: LazyLock<Operations> = LazyLock::new(|| {
    let doc = super::openapi::document();
    let mut by_route = HashMap::new();
    let registry = match Registry::new()
        .add(SERVED, doc.clone())
        .and_then(|r| r.prepare())
    {
        Ok(registry) => registry,
        Err(e) => {
            tracing::error!(error = %e, "the served document is not a schema registry");
            return Operations { by_route };
        }
    };
    let compile = |pointer: String, schema: &Value| -> Option<Compiled> {
        let validator = jsonschema::options()
            .with_registry(&registry)
            .build(&json!({ "$ref": format!("{SERVED}#{pointer}") }))
            .map_err(|e| tracing::error!(pointer, error = %e, "a served schema does not compile"))
            .ok()?;
        Some(Compiled {
            validator,
            schema: resolve(doc, schema).clone(),
        })
    };
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        if !path.starts_with("/api/v2/") {
            continue;
        }
        // A JSON pointer to the path item, percent-encoded for the URI fragment.
        let escaped = path
            .replace('~', "~0")
            .replace('/', "~1")
            .replace('{', "%7B")
            .replace('}', "%7D");
        for (method, op) in item.as_object().into_iter().flatten() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let body = body_schema.as_object().and_then(|_| {
                compile(
                    format!(
                        "/paths/{escaped}/{method}/requestBody/content/application~1json/schema"
                    ),
                    body_schema,
                )
            });
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter(|(_, p)| p["in"] == "query")
                .filter_map(|(i, p)| {
                    Some(QueryParameter {
                        name: p["name"].as_str()?.to_string(),
                        description: p["description"].as_str().unwrap_or_default().to_string(),
                        compiled: compile(
                            format!("/paths/{escaped}/{method}/parameters/{i}/schema"),
                            &p["schema"],
                        )?,
                    })
                })
                .collect();
            by_route.insert(
                (method.to_ascii_uppercase(), path.clone()),
                Operation {
                    id: id.to_string(),
                    scopes: op["security"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|requirement| requirement["oAuth2ClientCredentials"].as_array())
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect(),
                    body,
                    query,
                },
            );
        }
    }
    Operations { by_route }
});

/// Builds the served document and compiles its validators now rather than on the first
/// Management request.
pub fn warm() {
    LazyLock::force(&OPERATIONS);
}

/// The operation of the served document at `method` and `path` (the route's template, as
/// `axum::extract::MatchedPath` gives it).
pub fn operation(method: &Method, path: &str) -> Option<&'static Operation> {
    OPERATIONS
        .by_route
        .get(&(method.as_str().to_string(), path.to_string()))
}

/// Follows `$ref`s into `doc`.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(target) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| doc.pointer(pointer))
        else {
            return schema;
        };
        schema = target;
    }
    schema
}

/// The served schema's description of the request property at `path` (the domain's spelling:
/// `sink.httpEndpoint`, `scopes[0].value`; empty when the schema gives none), or `None` when
/// the schema has no such property.
pub fn property_description(operation: &Operation, path: &str) -> Option<String> {
    let body = operation.body.as_ref()?;
    let mut pointer = String::new();
    for segment in path.split('.') {
        let mut parts = segment.split('[');
        if let Some(name) = parts.next() {
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in parts {
            pointer.push('/');
            pointer.push_str(index.trim_end_matches(']'));
        }
    }
    describe_at(&body.schema, &pointer)
}

/// The description of the property at `pointer` (an instance path) inside `schema`: its
/// own, or that of the schema it refers to.
fn description_at(schema: &Value, pointer: &str) -> String {
    describe_at(schema, pointer).unwrap_or_default()
}

/// [`description_at`], `None` when `schema` has no property at `pointer`.
fn describe_at(schema: &Value, pointer: &str) -> Option<String> {
    let doc = super::openapi::document();
    let mut here = resolve(doc, schema);
    let mut described = None;
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        let next = here["properties"]
            .get(&segment)
            .or_else(|| {
                here.get("items")
                    .filter(|_| segment.parse::<usize>().is_ok())
            })
            .or_else(|| here.get("additionalProperties").filter(|a| a.is_object()));
        let next = next?;
        described = next.get("description");
        here = resolve(doc, next);
        if described.is_none() {
            described = here.get("description");
        }
    }
    Some(
        described
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    )
}

/// The JSON types `schema` admits.
fn types_of(doc: &Value, schema: &Value) -> Vec<String> {
    match resolve(doc, schema).get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A text value read as the type `schema` wants, when it is one (query strings and form
/// bodies carry text only); otherwise the text, for the validator to refuse.
fn coerce(doc: &Value, schema: &Value, text: &str) -> Value {
    let types = types_of(doc, schema);
    let wants = |t: &str| types.iter().any(|x| x == t);
    if wants("string") || types.is_empty() {
        return Value::String(text.to_string());
    }
    if wants("boolean") && (text == "true" || text == "false") {
        return Value::Bool(text == "true");
    }
    if wants("integer")
        && let Ok(n) = text.parse::<i64>()
    {
        return Value::from(n);
    }
    if wants("number")
        && let Ok(n) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(n)
    {
        return Value::Number(n);
    }
    if wants("array") {
        let items = &resolve(doc, schema)["items"];
        return Value::Array(
            text.split(',')
                .map(|item| coerce(doc, items, item))
                .collect(),
        );
    }
    Value::String(text.to_string())
}

/// A form body's values (text) read as the types the operation's schema gives its
/// properties (`true`, `600`), where the text is one; the rest stays text for the validator to
/// refuse. The domain then reads the typed values.
pub fn coerce_form(operation: &Operation, body: &mut Map<String, Value>) {
    let Some(compiled) = &operation.body else {
        return;
    };
    let doc = super::openapi::document();
    for (key, value) in body.iter_mut() {
        if let (Value::String(text), Some(schema)) =
            (&*value, compiled.schema["properties"].get(key))
        {
            *value = coerce(doc, schema, text);
        }
    }
}

/// Checks a request body against the operation's schema; the first problem is Auth0's
/// `invalid_body` 400 (a form body is read with [`coerce_form`] first).
pub fn check_body(operation: &Operation, body: &Value) -> Result<(), ApiError> {
    let Some(compiled) = &operation.body else {
        return Ok(());
    };
    let Some(error) = compiled.validator.iter_errors(body).next() else {
        return Ok(());
    };
    let pointer = error.instance_path().as_str();
    let what = describe(error.kind(), error.instance());
    let path = property_path(pointer);
    if path.is_empty() {
        return Err(ApiError::invalid_body(format!(
            "Payload validation error: '{what}'."
        )));
    }
    let description = description_at(&compiled.schema, pointer);
    Err(ApiError::invalid_body(message(
        "Payload",
        &what,
        &path,
        &description,
    )))
}

/// Checks the query parameters the operation documents; the first problem is Auth0's
/// `invalid_query_string` 400. Parameters it does not document are left alone, as Auth0
/// leaves them.
pub fn check_query<'q>(
    operation: &Operation,
    get: impl Fn(&str) -> Option<&'q str>,
) -> Result<(), ApiError> {
    let doc = super::openapi::document();
    for parameter in &operation.query {
        let Some(text) = get(&parameter.name) else {
            continue;
        };
        let value = coerce(doc, &parameter.compiled.schema, text);
        if let Some(error) = parameter.compiled.validator.iter_errors(&value).next() {
            let what = describe(error.kind(), error.instance());
            return Err(ApiError::invalid_query(message(
                "Query",
                &what,
                &parameter.name,
                &parameter.description,
            )));
        }
    }
    Ok(())
}

/// `<kind> validation error: '<what>' on property <path> (<description>).`
fn message(kind: &str, what: &str, path: &str, description: &str) -> String {
    if description.is_empty() {
        format!("{kind} validation error: '{what}' on property {path}.")
    } else {
        format!("{kind} validation error: '{what}' on property {path} ({description}).")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every request body and query parameter of the served document compiles into the
    /// validator of its operation (a schema that did not would go unchecked).
    #[test]
    fn every_served_request_schema_compiles() {
        let doc = super::super::openapi::document();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v2/") {
                continue;
            }
            for (method, op) in item.as_object().unwrap() {
                let method: Method = method.to_uppercase().parse().unwrap();
                let operation = operation(&method, path).unwrap();
                assert_eq!(operation.id, op["operationId"].as_str().unwrap());
                let served = &op["requestBody"]["content"]["application/json"]["schema"];
                assert_eq!(
                    operation.body_schema().is_some(),
                    served.is_object(),
                    "{method} {path}"
                );
                if let Some(schema) = operation.body_schema() {
                    assert_eq!(schema, resolve(doc, served), "{method} {path}");
                }
                let served: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(operation.query_parameters(), served, "{method} {path}");
                checked += 1;
            }
        }
        assert!(checked > 40, "{checked}");
    }

    #[test]
    fn form_text_is_read_as_the_schemas_type() {
        let doc = json!({});
        assert_eq!(coerce(&doc, &json!({"type": "integer"}), "5"), json!(5));
        assert_eq!(coerce(&doc, &json!({"type": "integer"}), "x"), json!("x"));
        assert_eq!(
            coerce(&doc, &json!({"type": "boolean"}), "true"),
            json!(true)
        );
        assert_eq!(
            coerce(&doc, &json!({"type": ["string", "null"]}), "5"),
            json!("5")
        );
        assert_eq!(
            coerce(
                &doc,
                &json!({"type": "array", "items": {"type": "string"}}),
                "a,b"
            ),
            json!(["a", "b"])
        );
    }

    #[test]
    fn null_is_added_to_a_schema() {
        assert_eq!(
            nullable(json!({"type": "string"}))["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            nullable(json!({"$ref": "#/x"})),
            json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]})
        );
    }
}

//! The OpenAPI document: equal to the committed snapshot (so a change to it is always a
//! reviewed change), served at `GET /api/v2/openapi.json`, and consistent with Auth0's own
//! document (`docs/auth0/auth0-management-openapi-subset.json`) for every field Clavis
//! serves.
//!
//! After an intended change, re-bless the snapshot with
//!   CLAVIS_BLESS=1 cargo test --test openapi
//! and commit `tests/snapshots/openapi.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

fn document() -> Value {
    serde_json::from_slice(clavis::http::openapi::document_json()).expect("the document is JSON")
}

#[test]
fn document_matches_the_committed_snapshot() {
    let current = String::from_utf8(clavis::http::openapi::document_json().to_vec()).unwrap();
    let path = snapshot_path();
    if std::env::var_os("CLAVIS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{current}\n")).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed.trim_end() != current.trim_end() {
        let diff_at = committed
            .lines()
            .zip(current.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(current.lines().count()));
        let show = |s: &str| -> String {
            s.lines()
                .skip(diff_at.saturating_sub(3))
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "the OpenAPI document changed (first difference at line {}).\n--- committed ---\n{}\n--- generated ---\n{}\n\
             If the change is intended, run `CLAVIS_BLESS=1 cargo test --test openapi` and commit tests/snapshots/openapi.json.",
            diff_at + 1,
            show(&committed),
            show(&current)
        );
    }
}

#[test]
fn document_is_openapi_3_1_and_covers_every_served_endpoint() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/oauth/token", &["post"][..]),
        ("/.well-known/jwks.json", &["get"]),
        ("/.well-known/openid-configuration", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/api/v2/openapi.json", &["get"]),
        ("/api/v2/clients", &["get", "post"]),
        ("/api/v2/clients/{client_id}", &["get", "patch", "delete"]),
        ("/api/v2/clients/{client_id}/rotate-secret", &["post"]),
        ("/api/v2/clients/{client_id}/credentials", &["get", "post"]),
        (
            "/api/v2/clients/{client_id}/credentials/{credential_id}",
            &["get", "patch", "delete"],
        ),
        ("/api/v2/resource-servers", &["get", "post"]),
        ("/api/v2/resource-servers/{id}", &["get", "patch", "delete"]),
        ("/api/v2/client-grants", &["get", "post"]),
        ("/api/v2/client-grants/{id}", &["get", "patch", "delete"]),
        ("/api/v2/keys/signing", &["get"]),
        ("/api/v2/keys/signing/rotate", &["post"]),
        ("/api/v2/keys/signing/{kid}", &["get"]),
        ("/api/v2/keys/signing/{kid}/revoke", &["put"]),
        ("/api/v2/credentials/expiring", &["get"]),
        ("/api/v2/logs", &["get"]),
        ("/api/v2/logs/{id}", &["get"]),
        ("/api/v2/log-streams", &["get", "post"]),
        ("/api/v2/log-streams/{id}", &["get", "patch", "delete"]),
        ("/api/v2/client-grants/{id}/organizations", &["get"]),
        ("/api/v2/organizations", &["get", "post"]),
        ("/api/v2/organizations/name/{name}", &["get"]),
        ("/api/v2/organizations/{id}", &["get", "patch", "delete"]),
        ("/api/v2/organizations/{id}/client-grants", &["get", "post"]),
        (
            "/api/v2/organizations/{id}/client-grants/{grant_id}",
            &["delete"],
        ),
        ("/api/v2/tenants/settings", &["get", "patch"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        for method in methods {
            assert!(item.get(*method).is_some(), "{method} {path} is missing");
        }
    }
    assert_eq!(paths.len(), 31, "an undocumented or unexpected path");
}

#[test]
fn management_operations_declare_scopes_errors_and_rate_limit_headers() {
    let doc = document();
    let patch = &doc["paths"]["/api/v2/clients/{client_id}/credentials/{credential_id}"]["patch"];
    assert_eq!(
        patch["security"][1]["oAuth2ClientCredentials"],
        serde_json::json!(["update:client_credentials"])
    );
    assert_eq!(
        patch["responses"]["429"]["$ref"],
        "#/components/responses/TooManyRequests"
    );
    assert!(
        patch["responses"]["200"]["headers"]["x-ratelimit-reset"]
            .get("$ref")
            .is_some()
    );
    let create = &doc["paths"]["/api/v2/clients/{client_id}/credentials"]["post"];
    assert_eq!(
        create["responses"]["201"]["links"]["UpdateCredential"]["operationId"],
        "patch_credentials_by_credential_id"
    );
    let body = &doc["components"]["schemas"]["PatchClientCredentialRequestContent"];
    // Auth0's schema: at least one property, nothing else.
    assert_eq!(body["minProperties"], 1);
    assert_eq!(body["additionalProperties"], false);
}

/// The scopes an operation of `doc` accepts (its `oAuth2ClientCredentials` requirement).
fn operation_scopes(op: &Value) -> Option<Vec<String>> {
    let requirements = op["security"].as_array()?;
    let scopes = requirements
        .iter()
        .find_map(|r| r["oAuth2ClientCredentials"].as_array())?;
    Some(
        scopes
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    )
}

/// The scopes each handler declares are the only declaration: every Management operation
/// has some, each one a Management scope Clavis defines, and — where Auth0 documents the
/// same operation — exactly Auth0's, less those Clavis does not define. The field tables'
/// copies of the client operations' scopes agree with them.
#[test]
fn every_management_operation_declares_auth0s_scopes() {
    let doc = document();
    let defined: BTreeSet<&str> = clavis::domain::scopes::MANAGEMENT_SCOPES
        .iter()
        .map(|(s, _)| *s)
        .collect();
    let theirs = [auth0_document(), auth0_next_document()];
    let mut compared = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v2/") || path == "/api/v2/openapi.json" {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let ours = operation_scopes(op).unwrap_or_else(|| panic!("{what} declares no scopes"));
            assert!(!ours.is_empty(), "{what} declares no scopes");
            for scope in &ours {
                assert!(
                    defined.contains(scope.as_str()),
                    "{what}: {scope} is not defined"
                );
            }
            assert_eq!(
                op["security"][0]["bearerAuth"],
                serde_json::json!([]),
                "{what}"
            );
            // Auth0 names some path parameters otherwise (`{id}` for `{client_id}`).
            let template = |p: &str| {
                p.split('/')
                    .map(|s| if s.starts_with('{') { "{}" } else { s })
                    .collect::<Vec<_>>()
                    .join("/")
            };
            let ours_template = template(path.trim_start_matches("/api/v2"));
            let Some(auth0) = theirs.iter().find_map(|d| {
                d["paths"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(p, _)| template(p) == ours_template)
                    .and_then(|(_, item)| item.get(method.as_str()))
            }) else {
                continue;
            };
            let expected: Vec<String> = operation_scopes(auth0)
                .unwrap()
                .into_iter()
                .filter(|s| defined.contains(s.as_str()))
                .collect();
            assert_eq!(ours, expected, "{what}: Auth0's scopes, in Auth0's order");
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} operations matched Auth0's");
    let paths = &doc["paths"];
    for (copy, op) in [
        (
            clavis::domain::scopes::fields::READ_CLIENTS,
            &paths["/api/v2/clients/{client_id}"]["get"],
        ),
        (
            clavis::domain::scopes::fields::READ_CLIENTS,
            &paths["/api/v2/clients"]["get"],
        ),
        (
            clavis::domain::scopes::fields::UPDATE_CLIENTS,
            &paths["/api/v2/clients/{client_id}"]["patch"],
        ),
    ] {
        assert_eq!(operation_scopes(op).unwrap(), copy);
    }
}

/// The enum of the request property at `path` (dot-separated; `[]` steps into array items)
/// of `method route` in the served document, without `null`.
fn served_enum(doc: &Value, route: &str, method: &str, path: &str) -> BTreeSet<String> {
    let mut schema = resolve(
        doc,
        &doc["paths"][route][method]["requestBody"]["content"]["application/json"]["schema"],
    );
    for step in path.split('.') {
        let (name, items) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        schema = resolve(doc, &schema["properties"][name]);
        if items {
            schema = resolve(doc, &schema["items"]);
        }
    }
    enum_values(doc, schema)
        .unwrap_or_else(|| panic!("{method} {route} {path} has no enum"))
        .into_iter()
        .filter(|v| v != "null")
        .collect()
}

/// The enums of the values Clavis acts on are its own capability lists in the domain (a value
/// Auth0 adds is refused there until Clavis can act on it, never stored and ignored); each one
/// equals Auth0's enum in the served document, or is a stated subset of it.
#[test]
fn the_values_clavis_acts_on_are_auth0s_enums() {
    use clavis::domain::{client, client_grant, credential, log_stream, resource_server};
    let doc = document();
    let set =
        |values: &[&str]| -> BTreeSet<String> { values.iter().map(|v| (*v).to_string()).collect() };
    let rs = "/api/v2/resource-servers";
    let equal: Vec<(&str, &str, &str, BTreeSet<String>)> = vec![
        (
            rs,
            "post",
            "signing_alg",
            set(resource_server::SIGNING_ALGS),
        ),
        (
            rs,
            "post",
            "token_dialect",
            resource_server::TokenDialect::NAMES
                .iter()
                .map(|(n, _)| (*n).to_string())
                .collect(),
        ),
        (
            rs,
            "post",
            "subject_type_authorization.client.policy",
            set(resource_server::CLIENT_POLICIES),
        ),
        (
            "/api/v2/clients",
            "post",
            "token_endpoint_auth_method",
            set(client::TOKEN_ENDPOINT_AUTH_METHODS),
        ),
        (
            "/api/v2/clients/{client_id}/credentials",
            "post",
            "credential_type",
            credential::CredentialType::ALL
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
        ),
        (
            "/api/v2/clients/{client_id}/credentials",
            "post",
            "alg",
            set(credential::CREDENTIAL_ALGS),
        ),
        (
            "/api/v2/client-grants",
            "post",
            "subject_type",
            client_grant::SubjectType::ALL
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
        ),
        (
            "/api/v2/client-grants",
            "post",
            "organization_usage",
            set(client_grant::ORGANIZATION_USAGES),
        ),
        (
            "/api/v2/log-streams",
            "post",
            "sink.httpContentFormat",
            set(log_stream::FORMATS),
        ),
        (
            "/api/v2/log-streams",
            "post",
            "filters[].name",
            log_stream::CATEGORIES
                .iter()
                .map(|(n, _)| (*n).to_string())
                .collect(),
        ),
    ];
    for (route, method, path, ours) in equal {
        assert_eq!(
            served_enum(&doc, route, method, path),
            ours,
            "{method} {route} {path}"
        );
    }
    // Proof-of-possession: Clavis enforces mtls and refuses Auth0's other mechanisms.
    let mechanisms = served_enum(&doc, rs, "post", "proof_of_possession.mechanism");
    assert!(set(resource_server::POP_MECHANISMS).is_subset(&mechanisms));
}

/// Auth0's published document for the paths Clavis serves, kept in the repository
/// (`docs/auth0/`).
fn auth0_next_document() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/auth0/auth0-management-openapi-next.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn auth0_document() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/auth0/auth0-management-openapi-subset.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Follows `$ref`s within `doc`.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let name = reference.trim_start_matches("#/components/schemas/");
        schema = &doc["components"]["schemas"][name];
    }
    schema
}

/// The JSON types a schema admits, `null` left out.
fn types(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let mut out = BTreeSet::new();
    match schema.get("type") {
        Some(Value::String(t)) => {
            out.insert(t.clone());
        }
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).map(String::from)),
        _ => {}
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for member in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(types(doc, member));
        }
    }
    if out.is_empty()
        && let Some(values) = schema.get("enum").and_then(Value::as_array)
        && values.iter().all(Value::is_string)
    {
        out.insert("string".into());
    }
    out.remove("null");
    // An integer is a number.
    if out.contains("number") {
        out.insert("integer".into());
    }
    out
}

fn enum_values(doc: &Value, schema: &Value) -> Option<BTreeSet<String>> {
    let schema = resolve(doc, schema);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(
            values
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        );
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for member in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(values) = enum_values(doc, member) {
                return Some(values);
            }
        }
    }
    None
}

/// Properties Clavis serves that Auth0's document leaves out of a resource's schemas: the
/// declared ones (`properties::RESOURCES`, with the reason beside each).
fn beyond_auth0(schema: &str) -> Vec<&'static str> {
    clavis::domain::properties::RESOURCES
        .iter()
        .filter(|r| r.requests.contains(&schema) || r.responses.contains(&schema))
        .flat_map(|r| r.beyond_auth0.iter().map(|(p, _)| *p))
        .collect()
}

/// Every schema of the served document that Auth0's documents have too (Clavis serves
/// Auth0's, restricted) agrees with Auth0's: no property beyond the declared ones, no type or
/// value Auth0 does not take, and every property Auth0 requires in a request required.
#[test]
fn fields_agree_with_auth0s_document() {
    let auth0 = auth0_document();
    let next = auth0_next_document();
    let ours = document();
    let mut problems = Vec::new();
    let mut compared = 0;
    let mut schemas_compared = 0;
    for (mine, my_schema) in ours["components"]["schemas"].as_object().unwrap() {
        let (their_schema, theirs_doc) = match (
            auth0["components"]["schemas"].get(mine),
            next["components"]["schemas"].get(mine),
        ) {
            (Some(s), _) => (s, &auth0),
            (None, Some(s)) => (s, &next),
            (None, None) => continue,
        };
        let (Some(my_props), Some(their_props)) = (
            my_schema["properties"].as_object(),
            their_schema["properties"].as_object(),
        ) else {
            continue;
        };
        schemas_compared += 1;
        for (name, my_prop) in my_props {
            let Some(their_prop) = their_props.get(name) else {
                if !beyond_auth0(mine).contains(&name.as_str()) {
                    problems.push(format!("{mine}.{name}: not in Auth0's {mine}"));
                }
                continue;
            };
            compared += 1;
            let (a, b) = (types(&ours, my_prop), types(theirs_doc, their_prop));
            if !a.is_empty() && !b.is_empty() && !a.is_subset(&b) {
                problems.push(format!("{mine}.{name}: types {a:?}, Auth0 {b:?}"));
            }
            if let (Some(a), Some(b)) = (
                enum_values(&ours, my_prop),
                enum_values(theirs_doc, their_prop),
            ) && !a.is_subset(&b)
            {
                problems.push(format!("{mine}.{name}: values {a:?} beyond Auth0's {b:?}"));
            }
        }
        // Fields Auth0 requires in a request, Clavis requires too.
        if mine.ends_with("RequestContent") {
            let mine_required: BTreeSet<&str> = my_schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for r in their_schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap();
                if my_props.contains_key(r) && !mine_required.contains(r) {
                    problems.push(format!("{mine}.{r}: required by Auth0, optional here"));
                }
            }
        }
    }
    assert!(
        schemas_compared > 40,
        "only {schemas_compared} schemas compared"
    );
    assert!(compared > 300, "only {compared} fields compared");
    assert!(
        problems.is_empty(),
        "{} disagreements with Auth0's document:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every property of Auth0's client, resource-server and client-grant schemas (responses and
/// request bodies) has exactly one declared meaning in `clavis::domain::properties`, and that
/// table names nothing else.
#[test]
fn every_auth0_property_has_a_declared_meaning() {
    use clavis::domain::properties::{
        CLIENT, CLIENT_GRANT, LOG_STREAM, ORGANIZATION, RESOURCE_SERVER, TENANT_SETTINGS,
    };
    let auth0 = auth0_document();
    // Organizations are in Auth0's newer document only.
    let next = auth0_next_document();
    let tables = [
        (
            CLIENT,
            [
                "Client",
                "CreateClientRequestContent",
                "UpdateClientRequestContent",
            ],
        ),
        (
            RESOURCE_SERVER,
            [
                "ResourceServer",
                "CreateResourceServerRequestContent",
                "UpdateResourceServerRequestContent",
            ],
        ),
        (
            CLIENT_GRANT,
            [
                "ClientGrantResponseContent",
                "CreateClientGrantRequestContent",
                "UpdateClientGrantRequestContent",
            ],
        ),
    ]
    .map(|(table, names)| (table, names, &auth0))
    .into_iter()
    .chain([
        (
            ORGANIZATION,
            [
                "Organization",
                "CreateOrganizationRequestContent",
                "UpdateOrganizationRequestContent",
            ],
            &next,
        ),
        (
            LOG_STREAM,
            [
                "LogStreamHttpResponseSchema",
                "CreateLogStreamHttpRequestBody",
                "UpdateLogStreamRequestContent",
            ],
            &next,
        ),
        (
            TENANT_SETTINGS,
            [
                "GetTenantSettingsResponseContent",
                "UpdateTenantSettingsRequestContent",
                "UpdateTenantSettingsResponseContent",
            ],
            &next,
        ),
    ]);
    for (table, names, doc) in tables {
        let schemas = &doc["components"]["schemas"];
        let theirs: BTreeSet<&str> = names
            .iter()
            .flat_map(|n| {
                schemas[*n]["properties"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{n} has no properties"))
                    .keys()
                    .map(String::as_str)
            })
            .collect();
        let ours: BTreeSet<&str> = table.iter().map(|p| p.name).collect();
        // Beyond Auth0's document only what the declaration adds on purpose, with its reason.
        let extra: BTreeSet<&str> = names.iter().flat_map(|n| beyond_auth0(n)).collect();
        assert_eq!(
            ours.difference(&theirs)
                .filter(|f| !extra.contains(*f))
                .collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "declared but not in Auth0's {names:?} nor beyond_auth0"
        );
        assert_eq!(
            theirs.difference(&ours).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "in Auth0's {names:?} without a declared meaning (src/domain/properties.rs)"
        );
    }
}

/// `docs/contract.md` section 9 carries the tables generated from the declarations
/// (`CLAVIS_BLESS=1` rewrites them between their markers).
#[test]
fn the_contract_carries_the_property_tables() {
    use clavis::domain::properties::{
        CLIENT, CLIENT_GRANT, LOG_STREAM, ORGANIZATION, RESOURCE_SERVER, TENANT_SETTINGS, markdown,
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/contract.md");
    let mut text = std::fs::read_to_string(&path).unwrap();
    const BEGIN: &str = "<!-- generated from src/domain/properties.rs: begin -->\n";
    const END: &str = "<!-- generated from src/domain/properties.rs: end -->\n";
    let generated = [
        markdown("client property", CLIENT),
        markdown("resource-server property", RESOURCE_SERVER),
        markdown("client-grant property", CLIENT_GRANT),
        markdown("organization property", ORGANIZATION),
        markdown("log-stream property", LOG_STREAM),
        markdown("tenant setting", TENANT_SETTINGS),
    ]
    .join("\n");
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/contract.md lacks the markers {BEGIN:?} and {END:?}");
    };
    let current = &text[begin + BEGIN.len()..end];
    if current == generated {
        return;
    }
    if std::env::var_os("CLAVIS_BLESS").is_some() {
        text.replace_range(begin + BEGIN.len()..end, &generated);
        std::fs::write(&path, text).unwrap();
        return;
    }
    panic!(
        "docs/contract.md's property tables differ from src/domain/properties.rs; run \
         `CLAVIS_BLESS=1 cargo test --test openapi` and commit docs/contract.md"
    );
}

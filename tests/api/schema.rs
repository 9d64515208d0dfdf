//! Every Management request (body and query) is checked against the schema the served
//! document shows for its operation — Auth0's, restricted by Clavis's declaration — with
//! Auth0's error body and wording, before any rule, and nothing is written when it fails.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// What every list holds, to show that refused requests wrote nothing.
async fn everything(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/api/v2/clients",
        "/api/v2/resource-servers",
        "/api/v2/client-grants",
        "/api/v2/organizations",
        "/api/v2/log-streams",
        "/api/v2/tenants/settings",
    ] {
        out.push(app.get_ok(path).await);
    }
    out
}

#[tokio::test]
async fn bodies_are_checked_against_the_operations_schema_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let client = app.create_m2m_client("schema").await;
    let cid = client["client_id"].as_str().unwrap().to_string();
    let api = app.create_api("https://schema.example/", &["read"]).await;
    let rs_id = api["id"].as_str().unwrap().to_string();
    let grant = app.grant(&cid, "https://schema.example/", &["read"]).await;
    let grant_id = grant["id"].as_str().unwrap().to_string();
    let org = app
        .admin_expect(
            Method::POST,
            "/api/v2/organizations",
            Some(json!({"name": "acme"})),
            201,
        )
        .await;
    let org_id = org["id"].as_str().unwrap().to_string();
    let before = everything(&app).await;

    let cases: Vec<(Method, String, Value, &str)> = vec![
        // An unknown property.
        (
            Method::POST,
            "/api/v2/clients".into(),
            json!({"name": "a", "colour": "red"}),
            "Payload validation error: 'Additional properties not allowed: colour'.",
        ),
        // A property Auth0 only outputs is unknown in a request.
        (
            Method::PATCH,
            format!("/api/v2/clients/{cid}"),
            json!({"tenant": "other"}),
            "Payload validation error: 'Additional properties not allowed: tenant'.",
        ),
        // A nested required property.
        (
            Method::POST,
            "/api/v2/clients".into(),
            json!({"name": "a", "addons": {"slack": {}}}),
            "'Missing required property: team' on property addons.slack",
        ),
        // An enum.
        (
            Method::PATCH,
            format!("/api/v2/clients/{cid}"),
            json!({"redirection_policy": "sometimes"}),
            "Payload validation error: 'No enum match for: \"sometimes\"' on property redirection_policy",
        ),
        // A wrong type, nested.
        (
            Method::PATCH,
            format!("/api/v2/clients/{cid}"),
            json!({"jwt_configuration": {"lifetime_in_seconds": "long"}}),
            "'Expected type integer but found type string' on property jwt_configuration.lifetime_in_seconds",
        ),
        // A bound, with Auth0's description of the property.
        (
            Method::PATCH,
            format!("/api/v2/resource-servers/{rs_id}"),
            json!({"token_lifetime": 2_592_001}),
            "Payload validation error: 'Value 2592001 is greater than maximum 2592000' on property token_lifetime (Expiration value (in seconds) for access tokens issued for this API from the token endpoint.).",
        ),
        // An array item, nested.
        (
            Method::POST,
            "/api/v2/resource-servers".into(),
            json!({"identifier": "https://other.example/", "scopes": [{"value": 5}]}),
            "'Expected type string but found type integer' on property scopes[0].value",
        ),
        // A length.
        (
            Method::POST,
            "/api/v2/resource-servers".into(),
            json!({"identifier": "i".repeat(601)}),
            "'String is too long (601 chars), maximum 600' on property identifier",
        ),
        // A pattern.
        (
            Method::POST,
            "/api/v2/resource-servers".into(),
            json!({"identifier": "https://other.example/", "name": "<b>"}),
            "'String does not match pattern ^[^<>]+$: <b>' on property name",
        ),
        // A minimum length (the domain writes none of Auth0's limits again).
        (
            Method::POST,
            "/api/v2/resource-servers".into(),
            json!({"identifier": "https://other.example/", "signing_alg": "HS256", "signing_secret": "0123456789abcde"}),
            "'String is too short (15 chars), minimum 16' on property signing_secret",
        ),
        // An array item of a client grant.
        (
            Method::PATCH,
            format!("/api/v2/client-grants/{grant_id}"),
            json!({"authorization_details_types": ["ok", 5]}),
            "'Expected type string but found type integer' on property authorization_details_types[1]",
        ),
        // A required property.
        (
            Method::POST,
            "/api/v2/client-grants".into(),
            json!({"client_id": cid, "scope": []}),
            "Payload validation error: 'Missing required property: audience'.",
        ),
        // Organizations, log streams and tenant settings.
        (
            Method::PATCH,
            format!("/api/v2/organizations/{org_id}"),
            json!({"display_name": 5}),
            // `null` clears it (properties::NULL_CLEARS).
            "'Expected type string,null but found type integer' on property display_name",
        ),
        (
            Method::POST,
            "/api/v2/log-streams".into(),
            json!({"type": "http", "sink": {"httpEndpoint": "https://siem.example/", "httpContentFormat": "XML"}}),
            "'No enum match for: \"XML\"' on property sink.httpContentFormat",
        ),
        (
            Method::POST,
            "/api/v2/log-streams".into(),
            json!({"type": "http", "sink": {"httpEndpoint": "https://siem.example/"}, "pii_config": {"log_fields": []}}),
            "'Array is too short (0), minimum 1' on property pii_config.log_fields",
        ),
        (
            Method::PATCH,
            "/api/v2/tenants/settings".into(),
            json!({"default_token_quota": {"clients": {"client_credentials": {"per_day": "many"}}}}),
            "'Expected type integer but found type string' on property default_token_quota.clients.client_credentials.per_day",
        ),
        // A credential.
        (
            Method::POST,
            format!("/api/v2/clients/{cid}/credentials"),
            json!({"credential_type": "password"}),
            "'No enum match for: \"password\"' on property credential_type",
        ),
        (
            Method::PATCH,
            format!("/api/v2/clients/{cid}/credentials/cred_nothing"),
            json!({}),
            "Payload validation error: 'Too few properties defined (0), minimum 1'.",
        ),
        // Not an object at all.
        (
            Method::POST,
            "/api/v2/organizations".into(),
            json!(["acme"]),
            "Payload validation error: 'Expected type object but found type array'.",
        ),
    ];
    for (method, path, body, says) in cases {
        let (status, answer) = app.admin_json(method.clone(), &path, Some(body)).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(
            answer["errorCode"], "invalid_body",
            "{method} {path}: {answer}"
        );
        assert_eq!(answer["error"], "Bad Request");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{method} {path}: {message}");
    }
    assert_eq!(everything(&app).await, before, "a refused request wrote");

    // A form body's text is read as the schema's types first.
    let r = app
        .admin_form(
            Method::PATCH,
            &format!("/api/v2/resource-servers/{rs_id}"),
            &[("token_lifetime", "soon")],
        )
        .await;
    let (status, answer) = crate::helpers::status_json(r).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("'Expected type integer but found type string' on property token_lifetime"),
        "{answer}"
    );
    let r = app
        .admin_form(
            Method::PATCH,
            &format!("/api/v2/resource-servers/{rs_id}"),
            &[("token_lifetime", "600"), ("allow_offline_access", "false")],
        )
        .await;
    let (status, answer) = crate::helpers::status_json(r).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token_lifetime"], 600);
    // A property kept verbatim is kept with the schema's type, not as the form's text.
    let r = app
        .admin_form(
            Method::POST,
            "/api/v2/resource-servers",
            &[
                ("identifier", "https://form.example/"),
                ("allow_online_access_with_ephemeral_sessions", "false"),
                ("token_dialect", "access_token_authz"),
            ],
        )
        .await;
    let (status, answer) = crate::helpers::status_json(r).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["allow_online_access_with_ephemeral_sessions"], false);
    let id = answer["id"].as_str().unwrap();
    let stored = app.get_ok(&format!("/api/v2/resource-servers/{id}")).await;
    assert_eq!(stored["allow_online_access_with_ephemeral_sessions"], false);
    let r = app
        .admin_form(
            Method::PATCH,
            &format!("/api/v2/client-grants/{grant_id}"),
            &[("allow_any_organization", "false")],
        )
        .await;
    let (status, answer) = crate::helpers::status_json(r).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["allow_any_organization"], false);
}

#[tokio::test]
async fn queries_are_checked_against_the_operations_parameters() {
    let app = TestApp::spawn().await;
    for (path, says) in [
        (
            "/api/v2/clients?per_page=many",
            "Query validation error: 'Expected type integer but found type string' on property per_page (",
        ),
        (
            "/api/v2/organizations?take=0",
            "Query validation error: 'Value 0 is less than minimum 1' on property take (",
        ),
        (
            "/api/v2/client-grants?subject_type=robot",
            "Query validation error: 'No enum match for: \"robot\"' on property subject_type (",
        ),
        (
            "/api/v2/resource-servers?include_totals=maybe",
            "Query validation error: 'Expected type boolean but found type string' on property include_totals (",
        ),
        (
            "/api/v2/logs?per_page=101",
            "Query validation error: 'Value 101 is greater than maximum 100' on property per_page (",
        ),
    ] {
        let (status, answer) = app.admin_json(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(
            answer["errorCode"], "invalid_query_string",
            "{path}: {answer}"
        );
        let message = answer["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{path}: {message}");
    }
    // Parameters the operation does not document are left alone, as Auth0 leaves them.
    assert_eq!(
        app.get_ok("/api/v2/clients?colour=red&per_page=5")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// The served document and the validator agree: every Management operation whose served
/// request schema refuses unknown properties refuses one through HTTP, and every query
/// parameter the document types is checked by the handler — so a handler that validated
/// with another schema than the one served, or not at all, fails here.
#[tokio::test]
async fn every_served_request_schema_is_the_one_its_handler_checks() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get_ok("/api/v2/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => schema.clone(),
        }
    };
    let mut bodies = 0;
    let mut queries = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v2/") {
            continue;
        }
        // Path parameters that name nothing: the request must fail its schema before any
        // lookup.
        let concrete = crate::helpers::naming_nothing(path);
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = resolve(&op["requestBody"]["content"]["application/json"]["schema"]);
            if body["additionalProperties"] == false {
                let (status, answer) = app
                    .admin_json(
                        method.clone(),
                        &concrete,
                        Some(json!({"x_not_in_the_schema": 1})),
                    )
                    .await;
                assert_eq!(status, 400, "{method} {path}: {answer}");
                // The unknown property, or first a property the served schema requires.
                let message = answer["message"].as_str().unwrap();
                let required: Vec<String> = body["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("'Missing required property: {}'", r.as_str().unwrap()))
                    .collect();
                assert!(
                    message.contains("'Additional properties not allowed: x_not_in_the_schema'")
                        || required.iter().any(|r| message.contains(r.as_str())),
                    "{method} {path}: {answer}"
                );
                bodies += 1;
            }
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "query" {
                    continue;
                }
                let schema = resolve(&parameter["schema"]);
                let name = parameter["name"].as_str().unwrap();
                let bad = match &schema["type"] {
                    t if t == "integer" || t == "boolean" => "not-a-value",
                    _ if schema["enum"].is_array() => "not-in-the-enum",
                    _ => continue,
                };
                let (status, answer) = app
                    .admin_json(method.clone(), &format!("{concrete}?{name}={bad}"), None)
                    .await;
                assert_eq!(status, 400, "{method} {path}?{name}: {answer}");
                assert_eq!(answer["errorCode"], "invalid_query_string");
                assert!(
                    answer["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("on property {name}")),
                    "{method} {path}?{name}: {answer}"
                );
                queries += 1;
            }
        }
    }
    assert!(bodies >= 12, "{bodies} request bodies checked");
    assert!(queries >= 20, "{queries} query parameters checked");
}

/// A rule of Clavis's own (here at most 20 `grant_types`, where Auth0 states no limit) refuses
/// a property in Auth0's words: the served schema's description of it, not a copy of the
/// domain's.
#[tokio::test]
async fn a_clavis_rule_describes_the_property_as_auth0_does() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get_ok("/api/v2/openapi.json").await;
    let create = doc["paths"]["/api/v2/clients"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap()
        .trim_start_matches("#/components/schemas/")
        .to_string();
    let described =
        doc["components"]["schemas"][&create]["properties"]["grant_types"]["description"]
            .as_str()
            .unwrap()
            .to_string();
    let before = everything(&app).await;
    let (status, answer) = app
        .admin_json(
            Method::POST,
            "/api/v2/clients",
            Some(json!({"name": "many", "grant_types": vec!["client_credentials"; 21]})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["message"],
        format!(
            "Payload validation error: 'Array is too long (21), maximum 20' on property grant_types ({described})."
        )
    );
    assert_eq!(everything(&app).await, before);
}

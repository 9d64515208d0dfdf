//! What the renderers answer validates against the response schema the served document
//! shows for the operation (Auth0's, restricted by the declarations, listing exactly what
//! Clavis returns). Each resource is created and changed with every property its served
//! request schema offers (values generated from the schema; a property a declared rule
//! refuses is left out), so that a renderer returning a property, a type or a shape its
//! schema does not describe fails here.

use std::collections::BTreeSet;

use jsonschema::{Registry, Validator};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, rsa_public_key_of_bits};

const SERVED: &str = "urn:clavis:test-served";

struct Served {
    doc: Value,
    registry: Registry<'static>,
}

impl Served {
    async fn fetch(app: &TestApp) -> Self {
        let doc = app.get_ok("/api/v2/openapi.json").await;
        let registry = Registry::new()
            .add(SERVED, doc.clone())
            .unwrap()
            .prepare()
            .unwrap();
        Self { doc, registry }
    }

    fn validator(&self, pointer: &str) -> Validator {
        jsonschema::options()
            .with_registry(&self.registry)
            .build(&json!({ "$ref": format!("{SERVED}#{pointer}") }))
            .unwrap_or_else(|e| panic!("{pointer}: {e}"))
    }

    fn operation_pointer(path: &str, method: &str) -> String {
        let escaped = path
            .replace('~', "~0")
            .replace('/', "~1")
            .replace('{', "%7B")
            .replace('}', "%7D");
        format!("/paths/{escaped}/{method}")
    }

    /// Checks `body`, answered by `method path` with `status`, against the served schema.
    fn check(&self, path: &str, method: &str, status: u16, body: &Value) {
        let op = Self::operation_pointer(path, method);
        let schema = format!("{op}/responses/{status}/content/application~1json/schema");
        assert!(
            self.doc
                .pointer(&schema.replace("%7B", "{").replace("%7D", "}"))
                .is_some(),
            "{method} {path} {status}: the document has no response schema"
        );
        let validator = self.validator(&schema);
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} answers what its served schema does not describe:\n{}\n{body:#}",
            errors.join("\n")
        );
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(r) = schema["$ref"].as_str() {
            schema = self.doc.pointer(r.trim_start_matches('#')).unwrap();
        }
        schema
    }

    /// The request schema of `method path`.
    fn request_schema(&self, path: &str, method: &str) -> &Value {
        self.resolve(&self.doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"])
    }

    /// A value for `schema`: its default or first enum value, else one built from its type
    /// (every property of an object).
    fn fill(&self, schema: &Value, depth: usize) -> Option<Value> {
        let schema = self.resolve(schema);
        for key in ["anyOf", "oneOf"] {
            if let Some(first) = schema[key].as_array().and_then(|m| {
                m.iter()
                    .find(|s| self.resolve(s)["type"] != "null")
                    .or(m.first())
            }) {
                return self.fill(first, depth);
            }
        }
        if let Some(values) = schema["enum"].as_array() {
            return values.iter().find(|v| !v.is_null()).cloned();
        }
        if let Some(default) = schema.get("default").filter(|d| !d.is_null()) {
            return Some(default.clone());
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec!["object"],
        };
        let t = types
            .iter()
            .find(|t| **t != "null")
            .copied()
            .unwrap_or("null");
        Some(match t {
            "string" if schema["format"] == "date-time" => json!("2031-02-03T04:05:06.000Z"),
            "string" if schema["format"] == "uri" => json!("https://example.com/x"),
            "string" => {
                let min = schema["minLength"].as_u64().unwrap_or(1).max(1) as usize;
                json!("v".repeat(min))
            }
            "integer" | "number" => json!(
                schema["minimum"]
                    .as_i64()
                    .unwrap_or(0)
                    .max(1)
                    .min(schema["maximum"].as_i64().unwrap_or(i64::MAX))
            ),
            "boolean" => json!(false),
            "array" => {
                if depth > 3 {
                    json!([])
                } else {
                    let item = self.fill(&schema["items"], depth + 1)?;
                    json!([item])
                }
            }
            "object" => {
                if depth > 3 {
                    return Some(json!({}));
                }
                let mut out = Map::new();
                for (k, v) in schema["properties"].as_object().into_iter().flatten() {
                    if let Some(v) = self.fill(v, depth + 1) {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            _ => Value::Null,
        })
    }

    /// A body for `method path` with every property of its request schema that the schema
    /// itself accepts as generated, `fixed` overriding.
    fn body(&self, path: &str, method: &str, fixed: &Value) -> Value {
        let mut body = self
            .fill(self.request_schema(path, method), 0)
            .unwrap_or_else(|| json!({}));
        for (k, v) in fixed.as_object().unwrap() {
            body[k] = v.clone();
        }
        let validator = self.validator(&format!(
            "{}/requestBody/content/application~1json/schema",
            Self::operation_pointer(path, method)
        ));
        // Leave out what the generated values do not satisfy (patterns, formats).
        for _ in 0..200 {
            let Some(error) = validator.iter_errors(&body).next() else {
                return body;
            };
            let top = top_property(error.instance_path().as_str());
            let Some(top) = top.filter(|t| body.get(t).is_some()) else {
                panic!("{method} {path}: {error} in {body}");
            };
            body.as_object_mut().unwrap().remove(&top);
        }
        body
    }
}

fn top_property(pointer: &str) -> Option<String> {
    pointer
        .split('/')
        .nth(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
}

/// Sends `body` to `method url`, leaving out each property a declared rule of Clavis
/// refuses (the 400 names it) until it is accepted; the answer and what was sent.
async fn send(app: &TestApp, method: Method, url: &str, mut body: Value) -> (u16, Value, Value) {
    let mut left_out = BTreeSet::new();
    for _ in 0..60 {
        let (status, answer) = app
            .admin_json(method.clone(), url, Some(body.clone()))
            .await;
        if status != 400 {
            return (status, answer, body);
        }
        let message = answer["message"].as_str().unwrap_or_default().to_string();
        // The longest property name the message names (`token_lifetime_for_web` before
        // `token_lifetime`).
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        let named = keys.into_iter().find(|k| {
            [".", " ", "[", ")", ",", "'"]
                .iter()
                .any(|end| message.contains(&format!("property {k}{end}")))
                || message.contains(&format!("`{k}`"))
                || message.contains(&format!(": {k}'"))
                || message.contains(&format!("{k} "))
        });
        let Some(named) = named else {
            panic!("{method} {url}: a 400 naming no property sent: {answer}\n{body:#}");
        };
        left_out.insert(named.clone());
        body.as_object_mut().unwrap().remove(&named);
    }
    panic!("{method} {url}: still refused after leaving out {left_out:?}");
}

#[tokio::test]
async fn every_answer_validates_against_its_served_response_schema() {
    let app = TestApp::spawn().await;
    let served = Served::fetch(&app).await;
    let mut properties_sent = 0;

    // Resource servers.
    let path = "/api/v2/resource-servers";
    let body = served.body(
        path,
        "post",
        &json!({"identifier": "https://full.example/"}),
    );
    let (status, rs, sent) = send(&app, Method::POST, path, body).await;
    assert_eq!(status, 201, "{rs}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(path, "post", 201, &rs);
    let rs_id = rs["id"].as_str().unwrap().to_string();
    let item = "/api/v2/resource-servers/{id}";
    served.check(
        item,
        "get",
        200,
        &app.get_ok(&format!("{path}/{rs_id}")).await,
    );
    let body = served.body(item, "patch", &json!({}));
    let (status, answer, sent) = send(&app, Method::PATCH, &format!("{path}/{rs_id}"), body).await;
    assert_eq!(status, 200, "{answer}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(item, "patch", 200, &answer);

    // Clients.
    let path = "/api/v2/clients";
    let body = served.body(path, "post", &json!({"name": "full"}));
    let (status, client, sent) = send(&app, Method::POST, path, body).await;
    assert_eq!(status, 201, "{client}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(path, "post", 201, &client);
    let cid = client["client_id"].as_str().unwrap().to_string();
    let item = "/api/v2/clients/{client_id}";
    served.check(
        item,
        "get",
        200,
        &app.get_ok(&format!("{path}/{cid}")).await,
    );
    let body = served.body(item, "patch", &json!({}));
    let (status, answer, sent) = send(&app, Method::PATCH, &format!("{path}/{cid}"), body).await;
    assert_eq!(status, 200, "{answer}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(item, "patch", 200, &answer);
    let (status, answer) = app
        .admin_json(Method::POST, &format!("{path}/{cid}/rotate-secret"), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    served.check(
        "/api/v2/clients/{client_id}/rotate-secret",
        "post",
        200,
        &answer,
    );

    // Credentials.
    let creds = format!("{path}/{cid}/credentials");
    let (status, credential) = app
        .admin_json(
            Method::POST,
            &creds,
            Some(json!({"credential_type": "public_key", "name": "k", "pem": rsa_public_key_of_bits(2048),
                "alg": "RS256", "expires_at": "2031-02-03T04:05:06.000Z"})),
        )
        .await;
    assert_eq!(status, 201, "{credential}");
    let creds_path = "/api/v2/clients/{client_id}/credentials";
    served.check(creds_path, "post", 201, &credential);
    served.check(creds_path, "get", 200, &app.get_ok(&creds).await);
    let cred_item = "/api/v2/clients/{client_id}/credentials/{credential_id}";
    let one = format!("{creds}/{}", credential["id"].as_str().unwrap());
    served.check(cred_item, "get", 200, &app.get_ok(&one).await);
    let (status, answer) = app
        .admin_json(
            Method::PATCH,
            &one,
            Some(json!({"expires_at": "2032-02-03T04:05:06.000Z"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    served.check(cred_item, "patch", 200, &answer);

    // Client grants.
    let path = "/api/v2/client-grants";
    let body = served.body(
        path,
        "post",
        &json!({"client_id": cid, "audience": "https://full.example/", "scope": []}),
    );
    let (status, grant, sent) = send(&app, Method::POST, path, body).await;
    assert_eq!(status, 201, "{grant}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(path, "post", 201, &grant);
    let grant_id = grant["id"].as_str().unwrap().to_string();
    let item = "/api/v2/client-grants/{id}";
    served.check(
        item,
        "get",
        200,
        &app.get_ok(&format!("{path}/{grant_id}")).await,
    );
    let body = served.body(item, "patch", &json!({"scope": []}));
    let (status, answer, sent) =
        send(&app, Method::PATCH, &format!("{path}/{grant_id}"), body).await;
    assert_eq!(status, 200, "{answer}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(item, "patch", 200, &answer);

    // Organizations.
    let path = "/api/v2/organizations";
    let body = served.body(path, "post", &json!({"name": "full-org"}));
    let (status, org, sent) = send(&app, Method::POST, path, body).await;
    assert_eq!(status, 201, "{org}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(path, "post", 201, &org);
    let org_id = org["id"].as_str().unwrap().to_string();
    let item = "/api/v2/organizations/{id}";
    served.check(
        item,
        "get",
        200,
        &app.get_ok(&format!("{path}/{org_id}")).await,
    );
    served.check(
        "/api/v2/organizations/name/{name}",
        "get",
        200,
        &app.get_ok(&format!("{path}/name/full-org")).await,
    );
    let body = served.body(item, "patch", &json!({}));
    let (status, answer, sent) = send(&app, Method::PATCH, &format!("{path}/{org_id}"), body).await;
    assert_eq!(status, 200, "{answer}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(item, "patch", 200, &answer);
    // The grant must allow organizations to be associated.
    let (status, answer) = app
        .admin_json(
            Method::PATCH,
            &format!("/api/v2/client-grants/{grant_id}"),
            Some(json!({"organization_usage": "allow"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = app
        .admin_json(
            Method::POST,
            &format!("{path}/{org_id}/client-grants"),
            Some(json!({"grant_id": grant_id})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    served.check(
        "/api/v2/organizations/{id}/client-grants",
        "post",
        201,
        &answer,
    );

    // Log streams.
    let path = "/api/v2/log-streams";
    let body = served.body(
        path,
        "post",
        &json!({"type": "http", "sink": {"httpEndpoint": "https://siem.example/in",
            "httpContentFormat": "JSONLINES", "httpContentType": "application/json",
            "httpAuthorization": "Bearer x", "httpCustomHeaders": [{"header": "X-A", "value": "b"}]}}),
    );
    let (status, stream, sent) = send(&app, Method::POST, path, body).await;
    assert_eq!(status, 200, "{stream}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(path, "post", 200, &stream);
    let stream_id = stream["id"].as_str().unwrap().to_string();
    let item = "/api/v2/log-streams/{id}";
    served.check(
        item,
        "get",
        200,
        &app.get_ok(&format!("{path}/{stream_id}")).await,
    );
    let (status, answer) = app
        .admin_json(
            Method::PATCH,
            &format!("{path}/{stream_id}"),
            Some(json!({"name": "renamed", "status": "paused"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    served.check(item, "patch", 200, &answer);

    // Tenant settings.
    let path = "/api/v2/tenants/settings";
    let body = served.body(path, "patch", &json!({}));
    let (status, answer, sent) = send(&app, Method::PATCH, path, body).await;
    assert_eq!(status, 200, "{answer}");
    properties_sent += sent.as_object().unwrap().len();
    served.check(path, "patch", 200, &answer);
    served.check(path, "get", 200, &app.get_ok(path).await);

    // Every list, in each of its paging modes.
    for (path, template, extra) in [
        ("/api/v2/clients", "/api/v2/clients", ""),
        ("/api/v2/resource-servers", "/api/v2/resource-servers", ""),
        ("/api/v2/client-grants", "/api/v2/client-grants", ""),
        ("/api/v2/organizations", "/api/v2/organizations", ""),
        (
            &format!("/api/v2/organizations/{org_id}/client-grants"),
            "/api/v2/organizations/{id}/client-grants",
            "",
        ),
        (
            &format!("/api/v2/client-grants/{grant_id}/organizations"),
            "/api/v2/client-grants/{id}/organizations",
            "",
        ),
        ("/api/v2/log-streams", "/api/v2/log-streams", ""),
        (
            "/api/v2/credentials/expiring",
            "/api/v2/credentials/expiring",
            "",
        ),
        ("/api/v2/logs", "/api/v2/logs", ""),
        (
            &format!("/api/v2/clients/{cid}/credentials"),
            "/api/v2/clients/{client_id}/credentials",
            "",
        ),
    ] {
        // `take=1` leaves a `next` cursor wherever a list holds two items.
        for paging in [
            "",
            "?include_totals=true",
            "?page=0&per_page=2",
            "?take=2",
            "?take=1",
        ] {
            let (status, answer) = app
                .admin_json(Method::GET, &format!("{path}{paging}{extra}"), None)
                .await;
            if status == 200 {
                served.check(template, "get", 200, &answer);
            }
        }
    }
    let logs = app.get_ok("/api/v2/logs").await;
    let log_id = logs[0]["log_id"].as_str().unwrap();
    served.check(
        "/api/v2/logs/{id}",
        "get",
        200,
        &app.get_ok(&format!("/api/v2/logs/{log_id}")).await,
    );
    // Signing keys, last: revoking the previous key ends the admin's token.
    let path = "/api/v2/keys/signing";
    served.check(path, "get", 200, &app.get_ok(path).await);
    let (status, rotated) = app
        .admin_json(Method::POST, "/api/v2/keys/signing/rotate", None)
        .await;
    assert_eq!(status, 201, "{rotated}");
    served.check("/api/v2/keys/signing/rotate", "post", 201, &rotated);
    let kid = rotated["kid"].as_str().unwrap();
    served.check(
        "/api/v2/keys/signing/{kid}",
        "get",
        200,
        &app.get_ok(&format!("{path}/{kid}")).await,
    );
    let keys = app.get_ok(path).await;
    let previous = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["previous"] == true)
        .map(|k| k["kid"].as_str().unwrap().to_string());
    if let Some(previous) = previous {
        let (status, answer) = app
            .admin_json(Method::PUT, &format!("{path}/{previous}/revoke"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        served.check("/api/v2/keys/signing/{kid}/revoke", "put", 200, &answer);
    }

    assert!(properties_sent > 100, "{properties_sent} properties sent");
}

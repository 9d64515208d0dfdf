//! Bad input never causes a 500, always gets an Auth0 error body, and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";

struct World {
    client: String,
    credential: String,
    rs: String,
    grant: String,
}

async fn world(app: &TestApp) -> World {
    let rs = app.create_api(API, &["read"]).await;
    let c = app.create_m2m_client("target").await;
    let client = c["client_id"].as_str().unwrap().to_string();
    let (_, public) = rsa_key(2048);
    let cred = app
        .credential_ok(
            &client,
            json!({"credential_type": "public_key", "pem": public, "expires_at": "2031-01-01T00:00:00Z"}),
        )
        .await;
    let grant = app.grant(&client, API, &["read"]).await;
    World {
        client,
        credential: cred["id"].as_str().unwrap().to_string(),
        rs: rs["id"].as_str().unwrap().to_string(),
        grant: grant["id"].as_str().unwrap().to_string(),
    }
}

/// Every endpoint that takes a body.
fn writes(w: &World) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/api/v2/clients".into()),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client)),
        (
            Method::POST,
            format!("/api/v2/clients/{}/credentials", w.client),
        ),
        (
            Method::PATCH,
            format!("/api/v2/clients/{}/credentials/{}", w.client, w.credential),
        ),
        (Method::POST, "/api/v2/resource-servers".into()),
        (Method::PATCH, format!("/api/v2/resource-servers/{}", w.rs)),
        (Method::POST, "/api/v2/client-grants".into()),
        (Method::PATCH, format!("/api/v2/client-grants/{}", w.grant)),
    ]
}

/// Malformed JSON and JSON that is not an object, on every endpoint that takes a body: 400
/// `invalid_body`, and nothing changes.
#[tokio::test]
async fn malformed_or_non_object_json_is_400_invalid_body_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let token = app.admin_token().await;
    let before = app.everything().await;
    let deep_array = "[".repeat(30_000);
    let deep_object = format!("{}1", "{\"a\":".repeat(10_000));
    for (method, path) in writes(&w) {
        for body in [
            // Malformed.
            "{",
            "{\"name\": }",
            "{\"name\": \"x\",}",
            "nul",
            "{\"a\":1}{\"b\":2}",
            "\u{0}",
            "{\"name\": \"\\ud800\"}",
            &deep_array,
            &deep_object,
            // Not an object.
            "[]",
            "[{\"name\": \"x\"}]",
            "null",
            "42",
            "\"text\"",
            "true",
        ] {
            let r = app
                .call_raw(
                    &token,
                    method.clone(),
                    &path,
                    "application/json",
                    body.to_string(),
                )
                .await;
            let shown = &body[..body.len().min(40)];
            assert_eq!(r.status().as_u16(), 400, "{method} {path} {shown:?}");
            assert_error(r, 400, Some("invalid_body")).await;
        }
    }
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn wrong_types_are_400_invalid_body() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let before = app.everything().await;
    #[rustfmt::skip]
    let cases = [
        (Method::POST, "/api/v2/clients".to_string(), json!({"name": 5})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": ["x"]})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "grant_types": "client_credentials"})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "jwt_configuration": []})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "client_metadata": {"k": 1}})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "client_metadata": "k=v"})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "callbacks": "https://a"})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "client_authentication_methods": []})),
        (Method::POST, "/api/v2/clients".into(), json!({"name": "x", "client_authentication_methods": {"private_key_jwt": {"credentials": {}}}})),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client), json!({"is_first_party": "true"})),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client), json!({"client_authentication_methods": "private_key_jwt"})),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client), json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": 5}]}}, "token_endpoint_auth_method": null})),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client), json!({"jwt_configuration": {"lifetime_in_seconds": 1.5}})),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client), json!({"jwt_configuration": {"lifetime_in_seconds": 1e300}})),
        (Method::PATCH, format!("/api/v2/clients/{}", w.client), json!({"jwt_configuration": {"lifetime_in_seconds": -9_223_372_036_854_775_807_i64}})),
        (Method::POST, format!("/api/v2/clients/{}/credentials", w.client), json!({"credential_type": "public_key", "pem": 5})),
        (Method::POST, format!("/api/v2/clients/{}/credentials", w.client), json!({"credential_type": ["public_key"]})),
        (Method::POST, format!("/api/v2/clients/{}/credentials", w.client), json!({"credential_type": "cert_subject_dn", "subject_dn": {"CN": "x"}})),
        (Method::PATCH, format!("/api/v2/clients/{}/credentials/{}", w.client, w.credential), json!({"expires_at": 0})),
        (Method::PATCH, format!("/api/v2/clients/{}/credentials/{}", w.client, w.credential), json!({"expires_at": ["2031-01-01T00:00:00Z"]})),
        (Method::POST, "/api/v2/resource-servers".into(), json!({"identifier": 5})),
        (Method::POST, "/api/v2/resource-servers".into(), json!({"identifier": "urn:x", "scopes": [{"value": 5}]})),
        (Method::POST, "/api/v2/resource-servers".into(), json!({"identifier": "urn:x", "scopes": ["read"]})),
        (Method::POST, "/api/v2/resource-servers".into(), json!({"identifier": "urn:x", "token_lifetime": 99_999_999_999_999_999_999.0})),
        (Method::POST, "/api/v2/resource-servers".into(), json!({"identifier": "urn:x", "allow_offline_access": 1})),
        (Method::PATCH, format!("/api/v2/resource-servers/{}", w.rs), json!({"token_lifetime": "60"})),
        (Method::PATCH, format!("/api/v2/resource-servers/{}", w.rs), json!({"scopes": null})),
        (Method::POST, "/api/v2/client-grants".into(), json!({"client_id": w.client, "audience": API, "scope": "read"})),
        (Method::POST, "/api/v2/client-grants".into(), json!({"client_id": w.client, "audience": [API], "scope": []})),
        (Method::PATCH, format!("/api/v2/client-grants/{}", w.grant), json!({"scope": [["read"]]})),
        (Method::PATCH, format!("/api/v2/client-grants/{}", w.grant), json!({"scope": {"read": true}})),
    ];
    for (method, path, body) in cases {
        let (status, err) = app
            .admin_json(method.clone(), &path, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{method} {path} {body} → {err}");
        assert_eq!(err["errorCode"], "invalid_body", "{body}");
        assert_eq!(err["statusCode"], 400);
        assert_eq!(err["error"], "Bad Request");
    }
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn huge_bodies_are_refused_with_an_auth0_error_body() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let token = app.admin_token().await;
    let before = app.everything().await;
    let big = json!({"name": "x".repeat(100 * 1024)}).to_string();
    for (method, path) in writes(&w) {
        let r = app
            .call_raw(
                &token,
                method.clone(),
                &path,
                "application/json",
                big.clone(),
            )
            .await;
        let status = r.status().as_u16();
        assert!(status == 413 || status == 400, "{method} {path}: {status}");
        assert_error(r, status, None).await;
    }
    // The same through a form body.
    let r = app
        .call_raw(
            &token,
            Method::POST,
            &format!("/api/v2/clients/{}/credentials", w.client),
            "application/x-www-form-urlencoded",
            format!("credential_type=public_key&pem={}", "A".repeat(100 * 1024)),
        )
        .await;
    let status = r.status().as_u16();
    assert!(status == 413 || status == 400, "{status}");
    assert_error(r, status, None).await;
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn huge_token_requests_are_refused_with_an_oauth_error() {
    let app = TestApp::spawn().await;
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", &"s".repeat(100 * 1024)),
            ("audience", &app.management_audience()),
        ])
        .await;
    let status = r.status().as_u16();
    assert!(status == 413 || status == 400, "{status}");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn strings_just_over_the_limits_are_400() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let before = app.everything().await;
    let (_, public) = rsa_key(2048);
    let cases = [
        (
            Method::POST,
            "/api/v2/clients".to_string(),
            json!({"name": "x", "description": "d".repeat(141)}),
        ),
        (
            Method::POST,
            format!("/api/v2/clients/{}/credentials", w.client),
            json!({"credential_type": "public_key", "pem": public, "name": "n".repeat(129)}),
        ),
        (
            Method::POST,
            format!("/api/v2/clients/{}/credentials", w.client),
            json!({"credential_type": "x509_cert", "pem": format!("{}{}", "x".repeat(4097), "")}),
        ),
        (
            Method::POST,
            format!("/api/v2/clients/{}/credentials", w.client),
            json!({"credential_type": "cert_subject_dn", "subject_dn": "C".repeat(257)}),
        ),
        (
            Method::POST,
            "/api/v2/resource-servers".into(),
            json!({"identifier": "u".repeat(601)}),
        ),
        (
            Method::POST,
            "/api/v2/resource-servers".into(),
            json!({"identifier": "urn:x", "name": "n".repeat(201)}),
        ),
        (
            Method::POST,
            "/api/v2/client-grants".into(),
            json!({"client_id": w.client, "audience": "a".repeat(601), "scope": []}),
        ),
    ];
    for (method, path, body) in cases {
        let (status, err) = app.admin_json(method.clone(), &path, Some(body)).await;
        assert_eq!(status, 400, "{method} {path} → {err}");
        assert_eq!(err["errorCode"], "invalid_body");
    }
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn very_long_path_ids_are_refused_cleanly() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let before = app.everything().await;
    let long = "a".repeat(5000);
    let paths = [
        format!("/api/v2/clients/{long}"),
        format!("/api/v2/clients/{long}/credentials"),
        format!("/api/v2/clients/{}/credentials/{long}", w.client),
        format!("/api/v2/resource-servers/{long}"),
        format!("/api/v2/client-grants/{long}"),
    ];
    for path in &paths {
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "x"}))),
            (Method::DELETE, None),
        ] {
            let r = app.admin(method.clone(), path, body).await;
            let status = r.status().as_u16();
            // 405 for a method the collection does not have.
            assert!(
                [400, 404, 405].contains(&status),
                "{method} {}…: {status}",
                &path[..40]
            );
            assert_error(r, status, None).await;
        }
    }
    app.admin_error(
        Method::GET,
        &format!("/api/v2/clients/{long}"),
        None,
        400,
        Some("invalid_uri"),
    )
    .await;
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn odd_path_ids_are_404_not_500() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    for id in [
        "%00",
        "%FF%FE",
        "'%20OR%201=1--",
        "..%2F..%2Fetc%2Fpasswd",
        "%E2%98%83",
        "cred_%22",
    ] {
        for path in [
            format!("/api/v2/clients/{id}"),
            format!("/api/v2/clients/{}/credentials/{id}", w.client),
            format!("/api/v2/resource-servers/{id}"),
            format!("/api/v2/client-grants/{id}"),
        ] {
            let r = app.admin(Method::GET, &path, None).await;
            let status = r.status().as_u16();
            assert!([400, 404].contains(&status), "{path}: {status}");
            assert_error(r, status, None).await;
        }
    }
    // Not UTF-8 once decoded: a path validation error, in Auth0's shape.
    app.admin_error(
        Method::GET,
        "/api/v2/clients/%FF%FE",
        None,
        400,
        Some("invalid_uri"),
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v2/users",
        "/api/v2/clients/x/y/z",
        "/api/v3/clients",
        "/nothing-here",
        "/api/v2/",
    ] {
        let err = app.admin_error(Method::GET, path, None, 404, None).await;
        assert_eq!(err["error"], "Not Found", "{path}");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_json() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::PUT, "/api/v2/clients"),
        (Method::DELETE, "/api/v2/clients"),
        (Method::PUT, "/api/v2/client-grants"),
        (Method::GET, "/oauth/token"),
    ] {
        let r = app.admin(method.clone(), path, None).await;
        let status = r.status().as_u16();
        assert_eq!(status, 405, "{method} {path}");
        assert_error(r, 405, None).await;
    }
}

#[tokio::test]
async fn form_bodies_with_unexpected_fields_are_400() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let before = app.everything().await;
    let token = app.admin_token().await;
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v2/clients/{}/credentials", w.client),
            "credential_type=public_key&pem=%%%",
        ),
        (
            Method::POST,
            format!("/api/v2/clients/{}/credentials", w.client),
            "",
        ),
        (
            Method::PATCH,
            format!("/api/v2/clients/{}/credentials/{}", w.client, w.credential),
            "expires_at=",
        ),
        (
            Method::PATCH,
            format!("/api/v2/clients/{}/credentials/{}", w.client, w.credential),
            "",
        ),
        (
            Method::POST,
            "/api/v2/resource-servers".to_string(),
            "identifier=urn:x&token_lifetime=forever",
        ),
    ] {
        let r = app
            .call_raw(
                &token,
                method.clone(),
                &path,
                "application/x-www-form-urlencoded",
                body,
            )
            .await;
        assert_eq!(r.status().as_u16(), 400, "{method} {path} {body:?}");
        assert_error(r, 400, Some("invalid_body")).await;
    }
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn unicode_names_round_trip() {
    let app = TestApp::spawn().await;
    let name = "Zürich 服务 🚀 \"quoted\" \\ back";
    let c = app
        .admin_expect(
            Method::POST,
            "/api/v2/clients",
            Some(json!({"name": name})),
            201,
        )
        .await;
    assert_eq!(c["name"], name);
    let got = app
        .get_ok(&format!(
            "/api/v2/clients/{}",
            c["client_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got["name"], name);
}

/// Auth0's rate-limit headers on every answer: Management (accepted or refused) and token.
#[tokio::test]
async fn every_response_carries_rate_limit_headers() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for r in [
        app.call(&token, Method::GET, "/api/v2/clients", None).await,
        app.call("garbage", Method::GET, "/api/v2/clients", None)
            .await,
        app.token_form(&[("grant_type", "client_credentials")])
            .await,
    ] {
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            let v = r.headers().get(h).unwrap_or_else(|| panic!("{h} missing"));
            assert!(v.to_str().unwrap().parse::<u64>().is_ok(), "{h}: {v:?}");
        }
    }
}

/// The content type of a body: none means JSON (Auth0's API reads it so); a JSON document
/// sent as a form (`curl -d` without `-H 'content-type: application/json'`) is told so; any
/// other type is 415.
#[tokio::test]
async fn a_body_is_json_without_a_content_type_and_a_wrong_type_is_explained() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let post = |content_type: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url("/api/v2/clients"))
            .bearer_auth(&token)
            .body(r#"{"name":"typed"}"#);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let (status, body) = status_json(post(None).await.unwrap()).await;
    assert_eq!(
        (status, body["name"].as_str()),
        (201, Some("typed")),
        "{body}"
    );

    let r = post(Some("application/x-www-form-urlencoded"))
        .await
        .unwrap();
    let err = assert_error(r, 400, Some("invalid_body")).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("content-type: application/json"),
        "{err}"
    );

    let r = post(Some("text/plain")).await.unwrap();
    let (status, err) = status_json(r).await;
    assert_eq!(status, 415, "{err}");
    assert_eq!(err["error"], "Unsupported Media Type");
    assert_eq!(err["statusCode"], 415);
}

/// Each property `clavis::domain::properties` declares refused is a 400 naming it and saying
/// why, on create and on update, and nothing is written.
#[tokio::test]
async fn declared_refusals_are_400s_naming_the_property() {
    use clavis::domain::properties::{CLIENT, CLIENT_GRANT, Meaning, RESOURCE_SERVER};
    let app = TestApp::spawn().await;
    let api = "urn:refusals";
    app.create_api(api, &["read"]).await;
    let client = app.create_m2m_client("holder").await;
    let cid = client["client_id"].as_str().unwrap().to_string();
    let rs_path = format!("/api/v2/resource-servers/{}", enc(api));
    let client_path = format!("/api/v2/clients/{cid}");
    let cases = [
        (
            CLIENT,
            "/api/v2/clients",
            json!({"name": "refused"}),
            Some(client_path.as_str()),
        ),
        (
            RESOURCE_SERVER,
            "/api/v2/resource-servers",
            json!({"name": "refused", "identifier": "urn:refused"}),
            Some(rs_path.as_str()),
        ),
        (
            CLIENT_GRANT,
            "/api/v2/client-grants",
            json!({"client_id": cid, "audience": api, "scope": []}),
            None,
        ),
    ];
    let mut checked = 0;
    for (table, create_path, base, update_path) in cases {
        for property in table {
            let Meaning::Refused { why, sample, .. } = property.meaning else {
                continue;
            };
            let value: Value = serde_json::from_str(sample).unwrap();
            let mut body = base.clone();
            body[property.name] = value.clone();
            let mut attempts = vec![(Method::POST, create_path.to_string(), body)];
            if let Some(path) = update_path {
                attempts.push((
                    Method::PATCH,
                    path.to_string(),
                    json!({ property.name: value }),
                ));
            }
            for (method, path, body) in attempts {
                let (status, answer) = app.admin_json(method.clone(), &path, Some(body)).await;
                assert_eq!(status, 400, "{method} {path} {}: {answer}", property.name);
                let message = answer["message"].as_str().unwrap();
                assert!(
                    message.contains(property.name) && message.contains(why),
                    "{method} {path}: {answer}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked}");
    // Nothing was written.
    assert_eq!(
        app.get_ok("/api/v2/clients")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get_ok(&format!("/api/v2/client-grants?audience={}", enc(api)))
            .await,
        json!([])
    );
}

//! Resource servers — `/api/v2/resource-servers` (contract section 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";

fn rs_path(key: &str) -> String {
    format!("/api/v2/resource-servers/{key}")
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn create_returns_201_with_defaults() {
    let app = TestApp::spawn().await;
    let (status, rs) = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"name": "Orders", "identifier": API, "scopes": [
                {"value": "read:orders", "description": "Read orders"},
                {"value": "write:orders"},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{rs}");
    assert!(is_resource_server_id(&id(&rs)), "{rs}");
    assert_eq!(rs["name"], "Orders");
    assert_eq!(rs["identifier"], API);
    assert_eq!(rs["token_lifetime"], 86400);
    assert_eq!(rs["signing_alg"], "RS256");
    assert_eq!(rs["allow_offline_access"], false);
    assert_eq!(rs["skip_consent_for_verifiable_first_party_clients"], false);
    assert_eq!(
        rs["scopes"],
        json!([
            {"value": "read:orders", "description": "Read orders"},
            {"value": "write:orders"},
        ])
    );
    assert!(rs.get("is_system").is_none(), "{rs}");
    assert_eq!(keys(&rs)[..3], ["id", "name", "identifier"]);
}

#[tokio::test]
async fn name_defaults_to_the_identifier_and_scopes_to_empty() {
    let app = TestApp::spawn().await;
    let (status, rs) = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:orders"})),
        )
        .await;
    assert_eq!(status, 201, "{rs}");
    assert_eq!(rs["name"], "urn:orders");
    assert_eq!(rs["scopes"], json!([]));
}

#[tokio::test]
async fn duplicate_identifier_is_409() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let before = app.get_ok("/api/v2/resource-servers").await;
    let r = app
        .admin(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"name": "Again", "identifier": API})),
        )
        .await;
    let err = assert_error(r, 409, None).await;
    assert_eq!(err["error"], "Conflict");
    assert!(err["message"].as_str().unwrap().contains(API), "{err}");
    assert_eq!(app.get_ok("/api/v2/resource-servers").await, before);
    // The Management API's identifier is taken too.
    let r = app
        .admin(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": app.management_audience()})),
        )
        .await;
    assert_error(r, 409, None).await;
}

#[tokio::test]
async fn create_refuses_invalid_bodies() {
    let app = TestApp::spawn().await;
    let before = app.get_ok("/api/v2/resource-servers").await;
    for body in [
        json!({}),
        json!({"name": "no identifier"}),
        json!({"identifier": ""}),
        json!({"identifier": "x".repeat(601)}),
        json!({"identifier": "urn:a", "token_lifetime": 2_592_001}),
        json!({"identifier": "urn:a", "token_lifetime": -1}),
        json!({"identifier": "urn:a", "token_lifetime": "3600"}),
        json!({"identifier": "urn:a", "scopes": "read"}),
        json!({"identifier": "urn:a", "scopes": [{"value": "has space"}]}),
        json!({"identifier": "urn:a", "scopes": [{"value": "a"}, {"value": "a"}]}),
        json!({"identifier": "urn:a", "scopes": [{"description": "no value"}]}),
        json!({"identifier": "urn:a", "signing_alg": "none"}),
        json!({"identifier": "urn:a", "name": "<b>"}),
        json!({"identifier": "urn:a", "is_system": true}),
        json!({"identifier": "urn:a", "id": "0123456789abcdef01234567"}),
        json!({"identifier": "urn:a", "colour": "red"}),
    ] {
        let r = app
            .admin(Method::POST, "/api/v2/resource-servers", Some(body.clone()))
            .await;
        assert_eq!(r.status().as_u16(), 400, "{body}");
        assert_error(r, 400, Some("invalid_body")).await;
    }
    assert_eq!(app.get_ok("/api/v2/resource-servers").await, before);
}

#[tokio::test]
async fn token_lifetime_up_to_thirty_days_is_accepted() {
    let app = TestApp::spawn().await;
    let (status, rs) = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:long", "token_lifetime": 2_592_000})),
        )
        .await;
    assert_eq!(status, 201, "{rs}");
    assert_eq!(rs["token_lifetime"], 2_592_000);
    let r = app
        .admin(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(json!({"token_lifetime": 2_592_001})),
        )
        .await;
    assert_error(r, 400, Some("invalid_body")).await;
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, rs);
}

#[tokio::test]
async fn get_by_id_and_by_encoded_identifier() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, rs);
    assert_eq!(app.get_ok(&rs_path(&enc(API))).await, rs);
    let urn = app.create_api("urn:clavis:orders", &[]).await;
    assert_eq!(app.get_ok(&rs_path(&enc("urn:clavis:orders"))).await, urn);
}

#[tokio::test]
async fn unknown_resource_server_is_404() {
    let app = TestApp::spawn().await;
    for key in [
        "0123456789abcdef01234567".to_string(),
        enc("https://nowhere.example.com/"),
    ] {
        let path = rs_path(&key);
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "x"}))),
            (Method::DELETE, None),
        ] {
            let r = app.admin(method, &path, body).await;
            let err = assert_error(r, 404, Some("inexistent_resource_server")).await;
            assert_eq!(err["message"], "The resource server does not exist");
        }
    }
}

#[tokio::test]
async fn patch_by_id_and_by_encoded_identifier() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let (status, by_id) = app
        .admin_json(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(json!({"name": "Renamed", "token_lifetime": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{by_id}");
    assert_eq!(by_id["name"], "Renamed");
    assert_eq!(by_id["token_lifetime"], 3600);
    assert_eq!(by_id["identifier"], API);
    assert_eq!(by_id["id"], rs["id"]);

    let (status, by_identifier) = app
        .admin_json(
            Method::PATCH,
            &rs_path(&enc(API)),
            Some(
                json!({"scopes": [{"value": "read"}, {"value": "write", "description": "Write"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{by_identifier}");
    assert_eq!(by_identifier["name"], "Renamed");
    assert_eq!(
        by_identifier["scopes"],
        json!([{"value": "read"}, {"value": "write", "description": "Write"}])
    );
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, by_identifier);
}

#[tokio::test]
async fn identifier_is_immutable() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    for body in [
        json!({"identifier": "https://other.example.com/"}),
        json!({"identifier": API}),
        json!({"name": "x", "identifier": "urn:x"}),
    ] {
        let r = app
            .admin(Method::PATCH, &rs_path(&id(&rs)), Some(body))
            .await;
        assert_error(r, 400, Some("invalid_body")).await;
    }
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, rs);
}

#[tokio::test]
async fn delete_by_encoded_identifier_then_404() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let r = app.admin(Method::DELETE, &rs_path(&enc(API)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    for path in [rs_path(&id(&rs)), rs_path(&enc(API))] {
        let r = app.admin(Method::GET, &path, None).await;
        assert_error(r, 404, Some("inexistent_resource_server")).await;
    }
    // The identifier is free again.
    app.create_api(API, &[]).await;
}

#[tokio::test]
async fn delete_by_id() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let r = app.admin(Method::DELETE, &rs_path(&id(&rs)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    let r = app.admin(Method::DELETE, &rs_path(&id(&rs)), None).await;
    assert_error(r, 404, Some("inexistent_resource_server")).await;
}

#[tokio::test]
async fn delete_removes_its_grants() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let other = app.create_api("urn:other", &["x"]).await;
    let c = app.create_m2m_client("svc").await;
    let client = c["client_id"].as_str().unwrap();
    let grant = app.grant(client, API, &["read"]).await;
    let kept = app.grant(client, "urn:other", &["x"]).await;
    let r = app.admin(Method::DELETE, &rs_path(&id(&rs)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    let r = app
        .admin(
            Method::GET,
            &format!("/api/v2/client-grants/{}", id(&grant)),
            None,
        )
        .await;
    assert_error(r, 404, None).await;
    assert_eq!(
        app.get_ok(&format!("/api/v2/client-grants?audience={}", enc(API)))
            .await,
        json!([])
    );
    assert_eq!(
        app.get_ok(&format!("/api/v2/client-grants?client_id={client}"))
            .await,
        json!([kept])
    );
    let (status, err) = status_json(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", c["client_secret"].as_str().unwrap()),
            ("audience", API),
        ])
        .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        err["error_description"],
        format!("Service not enabled within domain: {API}")
    );
    assert_eq!(app.get_ok(&rs_path(&id(&other))).await, other);
}

#[tokio::test]
async fn system_api_is_listed_and_cannot_be_changed_or_deleted() {
    let app = TestApp::spawn().await;
    let listed = app.get_ok("/api/v2/resource-servers").await;
    let system: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| rs["is_system"] == true)
        .collect();
    assert_eq!(system.len(), 1, "{listed}");
    let system = system[0].clone();
    assert_eq!(system["identifier"], app.management_audience());
    assert!(is_resource_server_id(&id(&system)));
    let scopes: Vec<&str> = system["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    for s in [
        "read:clients",
        "create:client_credentials",
        "update:client_credentials",
        "read:resource_servers",
        "create:client_grants",
    ] {
        assert!(scopes.contains(&s), "{s} missing from {scopes:?}");
    }
    for key in [id(&system), enc(&app.management_audience())] {
        let path = rs_path(&key);
        assert_eq!(app.get_ok(&path).await, system);
        let r = app
            .admin(Method::PATCH, &path, Some(json!({"name": "Mine now"})))
            .await;
        assert_error(r, 403, None).await;
        let r = app.admin(Method::DELETE, &path, None).await;
        assert_error(r, 403, None).await;
    }
    assert_eq!(app.get_ok(&rs_path(&id(&system))).await, system);
    // The admin token still works, so nothing was deleted.
    assert_eq!(app.get_ok("/api/v2/resource-servers").await, listed);
}

#[tokio::test]
async fn list_pages_with_totals() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id(&app.create_api(&format!("urn:api:{i}"), &[]).await));
    }
    let all = app.get_ok("/api/v2/resource-servers").await;
    let all_ids: Vec<String> = all.as_array().unwrap().iter().map(id).collect();
    assert_eq!(all_ids.len(), 5);
    assert_eq!(all_ids[1..], ids[..], "creation order after the system API");

    let page = app
        .get_ok("/api/v2/resource-servers?include_totals=true&page=1&per_page=2")
        .await;
    assert_eq!(keys(&page), ["start", "limit", "total", "resource_servers"]);
    assert_eq!(page["start"], 2);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["total"], 5);
    assert_eq!(
        page["resource_servers"],
        Value::Array(all.as_array().unwrap()[2..4].to_vec())
    );
    let bare = app
        .get_ok("/api/v2/resource-servers?page=2&per_page=2")
        .await;
    assert_eq!(bare, Value::Array(all.as_array().unwrap()[4..].to_vec()));
    let r = app
        .admin(Method::GET, "/api/v2/resource-servers?per_page=101", None)
        .await;
    assert_error(r, 400, Some("invalid_query_string")).await;
}

#[tokio::test]
async fn form_encoded_create_and_update() {
    let app = TestApp::spawn().await;
    let r = app
        .admin_form(
            Method::POST,
            "/api/v2/resource-servers",
            &[
                ("identifier", "urn:form"),
                ("name", "Form API"),
                ("token_lifetime", "600"),
                ("allow_offline_access", "true"),
            ],
        )
        .await;
    let (status, rs) = status_json(r).await;
    assert_eq!(status, 201, "{rs}");
    assert_eq!(rs["token_lifetime"], 600);
    assert_eq!(rs["allow_offline_access"], true);
    let r = app
        .admin_form(
            Method::PATCH,
            &rs_path(&id(&rs)),
            &[("token_lifetime", "900")],
        )
        .await;
    let (status, rs) = status_json(r).await;
    assert_eq!(status, 200, "{rs}");
    assert_eq!(rs["token_lifetime"], 900);
}

/// Settings Clavis cannot honour are refused rather than stored and ignored: encrypted
/// tokens (JWE). `token_lifetime_for_web` (implicit and hybrid flows, which Clavis does not
/// serve) is kept as it is, as Auth0's exports carry it.
#[tokio::test]
async fn token_encryption_is_refused_and_token_lifetime_for_web_is_kept() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:encrypted", "token_encryption": {"format": "compact-nested-jwe", "encryption_key": {"alg": "RSA-OAEP-256", "pem": "x"}}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("token_encryption"),
        "{body}"
    );
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:web", "token_encryption": null, "token_lifetime_for_web": 7200})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_lifetime_for_web"], 7200);
}

/// `allow_online_access_with_ephemeral_sessions` (Auth0's online refresh tokens, which Clavis
/// does not issue) is kept as given, as auth0-deploy-cli's YAML carries it; it must be a
/// boolean.
#[tokio::test]
async fn allow_online_access_with_ephemeral_sessions_is_kept() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:ort", "allow_online_access": false, "allow_online_access_with_ephemeral_sessions": false})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["allow_online_access_with_ephemeral_sessions"], false);
    let (status, body) = app
        .admin_json(
            Method::PATCH,
            "/api/v2/resource-servers/urn%3Aort",
            Some(json!({"allow_online_access_with_ephemeral_sessions": "yes"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let got = app.get_ok("/api/v2/resource-servers/urn%3Aort").await;
    assert_eq!(got["allow_online_access_with_ephemeral_sessions"], false);
}

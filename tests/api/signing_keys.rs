//! Token-signing key rotation and revocation.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn jwks_publishes_current_and_next() {
    let app = TestApp::spawn().await;
    let r = app.admin(Method::GET, "/api/v2/keys/signing", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let keys: Vec<Value> = r.json().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["current"], true);
    assert_eq!(keys[1]["next"], true);
    assert!(
        keys[0]["cert"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(keys[0]["thumbprint"].as_str().unwrap().len(), 40);
    assert_eq!(jwks_kids(&app).await.len(), 2);
}

#[tokio::test]
async fn token_issued_before_rotation_stays_valid_until_revoked() {
    let app = TestApp::spawn().await;
    let old_token = app.admin_token().await;
    let old_kid = jwt_header(&old_token)["kid"].as_str().unwrap().to_string();

    let r = app
        .admin(Method::POST, "/api/v2/keys/signing/rotate", None)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let rotated: Value = r.json().await.unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);

    // The old token still verifies: its key is published and accepted.
    assert!(jwks_kids(&app).await.contains(&old_kid));
    let r = app
        .call(&old_token, Method::GET, "/api/v2/clients", None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // New tokens use the new key.
    let fresh = app
        .token_for(ADMIN_ID, ADMIN_SECRET, &app.management_audience())
        .await;
    assert_eq!(jwt_header(&fresh)["kid"], new_kid);

    // The current key cannot be revoked.
    let r = app
        .call(
            &fresh,
            Method::PUT,
            &format!("/api/v2/keys/signing/{new_kid}/revoke"),
            None,
        )
        .await;
    assert_error(r, 400, None).await;

    let r = app
        .call(
            &fresh,
            Method::PUT,
            &format!("/api/v2/keys/signing/{old_kid}/revoke"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!jwks_kids(&app).await.contains(&old_kid));
    let r = app
        .call(&old_token, Method::GET, "/api/v2/clients", None)
        .await;
    assert_error(r, 401, Some("invalid_token")).await;
    let r = app
        .call(
            &fresh,
            Method::GET,
            &format!("/api/v2/keys/signing/{old_kid}"),
            None,
        )
        .await;
    let key: Value = r.json().await.unwrap();
    assert_eq!(key["revoked"], true);
}

#[tokio::test]
async fn rotation_survives_restart() {
    let app = TestApp::spawn().await;
    let r = app
        .admin(Method::POST, "/api/v2/keys/signing/rotate", None)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = jwks_kids(&app).await;
    let app = app.restart().await;
    assert_eq!(jwks_kids(&app).await, before);
}

#[tokio::test]
async fn signing_key_endpoints_need_their_scopes() {
    let app = TestApp::spawn().await;
    let token = app.token_with_scopes(&["read:clients"]).await;
    let r = app
        .call(&token, Method::GET, "/api/v2/keys/signing", None)
        .await;
    assert_error(r, 403, Some("insufficient_scope")).await;
    let r = app
        .call(&token, Method::POST, "/api/v2/keys/signing/rotate", None)
        .await;
    assert_error(r, 403, Some("insufficient_scope")).await;
    let r = app
        .call(&token, Method::PUT, "/api/v2/keys/signing/x/revoke", None)
        .await;
    assert_error(r, 403, Some("insufficient_scope")).await;
    app.admin_error(
        Method::GET,
        "/api/v2/keys/signing/unknownkid",
        None,
        404,
        None,
    )
    .await;
}

#[tokio::test]
async fn get_on_the_rotate_path_is_a_key_lookup_as_in_auth0() {
    let app = TestApp::spawn().await;
    // Auth0's `GET /keys/signing/{kid}` reads `rotate` as a key id: no such key, 404.
    let r = app
        .admin(Method::GET, "/api/v2/keys/signing/rotate", None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "inexistent_key", "{body}");
    // Rotation itself is unchanged.
    let r = app
        .admin(Method::POST, "/api/v2/keys/signing/rotate", None)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

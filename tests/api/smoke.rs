use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn patch_expires_at_null_removes_expiry() {
    let app = TestApp::spawn().await;
    let client = app.create_m2m_client("svc").await;
    let id = client["client_id"].as_str().unwrap();
    let (_, public) = rsa_key(2048);
    let r = app
        .create_credential(id, json!({"credential_type": "public_key", "pem": public, "expires_at": "2031-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cred: Value = r.json().await.unwrap();
    assert_eq!(cred["expires_at"], "2031-01-01T00:00:00.000Z");
    let path = format!(
        "/api/v2/clients/{id}/credentials/{}",
        cred["id"].as_str().unwrap()
    );
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"expires_at": null})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let patched: Value = r.json().await.unwrap();
    assert!(patched.get("expires_at").is_none());
    assert_eq!(patched["created_at"], cred["created_at"]);
}

//! Everything survives a restart on the same data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rcgen::DnType;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";

struct Made {
    secret_client: Value,
    jwt_client: Value,
    credential_ids: Vec<String>,
}

async fn populate(app: &TestApp) -> Made {
    app.create_api(API, &["read", "write"]).await;
    app.admin_expect(
        Method::POST,
        "/api/v2/resource-servers",
        Some(
            json!({"identifier": "urn:stock", "name": "Stock", "token_lifetime": 600,
                        "scopes": [{"value": "count", "description": "Count items"}]}),
        ),
        201,
    )
    .await;

    let secret_client = app.create_m2m_client("secret-client").await;
    let sid = secret_client["client_id"].as_str().unwrap();
    app.grant(sid, API, &["read"]).await;
    app.grant(sid, "urn:stock", &["count"]).await;

    let jwt_client = app.create_m2m_client("jwt-client").await;
    let jid = jwt_client["client_id"].as_str().unwrap();
    let (_, k1) = rsa_key(2048);
    let cert = test_cert(&[(DnType::CommonName, "pinned")], 60);
    let mut credential_ids = Vec::new();
    for body in [
        json!({"credential_type": "public_key", "pem": k1, "name": "k1", "alg": "PS256", "expires_at": "2031-02-03T04:05:06.789Z"}),
        json!({"credential_type": "public_key", "pem": spki_to_pkcs1_pem(&rsa_key(2048).1), "kid": "custom-kid-01"}),
        json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc, O=Example"}),
        json!({"credential_type": "x509_cert", "pem": cert.pem}),
    ] {
        let c = app.credential_ok(jid, body).await;
        credential_ids.push(c["id"].as_str().unwrap().to_string());
    }
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/clients/{jid}"),
        Some(json!({
            "client_authentication_methods": {"private_key_jwt": {"credentials": [
                {"id": credential_ids[1]}, {"id": credential_ids[0]},
            ]}},
            "token_endpoint_auth_method": null,
            "client_metadata": {"team": "a"},
        })),
        200,
    )
    .await;
    app.admin_expect(
        Method::PATCH,
        &TestApp::cred_path(jid, Some(&credential_ids[2])),
        Some(json!({"expires_at": "2030-01-01T00:00:00+01:00"})),
        200,
    )
    .await;
    app.grant(jid, API, &["write"]).await;
    Made {
        secret_client,
        jwt_client,
        credential_ids,
    }
}

#[tokio::test]
async fn everything_is_identical_after_a_restart() {
    let app = TestApp::spawn().await;
    let made = populate(&app).await;
    let before = app.everything().await;
    let jid = made.jwt_client["client_id"].as_str().unwrap().to_string();
    let creds_before = app.get_ok(&TestApp::cred_path(&jid, None)).await;
    assert_eq!(creds_before.as_array().unwrap().len(), 4);

    let app = app.restart().await;
    assert_eq!(app.everything().await, before);
    assert_eq!(
        app.get_ok(&TestApp::cred_path(&jid, None)).await,
        creds_before
    );
    for (i, id) in made.credential_ids.iter().enumerate() {
        let got = app.get_ok(&TestApp::cred_path(&jid, Some(id))).await;
        assert_eq!(got, creds_before[i]);
        assert_eq!(keys(&got), keys(&creds_before[i]));
    }
    // The rules still hold against the reloaded state.
    let err = app
        .admin_error(
            Method::DELETE,
            &TestApp::cred_path(&jid, Some(&made.credential_ids[0])),
            None,
            400,
            None,
        )
        .await;
    assert_eq!(
        err["message"],
        "Cannot delete credential still associated with a client"
    );
    let r = app
        .create_credential(
            &jid,
            json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=fifth"}),
        )
        .await;
    let err = assert_error(r, 400, None).await;
    assert_eq!(
        err["message"],
        "A client can have a maximum of 4 credentials."
    );
}

#[tokio::test]
async fn old_admin_token_still_works_after_a_restart() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (header, _) = decode_jwt(&token);
    let app = app.restart().await;
    let r = app.call(&token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(r.status().as_u16(), 200);
    // New tokens are signed with the same key.
    let fresh = app.admin_token().await;
    assert_eq!(decode_jwt(&fresh).0["kid"], header["kid"]);
}

#[tokio::test]
async fn secrets_still_work_at_the_token_endpoint_after_a_restart() {
    let app = TestApp::spawn().await;
    let made = populate(&app).await;
    let sid = made.secret_client["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = made.secret_client["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let app = app.restart().await;
    let form = |audience: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", sid.as_str()),
            ("client_secret", secret.as_str()),
            ("audience", audience),
        ]
    };
    let (status, body) = status_json(app.token_form(&form(API)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["expires_in"], 86400);
    let (status, body) = status_json(app.token_form(&form("urn:stock")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "count");

    // Wrong secrets and credential clients are still refused.
    let (status, _) = status_json(app.secret_post(&sid, "wrong", API).await).await;
    assert_eq!(status, 401);
    let jid = made.jwt_client["client_id"].as_str().unwrap();
    let (status, _) = status_json(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", jid),
            (
                "client_secret",
                made.jwt_client["client_secret"].as_str().unwrap(),
            ),
            ("audience", API),
        ])
        .await,
    )
    .await;
    assert_eq!(status, 401);
    // The secret is still shown to the admin, and is the same.
    let got = app.get_ok(&format!("/api/v2/clients/{sid}")).await;
    assert_eq!(got["client_secret"], secret);
}

#[tokio::test]
async fn deletions_survive_a_restart() {
    let app = TestApp::spawn().await;
    let made = populate(&app).await;
    let sid = made.secret_client["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .admin(Method::DELETE, &format!("/api/v2/clients/{sid}"), None)
        .await;
    assert_eq!(r.status().as_u16(), 204);
    let r = app
        .admin(
            Method::DELETE,
            &format!("/api/v2/resource-servers/{}", enc("urn:stock")),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    let jid = made.jwt_client["client_id"].as_str().unwrap().to_string();
    let r = app
        .admin(
            Method::DELETE,
            &TestApp::cred_path(&jid, Some(&made.credential_ids[3])),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    let before = app.everything().await;
    let app = app.restart().await;
    assert_eq!(app.everything().await, before);
    app.admin_error(
        Method::GET,
        &format!("/api/v2/clients/{sid}"),
        None,
        404,
        Some("inexistent_client"),
    )
    .await;
    assert_eq!(
        app.get_ok(&TestApp::cred_path(&jid, None))
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

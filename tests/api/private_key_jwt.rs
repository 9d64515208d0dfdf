//! `private_key_jwt` at `/oauth/token`: every assertion rule, credential expiry and
//! detachment taking effect at once, replay protection across restarts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://api.pkjwt.test/";

/// A client authenticating with `private_key_jwt`, its key and credential.
struct KeyClient {
    client_id: String,
    key: AssertionKey,
    credential_id: String,
    kid: String,
}

async fn setup_api(app: &TestApp) {
    app.create_api(API, &["read:things", "write:things"]).await;
}

async fn add_credential(app: &TestApp, client_id: &str, key: &AssertionKey, alg: &str) -> Value {
    let r = app
        .create_credential(
            client_id,
            json!({"credential_type": "public_key", "pem": key.public_pem, "alg": alg}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn attach(app: &TestApp, client_id: &str, credential_ids: &[&str]) -> reqwest::Response {
    let creds: Vec<Value> = credential_ids.iter().map(|id| json!({"id": id})).collect();
    app.admin(
        Method::PATCH,
        &format!("/api/v2/clients/{client_id}"),
        Some(json!({"client_authentication_methods": {"private_key_jwt": {"credentials": creds}}, "token_endpoint_auth_method": null})),
    )
    .await
}

async fn key_client_with(app: &TestApp, alg: &str, bits: usize) -> KeyClient {
    let client = app.create_m2m_client("pkjwt").await;
    let client_id = client["client_id"].as_str().unwrap().to_string();
    app.grant(&client_id, API, &["read:things"]).await;
    let key = AssertionKey::new(bits);
    let cred = add_credential(app, &client_id, &key, alg).await;
    let credential_id = cred["id"].as_str().unwrap().to_string();
    assert_eq!(
        attach(app, &client_id, &[&credential_id]).await.status(),
        StatusCode::OK
    );
    KeyClient {
        client_id,
        key,
        credential_id,
        kid: cred["kid"].as_str().unwrap().to_string(),
    }
}

async fn key_client(app: &TestApp) -> KeyClient {
    key_client_with(app, "RS256", 2048).await
}

/// A fresh server with the test API and one RS256 key client.
async fn app_with_key_client() -> (TestApp, KeyClient) {
    let app = TestApp::spawn().await;
    setup_api(&app).await;
    let c = key_client(&app).await;
    (app, c)
}

async fn token_with_assertion(
    app: &TestApp,
    assertion: &str,
    client_id: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("audience", API),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    app.token_form(&form).await
}

async fn assert_refused(r: reqwest::Response) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
}

async fn assert_issued(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn header(alg: &str) -> Value {
    json!({"alg": alg})
}

/// `/oauth/token` with a fresh RS256 assertion for `client_id` signed by `key`.
async fn try_token(app: &TestApp, key: &AssertionKey, client_id: &str) -> reqwest::Response {
    let assertion = key.sign(&header("RS256"), &assertion_claims(app, client_id));
    token_with_assertion(app, &assertion, None).await
}

#[tokio::test]
async fn valid_assertion_rs256_without_kid_like_the_node_sdk() {
    let (app, c) = app_with_key_client().await;
    let assertion = c
        .key
        .sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    let body = assert_issued(token_with_assertion(&app, &assertion, None).await).await;
    let claims = jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], format!("{}@clients", c.client_id));
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "read:things");
}

#[tokio::test]
async fn valid_assertions_for_each_alg_with_and_without_kid() {
    let app = TestApp::spawn().await;
    setup_api(&app).await;
    for alg in ["RS256", "RS384", "PS256"] {
        let c = key_client_with(&app, alg, 2048).await;
        let a = c.key.sign(
            &json!({"alg": alg, "typ": "JWT"}),
            &assertion_claims(&app, &c.client_id),
        );
        assert_issued(token_with_assertion(&app, &a, Some(&c.client_id)).await).await;
        let a = c.key.sign(
            &json!({"alg": alg, "kid": c.kid}),
            &assertion_claims(&app, &c.client_id),
        );
        assert_issued(token_with_assertion(&app, &a, None).await).await;
    }
}

#[tokio::test]
async fn valid_assertion_with_a_4096_bit_key() {
    let app = TestApp::spawn().await;
    setup_api(&app).await;
    let c = key_client_with(&app, "RS256", 4096).await;
    assert_issued(try_token(&app, &c.key, &c.client_id).await).await;
}

#[tokio::test]
async fn json_body_is_accepted() {
    let (app, c) = app_with_key_client().await;
    let a = c.key.sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &assertion_claims(&app, &c.client_id),
    );
    let r = app
        .token_json(json!({
            "grant_type": "client_credentials",
            "client_id": c.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": a,
            "audience": API,
            "organization": null,
        }))
        .await;
    assert_issued(r).await;
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let (app, c) = app_with_key_client().await;
    let other = AssertionKey::new(2048);
    assert_refused(try_token(&app, &other, &c.client_id).await).await;
}

#[tokio::test]
async fn alg_other_than_the_credentials_is_refused() {
    let (app, c) = app_with_key_client().await; // RS256 credential
    let a = c
        .key
        .sign(&header("RS384"), &assertion_claims(&app, &c.client_id));
    assert_refused(token_with_assertion(&app, &a, None).await).await;
    let a = c
        .key
        .sign(&header("PS256"), &assertion_claims(&app, &c.client_id));
    assert_refused(token_with_assertion(&app, &a, None).await).await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    use base64::Engine;
    let (app, c) = app_with_key_client().await;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    for token in [
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none"})),
            b64(&assertion_claims(&app, &c.client_id))
        ),
        format!(
            "{}.{}.AAAA",
            b64(&json!({"alg": "none"})),
            b64(&assertion_claims(&app, &c.client_id))
        ),
    ] {
        assert_refused(token_with_assertion(&app, &token, None).await).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_as_secret_is_refused() {
    use base64::Engine;
    let (app, c) = app_with_key_client().await;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&json!({"alg": "HS256"})).unwrap()),
        b64(&serde_json::to_vec(&assertion_claims(&app, &c.client_id)).unwrap())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, c.key.public_pem.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let token = format!("{input}.{}", b64(tag.as_ref()));
    assert_refused(token_with_assertion(&app, &token, None).await).await;
}

async fn refused_with_claims(edit: impl FnOnce(&mut Value, &TestApp)) {
    let (app, c) = app_with_key_client().await;
    // The unedited claims work, so a refusal is the edit's doing.
    let ok = c
        .key
        .sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    assert_issued(token_with_assertion(&app, &ok, None).await).await;
    let mut claims = assertion_claims(&app, &c.client_id);
    edit(&mut claims, &app);
    let a = c.key.sign(&header("RS256"), &claims);
    assert_refused(token_with_assertion(&app, &a, None).await).await;
}

#[tokio::test]
async fn expired_assertion_is_refused() {
    refused_with_claims(|c, _| {
        c["iat"] = json!(now() - 200);
        c["exp"] = json!(now() - 20);
    })
    .await;
}

#[tokio::test]
async fn lifetime_over_300_seconds_is_refused() {
    refused_with_claims(|c, _| c["exp"] = json!(now() + 301)).await;
}

#[tokio::test]
async fn lifetime_over_300_seconds_without_iat_is_refused() {
    refused_with_claims(|c, _| {
        c.as_object_mut().unwrap().remove("iat");
        c["exp"] = json!(now() + 400);
    })
    .await;
}

#[tokio::test]
async fn missing_exp_is_refused() {
    refused_with_claims(|c, _| {
        c.as_object_mut().unwrap().remove("exp");
    })
    .await;
}

#[tokio::test]
async fn iat_in_the_future_beyond_skew_is_refused() {
    refused_with_claims(|c, _| {
        c["iat"] = json!(now() + 60);
        c["exp"] = json!(now() + 120);
    })
    .await;
}

#[tokio::test]
async fn nbf_in_the_future_beyond_skew_is_refused() {
    refused_with_claims(|c, _| c["nbf"] = json!(now() + 60)).await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    refused_with_claims(|c, _| c["aud"] = json!("https://elsewhere.example/")).await;
}

#[tokio::test]
async fn iss_different_from_sub_is_refused() {
    refused_with_claims(|c, _| c["sub"] = json!("someoneElse")).await;
}

#[tokio::test]
async fn missing_jti_is_refused() {
    refused_with_claims(|c, _| {
        c.as_object_mut().unwrap().remove("jti");
    })
    .await;
}

#[tokio::test]
async fn overlong_jti_is_refused() {
    refused_with_claims(|c, _| c["jti"] = json!("j".repeat(65))).await;
}

/// `aud`: the issuer as one string, with or without its trailing slash; the token endpoint
/// URL and arrays (the audience injection of draft-ietf-oauth-rfc7523bis) only with
/// `--legacy-assertion-audience`.
#[tokio::test]
async fn audience_is_the_issuer_as_one_string_unless_legacy_is_on() {
    for legacy in [false, true] {
        let app = TestApp::spawn_with(|c| c.legacy_assertion_audience = legacy).await;
        setup_api(&app).await;
        let c = key_client(&app).await;
        let issuer = app.issuer();
        let cases = [
            (json!(issuer), true),
            (json!(issuer.trim_end_matches('/')), true),
            (json!(app.url("/oauth/token")), legacy),
            (json!(["https://other/", app.issuer()]), legacy),
            (json!([app.issuer()]), legacy),
            (json!(["https://other/"]), false),
            (json!("https://other/"), false),
            (json!(42), false),
        ];
        for (aud, accepted) in cases {
            let mut claims = assertion_claims(&app, &c.client_id);
            claims["aud"] = aud.clone();
            let a = c.key.sign(&header("RS256"), &claims);
            let r = token_with_assertion(&app, &a, None).await;
            if accepted {
                assert_issued(r).await;
            } else {
                assert_refused(r).await;
            }
        }
    }
}

#[tokio::test]
async fn openid_client_style_nbf_and_60s_lifetime_work() {
    let (app, c) = app_with_key_client().await;
    let mut claims = assertion_claims(&app, &c.client_id);
    claims["nbf"] = json!(now());
    claims["exp"] = json!(now() + 60);
    let a = c.key.sign(&header("RS256"), &claims);
    assert_issued(token_with_assertion(&app, &a, None).await).await;
}

#[tokio::test]
async fn client_id_parameter_must_match_iss() {
    let (app, c) = app_with_key_client().await;
    let other = app.create_m2m_client("other").await;
    let a = c
        .key
        .sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    assert_refused(token_with_assertion(&app, &a, other["client_id"].as_str()).await).await;
}

#[tokio::test]
async fn replayed_jti_is_refused_also_after_restart() {
    let (app, c) = app_with_key_client().await;
    let a = c
        .key
        .sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    assert_issued(token_with_assertion(&app, &a, None).await).await;
    assert_refused(token_with_assertion(&app, &a, None).await).await;
    let b = c
        .key
        .sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    let app = app.restart().await;
    assert_refused(token_with_assertion(&app, &a, None).await).await;
    // An unused assertion made before the restart still works after it.
    assert_issued(token_with_assertion(&app, &b, None).await).await;
}

#[tokio::test]
async fn concurrent_replays_get_exactly_one_token() {
    let (app, c) = app_with_key_client().await;
    let a = c
        .key
        .sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url, a) = (app.http.clone(), app.url("/oauth/token"), a.clone());
        set.spawn(async move {
            let form = [
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", a.as_str()),
                ("audience", API),
            ];
            http.post(url).form(&form).send().await.unwrap().status()
        });
    }
    let statuses = set.join_all().await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
}

#[tokio::test]
async fn seed_patch_end_to_end_expired_then_restored() {
    let (app, c) = app_with_key_client().await;
    let sign = || {
        c.key
            .sign(&header("RS256"), &assertion_claims(&app, &c.client_id))
    };
    assert_issued(token_with_assertion(&app, &sign(), None).await).await;
    let path = format!(
        "/api/v2/clients/{}/credentials/{}",
        c.client_id, c.credential_id
    );
    let r = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_refused(token_with_assertion(&app, &sign(), None).await).await;
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"expires_at": null})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_issued(token_with_assertion(&app, &sign(), None).await).await;
    // A future expiry keeps it working.
    let r = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"expires_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_issued(token_with_assertion(&app, &sign(), None).await).await;
}

/// Concurrent PATCHes of one credential, on either backend: every one is answered, and the
/// token endpoint then enforces the expiry the store kept, whichever PATCH committed last.
/// (On PostgreSQL several writes run at once; that the read model applies them in commit
/// order is shown deterministically by the store suite's
/// `postgres_writes_of_one_row_reach_the_model_in_commit_order`.)
#[tokio::test]
async fn concurrent_patches_leave_the_token_endpoint_with_the_last_committed_expiry() {
    let (app, c) = app_with_key_client().await;
    let app = std::sync::Arc::new(app);
    let path = format!(
        "/api/v2/clients/{}/credentials/{}",
        c.client_id, c.credential_id
    );
    for round in 0..6 {
        let patches = (0..16).map(|i| {
            let (app, path) = (app.clone(), path.clone());
            // Past, future and none, interleaved.
            let expires_at = match (i + round) % 3 {
                0 => json!("2020-01-01T00:00:00.000Z"),
                1 => json!("2099-01-01T00:00:00.000Z"),
                _ => Value::Null,
            };
            tokio::spawn(async move {
                let r = app
                    .admin(
                        Method::PATCH,
                        &path,
                        Some(json!({"expires_at": expires_at})),
                    )
                    .await;
                assert_eq!(r.status(), StatusCode::OK);
            })
        });
        for patch in patches.collect::<Vec<_>>() {
            patch.await.unwrap();
        }
        let kept = app.get_ok(&path).await;
        let r = try_token(&app, &c.key, &c.client_id).await;
        if kept["expires_at"] == "2020-01-01T00:00:00.000Z" {
            assert_refused(r).await;
        } else {
            assert_issued(r).await;
        }
    }
}

#[tokio::test]
async fn expiry_is_enforced_when_the_instant_passes() {
    let (app, c) = app_with_key_client().await;
    let path = format!(
        "/api/v2/clients/{}/credentials/{}",
        c.client_id, c.credential_id
    );
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"expires_at": soon})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_issued(try_token(&app, &c.key, &c.client_id).await).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_refused(try_token(&app, &c.key, &c.client_id).await).await;
}

#[tokio::test]
async fn detached_credential_is_refused_and_works_again_when_reattached() {
    let (app, c) = app_with_key_client().await;
    let second = AssertionKey::new(2048);
    let cred2 = add_credential(&app, &c.client_id, &second, "RS256").await;
    let id2 = cred2["id"].as_str().unwrap();
    assert_eq!(
        attach(&app, &c.client_id, &[id2]).await.status(),
        StatusCode::OK
    );
    assert_refused(try_token(&app, &c.key, &c.client_id).await).await;
    assert_issued(try_token(&app, &second, &c.client_id).await).await;
    assert_eq!(
        attach(&app, &c.client_id, &[&c.credential_id])
            .await
            .status(),
        StatusCode::OK
    );
    assert_issued(try_token(&app, &c.key, &c.client_id).await).await;
}

#[tokio::test]
async fn deleted_credential_is_refused() {
    let (app, c) = app_with_key_client().await;
    let second = AssertionKey::new(2048);
    let cred2 = add_credential(&app, &c.client_id, &second, "RS256").await;
    let id2 = cred2["id"].as_str().unwrap().to_string();
    assert_eq!(
        attach(&app, &c.client_id, &[&id2]).await.status(),
        StatusCode::OK
    );
    let r = app
        .admin(
            Method::DELETE,
            &format!(
                "/api/v2/clients/{}/credentials/{}",
                c.client_id, c.credential_id
            ),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_refused(try_token(&app, &c.key, &c.client_id).await).await;
    // The same key recreated as a new credential but not attached: still refused.
    add_credential(&app, &c.client_id, &c.key, "RS256").await;
    assert_refused(try_token(&app, &c.key, &c.client_id).await).await;
}

#[tokio::test]
async fn credential_of_another_client_is_refused() {
    let app = TestApp::spawn().await;
    setup_api(&app).await;
    let a_client = key_client(&app).await;
    let b_client = key_client(&app).await;
    // b signs claims naming a as the client.
    let a = b_client.key.sign(
        &header("RS256"),
        &assertion_claims(&app, &a_client.client_id),
    );
    assert_refused(token_with_assertion(&app, &a, None).await).await;
}

#[tokio::test]
async fn unattached_credential_does_not_authenticate() {
    let app = TestApp::spawn().await;
    setup_api(&app).await;
    let client = app.create_m2m_client("unattached").await;
    let id = client["client_id"].as_str().unwrap();
    app.grant(id, API, &["read:things"]).await;
    let key = AssertionKey::new(2048);
    add_credential(&app, id, &key, "RS256").await;
    assert_refused(try_token(&app, &key, id).await).await;
}

#[tokio::test]
async fn secret_stops_working_when_credentials_are_used_and_vice_versa() {
    let app = TestApp::spawn().await;
    setup_api(&app).await;
    let client = app.create_m2m_client("switch").await;
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    app.grant(&id, API, &["read:things"]).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", API),
    ];
    let secret_request = || app.token_form(&form);
    assert_eq!(secret_request().await.status(), StatusCode::OK);
    let key = AssertionKey::new(2048);
    let cred = add_credential(&app, &id, &key, "RS256").await;
    attach(&app, &id, &[cred["id"].as_str().unwrap()]).await;
    assert_eq!(secret_request().await.status(), StatusCode::UNAUTHORIZED);
    assert_issued(try_token(&app, &key, &id).await).await;
    // Back to the secret: the key no longer works, the secret does.
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/clients/{id}"),
            Some(json!({"client_authentication_methods": null, "token_endpoint_auth_method": "client_secret_post"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_refused(try_token(&app, &key, &id).await).await;
    assert_eq!(secret_request().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn key_rotation_without_downtime() {
    let (app, c) = app_with_key_client().await;
    let new_key = AssertionKey::new(2048);
    let cred = add_credential(&app, &c.client_id, &new_key, "RS256").await;
    let new_id = cred["id"].as_str().unwrap().to_string();
    // Step 1: attach both; the old key keeps working throughout.
    assert_eq!(
        attach(&app, &c.client_id, &[&c.credential_id, &new_id])
            .await
            .status(),
        StatusCode::OK
    );
    for key in [&c.key, &new_key, &c.key] {
        assert_issued(try_token(&app, key, &c.client_id).await).await;
    }
    // Step 2: drop the old one; the client has switched already.
    assert_eq!(
        attach(&app, &c.client_id, &[&new_id]).await.status(),
        StatusCode::OK
    );
    assert_issued(try_token(&app, &new_key, &c.client_id).await).await;
    assert_refused(try_token(&app, &c.key, &c.client_id).await).await;
}

#[tokio::test]
async fn failure_detail_is_not_sent_to_the_client() {
    let (app, c) = app_with_key_client().await;
    let other = AssertionKey::new(2048);
    let a = other.sign(&header("RS256"), &assertion_claims(&app, &c.client_id));
    let r = token_with_assertion(&app, &a, None).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "Client authentication failed"})
    );
}

/// A token for `c` with a fresh assertion: its `expires_in` and claims.
async fn capped_token(app: &TestApp, c: &KeyClient) -> (i64, Value) {
    let a = c
        .key
        .sign(&header("RS256"), &assertion_claims(app, &c.client_id));
    let body = assert_issued(token_with_assertion(app, &a, None).await).await;
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    (body["expires_in"].as_i64().unwrap(), claims)
}

/// `--cap-token-expiry-at-credential` (beyond Auth0, opt-in): a token's `exp` (and
/// `expires_in`) is no later than the expiry of the key that obtained it; without the option,
/// or with a key that does not expire, the API's lifetime applies.
#[tokio::test]
async fn token_expiry_is_capped_at_the_keys_when_asked() {
    for cap in [false, true] {
        let app = TestApp::spawn_with(|c| c.cap_token_expiry_at_credential = cap).await;
        setup_api(&app).await;
        let c = key_client(&app).await;
        // A key without expiry: the API's lifetime (86,400 s).
        let (expires_in, claims) = capped_token(&app, &c).await;
        assert_eq!(expires_in, 86_400);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            86_400
        );
        // The key expires in an hour.
        let until = now() + 3_600;
        let expires_at = clavis::domain::time::Timestamp::from_unix_millis(until * 1000)
            .unwrap()
            .to_string();
        let r = app
            .admin(
                Method::PATCH,
                &format!(
                    "/api/v2/clients/{}/credentials/{}",
                    c.client_id, c.credential_id
                ),
                Some(json!({ "expires_at": expires_at })),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let (expires_in, claims) = capped_token(&app, &c).await;
        let exp = claims["exp"].as_i64().unwrap();
        if cap {
            assert!(
                exp <= until && exp >= until - 5,
                "exp {exp}, key until {until}"
            );
            assert_eq!(expires_in, exp - claims["iat"].as_i64().unwrap());
        } else {
            assert_eq!(expires_in, 86_400);
        }
    }
}

//! Secrets, client assertions and tokens never reach the logs: the process log and the
//! audit trail (`/api/v2/logs`).
//!
//! Runs the `clavis` binary at `debug` (and `trace` for Clavis's own code), drives every
//! flow that handles a secret through it — client_secret_post and client_secret_basic,
//! wrong secrets, client creation and secret rotation, private_key_jwt with good, replayed
//! and forged assertions, bad Bearer tokens — then the official Node SDK suite, and greps
//! the captured stdout and stderr for every secret, assertion and token used, and for
//! anything shaped like a JWT.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::request::{Admin, Api, Auth};
use crate::common::server::Server;
use crate::common::{ADMIN_ID, ADMIN_SECRET, sdk};
use clavis_crypto::jws::SigningKey;
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every string that must not appear in the log, with what it is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        assert!(value.len() >= 16, "{what} is too short to grep for");
        self.0.push((what.to_string(), value.to_string()));
    }
}

/// A JWT-shaped string: header and payload are base64url JSON objects (`eyJ`).
fn find_jwt(text: &str) -> Option<&str> {
    let start = text.find("eyJ")?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let candidate = &rest[..end];
    (candidate.matches('.').count() >= 2 && candidate.len() > 40).then_some(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_assertion_or_token_reaches_the_logs() {
    let mut server = Server::with_env(&[
        ("CLAVIS_LOG", "debug,clavis=trace"),
        ("CLAVIS_RATE_LIMIT_CLIENT_RPS", "0"),
        ("CLAVIS_RATE_LIMIT_IP_RPS", "0"),
    ]);
    let http = server.http();
    let base = server.base();
    let mut secrets = Secrets::default();
    secrets.add("the bootstrap admin's secret", ADMIN_SECRET);

    let admin = Admin::connect(Api::new(http.clone(), server.base())).await;
    let (api, token) = (&admin.api, admin.token.clone());
    secrets.add("a management token", &token);
    let management = api.management_audience();

    // client_secret_basic, and wrong secrets both ways.
    let basic = api
        .client_credentials(ADMIN_ID, Auth::SecretBasic(ADMIN_SECRET), &management)
        .await;
    assert_eq!(basic.status(), 200);
    let v: Value = basic.json().await.unwrap();
    secrets.add(
        "a token from client_secret_basic",
        v["access_token"].as_str().unwrap(),
    );
    let wrong = "wrong-secret-that-must-not-be-logged-0123456789";
    secrets.add("a wrong secret", wrong);
    for r in [
        api.client_credentials(ADMIN_ID, Auth::SecretPost(wrong), &management)
            .await,
        http.post(format!("{base}/oauth/token"))
            .basic_auth(ADMIN_ID, Some(wrong))
            .json(&json!({"grant_type": "client_credentials", "audience": format!("{base}/api/v2/"), "organization": null}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), 401);
    }

    // A client: its secret on create and on rotation.
    use reqwest::Method;
    let bearer = token.as_str();
    let call = |method: Method, path: String, body: Option<Value>| async move {
        api.call(bearer, method, &format!("/api/v2{path}"), body)
            .await
    };
    let created = admin
        .send(Method::POST, "/clients", json!({"name": "hygiene", "app_type": "non_interactive", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}))
        .await
        .unwrap();
    let client_id = created["client_id"].as_str().unwrap().to_string();
    secrets.add(
        "a new client's secret",
        created["client_secret"].as_str().unwrap(),
    );
    let rotated: Value = call(
        Method::POST,
        format!("/clients/{client_id}/rotate-secret"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = rotated["client_secret"].as_str().unwrap().to_string();
    secrets.add("a rotated secret", &secret);
    let fetched: Value = call(Method::GET, format!("/clients/{client_id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["client_secret"], secret.as_str());

    // An API's signing_secret: given, created, refused (too short), and its HS256 token.
    let given = "hygiene-signing-secret-0123456789";
    secrets.add("a given signing_secret", given);
    // 15 characters (too short for a signing_secret), 16 bytes (long enough to grep for).
    let too_short = "réfused-signing";
    secrets.add("a refused signing_secret", too_short);
    let mut hs_audience = None;
    for (i, body) in [
        json!({"signing_alg": "HS256", "signing_secret": given}),
        json!({"signing_alg": "HS256"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = body;
        body["identifier"] = json!(format!("https://hygiene-hs-{i}.example/"));
        let created = admin
            .send(Method::POST, "/resource-servers", body.clone())
            .await
            .unwrap();
        let signing_secret = created["signing_secret"].as_str().unwrap();
        secrets.add("an API's signing_secret", signing_secret);
        let r = call(
            Method::PATCH,
            format!("/resource-servers/{}", created["id"].as_str().unwrap()),
            Some(json!({"signing_secret": too_short})),
        )
        .await;
        assert_eq!(r.status(), 400);
        hs_audience.get_or_insert(body["identifier"].as_str().unwrap().to_string());
    }
    let hs_audience = hs_audience.unwrap();
    let r = call(
        Method::POST,
        "/client-grants".into(),
        Some(json!({"client_id": client_id, "audience": hs_audience, "scope": []})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let hs: Value = api
        .client_credentials(&client_id, Auth::SecretPost(&secret), &hs_audience)
        .await
        .json()
        .await
        .unwrap();
    secrets.add("an HS256 token", hs["access_token"].as_str().unwrap());

    // private_key_jwt: a key credential, attached; good, replayed and forged assertions.
    let key = SigningKey::generate().unwrap();
    let pkcs1 = der::pem::encode_string(
        "RSA PUBLIC KEY",
        der::pem::LineEnding::LF,
        key.public_key().pkcs1_der(),
    )
    .unwrap();
    let cred = admin
        .send(Method::POST, &format!("/clients/{client_id}/credentials"), json!({"credential_type": "public_key", "name": "hygiene key", "pem": pkcs1, "kid": key.kid()}))
        .await
        .unwrap();
    let r = call(
        Method::PATCH,
        format!("/clients/{client_id}"),
        Some(json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": cred["id"]}]}}, "token_endpoint_auth_method": null})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let grant = call(
        Method::POST,
        "/client-grants".into(),
        Some(json!({"client_id": client_id, "audience": management, "scope": ["read:clients"]})),
    )
    .await;
    assert_eq!(grant.status(), 201);
    let assertion = key
        .sign_jwt(&json!({"iss": client_id, "sub": client_id, "aud": format!("{base}/"), "iat": now(), "exp": now() + 120, "jti": format!("hygiene-jti-{}", now())}))
        .unwrap();
    secrets.add("a client assertion", &assertion);
    let (id, audience) = (client_id.as_str(), management.as_str());
    let with_assertion = |assertion: String| async move {
        api.client_credentials(id, Auth::Assertion(&assertion), audience)
            .await
    };
    let ok = with_assertion(assertion.clone()).await;
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    secrets.add(
        "a token from private_key_jwt",
        v["access_token"].as_str().unwrap(),
    );
    assert_eq!(
        with_assertion(assertion.clone()).await.status(),
        401,
        "replay"
    );
    let forged = format!("{}AAAA", &assertion[..assertion.len() - 4]);
    secrets.add("a forged assertion", &forged);
    assert_eq!(with_assertion(forged).await.status(), 401);
    let garbage = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJoeWdpZW5lIn0.bm90LWEtc2lnbmF0dXJlLWF0LWFsbA";
    secrets.add("a garbage bearer token", garbage);
    let r = http
        .get(format!("{base}/api/v2/clients"))
        .bearer_auth(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The official Node SDK's whole suite through the same server.
    sdk::sdk_deps("node").unwrap();
    let mut cmd = Command::new("node");
    cmd.arg("--test").args(sdk::node_test_files().unwrap());
    let (status, output) = sdk::run(&server, &[], "node", cmd, Duration::from_secs(600)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "the Node SDK suite failed:\n{output}"
    );

    println!(
        "--- node ---\n{}",
        output.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );
    // The audit trail (`/api/v2/logs`) holds every event of all of the above: it is checked
    // like the process log.
    let token = api.admin_token().await;
    let mut audit = String::new();
    let mut from = String::new();
    loop {
        let r = http
            .get(format!("{base}/api/v2/logs?take=100&from={from}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Vec<serde_json::Value> = r.json().await.unwrap();
        let Some(last) = page.last() else { break };
        from = last["log_id"].as_str().unwrap().to_string();
        for event in &page {
            audit.push_str(&event.to_string());
            audit.push('\n');
        }
    }
    assert!(
        audit.lines().count() > 100,
        "suspiciously few audit events:\n{audit}"
    );
    server.stop();
    let log = format!("{}\n{audit}", server.log());
    println!(
        "log hygiene: {} log lines checked for {} secrets, assertions and tokens",
        log.lines().count(),
        secrets.0.len()
    );
    assert!(
        log.lines().count() > 20,
        "suspiciously little logging:\n{log}"
    );
    let mut leaks = Vec::new();
    for (what, value) in &secrets.0 {
        if log.contains(value.as_str()) {
            leaks.push(format!("{what} appears in the log"));
        }
        // Half of a token or secret is as bad as all of it.
        let half = &value[..value.len() / 2];
        if half.len() >= 16 && !log.contains(value.as_str()) && log.contains(half) {
            leaks.push(format!("part of {what} appears in the log"));
        }
    }
    if let Some(jwt) = find_jwt(&log) {
        leaks.push(format!(
            "a JWT appears in the log: {}…",
            &jwt[..jwt.len().min(24)]
        ));
    }
    assert!(
        leaks.is_empty(),
        "{}\n--- log ({} lines) ---\n{}",
        leaks.join("\n"),
        log.lines().count(),
        log.lines().take(400).collect::<Vec<_>>().join("\n")
    );
}

//! Credential expiry, before it bites: `clavis_credential_expiring` once per threshold and
//! `clavis_credential_expired` once, re-armed by a renewal; a pinned certificate's notAfter;
//! `GET /api/v2/credentials/expiring`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn in_days(days: f64) -> String {
    let ms = (days * 86_400_000.0) as i64;
    millis_string(time::OffsetDateTime::now_utc() + time::Duration::milliseconds(ms))
}

async fn attach(app: &TestApp, client_id: &str, method: &str, credential_id: &str) {
    let (status, body) = app
        .admin_json(
            Method::PATCH,
            &format!("/api/v2/clients/{client_id}"),
            Some(json!({
                "client_authentication_methods": {method: {"credentials": [{"id": credential_id}]}},
                "token_endpoint_auth_method": null,
            })),
        )
        .await;
    assert_eq!(status, 200, "attach: {body}");
}

/// A client authenticating with a public key expiring at `expires_at`: (client, credential).
async fn key_client(app: &TestApp, name: &str, expires_at: &str) -> (String, String) {
    let client = app.create_m2m_client(name).await;
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let (_, public_pem) = rsa_key(2048);
    let cred = app
        .credential_ok(
            &client_id,
            json!({"credential_type": "public_key", "pem": public_pem, "expires_at": expires_at}),
        )
        .await;
    let cred_id = cred["id"].as_str().unwrap().to_string();
    attach(app, &client_id, "private_key_jwt", &cred_id).await;
    (client_id, cred_id)
}

/// The expiry events of `credential_id`, oldest first, found by `type:` searches.
async fn notices(app: &TestApp, credential_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for kind in ["clavis_credential_expiring", "clavis_credential_expired"] {
        let body = app
            .admin_expect(
                Method::GET,
                &format!("/api/v2/logs?q=type:{kind}&sort=date:1&per_page=100"),
                None,
                200,
            )
            .await;
        out.extend(
            body.as_array()
                .unwrap()
                .iter()
                .filter(|e| e["details"]["credential_id"] == credential_id)
                .cloned(),
        );
    }
    out.sort_by(|a, b| a["log_id"].as_str().cmp(&b["log_id"].as_str()));
    out
}

/// (type, threshold_days) of each event.
fn kinds(events: &[Value]) -> Vec<(String, Option<u64>)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["details"]["threshold_days"].as_u64(),
            )
        })
        .collect()
}

fn expiring(days: u64) -> (String, Option<u64>) {
    ("clavis_credential_expiring".into(), Some(days))
}

fn expired() -> (String, Option<u64>) {
    ("clavis_credential_expired".into(), None)
}

async fn patch_expiry(app: &TestApp, client_id: &str, cred_id: &str, expires_at: &str) {
    app.admin_expect(
        Method::PATCH,
        &TestApp::cred_path(client_id, Some(cred_id)),
        Some(json!({"expires_at": expires_at})),
        200,
    )
    .await;
}

#[tokio::test]
async fn a_key_is_warned_once_per_threshold_then_expired_then_re_armed_by_a_renewal() {
    let app = TestApp::spawn().await;
    // Less an hour: `days_left` is 1 however soon the scan runs.
    let expires_at = in_days(2.0 - 1.0 / 24.0);
    let (client_id, cred_id) = key_client(&app, "expiring client", &expires_at).await;

    // Within 30 and 7 days: both warnings, once each, however often the scan runs.
    app.clavis.scan_credential_expiry().await;
    app.clavis.scan_credential_expiry().await;
    let events = notices(&app, &cred_id).await;
    assert_eq!(kinds(&events), [expiring(30), expiring(7)], "{events:?}");
    let e = &events[1];
    let mut keys = keys(e);
    keys.sort();
    assert_eq!(
        keys,
        [
            "client_id",
            "client_name",
            "date",
            "description",
            "details",
            "hostname",
            "log_id",
            "type"
        ]
    );
    assert_eq!(e["client_id"], client_id.as_str());
    assert_eq!(e["client_name"], "expiring client");
    assert!(is_millis_timestamp(e["date"].as_str().unwrap()));
    assert_eq!(
        e["details"],
        json!({
            "credential_id": cred_id,
            "credential_type": "public_key",
            "client_id": client_id,
            "expires_at": expires_at,
            "threshold_days": 7,
            "days_left": 1,
        })
    );

    // Within a day: the 1-day warning only.
    patch_expiry(&app, &client_id, &cred_id, &in_days(0.5)).await;
    app.clavis.scan_credential_expiry().await;
    app.clavis.scan_credential_expiry().await;
    let events = notices(&app, &cred_id).await;
    assert_eq!(
        kinds(&events),
        [expiring(30), expiring(7), expiring(1)],
        "{events:?}"
    );

    // Expired: once.
    let past = in_days(-0.001);
    patch_expiry(&app, &client_id, &cred_id, &past).await;
    app.clavis.scan_credential_expiry().await;
    app.clavis.scan_credential_expiry().await;
    let events = notices(&app, &cred_id).await;
    assert_eq!(
        kinds(&events),
        [expiring(30), expiring(7), expiring(1), expired()],
        "{events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(
        last["details"],
        json!({
            "credential_id": cred_id,
            "credential_type": "public_key",
            "client_id": client_id,
            "expires_at": past,
        })
    );

    // Renewed to 20 days from now (less an hour, so that `days_left` is 19 even when the
    // scan runs within the millisecond this date was taken): the 30-day warning again, for
    // the new date; not the others.
    let renewed = in_days(20.0 - 1.0 / 24.0);
    patch_expiry(&app, &client_id, &cred_id, &renewed).await;
    app.clavis.scan_credential_expiry().await;
    app.clavis.scan_credential_expiry().await;
    let events = notices(&app, &cred_id).await;
    assert_eq!(
        kinds(&events),
        [
            expiring(30),
            expiring(7),
            expiring(1),
            expired(),
            expiring(30)
        ],
        "{events:?}"
    );
    assert_eq!(events[4]["details"]["expires_at"], renewed.as_str());
    assert_eq!(events[4]["details"]["days_left"], 19);

    // A restart (a fresh node's memory) sends nothing again.
    let app = app.restart().await;
    assert_eq!(app.clavis.scan_credential_expiry().await, 0);
    assert_eq!(notices(&app, &cred_id).await.len(), 5);
}

#[tokio::test]
async fn a_pinned_certificate_is_warned_before_its_not_after_and_detached_ones_are_not() {
    let app = TestApp::spawn().await;
    let client = app.create_m2m_client("pinned client").await;
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let cert = test_cert(&[(rcgen::DnType::CommonName, "pinned")], 3);
    let cred = app
        .credential_ok(
            &client_id,
            json!({"credential_type": "x509_cert", "pem": cert.pem}),
        )
        .await;
    let cred_id = cred["id"].as_str().unwrap().to_string();
    // Detached: it authenticates nothing, so nothing is said.
    app.clavis.scan_credential_expiry().await;
    assert!(notices(&app, &cred_id).await.is_empty());

    attach(&app, &client_id, "self_signed_tls_client_auth", &cred_id).await;
    app.clavis.scan_credential_expiry().await;
    let events = notices(&app, &cred_id).await;
    assert_eq!(kinds(&events), [expiring(30), expiring(7)], "{events:?}");
    assert_eq!(events[0]["details"]["credential_type"], "x509_cert");
    assert_eq!(
        events[0]["details"]["expires_at"].as_str().unwrap(),
        millis_string(cert.not_after)
    );
    assert_eq!(events[0]["details"]["days_left"], 2);
}

#[tokio::test]
async fn expiring_credentials_are_listed_across_clients_soonest_first_with_paging_and_scope() {
    let app = TestApp::spawn().await;
    let (a, a_cred) = key_client(&app, "client a", &in_days(10.0)).await;
    let (b, b_cred) = key_client(&app, "client b", &in_days(3.0)).await;
    let (_, late) = key_client(&app, "client c", &in_days(100.0)).await;
    let before = millis_string(time::OffsetDateTime::now_utc() + time::Duration::days(30));

    let list = app
        .get_ok(&format!("/api/v2/credentials/expiring?before={before}"))
        .await;
    let items = list.as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [b_cred.as_str(), a_cred.as_str()]);
    // Each item: the credential as GET shows it, plus its client.
    let shown = app.get_ok(&TestApp::cred_path(&b, Some(&b_cred))).await;
    let mut expected = shown.as_object().unwrap().clone();
    expected.insert("client_id".into(), json!(b));
    expected.insert("client_name".into(), json!("client b"));
    assert_eq!(items[0], Value::Object(expected));
    assert_eq!(items[1]["client_id"], a.as_str());

    // A date works too; without `before`, every credential that expires.
    let all = app.get_ok("/api/v2/credentials/expiring").await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_cred.as_str(), a_cred.as_str(), late.as_str()]);
    let day = &before[..10];
    let by_date = app
        .get_ok(&format!("/api/v2/credentials/expiring?before={day}"))
        .await;
    assert_eq!(by_date.as_array().unwrap().len(), 2);

    // Offset paging with totals.
    let page = app
        .get_ok("/api/v2/credentials/expiring?per_page=2&page=1&include_totals=true")
        .await;
    assert_eq!(page["start"], 2);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["total"], 3);
    assert_eq!(page["credentials"][0]["id"], late.as_str());
    // Checkpoint paging.
    let first = app.get_ok("/api/v2/credentials/expiring?take=2").await;
    assert_eq!(first["credentials"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let second = app
        .get_ok(&format!("/api/v2/credentials/expiring?take=2&from={next}"))
        .await;
    assert_eq!(second["credentials"][0]["id"], late.as_str());
    assert!(second.get("next").is_none());

    // A bad date; the scope.
    app.admin_expect(
        Method::GET,
        "/api/v2/credentials/expiring?before=soon",
        None,
        400,
    )
    .await;
    let token = app.token_with_scopes(&["read:clients"]).await;
    let r = app
        .call(&token, Method::GET, "/api/v2/credentials/expiring", None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let token = app.token_with_scopes(&["read:client_credentials"]).await;
    let r = app
        .call(&token, Method::GET, "/api/v2/credentials/expiring", None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

//! Rate limiting as clients see it, against the `clavis` binary: the headers on every
//! answer, the 429 with `retry-after` and Auth0's error body on the Management API and the
//! token endpoint, separate buckets per client, and the official Node SDK recovering from a
//! 429 with its built-in retry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::binary::{ADMIN_ID, ADMIN_SECRET, Server, admin_token};
use serde_json::{Value, json};

const TINY: &[(&str, &str)] = &[
    ("CLAVIS_RATE_LIMIT_CLIENT_RPS", "1"),
    ("CLAVIS_RATE_LIMIT_CLIENT_BURST", "2"),
    ("CLAVIS_RATE_LIMIT_IP_RPS", "1"),
    ("CLAVIS_RATE_LIMIT_IP_BURST", "3"),
];

fn header(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.parse().ok()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn management_api_answers_429_with_auth0_body_and_near_reset() {
    let server = Server::start(TINY);
    let http = server.http();
    let token = admin_token(&server, &http).await;
    let get = || {
        http.get(format!("{}/api/v2/resource-servers", server.base()))
            .bearer_auth(&token)
            .send()
    };
    let first = get().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit"), Some(2));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some(1));
    let reset = header(&first, "x-ratelimit-reset").unwrap();
    assert!(reset >= now() && reset <= now() + 3, "reset {reset}");
    assert!(first.headers().get("retry-after").is_none());
    assert_eq!(get().await.unwrap().status(), 200);
    let limited = get().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-ratelimit-remaining"), Some(0));
    assert_eq!(header(&limited, "retry-after"), Some(1));
    let reset = header(&limited, "x-ratelimit-reset").unwrap();
    assert!(reset >= now() && reset <= now() + 4, "reset {reset}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(
        body,
        json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached", "errorCode": "too_many_requests"})
    );
    // After `retry-after`, the bucket lets one through again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get().await.unwrap().status(), 200);
}

#[tokio::test]
async fn token_endpoint_limits_each_client_and_unknown_callers_by_ip() {
    let server = Server::start(TINY);
    let http = server.http();
    let token = |id: &'static str, secret: &'static str| {
        http.post(format!("{}/oauth/token", server.base()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("audience", &format!("{}/api/v2/", server.base())),
            ])
            .send()
    };
    assert_eq!(token(ADMIN_ID, ADMIN_SECRET).await.unwrap().status(), 200);
    assert_eq!(token(ADMIN_ID, ADMIN_SECRET).await.unwrap().status(), 200);
    let limited = token(ADMIN_ID, ADMIN_SECRET).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "retry-after"), Some(1));
    assert_eq!(
        limited.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert_eq!(body["error_description"], "Global limit has been reached");
    // An unknown client id is charged to the caller's IP, not to a bucket of its own: the
    // IP bucket (burst 3) still has room, then runs dry.
    for _ in 0..3 {
        let r = token("NoSuchClient", "x").await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(header(&r, "x-ratelimit-reset").is_some());
    }
    assert_eq!(token("AnotherUnknown", "x").await.unwrap().status(), 429);
}

#[tokio::test]
async fn health_checks_are_never_limited() {
    let server = Server::start(TINY);
    let http = server.http();
    for _ in 0..10 {
        let r = http
            .get(format!("{}/healthz", server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-ratelimit-limit").is_none());
        assert_eq!(
            r.headers()["strict-transport-security"].to_str().unwrap(),
            "max-age=31536000"
        );
    }
}

#[test]
fn node_sdk_retry_recovers_from_429() {
    common::binary::sdk_deps("node");
    let server = Server::start(&[
        ("CLAVIS_RATE_LIMIT_CLIENT_RPS", "1"),
        ("CLAVIS_RATE_LIMIT_CLIENT_BURST", "2"),
    ]);
    let mut cmd = Command::new("node");
    cmd.arg("--test").arg("sdk-tests/node/rate-limit-retry.mjs");
    let (status, output) = common::binary::run_sdk_command(&server, cmd, Duration::from_secs(120));
    println!(
        "--- node ---\n{output}\n--- clavis ---\n{}",
        server.log_text()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the Node SDK did not recover from 429 ({status:?})"
    );
}

//! Rate limiting as clients see it, against the `clavis` binary: the headers on every
//! answer, the 429 with `retry-after` and Auth0's error body on the Management API and the
//! token endpoint, separate buckets per client, and the official Node SDK recovering from a
//! 429 with its built-in retry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::request::Api;
use crate::common::server::Server;
use crate::common::{ADMIN_ID, ADMIN_SECRET, sdk};
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
    let server = Server::with_env(TINY);
    let http = server.http();
    let token = Api::new(http.clone(), server.base()).admin_token().await;
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
    let server = Server::with_env(TINY);
    let http = server.http();
    let (server, http) = (&server, &http);
    let token = move |id: &'static str, secret: &'static str| async move {
        Ok::<_, ()>(secret_request(server, http, id, secret).await)
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
    // A request that does not authenticate is charged to the caller's address, not to a
    // client's bucket: the address bucket (burst 3) still has room, then runs dry, and the
    // address is refused before authentication until it refills.
    for _ in 0..3 {
        let r = token("NoSuchClient", "x").await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(header(&r, "x-ratelimit-reset").is_some());
    }
    assert_eq!(token("AnotherUnknown", "x").await.unwrap().status(), 429);
    assert_eq!(token(ADMIN_ID, "wrong").await.unwrap().status(), 429);
}

/// Sends a `client_secret_post` token request for the Management API.
async fn secret_request(
    server: &Server,
    http: &reqwest::Client,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    http.post(format!("{}/oauth/token", server.base()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", &format!("{}/api/v2/", server.base())),
        ])
        .send()
        .await
        .unwrap()
}

/// The security report's lockout: wrong secrets naming a client used to spend that client's
/// own budget, so anyone could keep the admin locked out. Failures are now charged to the
/// sender (and to the pair client id + sender), never to the client.
#[tokio::test]
async fn a_flood_of_wrong_secrets_for_the_admin_does_not_lock_the_admin_out() {
    let server = Server::with_env(&[]); // the default limits: 50/s, burst 200
    let attacker = server.http_from(Some("127.0.0.1".parse().unwrap()));
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..260 {
        let r = secret_request(&server, &attacker, ADMIN_ID, "wrong-secret").await;
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    // Ten failures for one client from one address, then that pair waits (brute force;
    // one more every 6 s, should the loop be slow).
    let refused = statuses.get(&401).copied().unwrap_or(0);
    assert!((10..=12).contains(&refused), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&(260 - refused)), "{statuses:?}");
    // The right secret from that address is refused too while the pair is blocked...
    let r = secret_request(&server, &attacker, ADMIN_ID, ADMIN_SECRET).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").is_some());
    // ...but from anywhere else the admin gets its token, with its whole budget.
    let admin = server.http_from(Some("127.0.0.2".parse().unwrap()));
    let r = secret_request(&server, &admin, ADMIN_ID, ADMIN_SECRET).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit"), Some(200));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some(199));
    // Other clients from the attacker's address are not blocked by the pair.
    let r = secret_request(&server, &attacker, "SomeOtherClientId", "x").await;
    assert_eq!(r.status(), 401);
}

/// Before authentication a known and an unknown client id get the same headers, charged
/// to the sender: `x-ratelimit-remaining` does not tell whether a client exists.
#[tokio::test]
async fn refusals_look_alike_for_known_and_unknown_client_ids() {
    // A slow refill (1/s), so that the two answers' counts are one apart.
    let server = Server::with_env(&[
        ("CLAVIS_RATE_LIMIT_IP_RPS", "1"),
        ("CLAVIS_RATE_LIMIT_IP_BURST", "100"),
    ]);
    let http = server.http();
    let known = secret_request(&server, &http, ADMIN_ID, "wrong").await;
    let unknown = secret_request(&server, &http, "NoSuchClient0000", "wrong").await;
    assert_eq!(
        (known.status().as_u16(), unknown.status().as_u16()),
        (401, 401)
    );
    let labels = |r: &reqwest::Response| {
        (
            header(r, "x-ratelimit-limit"),
            header(r, "x-ratelimit-remaining"),
        )
    };
    assert_eq!(labels(&known), (Some(100), Some(99)));
    assert_eq!(labels(&unknown), (Some(100), Some(98)));
    let (known, unknown): (Value, Value) =
        (known.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(known, unknown);
}

#[tokio::test]
async fn health_checks_are_never_limited() {
    let server = Server::with_env(TINY);
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
    sdk::sdk_deps("node").unwrap();
    let server = Server::with_env(&[
        ("CLAVIS_RATE_LIMIT_CLIENT_RPS", "1"),
        ("CLAVIS_RATE_LIMIT_CLIENT_BURST", "2"),
    ]);
    let mut cmd = Command::new("node");
    cmd.arg("--test").arg("sdk-tests/node/rate-limit-retry.mjs");
    let (status, output) = sdk::run(&server, &[], "node", cmd, Duration::from_secs(120)).unwrap();
    println!("--- node ---\n{output}\n--- clavis ---\n{}", server.log());
    assert!(
        status.is_some_and(|s| s.success()),
        "the Node SDK did not recover from 429 ({status:?})"
    );
}

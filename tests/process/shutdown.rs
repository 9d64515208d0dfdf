//! Graceful shutdown of the real binary: SIGTERM while writes are in flight. Requests that
//! were acknowledged are all there after a restart, none failed with a 5xx, and the process
//! exits cleanly.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::keys::{self, AssertionKey};
use crate::common::request::{Admin, Api};
use crate::common::server::Server;
use serde_json::{Value, json};

const WORKERS: usize = 8;

async fn admin_token(http: &reqwest::Client, domain: &str) -> Result<String, String> {
    Ok(Api::new(http.clone(), format!("https://{domain}"))
        .admin_token()
        .await)
}

/// Creates clients until the server goes away; returns the acknowledged ids and any
/// 5xx statuses seen.
async fn writer(
    http: reqwest::Client,
    domain: String,
    token: String,
    worker: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, Vec<u16>) {
    let mut acknowledged = Vec::new();
    let mut server_errors = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = http
            .post(format!("https://{domain}/api/v2/clients"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("w{worker}-{n}"), "app_type": "non_interactive", "grant_types": ["client_credentials"]}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().as_u16() == 201 => {
                if let Ok(body) = r.json::<Value>().await
                    && let Some(id) = body["client_id"].as_str()
                {
                    acknowledged.push(id.to_string());
                }
            }
            Ok(r) if r.status().is_server_error() => server_errors.push(r.status().as_u16()),
            Ok(_) => {}
            // The connection was refused or closed: the server is shutting down.
            Err(_) => break,
        }
    }
    (acknowledged, server_errors)
}

#[test]
fn sigterm_finishes_in_flight_writes_and_loses_no_acknowledged_one() -> Result<(), String> {
    let mut server = Server::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let http = server.http_client()?;
    let domain = server.domain();
    let (acknowledged, server_errors) = runtime.block_on(async {
        let token = admin_token(&http, &domain).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for worker in 0..WORKERS {
            tasks.push(tokio::spawn(writer(
                http.clone(),
                domain.clone(),
                token.clone(),
                worker,
                stop.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        server.signal("TERM")?;
        // Writers stop on their own once connections are refused; this is the backstop.
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.store(true, Ordering::Relaxed);
        let mut acknowledged = Vec::new();
        let mut server_errors = Vec::new();
        for task in tasks {
            let (ids, errors) = task.await.map_err(|e| e.to_string())?;
            acknowledged.extend(ids);
            server_errors.extend(errors);
        }
        Ok::<_, String>((acknowledged, server_errors))
    })?;
    let status = server
        .wait_exit(Duration::from_secs(35))
        .ok_or("the server did not exit after SIGTERM")?;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        server.log_tail()
    );
    assert!(
        server_errors.is_empty(),
        "5xx during shutdown: {server_errors:?}"
    );
    assert!(
        !acknowledged.is_empty(),
        "no write was acknowledged before SIGTERM"
    );

    server.restart()?;
    let http = server.http_client()?;
    let domain = server.domain();
    let stored: HashSet<String> = runtime.block_on(async {
        let token = admin_token(&http, &domain).await?;
        let mut ids = HashSet::new();
        for page in 0.. {
            let body: Value = http
                .get(format!(
                    "https://{domain}/api/v2/clients?include_totals=true&per_page=100&page={page}"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let clients = body["clients"].as_array().cloned().unwrap_or_default();
            if clients.is_empty() {
                break;
            }
            ids.extend(
                clients
                    .iter()
                    .filter_map(|c| c["client_id"].as_str().map(str::to_string)),
            );
        }
        Ok::<_, String>(ids)
    })?;
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    Ok(())
}

/// A fresh assertion of `client_id` for the server `api` calls.
fn assertion(key: &AssertionKey, client_id: &str, api: &Api) -> String {
    let iat = keys::now();
    key.sign(
        &json!({"alg": "RS256"}),
        &json!({"iss": client_id, "sub": client_id, "aud": api.url("/"), "iat": iat, "exp": iat + 120, "jti": keys::jti()}),
    )
}

/// The status of a token request with `assertion` (`None` when the connection failed).
async fn token_status(api: &Api, assertion: &str) -> Option<u16> {
    // Not `Api::client_credentials`: a request the killed server never answered is `None`.
    let r = api
        .http
        .post(api.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("audience", &api.management_audience()),
        ])
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    // Read to the end: an answer dropped unread resets the stream.
    r.bytes().await.ok()?;
    Some(status)
}

/// How many of `assertions` get a token; an answer other than 200 or 401 is an error.
async fn replays_issued(api: &Api, assertions: &[String]) -> Result<usize, String> {
    let mut issued = 0;
    for a in assertions {
        match token_status(api, a).await {
            Some(200) => issued += 1,
            Some(401) => {}
            other => return Err(format!("a replay got {other:?}")),
        }
    }
    Ok(issued)
}

/// SIGKILL while assertions are being accepted, then a restart: not one assertion that got a
/// token before the kill gets another after it (on SQLite the last ids are written behind
/// the tokens, and the horizon's floor refuses what may have been lost; on PostgreSQL every
/// id is durable before its token). Honest clients, signing new assertions, get tokens again
/// within seconds.
#[test]
fn sigkill_lets_no_used_assertion_be_replayed() -> Result<(), String> {
    const ASSERTIONS: usize = 400;
    const SENDERS: usize = 8;
    // The one client sends far above its token rate limit.
    let mut server = Server::builder()
        .env("CLAVIS_RATE_LIMIT_CLIENT_RPS", "0")
        .start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let api = server.api();
    let key = AssertionKey::new(2048);
    let client_id = runtime.block_on(async {
        let admin = Admin::connect(api.clone()).await;
        let credential =
            json!({"credential_type": "public_key", "pem": key.public_pem, "alg": "RS256"});
        admin
            .credential_client(
                "replay after a crash",
                "private_key_jwt",
                credential,
                &api.management_audience(),
                &["read:clients"],
            )
            .await
            .map(|(id, _)| id)
    })?;
    let assertions: Arc<Vec<String>> = Arc::new(
        (0..ASSERTIONS)
            .map(|_| assertion(&key, &client_id, &api))
            .collect(),
    );
    // Senders take assertions in turn; the kill comes once a third got tokens.
    let accepted = runtime.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let issued = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let (api, next, issued, assertions) = (
                api.clone(),
                next.clone(),
                issued.clone(),
                assertions.clone(),
            );
            senders.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(a) = assertions.get(i) else {
                        return;
                    };
                    match token_status(&api, a).await {
                        Some(200) => issued.lock().unwrap().push(a.clone()),
                        Some(_) => {}
                        None => return,
                    }
                }
            }));
        }
        while issued.lock().unwrap().len() < ASSERTIONS / 3 {
            if senders.iter().all(|s| s.is_finished()) {
                return Err("the assertions ran out before a third got tokens".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.signal("KILL")?;
        for s in senders {
            s.await.map_err(|e| e.to_string())?;
        }
        let issued = issued.lock().unwrap().clone();
        Ok::<_, String>(issued)
    })?;
    server
        .wait_exit(Duration::from_secs(10))
        .ok_or("the server did not die of SIGKILL")?;
    assert!(accepted.len() >= ASSERTIONS / 3);

    server.restart()?;
    let api = server.api();
    let issued = runtime.block_on(replays_issued(&api, &accepted))?;
    assert_eq!(
        issued,
        0,
        "{issued} of {} assertions used before the kill were accepted again",
        accepted.len()
    );
    // An honest client: a new assertion for each request, until one gets a token.
    let started = std::time::Instant::now();
    runtime.block_on(async {
        loop {
            match token_status(&api, &assertion(&key, &client_id, &api)).await {
                Some(200) => return Ok(()),
                Some(401) if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => return Err(format!("a fresh assertion got {other:?}")),
            }
        }
    })?;
    let waited = started.elapsed();
    println!(
        "{} assertions accepted before SIGKILL, none again after; a fresh one got a token after {waited:?}",
        accepted.len()
    );
    if server.on_postgres() {
        assert!(waited < Duration::from_secs(2), "refused for {waited:?}");
    } else {
        assert!(
            server.log().contains("the last stop was unclean"),
            "{}",
            server.log_tail()
        );
    }
    // Once honest assertions pass again, the old ones are still refused.
    let issued = runtime.block_on(replays_issued(&api, &accepted))?;
    assert_eq!(
        issued, 0,
        "{issued} replays accepted after the floor passed"
    );
    Ok(())
}

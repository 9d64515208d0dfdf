//! Graceful shutdown of the real binary: SIGTERM while writes are in flight. Requests that
//! were acknowledged are all there after a restart, none failed with a 5xx, and the process
//! exits cleanly.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::server::{BOOTSTRAP_CLIENT_ID, BOOTSTRAP_CLIENT_SECRET, Server};
use serde_json::{Value, json};

const WORKERS: usize = 8;

async fn admin_token(http: &reqwest::Client, domain: &str) -> Result<String, String> {
    let r = http
        .post(format!("https://{domain}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", BOOTSTRAP_CLIENT_ID),
            ("client_secret", BOOTSTRAP_CLIENT_SECRET),
            ("audience", &format!("https://{domain}/api/v2/")),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no token: {body}"))
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

/// A client that authenticates with `private_key_jwt`, granted `read:clients` on the
/// Management API: its id and key.
async fn key_client(
    http: &reqwest::Client,
    domain: &str,
    token: &str,
) -> Result<(String, common::keys::AssertionKey), String> {
    let call = |method: reqwest::Method, path: String, body: Value| {
        let request = http
            .request(method, format!("https://{domain}{path}"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = request.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(body)
            } else {
                Err(format!("{status}: {body}"))
            }
        }
    };
    let client = call(
        reqwest::Method::POST,
        "/api/v2/clients".into(),
        json!({"name": "replay after a crash", "app_type": "non_interactive", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await?;
    let client_id = client["client_id"]
        .as_str()
        .ok_or("no client_id")?
        .to_string();
    call(
        reqwest::Method::POST,
        "/api/v2/client-grants".into(),
        json!({"client_id": client_id, "audience": format!("https://{domain}/api/v2/"), "scope": ["read:clients"]}),
    )
    .await?;
    let key = common::keys::AssertionKey::new(2048);
    let credential = call(
        reqwest::Method::POST,
        format!("/api/v2/clients/{client_id}/credentials"),
        json!({"credential_type": "public_key", "pem": key.public_pem, "alg": "RS256"}),
    )
    .await?;
    call(
        reqwest::Method::PATCH,
        format!("/api/v2/clients/{client_id}"),
        json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": credential["id"]}]}}, "token_endpoint_auth_method": null}),
    )
    .await?;
    Ok((client_id, key))
}

/// A fresh assertion of `client_id` for this server.
fn assertion(key: &common::keys::AssertionKey, client_id: &str, domain: &str) -> String {
    let iat = common::keys::now();
    key.sign(
        &json!({"alg": "RS256"}),
        &json!({"iss": client_id, "sub": client_id, "aud": format!("https://{domain}/"), "iat": iat, "exp": iat + 120, "jti": common::keys::jti()}),
    )
}

/// The status of a token request with `assertion` (`None` when the connection failed).
async fn token_status(http: &reqwest::Client, domain: &str, assertion: &str) -> Option<u16> {
    let r = http
        .post(format!("https://{domain}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("audience", &format!("https://{domain}/api/v2/")),
        ])
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    // Read to the end: an answer dropped unread resets the stream.
    r.bytes().await.ok()?;
    Some(status)
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
    let mut server = Server::start_with(common::server::ServerOptions {
        env: vec![("CLAVIS_RATE_LIMIT_CLIENT_RPS".into(), "0".into())],
        ..Default::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let http = server.http_client()?;
    let domain = server.domain();
    let (client_id, key) = runtime.block_on(async {
        let token = admin_token(&http, &domain).await?;
        key_client(&http, &domain, &token).await
    })?;
    let key = Arc::new(key);
    let assertions: Vec<String> = (0..ASSERTIONS)
        .map(|_| assertion(&key, &client_id, &domain))
        .collect();
    // Senders take assertions in turn; the kill comes once a third got tokens.
    let accepted = runtime.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let issued = Arc::new(std::sync::Mutex::new(Vec::new()));
        let assertions = Arc::new(assertions);
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let (http, domain, next, issued, assertions) = (
                http.clone(),
                domain.clone(),
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
                    match token_status(&http, &domain, a).await {
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
    let http = server.http_client()?;
    let replays_issued = |http: reqwest::Client| {
        let (domain, accepted) = (domain.clone(), accepted.clone());
        async move {
            let mut issued = 0;
            for a in &accepted {
                match token_status(&http, &domain, a).await {
                    Some(200) => issued += 1,
                    Some(401) => {}
                    other => return Err(format!("a replay got {other:?}")),
                }
            }
            Ok::<_, String>(issued)
        }
    };
    let issued = runtime.block_on(replays_issued(http.clone()))?;
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
            match token_status(&http, &domain, &assertion(&key, &client_id, &domain)).await {
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
    let issued = runtime.block_on(replays_issued(http))?;
    assert_eq!(
        issued, 0,
        "{issued} replays accepted after the floor passed"
    );
    Ok(())
}

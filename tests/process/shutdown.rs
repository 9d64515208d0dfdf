//! Graceful shutdown of the real binary: SIGTERM while writes are in flight. Requests that
//! were acknowledged are all there after a restart, none failed with a 5xx, and the process
//! exits cleanly.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::request::Api;
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

//! Multi-node propagation: how long after a PATCH of a credential's `expires_at` on one node
//! (the writer) does another node (the loaded one, serving tokens at the same time) refuse
//! that credential? Measured from the moment the PATCH's answer arrives to the arrival of the
//! first refused token request on the loaded node (0 when the refusal arrived first).
//!
//! Each round: the probe client's credential is valid and tokens are issued on the loaded
//! node; the PATCH (`expires_at` one minute in the past, i.e. "expired now") goes to the
//! writer; from the moment it is sent, a token request with a fresh pre-signed assertion goes
//! to the loaded node every `probe_every` (open loop, each on its own task) until one is
//! refused with 401; then `expires_at: null` restores the credential and the round waits
//! until the loaded node issues tokens again, pauses a little, and starts the next round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::assertions::{self, Dialect, Signer};
use crate::load::Req;
use crate::setup::{API, KeyClient, Manifest, SCOPE};

/// Where and how to measure.
pub struct Options {
    /// The loaded node (`https://127.0.0.1:port`), and its CA (PEM).
    pub loaded: String,
    pub loaded_ca: Vec<u8>,
    /// The node that takes the PATCHes, and its CA.
    pub writer: String,
    pub writer_ca: Vec<u8>,
    /// Rounds to measure.
    pub rounds: usize,
    /// Stop starting rounds after this long.
    pub budget: Duration,
    /// Interval between probes within a round.
    pub probe_every: Duration,
    /// Give up on a round after this long (counted as a timeout).
    pub round_limit: Duration,
    /// Written once the probe assertions are made (the load beside it starts after).
    pub ready_file: Option<std::path::PathBuf>,
    /// Rounds start once this file exists (the load beside it is warm).
    pub go_file: Option<std::path::PathBuf>,
}

/// The result, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Report {
    pub rounds: usize,
    pub timeouts: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Median PATCH round trip on the writer (sent → answered).
    pub patch_p50_ms: f64,
    /// Probe requests sent in all.
    pub probes: usize,
    /// Probe interval.
    pub probe_every_ms: f64,
    pub seconds: f64,
    /// Each measured round: when the PATCH's answer arrived (Unix milliseconds, to line up
    /// with the nodes' logs) and the time from it to the first refusal.
    pub detail: Vec<Round>,
}

/// One measured round.
#[derive(Debug, Serialize)]
pub struct Round {
    pub answered_unix_ms: f64,
    pub ms: f64,
}

/// Probe assertions made up front per round: 150 ms of probing plus the restore's few polls.
/// A slower round signs more on the fly (costing the machine CPU while it measures).
fn per_round(o: &Options) -> usize {
    (0.150 / o.probe_every.as_secs_f64()).ceil() as usize + 20
}

pub async fn run(manifest: &Manifest, probe: &KeyClient, o: Options) -> Result<Report> {
    let loaded = http(&o.loaded_ca)?;
    let writer = http(&o.writer_ca)?;
    let credential_id = credential_of(&writer, &o.writer, &manifest.admin_token, probe).await?;
    let path = format!(
        "/api/v2/clients/{}/credentials/{credential_id}",
        probe.client_id
    );

    // Made before anything is timed; valid for ~290 s (see assertions.rs).
    let pool = o.rounds * per_round(&o);
    let signer = Arc::new(vec![Signer {
        client_id: probe.client_id.clone(),
        key: probe.signing_key()?,
    }]);
    let tag = format!(
        "propagation-{}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let made = Instant::now();
    let bodies = assertions::private_key_jwt(
        signer.clone(),
        &manifest.issuer,
        API,
        SCOPE,
        Dialect::Audience,
        pool,
        &tag,
    )?;
    eprintln!(
        "propagation: made {pool} probe assertions in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let mut bodies = bodies.into_iter();
    let mut extra = 0usize;
    let issuer = manifest.issuer.clone();
    let mut next_body = move || match bodies.next() {
        Some(body) => Ok(body),
        None => {
            extra += 1;
            assertions::private_key_jwt(
                signer.clone(),
                &issuer,
                API,
                SCOPE,
                Dialect::Audience,
                1,
                &format!("{tag}-extra-{extra}"),
            )?
            .pop()
            .ok_or_else(|| anyhow!("no assertion made"))
        }
    };

    if let Some(ready) = &o.ready_file {
        std::fs::write(ready, b"ready\n")
            .with_context(|| format!("cannot write {}", ready.display()))?;
    }
    if let Some(go) = &o.go_file {
        while !go.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The credential is valid at the start.
    let restore = async |next_body: &mut dyn FnMut() -> Result<Req>| -> Result<usize> {
        patch(
            &writer,
            &o.writer,
            &manifest.admin_token,
            &path,
            Value::Null,
        )
        .await?;
        wait_accepted(&loaded, &o.loaded, next_body, Duration::from_secs(10)).await
    };
    restore(&mut next_body).await?;

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(o.rounds);
    let mut patch_times = Vec::with_capacity(o.rounds);
    let mut timeouts = 0;
    let mut probes = 0;
    let mut detail = Vec::with_capacity(o.rounds);
    for round in 0..o.rounds {
        if started.elapsed() > o.budget {
            break;
        }
        let expired = (time::OffsetDateTime::now_utc() - time::Duration::minutes(1))
            .format(&time::format_description::well_known::Rfc3339)?;
        // Probes run from the moment the PATCH is sent.
        let (tx, mut refusals) = mpsc::unbounded_channel::<Instant>();
        let sent = Instant::now();
        let writer_call = {
            let (writer, base, token, path) = (
                writer.clone(),
                o.writer.clone(),
                manifest.admin_token.clone(),
                path.clone(),
            );
            tokio::spawn(async move {
                patch(&writer, &base, &token, &path, Value::String(expired)).await?;
                Ok::<Instant, anyhow::Error>(Instant::now())
            })
        };
        let mut ticker = tokio::time::interval(o.probe_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut answered: Option<Instant> = None;
        let mut writer_call = Some(writer_call);
        let first_refusal = loop {
            if sent.elapsed() > o.round_limit {
                break None;
            }
            tokio::select! {
                _ = ticker.tick() => {
                    let body = next_body()?;
                    probes += 1;
                    let (client, base, tx) = (loaded.clone(), o.loaded.clone(), tx.clone());
                    tokio::spawn(async move {
                        if let Ok(401) = token_status(&client, &base, body).await {
                            let _ = tx.send(Instant::now());
                        }
                    });
                }
                // The first refusal to arrive; the PATCH's answer may still be on its way
                // (awaited below).
                Some(at) = refusals.recv() => break Some(at),
                done = async {
                    match writer_call.as_mut() {
                        Some(call) => call.await,
                        None => std::future::pending().await,
                    }
                } => {
                    writer_call = None;
                    answered = Some(done.context("PATCH task")??);
                }
            }
        };
        let answered = match (answered, writer_call.take()) {
            (Some(a), _) => a,
            (None, Some(call)) => call.await.context("PATCH task")??,
            (None, None) => bail!("PATCH lost"),
        };
        patch_times.push(answered.duration_since(sent));
        match first_refusal {
            Some(at) => {
                let latency = at.saturating_duration_since(answered);
                latencies.push(latency);
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .saturating_sub(answered.elapsed());
                detail.push(Round {
                    answered_unix_ms: unix.as_secs_f64() * 1000.0,
                    ms: latency.as_secs_f64() * 1000.0,
                });
            }
            None => {
                timeouts += 1;
                eprintln!(
                    "propagation: round {round} saw no refusal within {:?}",
                    o.round_limit
                );
            }
        }
        // Restore, and wait until the loaded node issues again.
        probes += restore(&mut next_body).await?;
        // Rounds do not line up with the loaded node's periodic work.
        let pause = 40 + (sent.elapsed().subsec_nanos() % 60) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    if latencies.is_empty() {
        bail!("no round measured ({timeouts} timed out)");
    }
    latencies.sort();
    patch_times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| {
        ms(latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1])
    };
    Ok(Report {
        rounds: latencies.len() + timeouts,
        timeouts,
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        mean_ms: latencies.iter().map(|d| ms(*d)).sum::<f64>() / latencies.len() as f64,
        patch_p50_ms: ms(patch_times[patch_times.len() / 2]),
        probes,
        probe_every_ms: ms(o.probe_every),
        seconds,
        detail,
    })
}

fn http(ca: &[u8]) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca)?)
        .pool_max_idle_per_host(64)
        .build()?)
}

/// The id of the probe client's credential (the one whose `kid` it signs with).
async fn credential_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    probe: &KeyClient,
) -> Result<String> {
    let r = http
        .get(format!(
            "{base}/api/v2/clients/{}/credentials",
            probe.client_id
        ))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status();
    let list: Value = r.json().await?;
    list.as_array()
        .and_then(|all| all.iter().find(|c| c["kid"] == json!(probe.kid)))
        .and_then(|c| c["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no credential with kid {} ({status}: {list})", probe.kid))
}

async fn patch(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    expires_at: Value,
) -> Result<()> {
    let r = http
        .patch(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&json!({ "expires_at": expires_at }))
        .send()
        .await?;
    let status = r.status();
    if !status.is_success() {
        bail!(
            "PATCH {path}: {status}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn token_status(http: &reqwest::Client, base: &str, req: Req) -> Result<u16> {
    let r = http
        .post(format!("{base}{}", req.path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(req.body)
        .send()
        .await?;
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok(status)
}

/// Polls the loaded node every 5 ms until a token is issued; the probes it sent.
async fn wait_accepted(
    http: &reqwest::Client,
    base: &str,
    next_body: &mut dyn FnMut() -> Result<Req>,
    limit: Duration,
) -> Result<usize> {
    let until = Instant::now() + limit;
    let mut sent = 0;
    while Instant::now() < until {
        sent += 1;
        match token_status(http, base, next_body()?).await? {
            200 => return Ok(sent),
            401 => tokio::time::sleep(Duration::from_millis(5)).await,
            other => bail!("probe answered {other}"),
        }
    }
    bail!("the loaded node did not issue tokens again within {limit:?}")
}

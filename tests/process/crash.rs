//! Crash consistency: a mixed write load against the `clavis` binary, killed with SIGKILL at
//! random moments and restarted, many times over. After every crash:
//!
//! - the SQLite file passes `PRAGMA integrity_check` and `PRAGMA foreign_key_check`, and
//!   every credential a client's authentication method names exists on that client;
//! - every write that was acknowledged (2xx) is there after the restart;
//! - no write that was refused (4xx) is there;
//! - a write whose connection died with the server has an unknown outcome: either state is
//!   accepted, and the one observed becomes the model's truth.
//!
//! The load: each worker owns its own clients (so the expected state of every resource is
//! exact) and creates, patches and deletes credentials, attaches and detaches them, creates
//! client grants and creates and deletes clients. Every resource carries a unique name, so
//! one whose create had an unknown outcome can be recognised.
//!
//! `CLAVIS_CRASH_KILLS` sets the number of kills (default 20; the long form uses 200) and
//! `CLAVIS_CRASH_SEED` the random seed. The figures are printed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::server::Server;
use crate::common::{ADMIN_ID, ADMIN_SECRET};
use tokio::sync::Mutex;

const WORKERS: usize = 4;
const CLIENTS_PER_WORKER: usize = 3;
const KEY_POOL: usize = 6;

/// A small deterministic generator (xorshift64*), so a failing run can be replayed with
/// its seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ----- the model -----

/// What a resource may be after the writes so far: a set of possible states.
type Maybe<T> = BTreeSet<T>;

fn exactly<T: Ord>(t: T) -> Maybe<T> {
    BTreeSet::from([t])
}

#[derive(Clone, Debug)]
struct Credential {
    id: Option<String>,
    exists: Maybe<bool>,
    expires_at: Maybe<Option<String>>,
}

#[derive(Clone, Debug)]
struct Client {
    id: Option<String>,
    exists: Maybe<bool>,
    credentials: BTreeMap<String, Credential>,
    /// Names of the credentials attached to `private_key_jwt`; empty = none.
    attached: Maybe<Vec<String>>,
    grant: Maybe<bool>,
    /// Touched by a write of unknown outcome since the last check: left alone until then.
    dirty: bool,
}

#[derive(Default)]
struct Figures {
    acknowledged: u64,
    refused: u64,
    unknown: u64,
    lost: u64,
    phantom: u64,
    kills: u64,
}

/// How a write ended.
enum Outcome {
    Ack(Value),
    Refused,
    Unknown,
}

struct Shared {
    http: reqwest::Client,
    base: String,
    token: String,
    audience: String,
    keys: Vec<String>,
    stop: AtomicBool,
    figures: Mutex<Figures>,
    server_errors: Mutex<Vec<String>>,
}

impl Shared {
    async fn write(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Outcome {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let outcome = match req.send().await {
            Err(_) => Outcome::Unknown,
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Err(_) => Outcome::Unknown,
                    Ok(bytes) if (200..300).contains(&status) => {
                        Outcome::Ack(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                    }
                    Ok(bytes) => {
                        if status >= 500 {
                            self.server_errors.lock().await.push(format!(
                                "{method} {path}: {status} {}",
                                String::from_utf8_lossy(&bytes)
                            ));
                        }
                        Outcome::Refused
                    }
                }
            }
        };
        let mut f = self.figures.lock().await;
        match &outcome {
            Outcome::Ack(_) => f.acknowledged += 1,
            Outcome::Refused => f.refused += 1,
            Outcome::Unknown => {
                f.unknown += 1;
                self.stop.store(true, Ordering::SeqCst);
            }
        }
        outcome
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

/// One worker's stream of writes on its own clients, until the server dies.
async fn worker(
    shared: Arc<Shared>,
    n: usize,
    clients: Arc<Mutex<BTreeMap<String, Client>>>,
    mut rng: Rng,
    seq: &mut u64,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        *seq += 1;
        let mut clients = clients.lock().await;
        let live: Vec<String> = clients
            .iter()
            .filter(|(_, c)| !c.dirty && c.exists == exactly(true) && c.id.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        if live.len() < CLIENTS_PER_WORKER {
            let name = format!("crash-w{n}-c{seq}");
            let body = json!({"name": name, "app_type": "non_interactive", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"});
            let outcome = shared
                .write(reqwest::Method::POST, "/api/v2/clients", Some(body))
                .await;
            let mut client = Client {
                id: None,
                exists: exactly(false),
                credentials: BTreeMap::new(),
                attached: exactly(Vec::new()),
                grant: exactly(false),
                dirty: false,
            };
            match outcome {
                Outcome::Ack(v) => {
                    client.id = v["client_id"].as_str().map(String::from);
                    client.exists = exactly(true);
                }
                Outcome::Refused => {}
                Outcome::Unknown => {
                    client.exists = BTreeSet::from([false, true]);
                    client.dirty = true;
                }
            }
            clients.insert(name, client);
            continue;
        }
        let name = live[rng.below(live.len())].clone();
        let client = clients.get_mut(&name).unwrap();
        let id = client.id.clone().unwrap();
        let known: Vec<String> = client
            .credentials
            .iter()
            .filter(|(_, c)| c.exists == exactly(true) && c.id.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        let attached = client.attached.iter().next().cloned().unwrap_or_default();
        match rng.below(10) {
            // Create a credential.
            0..=2
                if client
                    .credentials
                    .values()
                    .filter(|c| c.exists.contains(&true))
                    .count()
                    < 4 =>
            {
                let used: BTreeSet<usize> = client
                    .credentials
                    .keys()
                    .filter_map(|k| k.rsplit('-').next()?.strip_prefix('k')?.parse().ok())
                    .collect();
                let Some(key) = (0..KEY_POOL).find(|k| !used.contains(k)) else {
                    continue;
                };
                let cred_name = format!("crash-w{n}-s{seq}-k{key}");
                let expires = (rng.below(2) == 0)
                    .then(|| format!("20{}-01-02T03:04:05.000Z", 40 + rng.below(50)));
                let mut body = json!({"credential_type": "public_key", "name": cred_name, "pem": shared.keys[key]});
                if let Some(e) = &expires {
                    body["expires_at"] = json!(e);
                }
                let outcome = shared
                    .write(
                        reqwest::Method::POST,
                        &format!("/api/v2/clients/{id}/credentials"),
                        Some(body),
                    )
                    .await;
                let mut cred = Credential {
                    id: None,
                    exists: exactly(false),
                    expires_at: exactly(expires.clone()),
                };
                match outcome {
                    Outcome::Ack(v) => {
                        cred.id = v["id"].as_str().map(String::from);
                        cred.exists = exactly(true);
                    }
                    Outcome::Refused => {}
                    Outcome::Unknown => {
                        cred.exists = BTreeSet::from([false, true]);
                        client.dirty = true;
                    }
                }
                client.credentials.insert(cred_name, cred);
            }
            // Patch a credential's expiry (the seed).
            3..=4 if !known.is_empty() => {
                let cred_name = &known[rng.below(known.len())];
                let cred = client.credentials.get_mut(cred_name).unwrap();
                let value = match rng.below(3) {
                    0 => None,
                    1 => Some("2020-05-06T07:08:09.000Z".to_string()),
                    _ => Some(format!("20{}-11-12T13:14:15.000Z", 40 + rng.below(50))),
                };
                let outcome = shared
                    .write(
                        reqwest::Method::PATCH,
                        &format!(
                            "/api/v2/clients/{id}/credentials/{}",
                            cred.id.clone().unwrap()
                        ),
                        Some(json!({"expires_at": value})),
                    )
                    .await;
                match outcome {
                    Outcome::Ack(_) => cred.expires_at = exactly(value),
                    Outcome::Refused => {}
                    Outcome::Unknown => {
                        cred.expires_at.insert(value);
                        client.dirty = true;
                    }
                }
            }
            // Delete a credential (refused while attached).
            5 if !known.is_empty() => {
                let cred_name = known[rng.below(known.len())].clone();
                let cred = client.credentials.get_mut(&cred_name).unwrap();
                let outcome = shared
                    .write(
                        reqwest::Method::DELETE,
                        &format!(
                            "/api/v2/clients/{id}/credentials/{}",
                            cred.id.clone().unwrap()
                        ),
                        None,
                    )
                    .await;
                match outcome {
                    Outcome::Ack(_) => cred.exists = exactly(false),
                    Outcome::Refused => {}
                    Outcome::Unknown => {
                        cred.exists.insert(false);
                        client.dirty = true;
                    }
                }
            }
            // Attach one or two credentials, or detach.
            6 if !known.is_empty() => {
                let new: Vec<String> = if attached.is_empty() || rng.below(2) == 0 {
                    let mut pick: Vec<String> = known
                        .iter()
                        .filter(|_| rng.below(2) == 0)
                        .take(2)
                        .cloned()
                        .collect();
                    if pick.is_empty() {
                        pick.push(known[0].clone());
                    }
                    pick
                } else {
                    Vec::new()
                };
                let body = if new.is_empty() {
                    json!({"client_authentication_methods": null, "token_endpoint_auth_method": "client_secret_post"})
                } else {
                    let refs: Vec<Value> = new
                        .iter()
                        .map(|n| json!({"id": client.credentials[n].id.clone().unwrap()}))
                        .collect();
                    json!({"client_authentication_methods": {"private_key_jwt": {"credentials": refs}}, "token_endpoint_auth_method": null})
                };
                let outcome = shared
                    .write(
                        reqwest::Method::PATCH,
                        &format!("/api/v2/clients/{id}"),
                        Some(body),
                    )
                    .await;
                match outcome {
                    Outcome::Ack(_) => client.attached = exactly(new),
                    Outcome::Refused => {}
                    Outcome::Unknown => {
                        client.attached.insert(new);
                        client.dirty = true;
                    }
                }
            }
            // Grant the client the test API.
            7 if client.grant == exactly(false) => {
                let body =
                    json!({"client_id": id, "audience": shared.audience, "scope": ["read:things"]});
                match shared
                    .write(reqwest::Method::POST, "/api/v2/client-grants", Some(body))
                    .await
                {
                    Outcome::Ack(_) => client.grant = exactly(true),
                    Outcome::Refused => {}
                    Outcome::Unknown => {
                        client.grant.insert(true);
                        client.dirty = true;
                    }
                }
            }
            // Delete the client (its credentials and grant go with it).
            8 if rng.below(3) == 0 => {
                match shared
                    .write(
                        reqwest::Method::DELETE,
                        &format!("/api/v2/clients/{id}"),
                        None,
                    )
                    .await
                {
                    Outcome::Ack(_) => client.exists = exactly(false),
                    Outcome::Refused => {}
                    Outcome::Unknown => {
                        client.exists.insert(false);
                        client.dirty = true;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Checks the API's view against the model after a restart, and collapses every
/// uncertainty to what is observed.
async fn verify(
    shared: &Shared,
    n: usize,
    clients: &mut BTreeMap<String, Client>,
    figures: &mut Figures,
) {
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    let mut page = 0;
    loop {
        let v = shared
            .get(&format!(
                "/api/v2/clients?page={page}&per_page=100&include_totals=true"
            ))
            .await;
        let items = v["clients"].as_array().unwrap().clone();
        for c in &items {
            by_name.insert(c["name"].as_str().unwrap().to_string(), c.clone());
        }
        if items.len() < 100 {
            break;
        }
        page += 1;
    }
    let grants: Value = shared
        .get(&format!(
            "/api/v2/client-grants?audience={}",
            urlencode(&shared.audience)
        ))
        .await;
    let granted: BTreeSet<String> = grants
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["client_id"].as_str().unwrap().to_string())
        .collect();
    let mut problems = Vec::new();
    for (name, client) in clients.iter_mut() {
        let observed = by_name.get(name);
        check(
            &mut problems,
            figures,
            &format!("client {name} exists"),
            &client.exists,
            &observed.is_some(),
        );
        client.exists = exactly(observed.is_some());
        client.dirty = false;
        let Some(observed) = observed else {
            client.credentials.clear();
            continue;
        };
        let id = observed["client_id"].as_str().unwrap().to_string();
        if let Some(known) = &client.id {
            assert_eq!(known, &id, "client {name} changed id");
        }
        client.id = Some(id.clone());
        let creds: Value = shared
            .get(&format!("/api/v2/clients/{id}/credentials"))
            .await;
        let creds_by_name: BTreeMap<String, Value> = creds
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
            .collect();
        let ids_to_names: BTreeMap<String, String> = creds_by_name
            .iter()
            .map(|(n, c)| (c["id"].as_str().unwrap().to_string(), n.clone()))
            .collect();
        for (cred_name, cred) in client.credentials.iter_mut() {
            let seen = creds_by_name.get(cred_name);
            check(
                &mut problems,
                figures,
                &format!("credential {cred_name} exists"),
                &cred.exists,
                &seen.is_some(),
            );
            cred.exists = exactly(seen.is_some());
            if let Some(seen) = seen {
                cred.id = seen["id"].as_str().map(String::from);
                let expires = seen["expires_at"].as_str().map(String::from);
                check(
                    &mut problems,
                    figures,
                    &format!("credential {cred_name} expires_at"),
                    &cred.expires_at,
                    &expires,
                );
                cred.expires_at = exactly(expires);
            }
        }
        for seen in creds_by_name.keys() {
            if !client.credentials.contains_key(seen) {
                problems.push(format!("credential {seen} was never written"));
                figures.phantom += 1;
            }
        }
        let attached: Vec<String> =
            observed["client_authentication_methods"]["private_key_jwt"]["credentials"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            let cid = r["id"].as_str().unwrap();
                            ids_to_names
                                .get(cid)
                                .cloned()
                                .unwrap_or_else(|| format!("missing credential {cid}"))
                        })
                        .collect()
                })
                .unwrap_or_default();
        check(
            &mut problems,
            figures,
            &format!("client {name} attached credentials"),
            &client.attached,
            &attached,
        );
        client.attached = exactly(attached);
        let has_grant = granted.contains(&id);
        check(
            &mut problems,
            figures,
            &format!("client {name} grant"),
            &client.grant,
            &has_grant,
        );
        client.grant = exactly(has_grant);
    }
    for seen in by_name.keys() {
        if seen.starts_with(&format!("crash-w{n}-")) && !clients.contains_key(seen) {
            problems.push(format!("client {seen} was never written"));
            figures.phantom += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "after a crash:\n{}",
        problems.join("\n")
    );
    clients.retain(|_, c| c.exists.contains(&true));
}

fn check<T: Ord + std::fmt::Debug>(
    problems: &mut Vec<String>,
    figures: &mut Figures,
    what: &str,
    allowed: &Maybe<T>,
    seen: &T,
) {
    if !allowed.contains(seen) {
        // Only an acknowledged write narrows a set to one state that then goes missing.
        figures.lost += 1;
        problems.push(format!(
            "{what}: observed {seen:?}, expected one of {allowed:?}"
        ));
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The on-disk checks, on the database as the crash left it (opening it replays the WAL).
async fn check_store(db: &Path) {
    use sqlx::Row;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .foreign_keys(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    let result: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    assert_eq!(result, vec!["ok".to_string()], "integrity_check");
    let violations = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        violations.is_empty(),
        "{} foreign key violations",
        violations.len()
    );
    let creds: BTreeSet<(String, String)> = sqlx::query("SELECT id, client_id FROM credentials")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    for row in sqlx::query("SELECT client_id, doc FROM clients")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let client_id: String = row.get(0);
        let doc: Value = serde_json::from_str(&row.get::<String, _>(1)).unwrap();
        for cid in doc["client_authentication_methods"]["credential_ids"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let cid = cid.as_str().unwrap().to_string();
            assert!(
                creds.contains(&(cid.clone(), client_id.clone())),
                "client {client_id} names missing credential {cid}"
            );
        }
    }
    pool.close().await;
}

async fn admin_token(http: &reqwest::Client, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", ADMIN_ID),
                ("client_secret", ADMIN_SECRET),
                ("audience", &format!("{base}/api/v2/")),
            ])
            .send()
            .await;
        if let Ok(r) = r
            && r.status().is_success()
        {
            let v: Value = r.json().await.unwrap();
            return v["access_token"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no admin token within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let kills: u64 = std::env::var("CLAVIS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CLAVIS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {kills} kills, seed {seed} (CLAVIS_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut server = Server::with_env(&[
        ("CLAVIS_RATE_LIMIT_CLIENT_RPS", "0"),
        ("CLAVIS_RATE_LIMIT_IP_RPS", "0"),
        ("CLAVIS_LOG", "warn"),
    ]);
    let data = server.data_path();
    let ca = std::fs::read(server.ca_path()).unwrap();
    // No idle connections: a kill leaves none behind to be reused.
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let base = server.base();
    let keys: Vec<String> = (0..KEY_POOL)
        .map(|_| {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap()
                .public_key_pem()
        })
        .collect();
    let audience = "https://crash-test.example/".to_string();
    let token = admin_token(&http, &base).await;
    let r = http
        .post(format!("{base}/api/v2/resource-servers"))
        .bearer_auth(&token)
        .json(&json!({"name": "crash test", "identifier": audience, "scopes": [{"value": "read:things"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let worlds: Vec<Arc<Mutex<BTreeMap<String, Client>>>> = (0..WORKERS)
        .map(|_| Arc::new(Mutex::new(BTreeMap::new())))
        .collect();
    let mut figures = Figures::default();
    let mut seqs = [0u64; WORKERS];
    let started = Instant::now();
    for round in 0..kills {
        let token = admin_token(&http, &base).await;
        let shared = Arc::new(Shared {
            http: http.clone(),
            base: base.clone(),
            token,
            audience: audience.clone(),
            keys: keys.clone(),
            stop: AtomicBool::new(false),
            figures: Mutex::new(Figures::default()),
            server_errors: Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        for (n, world) in worlds.iter().enumerate() {
            let shared = shared.clone();
            let world = world.clone();
            let wrng = Rng(rng.next() | 1);
            let mut seq = seqs[n];
            tasks.push(tokio::spawn(async move {
                worker(shared, n, world, wrng, &mut seq).await;
                seq
            }));
        }
        // Let the load run for a random while, then kill the server mid-write.
        let run = Duration::from_millis(150 + rng.below(1200) as u64);
        tokio::time::sleep(run).await;
        server.kill();
        figures.kills += 1;
        shared.stop.store(true, Ordering::SeqCst);
        for (n, t) in tasks.into_iter().enumerate() {
            seqs[n] = t.await.unwrap();
        }
        {
            let f = shared.figures.lock().await;
            figures.acknowledged += f.acknowledged;
            figures.refused += f.refused;
            figures.unknown += f.unknown;
        }
        let errors = shared.server_errors.lock().await.clone();
        assert!(
            errors.is_empty(),
            "5xx during the load:\n{}",
            errors.join("\n")
        );
        check_store(&data.join("clavis.db")).await;
        server.restart().unwrap();
        let token = admin_token(&http, &base).await;
        let verifier = Shared {
            token,
            ..clone_shared(&shared)
        };
        for (n, world) in worlds.iter().enumerate() {
            let mut world = world.lock().await;
            verify(&verifier, n, &mut world, &mut figures).await;
        }
        if round % 5 == 4 {
            println!(
                "  {} kills, {} acknowledged writes, {} refused, {} unknown, {:.0?}",
                figures.kills,
                figures.acknowledged,
                figures.refused,
                figures.unknown,
                started.elapsed()
            );
        }
    }
    let log_text = server.log();
    assert!(
        !log_text.contains("panicked"),
        "the server panicked:\n{}",
        server.log_tail()
    );
    println!(
        "crash test: {} kills survived, {} acknowledged writes, {} refused, {} with unknown outcome, {} lost, {} phantom, {:.1?}",
        figures.kills,
        figures.acknowledged,
        figures.refused,
        figures.unknown,
        figures.lost,
        figures.phantom,
        started.elapsed()
    );
    assert_eq!(figures.lost + figures.phantom, 0);
    assert!(figures.acknowledged > figures.kills, "the load barely ran");
}

fn clone_shared(s: &Shared) -> Shared {
    Shared {
        http: s.http.clone(),
        base: s.base.clone(),
        token: s.token.clone(),
        audience: s.audience.clone(),
        keys: s.keys.clone(),
        stop: AtomicBool::new(false),
        figures: Mutex::new(Figures::default()),
        server_errors: Mutex::new(Vec::new()),
    }
}

//! The scale scenario's fast loader: fills a (stopped) Clavis's store — its SQLite database,
//! or a PostgreSQL database given by URL — with many clients, two `public_key` credentials
//! each and a grant each, straight through `Store::bulk_insert` in large transactions — not
//! through 300,000 HTTP calls.
//!
//! Every other client uses `private_key_jwt` with both credentials attached (so start-up
//! parses those keys); the others use `client_secret_post` with a sealed secret (so start-up
//! unseals them). Keys come from a small pool: RSA key generation is slow, and nothing in
//! Clavis shares work between equal keys, so a pool costs the server the same as unique keys.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use clavis::config::Config;
use clavis::domain::client::{AuthMethodKind, AuthMethods, ClientAggregate, NewClient};
use clavis::domain::client_grant::NewClientGrant;
use clavis::domain::credential::{Credential, NewCredential};
use clavis::domain::ids;
use clavis::domain::time::Timestamp;
use clavis::domain::validate::Body;
use clavis::store::Store;
use clavis::store::postgres::{PostgresOptions, PostgresStore};
use clavis::store::sqlite::SqliteStore;
use clavis_crypto::jws::SigningKey;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::setup::{API, KeyClient, SCOPE};

const POOL: usize = 16;
/// Clients per transaction.
const CHUNK: usize = 2000;

/// The store being filled.
struct Target {
    store: Arc<dyn Store>,
    /// Set for SQLite, whose log is emptied between the large transactions.
    sqlite: Option<Arc<SqliteStore>>,
}

impl Target {
    async fn open(url: Option<&str>, config: &Config) -> Result<Self> {
        Ok(match url {
            None => {
                let sqlite = Arc::new(
                    SqliteStore::connect(&config.database_url)
                        .await
                        .map_err(domain)?,
                );
                Self {
                    store: sqlite.clone(),
                    sqlite: Some(sqlite),
                }
            }
            Some(url) => Self {
                store: Arc::new(
                    PostgresStore::connect(url, &PostgresOptions::default())
                        .await
                        .map_err(domain)?,
                ),
                sqlite: None,
            },
        })
    }

    /// Transactions written at once: SQLite has one writer; over PostgreSQL's round trips
    /// four keep the server busy (100k clients: 100 s one at a time).
    fn parallel(&self) -> usize {
        if self.sqlite.is_some() { 1 } else { 4 }
    }

    /// Waits for one transaction, then (SQLite) empties the log, so that it stays the size
    /// of one: back to back, the background checkpoints never catch up. Returns the clients
    /// and grants it wrote.
    async fn finish_one(&self, writing: &mut JoinSet<Written>) -> Result<(usize, usize)> {
        let written = writing
            .join_next()
            .await
            .context("no transaction under way")???;
        if let Some(sqlite) = &self.sqlite {
            sqlite.truncate_log().await.map_err(domain)?;
        }
        Ok(written)
    }
}

type Written = Result<(usize, usize)>;

/// What the loader did.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// Clients written.
    pub clients: usize,
    /// Credentials written.
    pub credentials: usize,
    /// Grants written.
    pub grants: usize,
    /// Seconds taken.
    pub seconds: f64,
}

fn domain(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

fn pkcs1_pem(key: &SigningKey) -> Result<String> {
    der::pem::encode_string(
        "RSA PUBLIC KEY",
        der::pem::LineEnding::LF,
        key.public_key().pkcs1_der(),
    )
    .map_err(domain)
}

/// Loads `clients` clients into the store of `data_dir` (or the PostgreSQL database at
/// `database_url`), sealing secrets with the node's master key (`CLAVIS_MASTER_KEY`, else
/// the data directory's), and writes `signers` of the `private_key_jwt` clients (with their
/// keys) to `signers_out`.
pub async fn load(
    data_dir: &Path,
    database_url: Option<&str>,
    clients: usize,
    signers: usize,
    signers_out: &Path,
) -> Result<LoadReport> {
    let started = Instant::now();
    let mut config = Config::for_data_dir(data_dir);
    config.master_key = std::env::var("CLAVIS_MASTER_KEY")
        .ok()
        .map(clavis::config::Secret);
    let master_key = clavis::bootstrap::load_master_key(&config)?;
    let target = Target::open(database_url, &config).await?;
    let store = &target.store;
    let rs = store
        .resource_server(API)
        .await
        .map_err(domain)?
        .context("run setup first: the bench API is missing")?;
    let now = Timestamp::now();

    let mut pool = Vec::with_capacity(POOL);
    for _ in 0..POOL {
        let key = SigningKey::generate().map_err(domain)?;
        let body = json!({"credential_type": "public_key", "name": "scale", "pem": pkcs1_pem(&key)?,
                          "alg": "RS256", "kid": key.kid()});
        let template = NewCredential::parse(Body::new(&body).map_err(domain)?)
            .map_err(domain)?
            .build("template", now)
            .map_err(domain)?;
        pool.push((key, template));
    }
    let client_body = json!({"name": "scale", "app_type": "non_interactive",
                             "grant_types": ["client_credentials"]});
    let template = NewClient::parse(Body::new(&client_body).map_err(domain)?)
        .map_err(domain)?
        .build(None, config.limits, now)
        .map_err(domain)?;

    let mut out_signers = Vec::new();
    let (mut n_clients, mut n_credentials, mut n_grants) = (0, 0, 0);
    let mut writing = JoinSet::new();
    let mut i = 0;
    while i < clients {
        let end = (i + CHUNK).min(clients);
        let mut aggregates = Vec::with_capacity(end - i);
        let mut grants = Vec::with_capacity(end - i);
        for k in i..end {
            let mut aggregate: ClientAggregate = template.clone();
            let client_id = ids::new_client_id();
            aggregate.client.client_id = client_id.clone();
            aggregate.client.name = format!("scale-{k}");
            let credential = |p: usize| -> Credential {
                let mut c = pool[p % POOL].1.clone();
                c.id = ids::new_credential_id();
                c.client_id = client_id.clone();
                c
            };
            aggregate.credentials = vec![credential(k), credential(k + 1)];
            if k % 2 == 0 {
                aggregate.client.token_endpoint_auth_method = None;
                aggregate.client.client_authentication_methods = Some(AuthMethods {
                    kind: AuthMethodKind::PrivateKeyJwt,
                    credential_ids: aggregate.credentials.iter().map(|c| c.id.clone()).collect(),
                });
                if out_signers.len() < signers {
                    let key = &pool[k % POOL].0;
                    out_signers.push(KeyClient {
                        client_id: client_id.clone(),
                        kid: key.kid().to_string(),
                        pkcs8_b64: base64::engine::general_purpose::STANDARD
                            .encode(key.pkcs8_der()),
                        n: key.public_key().jwk_n(),
                        e: key.public_key().jwk_e(),
                    });
                }
            } else {
                let secret = clavis_crypto::secret::generate_client_secret();
                aggregate.sealed_secret =
                    Some(master_key.seal(secret.as_bytes(), client_id.as_bytes()));
            }
            let grant_body = json!({"client_id": client_id, "audience": API, "scope": [SCOPE]});
            grants.push(
                NewClientGrant::parse(Body::new(&grant_body).map_err(domain)?)
                    .map_err(domain)?
                    .build(&rs, now)
                    .map_err(domain)?,
            );
            n_credentials += aggregate.credentials.len();
            aggregates.push(aggregate);
        }
        let store = Arc::clone(store);
        writing.spawn(async move {
            store
                .bulk_insert(&aggregates, &grants)
                .await
                .map_err(domain)?;
            Ok((aggregates.len(), grants.len()))
        });
        if writing.len() >= target.parallel() {
            let (c, g) = target.finish_one(&mut writing).await?;
            n_clients += c;
            n_grants += g;
        }
        i = end;
    }
    while !writing.is_empty() {
        let (c, g) = target.finish_one(&mut writing).await?;
        n_clients += c;
        n_grants += g;
    }
    store.close().await;
    std::fs::write(signers_out, serde_json::to_vec(&out_signers)?)?;
    Ok(LoadReport {
        clients: n_clients,
        credentials: n_credentials,
        grants: n_grants,
        seconds: started.elapsed().as_secs_f64(),
    })
}

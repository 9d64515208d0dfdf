//! `clavis-bench`: the pieces of `bench/run` that are better written in Rust — the crypto
//! ceiling probe, the fsync probe, fixture setup, the HTTPS load generator with pre-made
//! token requests, and the fast store loader of the scale scenario. Every command prints
//! one JSON object on stdout; `bench/run` collects them into the report.

mod assertions;
mod ceiling;
mod commits;
mod fsync;
mod hook;
mod load;
mod machine;
mod propagation;
mod scale;
mod setup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};

use assertions::{Dialect, Signer};
use load::{Plan, Req};
use setup::{API, KeyClient, Manifest, SCOPE};

/// The same allocator as the server: the load generator shares the server's cores, so what it
/// spends in malloc is taken from the server under test (and from the peer alike).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Clavis benchmark tooling (see bench/README.md)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    PrivateKeyJwt,
    ClientSecretPost,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Healthz,
    Get,
    Patch,
    /// `GET /api/v2/clients?page=…&per_page=50`, pages spread over the whole list.
    ListOffset,
    /// `GET /api/v2/clients?take=50&from=…`, cursors spread over the whole list.
    ListCheckpoint,
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open-loop rate (requests/s); closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Client runtime threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The server's pid on this machine: its own CPU time (user + system) over the measured
    /// window is reported as `server_cpu` (µs per answer).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The store's own server process (PostgreSQL's postmaster, whose backends are its
    /// children): its CPU time over the window is reported apart, as `store_cpu`.
    #[arg(long)]
    store_pid: Option<u32>,
    /// The server's `/metrics` (plain HTTP, `clavis serve --metrics-listen`): the replay
    /// guard's batch commits over the measured window are reported as `jti_batches`.
    #[arg(long)]
    metrics_url: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// RS256 verify + sign per token on all cores, no HTTP.
    Ceiling {
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// fdatasync rate of the disk holding `dir`.
    Fsync {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Creates the fixtures on a running Clavis and writes the manifest.
    Setup {
        /// `https://127.0.0.1:port`
        #[arg(long)]
        base: String,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        admin_id: String,
        #[arg(long)]
        admin_secret: String,
        #[arg(long, default_value_t = 16)]
        key_clients: usize,
        /// Clients holding 4 unattached credentials each (GET/PATCH targets).
        #[arg(long, default_value_t = 8)]
        credential_clients: usize,
        /// `token_claims` (JSON object) on every grant created.
        #[arg(long)]
        token_claims: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// A token hook for Clavis (`--token-hook-url`): HTTPS on `listen`, answers each POST
    /// carrying the bearer secret with one claim.
    Hook {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Certificate chain (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The secret Clavis sends (also read from CLAVIS_TOKEN_HOOK_SECRET).
        #[arg(long, env = "CLAVIS_TOKEN_HOOK_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Token endpoint load with pre-made requests.
    Tokens {
        #[arg(long)]
        manifest: PathBuf,
        /// Target base URL (default: the manifest's).
        #[arg(long)]
        base: Option<String>,
        /// Assertion audience (default: the manifest's issuer).
        #[arg(long)]
        aud: Option<String>,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long, value_enum, default_value_t = Auth::PrivateKeyJwt)]
        auth: Auth,
        #[arg(long, value_enum, default_value_t = Dialect::Audience)]
        dialect: Dialect,
        /// Signing clients (JSON list of key clients) instead of the manifest's.
        #[arg(long)]
        signers: Option<PathBuf>,
        /// Assertions to make (the run ends early if they run out).
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Seconds of crypto ceiling probe (all cores) right before and right after the
        /// load, reported with it as `ceiling_before` / `ceiling_after`; 0 for none.
        #[arg(long, default_value_t = 0.0)]
        ceiling_probe: f64,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Management API load: /healthz, GET or PATCH of credentials.
    Mgmt {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Clients in the store, for the list scenarios: their pages and cursors are spread
        /// evenly over that many clients (first and last page included).
        #[arg(long, default_value_t = 100)]
        clients: u64,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Two nodes on one store: PATCH a credential's `expires_at` on the writer, time until the
    /// loaded node refuses it (see propagation.rs). Probes with the manifest's last key client,
    /// which the token load beside it must not use.
    Propagation {
        #[arg(long)]
        manifest: PathBuf,
        /// The loaded node (default: the manifest's base) and its CA.
        #[arg(long)]
        loaded: Option<String>,
        #[arg(long)]
        loaded_ca: PathBuf,
        /// The node taking the PATCHes and its CA.
        #[arg(long)]
        writer: String,
        #[arg(long)]
        writer_ca: PathBuf,
        #[arg(long, default_value_t = 150)]
        rounds: usize,
        /// Start no round after this many seconds.
        #[arg(long, default_value_t = 40.0)]
        seconds: f64,
        /// Milliseconds between probes within a round.
        #[arg(long, default_value_t = 1.0)]
        probe_every_ms: f64,
        /// Written once the probe assertions are made (start the load beside it after).
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Rounds start once this file exists (touch it when the load is warm).
        #[arg(long)]
        go_file: Option<PathBuf>,
    },
    /// Fills a stopped Clavis's store with many clients, credentials and grants.
    ScaleLoad {
        #[arg(long)]
        data_dir: PathBuf,
        /// A PostgreSQL database to fill instead of the data directory's SQLite store.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 100_000)]
        clients: usize,
        /// Key clients to write out for the token load (their keys come from a small pool).
        #[arg(long, default_value_t = 1000)]
        signers: usize,
        #[arg(long)]
        signers_out: PathBuf,
    },
}

fn print(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

fn plan(
    base: &str,
    ca: &PathBuf,
    method: &'static str,
    requests: Vec<Req>,
    cycle: bool,
    args: &LoadArgs,
) -> Result<Plan> {
    Ok(Plan {
        base: url::Url::parse(base)?,
        ca_pem: std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?,
        method,
        content_type: None,
        authorization: None,
        requests: Arc::new(requests),
        cycle,
        connections: args.connections,
        duration: Duration::from_secs_f64(args.seconds),
        warmup: Duration::from_secs_f64(args.warmup),
        rate: args.rate,
        server_pid: args.server_pid,
        store_pid: args.store_pid,
        metrics_url: args.metrics_url.clone(),
    })
}

/// The machine's cores: the ceiling probe's threads.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("b{nanos:x}")
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Hook {
            listen,
            cert,
            key,
            secret,
            threads,
        } => runtime(threads)?.block_on(hook::serve(listen, &cert, &key, secret)),
        Cmd::Ceiling { seconds, threads } => {
            print(&ceiling::run(seconds, threads.unwrap_or_else(cores))?)
        }
        Cmd::Fsync { dir, seconds } => print(&fsync::run(&dir, seconds)?),
        Cmd::Setup {
            base,
            ca,
            admin_id,
            admin_secret,
            key_clients,
            credential_clients,
            token_claims,
            out,
        } => {
            let ca_pem = std::fs::read(&ca)?;
            let token_claims = token_claims
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .context("--token-claims is not JSON")?;
            let manifest = runtime(2)?.block_on(setup::run(
                &base,
                &ca_pem,
                &admin_id,
                &admin_secret,
                key_clients,
                credential_clients,
                token_claims,
            ))?;
            std::fs::write(&out, serde_json::to_vec_pretty(&manifest)?)?;
            print(
                &serde_json::json!({"manifest": out, "key_clients": manifest.key_clients.len(),
                                      "credentials": manifest.credentials.len()}),
            )
        }
        Cmd::Tokens {
            manifest,
            base,
            aud,
            ca,
            auth,
            dialect,
            signers,
            count,
            ceiling_probe,
            load,
        } => {
            let manifest = Manifest::read(&manifest)?;
            let base = base.unwrap_or_else(|| manifest.base.clone());
            let aud = aud.unwrap_or_else(|| manifest.issuer.clone());
            let (requests, cycle) = match auth {
                Auth::PrivateKeyJwt => {
                    let clients: Vec<KeyClient> = match signers {
                        Some(path) => serde_json::from_slice(&std::fs::read(path)?)?,
                        None => manifest.key_clients.clone(),
                    };
                    let signers = clients
                        .iter()
                        .map(|c| {
                            Ok(Signer {
                                client_id: c.client_id.clone(),
                                key: c.signing_key()?,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let started = std::time::Instant::now();
                    let reqs = assertions::private_key_jwt(
                        Arc::new(signers),
                        &aud,
                        API,
                        SCOPE,
                        dialect,
                        count,
                        &run_tag(),
                    )?;
                    eprintln!(
                        "made {count} assertions in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    (reqs, false)
                }
                Auth::ClientSecretPost => (
                    vec![assertions::client_secret_post(
                        &manifest.secret_client_id,
                        &manifest.secret_client_secret,
                        API,
                        SCOPE,
                        dialect,
                    )],
                    true,
                ),
            };
            let mut p = plan(&base, &ca, "POST", requests, cycle, &load)?;
            p.content_type = Some("application/x-www-form-urlencoded".into());
            let probe = || -> Result<Option<ceiling::Bracket>> {
                (ceiling_probe > 0.0)
                    .then(|| ceiling::bracket(ceiling_probe, cores()))
                    .transpose()
            };
            let before = probe()?;
            let report = load::run(p, load.threads)?;
            let after = probe()?;
            let mut out = serde_json::to_value(&report)?;
            if let (Some(before), Some(after), Some(fields)) = (before, after, out.as_object_mut())
            {
                fields.insert("ceiling_before".into(), serde_json::to_value(before)?);
                fields.insert("ceiling_after".into(), serde_json::to_value(after)?);
            }
            print(&out)
        }
        Cmd::Mgmt {
            manifest,
            ca,
            scenario,
            clients,
            load,
        } => {
            let manifest = Manifest::read(&manifest)?;
            let creds = &manifest.credentials;
            if creds.is_empty() {
                return Err(anyhow!("the manifest has no credentials"));
            }
            let path = |i: usize| {
                let c = &creds[i % creds.len()];
                format!(
                    "/api/v2/clients/{}/credentials/{}",
                    c.client_id, c.credential_id
                )
            };
            let (method, requests) = match scenario {
                Scenario::Healthz => (
                    "GET",
                    vec![Req {
                        path: "/healthz".into(),
                        body: Bytes::new(),
                    }],
                ),
                Scenario::Get => (
                    "GET",
                    (0..creds.len())
                        .map(|i| Req {
                            path: path(i),
                            body: Bytes::new(),
                        })
                        .collect(),
                ),
                Scenario::Patch => {
                    // Every PATCH really changes the row: a new expiry each time.
                    let base = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400 * 365;
                    let n = 100_003usize;
                    let fmt = time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
                    );
                    let reqs = (0..n)
                        .map(|i| {
                            let at = time::OffsetDateTime::from_unix_timestamp(base + i as i64)
                                .map_err(|e| anyhow!("{e}"))?
                                .format(&fmt)?;
                            Ok(Req {
                                path: path(i),
                                body: Bytes::from(format!(r#"{{"expires_at":"{at}"}}"#)),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    ("PATCH", reqs)
                }
                Scenario::ListOffset | Scenario::ListCheckpoint => {
                    // 1,000 positions from the first page to the last, in a shuffled order
                    // (a fixed stride through them), each request a different one.
                    const SPOTS: u64 = 1000;
                    let pages = clients.div_ceil(50).max(1);
                    let reqs = (0..SPOTS)
                        .map(|i| (i * 617) % SPOTS)
                        .map(|k| {
                            let page = k * (pages - 1) / (SPOTS - 1);
                            let path = if scenario == Scenario::ListOffset {
                                format!("/api/v2/clients?page={page}&per_page=50")
                            } else if page == 0 {
                                "/api/v2/clients?take=50".to_string()
                            } else {
                                // The cursor a client reads from the previous page's `next`
                                // (Clavis's opaque cursor: the position after that page).
                                let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
                                    .encode(format!("seq:{}", page * 50));
                                format!("/api/v2/clients?take=50&from={cursor}")
                            };
                            Req {
                                path,
                                body: Bytes::new(),
                            }
                        })
                        .collect();
                    ("GET", reqs)
                }
            };
            let mut p = plan(&manifest.base, &ca, method, requests, true, &load)?;
            if scenario != Scenario::Healthz {
                p.authorization = Some(format!("Bearer {}", manifest.admin_token));
            }
            if method == "PATCH" {
                p.content_type = Some("application/json".into());
            }
            print(&load::run(p, load.threads)?)
        }
        Cmd::Propagation {
            manifest,
            loaded,
            loaded_ca,
            writer,
            writer_ca,
            rounds,
            seconds,
            probe_every_ms,
            ready_file,
            go_file,
        } => {
            let manifest = Manifest::read(&manifest)?;
            let probe = manifest
                .key_clients
                .last()
                .cloned()
                .ok_or_else(|| anyhow!("the manifest has no key clients"))?;
            let options = propagation::Options {
                loaded: loaded.unwrap_or_else(|| manifest.base.clone()),
                loaded_ca: std::fs::read(&loaded_ca)?,
                writer,
                writer_ca: std::fs::read(&writer_ca)?,
                rounds,
                budget: Duration::from_secs_f64(seconds),
                probe_every: Duration::from_secs_f64(probe_every_ms / 1000.0),
                round_limit: Duration::from_secs(2),
                ready_file,
                go_file,
            };
            print(&runtime(2)?.block_on(propagation::run(&manifest, &probe, options))?)
        }
        Cmd::ScaleLoad {
            data_dir,
            database_url,
            clients,
            signers,
            signers_out,
        } => {
            let report = runtime(2)?.block_on(scale::load(
                &data_dir,
                database_url.as_deref(),
                clients,
                signers,
                &signers_out,
            ))?;
            print(&report)
        }
    }
}

//! Process start: configuration → store → keys → bootstrap → read model → listener.
//! [`Application`] binds first (port 0 picks a free port, which tests use) and exposes the
//! real address before serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::bootstrap::{self, AdminCredentials};
use crate::config::{Config, DatabaseOptions, HttpLimits, LogFormat, TlsMode};
use crate::http;
use crate::model::ReadModel;
use crate::mtls::MtlsSettings;
use crate::service::{Clavis, Issuer};
use crate::store::Store;
use crate::store::postgres::{PostgresOptions, PostgresStore};
use crate::store::sqlite::SqliteStore;
use crate::tls;

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Installs the global log subscriber (once; later calls are ignored).
pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: escape codes in a file or a collector are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .fmt_fields(crate::log_text::EscapedFields)
            .try_init(),
    };
}

/// A built, bound, not yet serving Clavis.
pub struct Application {
    listener: std::net::TcpListener,
    address: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    clavis: Arc<Clavis>,
    handle: Handle<SocketAddr>,
    /// The generated CA to trust, when HTTPS uses the local CA.
    pub ca_cert: Option<PathBuf>,
    /// The admin credentials, on the first start only.
    pub admin: Option<AdminCredentials>,
    http: HttpLimits,
    /// The database URL as it may be printed (password masked).
    database: String,
    log_format: LogFormat,
    /// The separate `/metrics` listener, when configured.
    metrics_listener: Option<std::net::TcpListener>,
    metrics_token: Option<crate::config::Secret>,
    _lock: crate::operator::InstallationLock,
}

/// Opens the store named by the URL: `sqlite:...` or `postgres://...` (`postgresql://`).
pub async fn open_store(url: &str, options: &DatabaseOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(url)
                .await
                .context("cannot open the SQLite database")?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions {
            pool_size: options.pool_size,
            acquire_timeout: options.acquire_timeout,
            statement_timeout: options.statement_timeout,
            ca_file: options.ca_file.clone(),
        };
        Ok(Arc::new(
            PostgresStore::connect(url, &options)
                .await
                .context("cannot open the PostgreSQL database")?,
        ))
    } else {
        anyhow::bail!("unsupported database URL (expected sqlite:... or postgres://...)")
    }
}

impl Application {
    /// Builds everything and binds the listener.
    pub async fn build(config: Config) -> Result<Self> {
        bootstrap::ensure_data_dir(&config.data_dir)?;
        // Held while serving: two servers on one SQLite file would each trust their own
        // read model (and replay guard), and operator commands must not change the data under
        // a server.
        let lock = crate::operator::InstallationLock::acquire(&config)?;
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let metrics_listener = match config.metrics.listen {
            Some(at) => {
                let l = std::net::TcpListener::bind(at)
                    .with_context(|| format!("cannot listen for metrics on {at}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let scheme = if config.tls == TlsMode::Insecure {
            "http"
        } else {
            "https"
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{address}/"));
        let issuer = Issuer {
            legacy_assertion_audience: config.legacy_assertion_audience,
            cap_token_expiry_at_credential: config.cap_token_expiry_at_credential,
            ..Issuer::new(&public_url, config.default_audience.clone())
        };
        let mtls = MtlsSettings::load(&config.mtls, config.tls != TlsMode::Insecure)?;

        let store = open_store(&config.database_url, &config.db).await?;
        let master_key = bootstrap::load_master_key(&config)?;
        bootstrap::check_master_key(store.as_ref(), &master_key).await?;
        let admin = bootstrap::bootstrap(store.as_ref(), &config, &master_key, &issuer).await?;
        // The first start's state (master-key check, admin client) is on disk before the
        // admin credentials are printed.
        store
            .durable()
            .await
            .context("cannot make the first-start state durable")?;
        // Other nodes' writes: listening starts before the snapshot so none is missed.
        let listening = crate::service::sync::listen(&store, config.db.resync_interval)
            .await
            .context("cannot listen for changes")?;
        let started = std::time::Instant::now();
        let small_pages = SmallPages::start();
        let mut model = ReadModel::load_from(store.as_ref(), &master_key)
            .await
            .context("cannot load the read model from the store")?;
        drop(small_pages);
        if listening.is_none() {
            // No other process writes this store.
            model = model.with_credential_cache();
        }
        tracing::info!(
            clients = model.client_count(),
            load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "read model loaded"
        );
        let token_hook = match &config.token_hook {
            Some(options) => {
                let hostname = url::Url::parse(&issuer.issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_default();
                Some(
                    crate::token_hook::TokenHook::new(options, &hostname)
                        .map_err(|e| anyhow::anyhow!(e))?,
                )
            }
            None => None,
        };
        let mut core = Clavis::new(store, model, master_key, config.limits, issuer)
            .with_mtls(mtls)
            .with_expiry_warnings(config.credential_expiry_warnings.clone());
        if let Some(h) = token_hook {
            core = core.with_token_hook(h);
        }
        if !config.audit_trail {
            tracing::warn!("the audit trail is off (--audit-trail false): nothing is recorded");
            core = core.without_audit_trail();
        }
        let clavis = Arc::new(core);
        if let Some(listening) = listening {
            listening.start(&clavis);
        }
        crate::audit::start_retention(&clavis.store, config.log_retention);
        // Credential-expiry notices are audit events: claimed only where they are recorded.
        if config.audit_trail {
            crate::expiry::start(&clavis, config.credential_expiry_scan);
        }
        crate::log_streams::start(&clavis, config.log_streams.clone());

        let (tls, ca_cert) = match &config.tls {
            TlsMode::Insecure => (None, None),
            TlsMode::Files { cert, key } => (Some(tls::server_config(cert, key)?), None),
            TlsMode::Generated => {
                let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                let ip = address.ip().to_string();
                if !address.ip().is_unspecified() && !names.contains(&ip) {
                    names.push(ip);
                }
                if let Some(host) = url::Url::parse(&public_url)
                    .ok()
                    .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
                    && !names.contains(&host)
                {
                    names.push(host);
                }
                let files = tls::ensure_local_tls(&config.data_dir, &names)?;
                (
                    Some(tls::server_config(&files.server_cert, &files.server_key)?),
                    Some(files.ca_cert),
                )
            }
        };
        // The console's files are compressed now, not on a request.
        http::console::prepare();
        Ok(Self {
            listener,
            address,
            tls,
            clavis,
            handle: Handle::new(),
            ca_cert,
            admin,
            http: config.http,
            database: crate::config::masked_url(&config.database_url),
            log_format: config.log_format,
            metrics_listener,
            metrics_token: config.metrics.token.clone(),
            _lock: lock,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address of the separate `/metrics` listener, when configured.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The application core (tests use it to inspect state).
    pub fn clavis(&self) -> Arc<Clavis> {
        self.clavis.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> Handle<SocketAddr> {
        self.handle.clone()
    }

    /// Says where to reach the server and, on first start, the admin credentials: as text
    /// on stdout, or, with `--log-format json`, as log events on the log's stream (where the
    /// generated admin secret is not written: a log is kept and shipped).
    pub fn print_banner(&self) {
        let issuer = &self.clavis.issuer;
        // Absolute: the trust line is pasted into shells that may change directory.
        let ca = self.ca_cert.as_ref().map(|ca| {
            std::path::absolute(ca)
                .unwrap_or_else(|_| ca.clone())
                .display()
                .to_string()
        });
        let metrics = match (self.metrics_address(), &self.metrics_token) {
            (Some(at), None) => Some(format!("http://{at}/metrics")),
            (Some(at), Some(_)) => Some(format!("http://{at}/metrics (bearer token)")),
            (None, Some(_)) => Some(format!("{}metrics (bearer token)", issuer.issuer)),
            (None, None) => None,
        };
        if self.log_format == LogFormat::Json {
            tracing::info!(
                issuer = %issuer.issuer,
                token_endpoint = %issuer.token_endpoint,
                management_audience = %issuer.management_audience,
                console = %format!("{}console/", issuer.issuer),
                database = %self.database,
                local_ca = ca.as_deref(),
                metrics = metrics.as_deref(),
                "Clavis listening"
            );
            if let Some(admin) = &self.admin {
                tracing::info!(
                    client_id = %admin.client_id,
                    secret = if admin.secret_supplied { "as given in CLAVIS_BOOTSTRAP_CLIENT_SECRET" } else { "not logged: run `clavis reset-admin-secret` to get one" },
                    "first start: created the admin client"
                );
            }
            return;
        }
        println!("Clavis listening on {}", issuer.issuer);
        println!("  issuer:              {}", issuer.issuer);
        println!("  token endpoint:      {}", issuer.token_endpoint);
        println!("  management audience: {}", issuer.management_audience);
        println!("  admin console:       {}console/", issuer.issuer);
        println!("  database:            {}", self.database);
        if let Some(metrics) = &metrics {
            println!("  metrics:             {metrics}");
        }
        if let Some(ca) = &ca {
            println!("  local CA:            {ca}");
            println!(
                "  trust it with:       export NODE_EXTRA_CA_CERTS={ca} SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca} CURL_CA_BUNDLE={ca}"
            );
        }
        if let Some(admin) = &self.admin {
            println!("First start: created the admin client (shown only now). In your shell:");
            println!("  export CLAVIS_ADMIN_ID={}", admin.client_id);
            if admin.secret_supplied {
                println!(
                    "  export CLAVIS_ADMIN_SECRET=...   # as given in CLAVIS_BOOTSTRAP_CLIENT_SECRET"
                );
            } else {
                println!("  export CLAVIS_ADMIN_SECRET={}", admin.client_secret);
            }
        }
    }

    /// Serves until SIGTERM/SIGINT (or the handle) asks it to stop, lets in-flight requests
    /// finish, then closes the store.
    pub async fn run_until_stopped(self) -> Result<()> {
        self.print_banner();
        let handle = self.handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            handle.graceful_shutdown(Some(GRACE_PERIOD));
        });
        self.serve().await
    }

    /// Serves until the handle stops it (no signal handling; for tests).
    pub async fn serve(self) -> Result<()> {
        let endpoint = http::metrics::MetricsEndpoint::new(
            &self.clavis,
            self.metrics_token.as_ref().map(|t| t.0.as_str()),
        );
        // The separate metrics listener: plain HTTP, with the main listener's connection
        // bounds and timeouts (slots of its own).
        let metrics_server = match self.metrics_listener {
            Some(listener) => {
                let service = http::metrics::listener_router(endpoint.clone()).into_make_service();
                let mut server = axum_server::from_tcp(listener)?
                    .acceptor(http::hardening::ConnectionLimit::new(&self.http));
                http::hardening::tune_http(server.http_builder(), &self.http);
                let handle = Handle::new();
                let task = tokio::spawn(server.handle(handle.clone()).serve(service));
                Some((handle, task))
            }
            None => None,
        };
        let mut routes = http::router(self.clavis.clone());
        if self.metrics_token.is_some() {
            routes = routes.merge(http::metrics::route(endpoint));
        }
        let router =
            http::hardening::wrap(routes, self.clavis.clone(), &self.http, self.tls.is_some());
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let connections = http::hardening::ConnectionLimit::new(&self.http);
        match self.tls {
            Some(config) => {
                let mut server =
                    axum_server::from_tcp_rustls(self.listener, RustlsConfig::from_config(config))?
                        .map(|tls| tls.acceptor(connections));
                http::hardening::tune_http(server.http_builder(), &self.http);
                server.handle(self.handle).serve(service).await?
            }
            None => {
                let mut server = axum_server::from_tcp(self.listener)?.acceptor(connections);
                http::hardening::tune_http(server.http_builder(), &self.http);
                server.handle(self.handle).serve(service).await?
            }
        }
        if let Some((handle, task)) = metrics_server {
            handle.shutdown();
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        // The audit events still queued are written before the store closes.
        if tokio::time::timeout(Duration::from_secs(5), self.clavis.replay.close())
            .await
            .is_err()
        {
            tracing::warn!("assertion ids still queued at shutdown were not written");
        }
        if tokio::time::timeout(Duration::from_secs(5), self.clavis.audit.flush())
            .await
            .is_err()
        {
            tracing::warn!("audit events still queued at shutdown were not written");
        }
        self.clavis.store.close().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Transparent huge pages off for the process while the read model loads, back on when this
/// is dropped (unless they were off already). A load allocates and frees gigabytes at a
/// million clients, and the allocator asks for huge pages: on the bench machine the kernel
/// zeroing them took a quarter of the load's CPU, and the load ran 9.4–10.3 s against
/// 13.4–17.2 s with them, with the same peak memory. Requests keep them: without them a
/// token cost 4–15 % more CPU. The flag is the process's: nodes started together in one
/// process (the cluster tests) may end one another's pause early, never leave it on.
struct SmallPages {
    paused: bool,
}

impl SmallPages {
    fn start() -> Self {
        #[cfg(target_os = "linux")]
        let paused = matches!(
            rustix::thread::transparent_huge_pages_are_disabled(),
            Ok(false)
        ) && rustix::thread::disable_transparent_huge_pages(true).is_ok();
        #[cfg(not(target_os = "linux"))]
        let paused = false;
        Self { paused }
    }
}

impl Drop for SmallPages {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.paused {
            let _ = rustix::thread::disable_transparent_huge_pages(false);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::SmallPages;
    use rustix::thread::{disable_transparent_huge_pages, transparent_huge_pages_are_disabled};

    #[test]
    fn huge_pages_are_off_while_the_model_loads_and_as_they_were_after() {
        // (Each test is a process of its own under nextest: the flag is this test's.)
        for off_before in [false, true] {
            disable_transparent_huge_pages(off_before).unwrap();
            let paused = SmallPages::start();
            assert!(transparent_huge_pages_are_disabled().unwrap());
            drop(paused);
            assert_eq!(transparent_huge_pages_are_disabled().unwrap(), off_before);
        }
    }
}

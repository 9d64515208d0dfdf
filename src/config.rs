//! Configuration: read once at start-up from flags, the environment and an optional TOML
//! file (in that order of precedence) into [`Config`]. Nothing else reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// Days the audit trail keeps an event unless `--log-retention-days` says otherwise.
pub const DEFAULT_LOG_RETENTION_DAYS: u64 = 30;

use crate::domain::client::CredentialLimits;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "clavis",
    version,
    about = "Machine-to-machine authorization server speaking the Auth0 Management API v2"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Give the admin client a new secret and print it (the old one stops working at once).
    /// Takes the same configuration as `serve` to find the data; with SQLite, refuses to
    /// run while a server uses the data directory.
    ResetAdminSecret(ResetAdminSecretArgs),
    /// Move the Management API (and every grant for it) to the audience of a new public URL,
    /// given with --public-url. Run it with every server stopped, then start them with the
    /// new --public-url; tokens issued before the move are no longer accepted.
    MovePublicUrl(MovePublicUrlArgs),
}

/// `clavis move-public-url` options.
#[derive(Debug, Args)]
pub struct MovePublicUrlArgs {
    /// Where the data is, and the new `--public-url`: the same options as `clavis serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `clavis reset-admin-secret` options.
#[derive(Debug, Args)]
pub struct ResetAdminSecretArgs {
    /// The client to reset (default: the admin client created on first start).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Where the data is: the same options as `clavis serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `clavis serve` options. Every option is also an environment variable and a key of the
/// TOML file given with `--config`.
#[derive(Debug, Args, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML configuration file (default: none). Its keys are the long flag names with `_` for
    /// `-` (`listen`, `data_dir`, `rate_limit_ip_rps`, ...).
    #[arg(long, env = "CLAVIS_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default: 127.0.0.1:8443).
    #[arg(long, env = "CLAVIS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database, keys and generated certificates (default: ./clavis-data).
    #[arg(long, env = "CLAVIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default: sqlite://<data-dir>/clavis.db). A URL with a password
    /// belongs in `CLAVIS_DATABASE_URL`, `CLAVIS_DATABASE_URL_FILE` or the TOML file, not on
    /// the command line, where other local users can read it.
    #[arg(long)]
    pub database_url: Option<String>,
    /// PostgreSQL: most pooled connections per node (default 10).
    #[arg(long, env = "CLAVIS_DB_POOL_SIZE")]
    pub db_pool_size: Option<u32>,
    /// PostgreSQL: longest wait for a connection, connecting included, in milliseconds
    /// (default 3000); past it the request answers 503.
    #[arg(long, env = "CLAVIS_DB_ACQUIRE_TIMEOUT_MS")]
    pub db_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL: `statement_timeout` in milliseconds (default 5000).
    #[arg(long, env = "CLAVIS_DB_STATEMENT_TIMEOUT_MS")]
    pub db_statement_timeout_ms: Option<u64>,
    /// PostgreSQL: CA certificate (PEM) verifying the server; implies `sslmode=verify-full`
    /// unless the URL sets `sslmode` (default: none).
    #[arg(long, env = "CLAVIS_DB_CA_FILE")]
    pub db_ca_file: Option<PathBuf>,
    /// PostgreSQL: seconds between full resynchronisations of the read model (default 30), the
    /// safety net behind change notifications.
    #[arg(long, env = "CLAVIS_DB_RESYNC_INTERVAL_SECS")]
    pub db_resync_interval_secs: Option<u64>,
    /// Public base URL; the issuer is this URL with a trailing slash (default:
    /// https://<listen>/).
    #[arg(long, env = "CLAVIS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// TLS certificate chain (PEM) (default: a local CA and certificate generated in
    /// <data-dir>/tls/).
    #[arg(long, env = "CLAVIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) (default: the generated one).
    #[arg(long, env = "CLAVIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP, behind a TLS-terminating proxy (default: off).
    #[arg(long, env = "CLAVIS_INSECURE_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub insecure_http: Option<bool>,
    /// Audience used when a token request names none (default: none; the request must name
    /// one).
    #[arg(long, env = "CLAVIS_DEFAULT_AUDIENCE")]
    pub default_audience: Option<String>,
    /// Also accept client assertions whose `aud` is the token endpoint URL, or an array
    /// holding the issuer (older client libraries); by default only the issuer as a string.
    #[arg(long, env = "CLAVIS_LEGACY_ASSERTION_AUDIENCE", num_args = 0..=1, default_missing_value = "true")]
    pub legacy_assertion_audience: Option<bool>,
    /// Cap each access token's `exp` at the expiry of the credential that obtained it (a
    /// `private_key_jwt` key or a client certificate), so that no token outlives its key
    /// (default: off, as Auth0).
    #[arg(long, env = "CLAVIS_CAP_TOKEN_EXPIRY_AT_CREDENTIAL", num_args = 0..=1, default_missing_value = "true")]
    pub cap_token_expiry_at_credential: Option<bool>,
    /// Record the audit trail (`/api/v2/logs`, log streams, credential-expiry events)
    /// (default: true). Off, nothing is recorded: the token and Management paths build no
    /// event at all.
    #[arg(long, env = "CLAVIS_AUDIT_TRAIL", num_args = 0..=1, default_missing_value = "true")]
    pub audit_trail: Option<bool>,
    /// Days the audit trail (`/api/v2/logs`) keeps an event (default: 30; 1-3650).
    #[arg(long, env = "CLAVIS_LOG_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub log_retention_days: Option<u32>,
    /// Audit events when a credential comes within these many days of its expiry, once per
    /// threshold (default: 30d,7d,1d; an empty value turns the warnings off, the event at
    /// expiry stays).
    #[arg(long, env = "CLAVIS_CREDENTIAL_EXPIRY_WARNINGS")]
    pub credential_expiry_warnings: Option<String>,
    /// Seconds between scans for expiring credentials (default: 60).
    #[arg(long, env = "CLAVIS_CREDENTIAL_EXPIRY_SCAN_SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub credential_expiry_scan_seconds: Option<u64>,
    /// Milliseconds between log-stream delivery rounds (default: 1000; 10-60000).
    #[arg(long, env = "CLAVIS_LOG_STREAM_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub log_stream_interval_ms: Option<u64>,
    /// Milliseconds a log-stream POST may take before it counts as failed (default: 10000).
    #[arg(long, env = "CLAVIS_LOG_STREAM_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub log_stream_timeout_ms: Option<u64>,
    /// Seconds of failing deliveries after which a log stream is suspended (default: 604800,
    /// 7 days, as Auth0).
    #[arg(long, env = "CLAVIS_LOG_STREAM_SUSPEND_AFTER_SECS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub log_stream_suspend_after_secs: Option<u64>,
    /// HTTPS endpoint called on each client-credentials exchange, before the token is
    /// signed, to add claims or deny it (default: none). Its secret is
    /// CLAVIS_TOKEN_HOOK_SECRET (or _FILE), sent as `Authorization: Bearer <secret>`.
    #[arg(long, env = "CLAVIS_TOKEN_HOOK_URL")]
    pub token_hook_url: Option<String>,
    /// Milliseconds a token-hook call may take, waiting for a connection included
    /// (default: 2000).
    #[arg(long, env = "CLAVIS_TOKEN_HOOK_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(10..=30_000))]
    pub token_hook_timeout_ms: Option<u64>,
    /// When the token hook fails (timeout, unreachable, bad answer), issue the token without
    /// its claims instead of refusing the exchange (default: off, fail-closed).
    #[arg(long, env = "CLAVIS_TOKEN_HOOK_FAIL_OPEN", num_args = 0..=1, default_missing_value = "true")]
    pub token_hook_fail_open: Option<bool>,
    /// PEM bundle of the only CAs that verify the token hook's certificate (default: the
    /// system's roots).
    #[arg(long, env = "CLAVIS_TOKEN_HOOK_CA_FILE")]
    pub token_hook_ca_file: Option<PathBuf>,
    /// Most token-hook calls (and connections) at once (default: 32); an exchange waits for
    /// a free one within the timeout.
    #[arg(long, env = "CLAVIS_TOKEN_HOOK_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub token_hook_max_connections: Option<u64>,
    /// Maximum credentials per client (default: 4, as Auth0).
    #[arg(long, env = "CLAVIS_MAX_CREDENTIALS_PER_CLIENT")]
    pub max_credentials_per_client: Option<usize>,
    /// Maximum credentials attached to the authentication method (default: 2, as Auth0).
    #[arg(long, env = "CLAVIS_MAX_CREDENTIALS_PER_METHOD")]
    pub max_credentials_per_method: Option<usize>,
    /// Log format (default: text).
    #[arg(long, env = "CLAVIS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter (tracing-subscriber syntax), e.g. `info,clavis=debug` (default: info).
    #[arg(long, env = "CLAVIS_LOG")]
    pub log: Option<String>,
    /// PEM bundle of the CAs trusted for `tls_client_auth` (default: none, and
    /// `tls_client_auth` is off).
    #[arg(long, env = "CLAVIS_MTLS_CA")]
    pub mtls_ca: Option<PathBuf>,
    /// Address or CIDR range of a TLS-terminating proxy allowed to forward client
    /// certificates in headers (repeatable; comma-separated in the environment; default:
    /// none). Needs CLAVIS_PROXY_SECRET.
    #[arg(
        long = "trusted-proxy",
        env = "CLAVIS_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub trusted_proxy: Vec<String>,
    /// Requests per second per client (Management API and token endpoint); 0 = no limit
    /// (default: 50).
    #[arg(long, env = "CLAVIS_RATE_LIMIT_CLIENT_RPS")]
    pub rate_limit_client_rps: Option<u32>,
    /// Burst allowed per client above the steady rate (default: 200).
    #[arg(long, env = "CLAVIS_RATE_LIMIT_CLIENT_BURST")]
    pub rate_limit_client_burst: Option<u32>,
    /// Requests per second per address for unauthenticated traffic; 0 = no limit
    /// (default: 50).
    #[arg(long, env = "CLAVIS_RATE_LIMIT_IP_RPS")]
    pub rate_limit_ip_rps: Option<u32>,
    /// Burst allowed per address above the steady rate (default: 200).
    #[arg(long, env = "CLAVIS_RATE_LIMIT_IP_BURST")]
    pub rate_limit_ip_burst: Option<u32>,
    /// Most connections served at once; a further one takes the slot of the connection idle
    /// the longest, or waits for one (default: 1024).
    #[arg(long, env = "CLAVIS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a client may take to send a request's headers, and again its body
    /// (default: 30).
    #[arg(long, env = "CLAVIS_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: Option<u64>,
    /// Seconds a connection may stay open with no request in flight (default 60), whatever
    /// the client sends meanwhile (HTTP/2 PINGs included).
    #[arg(long, env = "CLAVIS_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds after which a connection is asked to close (default 3600): no new request
    /// is taken on it, in-flight requests finish.
    #[arg(long, env = "CLAVIS_MAX_CONNECTION_AGE_SECONDS")]
    pub max_connection_age_seconds: Option<u64>,
    /// Address of a separate plain-HTTP listener serving only `/metrics` (default: none;
    /// without it, `/metrics` is served only on the main listener, and only when
    /// CLAVIS_METRICS_TOKEN is set).
    #[arg(long, env = "CLAVIS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A secret string whose `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How HTTPS is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Generate (first start) or reuse a local CA and server certificate in `<data-dir>/tls/`.
    Generated,
    /// Given certificate chain and key.
    Files {
        /// Chain (PEM).
        cert: PathBuf,
        /// Key (PEM).
        key: PathBuf,
    },
    /// Plain HTTP.
    Insecure,
}

/// Database connection settings (PostgreSQL; SQLite ignores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// Most pooled connections per node.
    pub pool_size: u32,
    /// Longest wait for a connection.
    pub acquire_timeout: Duration,
    /// Server-side statement timeout.
    pub statement_timeout: Duration,
    /// CA certificate verifying the server.
    pub ca_file: Option<PathBuf>,
    /// Period of the full read-model resynchronisation.
    pub resync_interval: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            acquire_timeout: Duration::from_millis(3000),
            statement_timeout: Duration::from_millis(5000),
            ca_file: None,
            resync_interval: Duration::from_secs(30),
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Database connection settings.
    pub db: DatabaseOptions,
    /// Public URL; `None` = derived from the bound address.
    pub public_url: Option<String>,
    /// TLS.
    pub tls: TlsMode,
    /// Default audience.
    pub default_audience: Option<String>,
    /// Accept the token endpoint URL and arrays in an assertion's `aud`.
    pub legacy_assertion_audience: bool,
    /// No token outlives the credential that obtained it.
    pub cap_token_expiry_at_credential: bool,
    /// Whether the audit trail is recorded.
    pub audit_trail: bool,
    /// How long the audit trail keeps an event.
    pub log_retention: Duration,
    /// Credential-expiry warning thresholds, in days, longest first.
    pub credential_expiry_warnings: Vec<u32>,
    /// How often the credential-expiry scan runs.
    pub credential_expiry_scan: Duration,
    /// Log-stream delivery.
    pub log_streams: crate::log_streams::DeliveryOptions,
    /// The token hook.
    pub token_hook: Option<crate::token_hook::TokenHookOptions>,
    /// Credential caps.
    pub limits: CredentialLimits,
    /// Master key from the environment.
    pub master_key: Option<Secret>,
    /// Fixed bootstrap client id.
    pub bootstrap_client_id: Option<String>,
    /// Fixed bootstrap secret.
    pub bootstrap_client_secret: Option<Secret>,
    /// Log format (default: text).
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
    /// Client certificates (mTLS).
    pub mtls: crate::mtls::MtlsOptions,
    /// Rate limits, connection and timeout bounds of the HTTP listener.
    pub http: HttpLimits,
    /// Who can read `/metrics`, and where.
    pub metrics: MetricsOptions,
}

/// Where `/metrics` is served. With neither setting it is not served at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsOptions {
    /// A separate plain-HTTP listener for `/metrics`.
    pub listen: Option<SocketAddr>,
    /// Bearer token: serves `/metrics` on the main listener, and is asked for on the
    /// separate one too.
    pub token: Option<Secret>,
}

/// Shortest metrics token accepted.
pub const MIN_METRICS_TOKEN: usize = 16;

/// A token bucket: `per_second` steady rate, `burst` requests at once. A rate of 0 turns
/// the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// Steady requests per second.
    pub per_second: u32,
    /// Bucket size.
    pub burst: u32,
}

/// Bounds on what one caller, and all callers together, can make the listener do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Per client (verified Management API token, or the client a token request names).
    pub per_client: RateQuota,
    /// Per IP address, for traffic without a known client.
    pub per_ip: RateQuota,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time allowed to receive a request's headers, and again its body.
    pub request_timeout: std::time::Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// A connection this old is asked to close once its in-flight requests are done.
    pub max_connection_age: std::time::Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            per_client: RateQuota {
                per_second: 50,
                burst: 200,
            },
            per_ip: RateQuota {
                per_second: 50,
                burst: 200,
            },
            max_connections: 1024,
            request_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connection_age: std::time::Duration::from_secs(3600),
        }
    }
}

impl Config {
    /// Defaults for a data directory (used by tests and embedding).
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: data_dir.to_path_buf(),
            database_url: sqlite_url(data_dir),
            db: DatabaseOptions::default(),
            public_url: None,
            tls: TlsMode::Generated,
            default_audience: None,
            legacy_assertion_audience: false,
            cap_token_expiry_at_credential: false,
            audit_trail: true,
            log_retention: Duration::from_secs(DEFAULT_LOG_RETENTION_DAYS * 86_400),
            credential_expiry_warnings: crate::expiry::DEFAULT_WARNING_DAYS.to_vec(),
            credential_expiry_scan: crate::expiry::DEFAULT_SCAN_INTERVAL,
            log_streams: crate::log_streams::DeliveryOptions::default(),
            token_hook: None,
            limits: CredentialLimits::default(),
            master_key: None,
            bootstrap_client_id: None,
            bootstrap_client_secret: None,
            log_format: LogFormat::Text,
            log: "info".into(),
            mtls: crate::mtls::MtlsOptions::default(),
            http: HttpLimits::default(),
            metrics: MetricsOptions::default(),
        }
    }
}

fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("clavis.db").display())
}

/// Reads one setting from the environment: `NAME`, or the contents of the file named by
/// `NAME_FILE` (one trailing newline dropped), not both. Secrets come only this way (or
/// from the TOML file where it has a key): never from a flag, which other local users can
/// read in the process list.
fn from_env(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<String>, String> {
    let file_var = format!("{name}_FILE");
    match (env(name), env(&file_var)) {
        (Some(_), Some(_)) => Err(format!("set {name} or {file_var}, not both")),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{file_var}: cannot read {path}: {e}"))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            Ok(Some(text.strip_suffix('\r').unwrap_or(text).to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// Whether a database URL carries a password (`scheme://user:password@host`).
fn has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// The URL with its password replaced by `***`, for anything that prints it.
pub fn masked_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl ServeArgs {
    /// Merges flags over the environment over the TOML file over defaults.
    pub fn into_config(self) -> Result<Config, String> {
        self.into_config_with_env(&|name| std::env::var(name).ok())
    }

    /// [`into_config`](Self::into_config) with the environment given as a lookup.
    pub fn into_config_with_env(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        if self.database_url.as_deref().is_some_and(has_password) {
            return Err(
                "--database-url holds a password, which other local users can read \
                 on the command line: give the URL in CLAVIS_DATABASE_URL, \
                 CLAVIS_DATABASE_URL_FILE or the configuration file"
                    .into(),
            );
        }
        let master_key = from_env(env, "CLAVIS_MASTER_KEY")?;
        let bootstrap_client_id = from_env(env, "CLAVIS_BOOTSTRAP_CLIENT_ID")?;
        let bootstrap_client_secret = from_env(env, "CLAVIS_BOOTSTRAP_CLIENT_SECRET")?;
        let proxy_secret = from_env(env, "CLAVIS_PROXY_SECRET")?;
        let env_database_url = from_env(env, "CLAVIS_DATABASE_URL")?;
        let metrics_token = from_env(env, "CLAVIS_METRICS_TOKEN")?;
        if metrics_token
            .as_ref()
            .is_some_and(|t| t.trim().len() < MIN_METRICS_TOKEN || t.trim() != t)
        {
            return Err(format!(
                "CLAVIS_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters, without surrounding spaces"
            ));
        }
        let token_hook_secret = from_env(env, "CLAVIS_TOKEN_HOOK_SECRET")?;
        let file: ServeArgs = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./clavis-data"));
        let insecure = self.insecure_http.or(file.insecure_http).unwrap_or(false);
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            _ if insecure => TlsMode::Insecure,
            (Some(cert), Some(key)) => TlsMode::Files { cert, key },
            (None, None) => TlsMode::Generated,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        let defaults = CredentialLimits::default();
        let limits = CredentialLimits {
            per_client: self
                .max_credentials_per_client
                .or(file.max_credentials_per_client)
                .unwrap_or(defaults.per_client),
            per_method: self
                .max_credentials_per_method
                .or(file.max_credentials_per_method)
                .unwrap_or(defaults.per_method),
        };
        if limits.per_client == 0 || limits.per_method == 0 {
            return Err("credential limits must be at least 1".into());
        }
        let db_defaults = DatabaseOptions::default();
        let db = DatabaseOptions {
            pool_size: self
                .db_pool_size
                .or(file.db_pool_size)
                .unwrap_or(db_defaults.pool_size),
            acquire_timeout: self
                .db_acquire_timeout_ms
                .or(file.db_acquire_timeout_ms)
                .map_or(db_defaults.acquire_timeout, Duration::from_millis),
            statement_timeout: self
                .db_statement_timeout_ms
                .or(file.db_statement_timeout_ms)
                .map_or(db_defaults.statement_timeout, Duration::from_millis),
            ca_file: self.db_ca_file.or(file.db_ca_file),
            resync_interval: self
                .db_resync_interval_secs
                .or(file.db_resync_interval_secs)
                .map_or(db_defaults.resync_interval, Duration::from_secs),
        };
        if db.pool_size == 0
            || db.acquire_timeout.is_zero()
            || db.statement_timeout.is_zero()
            || db.resync_interval.is_zero()
        {
            return Err(
                "database pool size, timeouts and resync interval must be at least 1".into(),
            );
        }
        let credential_expiry_warnings = match self
            .credential_expiry_warnings
            .or(file.credential_expiry_warnings)
        {
            Some(text) => crate::expiry::parse_warning_days(&text)?,
            None => crate::expiry::DEFAULT_WARNING_DAYS.to_vec(),
        };
        let credential_expiry_scan = self
            .credential_expiry_scan_seconds
            .or(file.credential_expiry_scan_seconds)
            .map_or(crate::expiry::DEFAULT_SCAN_INTERVAL, |s| {
                Duration::from_secs(s.clamp(1, 86_400))
            });
        let trusted_proxy = if self.trusted_proxy.is_empty() {
            file.trusted_proxy
        } else {
            self.trusted_proxy
        };
        let mtls = crate::mtls::MtlsOptions::new(
            self.mtls_ca.or(file.mtls_ca),
            &trusted_proxy,
            proxy_secret,
        )?;
        let http = HttpLimits::default();
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(http.max_connections);
        let request_timeout = self
            .request_timeout_seconds
            .or(file.request_timeout_seconds)
            .unwrap_or(http.request_timeout.as_secs());
        let idle_timeout = self
            .idle_timeout_seconds
            .or(file.idle_timeout_seconds)
            .unwrap_or(http.idle_timeout.as_secs());
        let max_connection_age = self
            .max_connection_age_seconds
            .or(file.max_connection_age_seconds)
            .unwrap_or(http.max_connection_age.as_secs());
        if max_connections == 0
            || request_timeout == 0
            || idle_timeout == 0
            || max_connection_age == 0
        {
            return Err(
                "--max-connections, --request-timeout-seconds, --idle-timeout-seconds \
                 and --max-connection-age-seconds must be at least 1"
                    .into(),
            );
        }
        let token_hook = match self.token_hook_url.or(file.token_hook_url) {
            None => None,
            Some(url) => {
                let url =
                    url::Url::parse(&url).map_err(|e| format!("--token-hook-url {url}: {e}"))?;
                if url.scheme() != "https" {
                    return Err("--token-hook-url must be an https URL".into());
                }
                let secret = token_hook_secret.ok_or(
                    "--token-hook-url needs CLAVIS_TOKEN_HOOK_SECRET (or CLAVIS_TOKEN_HOOK_SECRET_FILE)",
                )?;
                let min = crate::token_hook::MIN_SECRET;
                if secret.trim().len() < min || secret.trim() != secret {
                    return Err(format!(
                        "CLAVIS_TOKEN_HOOK_SECRET must be at least {min} characters, without surrounding spaces"
                    ));
                }
                Some(crate::token_hook::TokenHookOptions {
                    url,
                    secret,
                    timeout: self
                        .token_hook_timeout_ms
                        .or(file.token_hook_timeout_ms)
                        .map_or(crate::token_hook::DEFAULT_TIMEOUT, Duration::from_millis),
                    fail_open: self
                        .token_hook_fail_open
                        .or(file.token_hook_fail_open)
                        .unwrap_or(false),
                    ca_file: self.token_hook_ca_file.or(file.token_hook_ca_file),
                    max_connections: self
                        .token_hook_max_connections
                        .or(file.token_hook_max_connections)
                        .map_or(crate::token_hook::DEFAULT_MAX_CONNECTIONS, |n| {
                            usize::try_from(n).unwrap_or(crate::token_hook::DEFAULT_MAX_CONNECTIONS)
                        }),
                })
            }
        };
        Ok(Config {
            token_hook,
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            database_url: self
                .database_url
                .or(env_database_url)
                .or(file.database_url)
                .unwrap_or_else(|| sqlite_url(&data_dir)),
            db,
            data_dir,
            public_url: self.public_url.or(file.public_url),
            tls,
            default_audience: self.default_audience.or(file.default_audience),
            legacy_assertion_audience: self
                .legacy_assertion_audience
                .or(file.legacy_assertion_audience)
                .unwrap_or(false),
            cap_token_expiry_at_credential: self
                .cap_token_expiry_at_credential
                .or(file.cap_token_expiry_at_credential)
                .unwrap_or(false),
            audit_trail: self.audit_trail.or(file.audit_trail).unwrap_or(true),
            log_retention: Duration::from_secs(
                self.log_retention_days
                    .or(file.log_retention_days)
                    .map_or(DEFAULT_LOG_RETENTION_DAYS, u64::from)
                    .clamp(1, 3650)
                    * 86_400,
            ),
            credential_expiry_warnings,
            credential_expiry_scan,
            log_streams: {
                let d = crate::log_streams::DeliveryOptions::default();
                crate::log_streams::DeliveryOptions {
                    interval: self
                        .log_stream_interval_ms
                        .or(file.log_stream_interval_ms)
                        .map_or(d.interval, Duration::from_millis),
                    timeout: self
                        .log_stream_timeout_ms
                        .or(file.log_stream_timeout_ms)
                        .map_or(d.timeout, Duration::from_millis),
                    suspend_after: self
                        .log_stream_suspend_after_secs
                        .or(file.log_stream_suspend_after_secs)
                        .map_or(d.suspend_after, Duration::from_secs),
                }
            },
            limits,
            master_key: master_key.map(Secret),
            bootstrap_client_id,
            bootstrap_client_secret: bootstrap_client_secret.map(Secret),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            log: self.log.or(file.log).unwrap_or_else(|| "info".into()),
            mtls,
            http: HttpLimits {
                per_client: RateQuota {
                    per_second: self
                        .rate_limit_client_rps
                        .or(file.rate_limit_client_rps)
                        .unwrap_or(http.per_client.per_second),
                    burst: self
                        .rate_limit_client_burst
                        .or(file.rate_limit_client_burst)
                        .unwrap_or(http.per_client.burst),
                },
                per_ip: RateQuota {
                    per_second: self
                        .rate_limit_ip_rps
                        .or(file.rate_limit_ip_rps)
                        .unwrap_or(http.per_ip.per_second),
                    burst: self
                        .rate_limit_ip_burst
                        .or(file.rate_limit_ip_burst)
                        .unwrap_or(http.per_ip.burst),
                },
                max_connections,
                request_timeout: std::time::Duration::from_secs(request_timeout),
                idle_timeout: std::time::Duration::from_secs(idle_timeout),
                max_connection_age: std::time::Duration::from_secs(max_connection_age),
            },
            metrics: MetricsOptions {
                listen: self.metrics_listen.or(file.metrics_listen),
                token: metrics_token.map(Secret),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\nmax_credentials_per_client = 6\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let c = args.into_config().unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.limits.per_client, 6);
        assert_eq!(c.limits.per_method, 2);
        assert_eq!(c.database_url, "sqlite:///tmp/x/clavis.db");
        assert_eq!(c.tls, TlsMode::Generated);
        assert_eq!(c.db, DatabaseOptions::default());
    }

    #[test]
    fn database_options_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "database_url = \"postgres://db/clavis\"\ndb_pool_size = 20\ndb_ca_file = \"/etc/ca.pem\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            db_statement_timeout_ms: Some(1500),
            ..Default::default()
        };
        let c = args.into_config().unwrap();
        assert_eq!(c.database_url, "postgres://db/clavis");
        assert_eq!(c.db.pool_size, 20);
        assert_eq!(c.db.statement_timeout, Duration::from_millis(1500));
        assert_eq!(c.db.acquire_timeout, Duration::from_millis(3000));
        assert_eq!(c.db.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        let zero = ServeArgs {
            db_pool_size: Some(0),
            ..Default::default()
        };
        assert!(zero.into_config().is_err());
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file_never_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "c2VjcmV0\n").unwrap();
        let key_path = key_file.display().to_string();
        let env = |name: &str| match name {
            "CLAVIS_MASTER_KEY_FILE" => Some(key_path.clone()),
            "CLAVIS_PROXY_SECRET" => Some("proxy-secret-0123456789".to_string()),
            "CLAVIS_DATABASE_URL" => Some("postgres://u:pw@db/clavis".to_string()),
            _ => None,
        };
        let c = ServeArgs {
            trusted_proxy: vec!["10.0.0.1".into()],
            ..Default::default()
        }
        .into_config_with_env(&env)
        .unwrap();
        assert_eq!(c.master_key, Some(Secret("c2VjcmV0".into())));
        assert_eq!(c.database_url, "postgres://u:pw@db/clavis");
        // The flag wins over the environment, but may not carry a password.
        let flag = ServeArgs {
            database_url: Some("postgres://u:pw@other/clavis".into()),
            ..Default::default()
        };
        assert!(flag.into_config_with_env(&env).is_err());
        let flag = ServeArgs {
            database_url: Some("postgres://u@other/clavis".into()),
            trusted_proxy: vec!["10.0.0.1".into()],
            ..Default::default()
        };
        assert_eq!(
            flag.into_config_with_env(&env).unwrap().database_url,
            "postgres://u@other/clavis"
        );
        // A setting and its _FILE twin together are refused.
        let both = |name: &str| match name {
            "CLAVIS_BOOTSTRAP_CLIENT_SECRET" | "CLAVIS_BOOTSTRAP_CLIENT_SECRET_FILE" => {
                Some("x".to_string())
            }
            _ => None,
        };
        assert!(ServeArgs::default().into_config_with_env(&both).is_err());
    }

    #[test]
    fn the_token_hook_needs_https_and_a_secret() {
        let hook = |url: &str| ServeArgs {
            token_hook_url: Some(url.into()),
            ..Default::default()
        };
        let secret = |name: &str| {
            (name == "CLAVIS_TOKEN_HOOK_SECRET").then(|| "hook-secret-0123456789".to_string())
        };
        let none = |_: &str| None;
        let short = |name: &str| (name == "CLAVIS_TOKEN_HOOK_SECRET").then(|| "short".to_string());
        assert!(
            ServeArgs::default()
                .into_config_with_env(&secret)
                .unwrap()
                .token_hook
                .is_none()
        );
        let c = hook("https://hooks.example.com/claims")
            .into_config_with_env(&secret)
            .unwrap();
        let options = c.token_hook.unwrap();
        assert_eq!(options.url.as_str(), "https://hooks.example.com/claims");
        assert_eq!(options.secret, "hook-secret-0123456789");
        assert_eq!(options.timeout, crate::token_hook::DEFAULT_TIMEOUT);
        assert!(!options.fail_open);
        assert_eq!(
            options.max_connections,
            crate::token_hook::DEFAULT_MAX_CONNECTIONS
        );
        assert!(!format!("{options:?}").contains("hook-secret"));
        for (args, env) in [
            (
                hook("http://hooks.example.com/claims"),
                &secret as &dyn Fn(&str) -> Option<String>,
            ),
            (hook("not a url"), &secret),
            (hook("https://hooks.example.com/claims"), &none),
            (hook("https://hooks.example.com/claims"), &short),
        ] {
            assert!(args.into_config_with_env(env).is_err());
        }
        let c = ServeArgs {
            token_hook_url: Some("https://hooks.example.com/claims".into()),
            token_hook_timeout_ms: Some(250),
            token_hook_fail_open: Some(true),
            token_hook_max_connections: Some(4),
            ..Default::default()
        }
        .into_config_with_env(&secret)
        .unwrap();
        let options = c.token_hook.unwrap();
        assert_eq!(options.timeout, Duration::from_millis(250));
        assert!(options.fail_open);
        assert_eq!(options.max_connections, 4);
    }

    #[test]
    fn help_shows_no_secret_flag_and_no_environment_value() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        for flag in [
            "--master-key",
            "--bootstrap-client-secret",
            "--proxy-secret",
            "--bootstrap-client-id",
            "--metrics-token",
        ] {
            assert!(!help.contains(flag), "{flag} in --help");
        }
        assert!(!help.contains("CLAVIS_DATABASE_URL="), "{help}");
    }

    /// The README's configuration table and `clavis serve --help` describe the same options:
    /// every flag has a row naming its variable, every row's flag exists, every option's
    /// help states its default, and a numeric default agrees with the README's.
    #[test]
    fn the_readme_table_matches_serve_help() {
        use clap::CommandFactory;
        let readme = include_str!("../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("## Configuration"))
            .take_while(|l| !l.starts_with("## Several nodes"))
            .filter(|l| l.starts_with("| `--") || l.starts_with("| —"))
            .collect();
        assert!(rows.len() > 20, "the table was not found");
        let mut cli = Cli::command();
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let mut longs = Vec::new();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            longs.push(long.to_string());
            let flag = format!("`--{long}`");
            let row = rows
                .iter()
                .find(|r| r.contains(&flag))
                .unwrap_or_else(|| panic!("no README row for {flag}"));
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(row.contains(&*env), "{flag}: the README row lacks {env}");
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let help = help.replace('\n', " ");
            let Some((_, after)) = help.split_once("default") else {
                panic!("{flag}: the help states no default: {help}");
            };
            let number: String = after
                .trim_start_matches([':', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !number.is_empty() {
                assert!(
                    row.contains(&number),
                    "{flag}: help says {number}, README: {row}"
                );
            }
        }
        // The TOML example parses as a configuration file.
        let example = readme
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a TOML example");
        let parsed: ServeArgs = toml::from_str(example).unwrap();
        assert!(parsed.listen.is_some() && !parsed.trusted_proxy.is_empty());
        for row in &rows {
            for flag in row.split('`').filter(|t| t.starts_with("--")) {
                let name = flag.trim_start_matches("--");
                assert!(
                    longs.iter().any(|l| l == name),
                    "README row {flag} is no flag"
                );
            }
        }
    }

    #[test]
    fn a_printed_database_url_has_its_password_masked() {
        assert_eq!(
            masked_url("postgres://clavis:s3cret@db:5432/clavis?sslmode=verify-full"),
            "postgres://clavis:***@db:5432/clavis?sslmode=verify-full"
        );
        assert_eq!(masked_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(args.into_config().is_err());
    }

    #[test]
    fn connection_lifetimes_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "idle_timeout_seconds = 5\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            max_connection_age_seconds: Some(120),
            ..Default::default()
        };
        let c = args.into_config().unwrap();
        assert_eq!(c.http.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.http.max_connection_age, Duration::from_secs(120));
        let defaults = ServeArgs::default().into_config().unwrap();
        assert_eq!(defaults.http.idle_timeout, Duration::from_secs(60));
        assert_eq!(defaults.http.max_connection_age, Duration::from_secs(3600));
        for zero in [
            ServeArgs {
                idle_timeout_seconds: Some(0),
                ..Default::default()
            },
            ServeArgs {
                max_connection_age_seconds: Some(0),
                ..Default::default()
            },
        ] {
            assert!(zero.into_config().is_err());
        }
    }
}

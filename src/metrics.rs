//! Prometheus metrics: the instruments the request paths update, and what a scrape of
//! `/metrics` computes on the spot (credential expiry, database pool, change listener,
//! process). Encoded in the Prometheus text format (0.0.4) by `prometheus-client`.
//!
//! The token path only touches atomics: its counters (one per authentication method and
//! outcome) and its latency histograms (one per method) are resolved once, here, and
//! indexed by enum; no label set is built, hashed or allocated per request. The crate's own
//! `Histogram` takes a mutex per observation, so the histograms here are
//! [`AtomicHistogram`]s (fixed buckets of atomic counters) that the crate encodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::time::Timestamp;
use crate::service::Clavis;

/// How a token request authenticated (or tried to), as its `method` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMethod {
    /// `client_secret` in the body.
    ClientSecretPost,
    /// HTTP Basic.
    ClientSecretBasic,
    /// A client assertion.
    PrivateKeyJwt,
    /// A client certificate only (`tls_client_auth` or `self_signed_tls_client_auth`).
    Mtls,
    /// No credential at all, several at once, or a body that could not be read.
    None,
}

impl TokenMethod {
    const ALL: [TokenMethod; 5] = [
        TokenMethod::ClientSecretPost,
        TokenMethod::ClientSecretBasic,
        TokenMethod::PrivateKeyJwt,
        TokenMethod::Mtls,
        TokenMethod::None,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenMethod::ClientSecretPost => "client_secret_post",
            TokenMethod::ClientSecretBasic => "client_secret_basic",
            TokenMethod::PrivateKeyJwt => "private_key_jwt",
            TokenMethod::Mtls => "mtls",
            TokenMethod::None => "none",
        }
    }

    /// The method a parsed request uses (decided when it was parsed).
    pub fn of(req: &crate::service::token::TokenRequest) -> Self {
        req.client.method()
    }
}

/// The `outcome` label values: `issued`, or the OAuth error code of the refusal.
const TOKEN_OUTCOMES: [&str; 10] = [
    "issued",
    "invalid_request",
    "invalid_client",
    "access_denied",
    "unauthorized_client",
    "unsupported_grant_type",
    "too_many_requests",
    "server_error",
    "temporarily_unavailable",
    "other",
];

fn outcome_index(error: Option<&str>) -> usize {
    let Some(error) = error else { return 0 };
    TOKEN_OUTCOMES[1..]
        .iter()
        .position(|o| *o == error)
        .map_or(TOKEN_OUTCOMES.len() - 1, |i| i + 1)
}

/// Which bucket refused a request (the `bucket` label of rate-limit refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// A Management API client.
    ManagementClient,
    /// An authenticated client at the token endpoint.
    TokenClient,
    /// An address, for traffic without a known client.
    Address,
    /// An address, or a (client id, address) pair, that spent its budget of failed token
    /// requests: refused before authentication.
    FailedAuthentication,
}

const BUCKETS: [&str; 4] = [
    "management_client",
    "token_client",
    "address",
    "failed_authentication",
];

/// Token latency buckets, in seconds.
const TOKEN_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Durable-write latency buckets, in seconds.
const WRITE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A histogram with fixed buckets whose observations are a few relaxed atomic additions
/// (no lock). A scrape may see an observation in its bucket before its sum: harmless.
#[derive(Debug, Clone)]
pub struct AtomicHistogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [f64],
    /// One per bound, plus the overflow (`+Inf`) bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self(Arc::new(HistogramInner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.0.bounds.len());
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.0.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram(
            sum,
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// The labels of a Management API request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ManagementLabels {
    /// HTTP method.
    pub method: &'static str,
    /// Route template (`/api/v2/clients/{client_id}`), never the raw path.
    pub route: String,
    /// Response status.
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogStreamLabels {
    log_stream: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogStreamLabel {
    log_stream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabel {
    bucket: &'static str,
}

type HistogramFamily<S> = Family<S, AtomicHistogram, fn() -> AtomicHistogram>;

fn token_histogram() -> AtomicHistogram {
    AtomicHistogram::new(TOKEN_BUCKETS)
}

/// The instruments of one server.
#[derive(Debug)]
pub struct Metrics {
    token_family: Family<TokenLabels, Counter>,
    /// `[method][outcome]`, resolved once.
    tokens: Vec<Vec<Counter>>,
    token_latency_family: HistogramFamily<MethodLabel>,
    /// By method, resolved once.
    token_latency: Vec<AtomicHistogram>,
    management: Family<ManagementLabels, Counter>,
    rate_limit_family: Family<BucketLabel, Counter>,
    rate_limited: Vec<Counter>,
    /// One observation per batch of assertion ids: its commit, and on a shared store its
    /// fsync (a local store's batches are made durable behind; see `service::replay`).
    pub jti_write: AtomicHistogram,
    log_stream_posts: Family<LogStreamLabels, Counter>,
    log_stream_events: Family<LogStreamLabel, Counter>,
    log_stream_lag: Family<LogStreamLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every instrument, each token and rate-limit series created at zero.
    pub fn new() -> Self {
        let token_family = Family::<TokenLabels, Counter>::default();
        let token_latency_family: HistogramFamily<MethodLabel> =
            Family::new_with_constructor(token_histogram);
        let tokens = TokenMethod::ALL
            .iter()
            .map(|m| {
                TOKEN_OUTCOMES
                    .iter()
                    .map(|outcome| {
                        token_family.get_or_create_owned(&TokenLabels {
                            method: m.as_str(),
                            outcome,
                        })
                    })
                    .collect()
            })
            .collect();
        let token_latency = TokenMethod::ALL
            .iter()
            .map(|m| token_latency_family.get_or_create_owned(&MethodLabel { method: m.as_str() }))
            .collect();
        let rate_limit_family = Family::<BucketLabel, Counter>::default();
        let rate_limited = BUCKETS
            .iter()
            .map(|bucket| rate_limit_family.get_or_create_owned(&BucketLabel { bucket }))
            .collect();
        Self {
            token_family,
            tokens,
            token_latency_family,
            token_latency,
            management: Family::default(),
            rate_limit_family,
            rate_limited,
            jti_write: AtomicHistogram::new(WRITE_BUCKETS),
            log_stream_posts: Family::default(),
            log_stream_events: Family::default(),
            log_stream_lag: Family::default(),
        }
    }

    /// One log-stream POST attempt: `delivered` when it got a 2xx.
    pub fn log_stream_post(&self, stream: &str, delivered: bool) {
        self.log_stream_posts
            .get_or_create(&LogStreamLabels {
                log_stream: stream.to_string(),
                outcome: if delivered { "delivered" } else { "failed" },
            })
            .inc();
    }

    /// Events a log stream delivered (each counted once per delivery).
    pub fn log_stream_delivered(&self, stream: &str, events: u64) {
        self.log_stream_events
            .get_or_create(&LogStreamLabel {
                log_stream: stream.to_string(),
            })
            .inc_by(events);
    }

    /// How far behind a stream is: the age in seconds of its oldest undelivered event,
    /// 0 when it has none (seen by this node's last round).
    pub fn log_stream_lag(&self, stream: &str, seconds: i64) {
        self.log_stream_lag
            .get_or_create(&LogStreamLabel {
                log_stream: stream.to_string(),
            })
            .set(seconds);
    }

    /// One answered token request: `error` is the OAuth error code of a refusal, `None`
    /// when a token was issued; `elapsed` is the server's time on it.
    pub fn token(&self, method: TokenMethod, error: Option<&str>, elapsed: Duration) {
        let m = method as usize;
        if let Some(counter) = self.tokens.get(m).and_then(|o| o.get(outcome_index(error))) {
            counter.inc();
        }
        if let Some(h) = self.token_latency.get(m) {
            h.observe(elapsed);
        }
    }

    /// One answered Management API request.
    pub fn management(&self, method: &'static str, route: &str, status: u16) {
        self.management
            .get_or_create(&ManagementLabels {
                method,
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// One request refused by a rate limit.
    pub fn rate_limited(&self, bucket: Bucket) {
        if let Some(c) = self.rate_limited.get(bucket as usize) {
            c.inc();
        }
    }

    /// Management API requests counted so far (tests).
    pub fn management_count(&self, method: &'static str, route: &str, status: u16) -> u64 {
        self.management
            .get(&ManagementLabels {
                method,
                route: route.to_string(),
                status,
            })
            .map_or(0, |c| c.get())
    }

    /// Tokens counted so far for this method and outcome (tests).
    pub fn token_count(&self, method: TokenMethod, error: Option<&str>) -> u64 {
        self.tokens
            .get(method as usize)
            .and_then(|o| o.get(outcome_index(error)))
            .map_or(0, Counter::get)
    }
}

/// The registry a scrape encodes: the instruments, plus what is computed at scrape time.
pub fn registry(clavis: &Arc<Clavis>) -> Registry {
    let m = &clavis.metrics;
    let mut r = Registry::default();
    r.register(
        "clavis_token_requests",
        "Token requests answered, by client authentication method and outcome (issued, or the OAuth error code)",
        m.token_family.clone(),
    );
    r.register_with_unit(
        "clavis_token_request_duration",
        "Server-side time to answer a token request, by client authentication method",
        Unit::Seconds,
        m.token_latency_family.clone(),
    );
    r.register(
        "clavis_management_requests",
        "Management API requests answered, by method, route template and status",
        m.management.clone(),
    );
    r.register(
        "clavis_rate_limited_requests",
        "Requests refused by a rate limit (429), by the bucket that refused them",
        m.rate_limit_family.clone(),
    );
    r.register_with_unit(
        "clavis_jti_write_duration",
        "Time to write a batch of client-assertion ids (on PostgreSQL, to commit it durably)",
        Unit::Seconds,
        m.jti_write.clone(),
    );
    r.register(
        "clavis_log_stream_posts",
        "Log-stream POST attempts by this node, by stream and outcome (delivered: a 2xx; failed: anything else)",
        m.log_stream_posts.clone(),
    );
    r.register(
        "clavis_log_stream_events",
        "Events delivered by this node's log-stream POSTs, by stream",
        m.log_stream_events.clone(),
    );
    r.register_with_unit(
        "clavis_log_stream_lag",
        "Age of the oldest event a log stream has yet to deliver, as this node last saw it (0: none pending)",
        Unit::Seconds,
        m.log_stream_lag.clone(),
    );
    r.register_collector(Box::new(ScrapeTime {
        clavis: Arc::downgrade(clavis),
    }));
    r
}

/// Most clients with a `clavis_client_credential_expires_in_seconds` series, the soonest to
/// expire: a scrape stays bounded however many clients have an expiring credential (at a
/// million it was a million series), and no client left out expires sooner than one in it,
/// so the soonest expiry (`min`) is still exact. How many there are in all is
/// `clavis_clients_with_expiring_credentials`.
const EXPIRY_SERIES_MAX: usize = 1000;

/// What is computed when scraped.
#[derive(Debug)]
struct ScrapeTime {
    clavis: std::sync::Weak<Clavis>,
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: V,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(clavis) = self.clavis.upgrade() else {
            return Ok(());
        };
        let now = Timestamp::now().unix_seconds();
        let (expiring, soonest) = clavis.model.soonest_credential_expiries(EXPIRY_SERIES_MAX);
        gauge(
            &mut encoder,
            "clavis_clients_with_expiring_credentials",
            "Clients with an expiring credential among those they authenticate with",
            None,
            i64::try_from(expiring).unwrap_or(i64::MAX),
        )?;
        if !soonest.is_empty() {
            let help = format!(
                "Seconds until the soonest expiry among the credentials a client authenticates with (negative once expired); only the {EXPIRY_SERIES_MAX} clients whose credentials expire soonest have a series"
            );
            let mut family = encoder.encode_descriptor(
                "clavis_client_credential_expires_in",
                &help,
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for (client_id, expires_at) in &soonest {
                let labels = [("client_id", client_id.as_str())];
                ConstGauge::new(expires_at.unix_seconds() - now)
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(db) = clavis.store.gauges() {
            gauge(
                &mut encoder,
                "clavis_db_pool_connections",
                "Connections open in this node's database pool",
                None,
                i64::from(db.pool_size),
            )?;
            gauge(
                &mut encoder,
                "clavis_db_pool_idle_connections",
                "Idle connections in this node's database pool",
                None,
                i64::try_from(db.pool_idle).unwrap_or(i64::MAX),
            )?;
            gauge(
                &mut encoder,
                "clavis_db_pool_max_connections",
                "Most connections this node's database pool opens",
                None,
                i64::from(db.pool_max),
            )?;
            if let Some(listener) = db.listener {
                gauge(
                    &mut encoder,
                    "clavis_change_listener_connected",
                    "1 while the change listener (other nodes' writes) is connected, else 0",
                    None,
                    i64::from(listener.connected),
                )?;
                if let Some(age) = listener.last_notification_age {
                    gauge(
                        &mut encoder,
                        "clavis_change_listener_last_notification_age",
                        "Seconds since the change listener last received a notification (its own heartbeat every 10 s included)",
                        Some(&Unit::Seconds),
                        age.as_secs_f64(),
                    )?;
                }
            }
        }
        process(&mut encoder)
    }
}

/// What the store reports of its connections (PostgreSQL).
#[derive(Debug, Clone, Copy)]
pub struct StoreGauges {
    /// Connections open in the pool.
    pub pool_size: u32,
    /// Of which idle.
    pub pool_idle: usize,
    /// The pool's maximum.
    pub pool_max: u32,
    /// The change listener, when one runs.
    pub listener: Option<ListenerGauges>,
}

/// The change listener's state.
#[derive(Debug, Clone, Copy)]
pub struct ListenerGauges {
    /// Connected and listening.
    pub connected: bool,
    /// Since the last notification received, if any.
    pub last_notification_age: Option<Duration>,
}

/// The change listener's state, shared between its task and scrapes.
#[derive(Debug, Default)]
pub struct ListenerState {
    connected: std::sync::atomic::AtomicBool,
    /// Milliseconds since the Unix epoch; 0 = never.
    last_notification_ms: AtomicU64,
}

impl ListenerState {
    /// The listener connected (`true`) or lost its connection.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// A notification arrived now.
    pub fn notified(&self) {
        self.last_notification_ms
            .store(unix_millis(), Ordering::Relaxed);
    }

    /// Now, for a scrape.
    pub fn gauges(&self) -> ListenerGauges {
        let last = self.last_notification_ms.load(Ordering::Relaxed);
        ListenerGauges {
            connected: self.connected.load(Ordering::Relaxed),
            last_notification_age: (last > 0)
                .then(|| Duration::from_millis(unix_millis().saturating_sub(last))),
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The standard `process_*` series, from `/proc` (Linux; elsewhere none).
fn process(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(p) = ProcessStats::read() else {
        return Ok(());
    };
    let cpu = prometheus_client::metrics::counter::ConstCounter::new(p.cpu_seconds);
    cpu.encode(encoder.encode_descriptor(
        "process_cpu",
        "Total user and system CPU time spent in seconds",
        Some(&Unit::Seconds),
        cpu.metric_type(),
    )?)?;
    gauge(
        encoder,
        "process_resident_memory",
        "Resident memory size in bytes",
        Some(&Unit::Bytes),
        p.resident_bytes,
    )?;
    gauge(
        encoder,
        "process_open_fds",
        "Number of open file descriptors",
        None,
        p.open_fds,
    )?;
    gauge(
        encoder,
        "process_start_time",
        "Start time of the process since the Unix epoch in seconds",
        Some(&Unit::Seconds),
        p.start_time_seconds,
    )
}

struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    open_fds: u64,
    start_time_seconds: f64,
}

impl ProcessStats {
    /// `/proc/self/stat` (fields 14, 15, 22, 24), `/proc/stat` (btime) and `/proc/self/fd`.
    fn read() -> Option<Self> {
        const TICKS_PER_SECOND: f64 = 100.0; // USER_HZ, 100 on every Linux ABI
        const PAGE_SIZE: u64 = 4096;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state).
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let (utime, stime) = (field(14)?, field(15)?);
        let start_ticks = field(22)?;
        let rss_pages = field(24)?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Self {
            cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
            resident_bytes: rss_pages * PAGE_SIZE,
            open_fds,
            start_time_seconds: boot as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        })
    }
}

/// The text of a scrape.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::with_capacity(8192);
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The README's table of series states the expiry gauge's cap as the code has it, and
    /// has a row for the count beside it.
    #[test]
    fn the_readme_states_the_expiry_series_cap() {
        let readme = include_str!("../README.md");
        let row = |name: &str| {
            let found = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}`")));
            assert!(found.is_some(), "no README row for {name}");
            found.unwrap()
        };
        let gauge = row("clavis_client_credential_expires_in_seconds");
        let cap = EXPIRY_SERIES_MAX.to_string();
        let with_comma = format!(
            "{},{:03}",
            EXPIRY_SERIES_MAX / 1000,
            EXPIRY_SERIES_MAX % 1000
        );
        assert!(
            gauge.contains(&format!(" {cap} ")) || gauge.contains(&format!(" {with_comma} ")),
            "the README row does not state the cap {cap}: {gauge}"
        );
        row("clavis_clients_with_expiring_credentials");
    }

    #[test]
    fn outcomes_map_to_their_series() {
        assert_eq!(outcome_index(None), 0);
        assert_eq!(
            TOKEN_OUTCOMES[outcome_index(Some("access_denied"))],
            "access_denied"
        );
        assert_eq!(TOKEN_OUTCOMES[outcome_index(Some("whatever"))], "other");
        let m = Metrics::new();
        m.token(
            TokenMethod::PrivateKeyJwt,
            Some("invalid_client"),
            Duration::from_millis(3),
        );
        assert_eq!(
            m.token_count(TokenMethod::PrivateKeyJwt, Some("invalid_client")),
            1
        );
        assert_eq!(
            m.token_latency[TokenMethod::PrivateKeyJwt as usize].count(),
            1
        );
    }

    #[test]
    fn a_histogram_puts_each_observation_in_one_bucket() {
        let h = AtomicHistogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(10));
        h.observe(Duration::from_secs(3));
        let counts: Vec<u64> =
            h.0.counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
        assert_eq!(counts, [1, 2, 1]);
        assert_eq!(h.count(), 4);
    }

    /// The token path's cost of the instruments: `cargo test --release --lib
    /// metrics::tests::token_path_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand in release"]
    fn token_path_cost() {
        let m = Metrics::new();
        let n = 10_000_000u32;
        let started = std::time::Instant::now();
        for i in 0..n {
            let t = std::time::Instant::now();
            let error = (i % 7 == 0).then_some("invalid_client");
            m.token(TokenMethod::PrivateKeyJwt, error, t.elapsed());
        }
        let per = started.elapsed() / n;
        println!("Metrics::token with its two Instant reads: {per:?} per token request");
        assert!(per < Duration::from_micros(5));
    }

    #[test]
    fn process_stats_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            let p = ProcessStats::read().unwrap();
            assert!(p.resident_bytes > 0 && p.open_fds > 0 && p.start_time_seconds > 1e9);
        }
    }
}

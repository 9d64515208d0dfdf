//! Auth0-compatible rate limiting: token buckets (GCRA, `governor`) per client and per IP.
//!
//! - Management API: the client of a verified Bearer token; without one, the caller's IP.
//! - `POST /oauth/token` ([`TokenGate`]): a request is charged to a client's bucket only once
//!   it has authenticated as that client (so nobody can spend another client's budget by
//!   naming it); a request that does not authenticate is charged to its sender's address,
//!   and to the pair (the client id it named, that address), whose small budget bounds
//!   guessing one client's secret from one address without locking that client out
//!   anywhere else. An address or pair past its budget is refused before authentication.
//!   The token endpoint and the Management API have separate client buckets, as Auth0's
//!   Authentication and Management APIs do.
//! - Everything else except `/healthz` and `/readyz`: the caller's IP.
//!
//! Addresses are IPv4 addresses or IPv6 /64 prefixes (one host usually has a whole /64).
//!
//! Every limited response carries `x-ratelimit-limit` (the bucket size),
//! `x-ratelimit-remaining` and `x-ratelimit-reset` (Unix seconds at which the bucket is full
//! again — always near, because the SDKs sleep until it before retrying a 409 or a 5xx). A
//! refused request gets 429 with `retry-after` and Auth0's error body.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;
use crate::config::{HttpLimits, RateQuota};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// How often (in checked requests) idle buckets are dropped from memory.
const PRUNE_EVERY: u64 = 4096;

/// Failed authentications allowed for one client id from one address: this many at once,
/// then one more every [`PAIR_REFILL`] (Auth0's brute-force protection counts 10).
pub const PAIR_BURST: u32 = 10;
/// See [`PAIR_BURST`].
pub const PAIR_REFILL: Duration = Duration::from_secs(6);

/// Longest client id kept as a bucket key (longer ones are cut: they name no client).
const MAX_KEYED_ID: usize = 128;

/// Who is refused before authentication, until when.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Blocked {
    Address(IpAddr),
    Pair(Box<str>, IpAddr),
}

/// The rate limiters of one server.
pub struct RateLimits {
    management: Option<Keyed<String>>,
    token: Option<Keyed<String>>,
    ip: Option<Keyed<IpAddr>>,
    pair: Option<Keyed<(Box<str>, IpAddr)>>,
    blocked: Mutex<HashMap<Blocked, Instant>>,
    /// Whether `blocked` may hold anything: every token request asks, and without a block
    /// (the usual case) it is answered without the lock.
    any_blocked: AtomicBool,
    /// The address bucket's size (`x-ratelimit-limit` of a refusal before authentication).
    address_burst: u32,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_client", &self.management.is_some())
            .field("per_ip", &self.ip.is_some())
            .finish()
    }
}

fn quota(q: RateQuota) -> Option<Quota> {
    let rate = NonZeroU32::new(q.per_second)?;
    // A burst smaller than one second's worth would make the steady rate unreachable.
    let burst = NonZeroU32::new(q.burst.max(q.per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

fn keyed<K: std::hash::Hash + Eq + Clone>(q: RateQuota) -> Option<Keyed<K>> {
    quota(q).map(|q| RateLimiter::dashmap(q).with_middleware::<StateInformationMiddleware>())
}

/// What a bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allowed, or refused.
    pub allowed: bool,
    /// Bucket size (`x-ratelimit-limit`).
    pub limit: u32,
    /// Requests left right now (`x-ratelimit-remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`x-ratelimit-reset` = now + this).
    pub reset_after: Duration,
    /// Until the next request can pass (`retry-after`, refused requests only).
    pub retry_after: Duration,
}

/// Which bucket a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A client on the Management API.
    Management(String),
    /// A client at the token endpoint (authenticated).
    Token(String),
    /// An address (no known client).
    Ip(IpAddr),
}

impl RateLimits {
    /// Limiters for the configured quotas (a rate of 0 turns that limiter off).
    pub fn new(limits: &HttpLimits) -> Self {
        let pair = (limits.per_ip.per_second > 0)
            .then(|| {
                let burst = NonZeroU32::new(PAIR_BURST)?;
                Quota::with_period(PAIR_REFILL).map(|q| q.allow_burst(burst))
            })
            .flatten()
            .map(|q| RateLimiter::dashmap(q).with_middleware::<StateInformationMiddleware>());
        Self {
            management: keyed(limits.per_client),
            token: keyed(limits.per_client),
            ip: keyed(limits.per_ip),
            pair,
            blocked: Mutex::new(HashMap::new()),
            any_blocked: AtomicBool::new(false),
            address_burst: quota(limits.per_ip).map_or(0, |q| q.burst_size().get()),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Whether any limiter is on.
    pub fn enabled(&self) -> bool {
        self.management.is_some() || self.token.is_some() || self.ip.is_some()
    }

    /// Charges one request to `key`; `None` when that limiter is off.
    pub fn check(&self, key: &Key) -> Option<Decision> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        match key {
            Key::Management(client) => decide(self.management.as_ref()?, client, &self.clock),
            Key::Token(client) => decide(self.token.as_ref()?, client, &self.clock),
            Key::Ip(ip) => decide(self.ip.as_ref()?, ip, &self.clock),
        }
    }

    /// Forgets buckets that are full again (they behave exactly like fresh ones), and
    /// blocks that have ended.
    fn prune(&self) {
        let now = Instant::now();
        let mut blocks = self.blocks();
        blocks.retain(|_, until| *until > now);
        if blocks.is_empty() {
            self.any_blocked.store(false, Ordering::Relaxed);
        }
        drop(blocks);
        if let Some(l) = &self.pair {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.management {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.token {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

impl RateLimits {
    fn blocks(&self) -> std::sync::MutexGuard<'_, HashMap<Blocked, Instant>> {
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before authentication: the refusal of a sender that has spent its failure budget,
    /// or that budget for `named` (the client id the request names, which may not exist).
    fn refusal(&self, named: &str, ip: IpAddr) -> Option<Decision> {
        if !self.any_blocked.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        let blocks = self.blocks();
        let until = [
            blocks.get(&Blocked::Address(ip)),
            blocks.get(&Blocked::Pair(pair_id(named), ip)),
        ]
        .into_iter()
        .flatten()
        .filter(|until| **until > now)
        .max()?;
        let wait = until.saturating_duration_since(now);
        Some(Decision {
            allowed: false,
            limit: self.address_burst,
            remaining: 0,
            reset_after: wait,
            retry_after: wait,
        })
    }

    /// A request that did not authenticate: charged to its sender and to the pair (the
    /// client id it named, the sender). Either one whose budget is spent is blocked until
    /// the budget allows one more. The sender's decision labels the answer.
    fn failed(&self, named: &str, ip: IpAddr) -> Option<Decision> {
        let pair = pair_id(named);
        let mut newly_blocked = Vec::new();
        if let Some(pair_limiter) = &self.pair
            && let Some(wait) =
                decide(pair_limiter, &(pair.clone(), ip), &self.clock).and_then(|d| d.spent())
        {
            newly_blocked.push((Blocked::Pair(pair, ip), wait));
        }
        let decision = self.check(&Key::Ip(ip));
        if let Some(wait) = decision.and_then(|d| d.spent()) {
            newly_blocked.push((Blocked::Address(ip), wait));
        }
        if !newly_blocked.is_empty() {
            let now = Instant::now();
            let mut blocks = self.blocks();
            for (who, wait) in newly_blocked {
                tracing::info!(blocked = %who, seconds = wait.as_secs_f32(), "failed token requests: refusing before authentication");
                blocks.insert(who, now + wait);
            }
            self.any_blocked.store(true, Ordering::Relaxed);
        }
        decision
    }
}

impl std::fmt::Display for Blocked {
    // Both parts are sanitised: an address, and a client id cut and escaped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::Address(ip) => write!(f, "address {ip}"),
            Blocked::Pair(id, ip) => write!(f, "client id {:?} from address {ip}", id),
        }
    }
}

/// The client id part of a pair key (cut: a longer one names no client).
fn pair_id(named: &str) -> Box<str> {
    let mut end = named.len().min(MAX_KEYED_ID);
    while !named.is_char_boundary(end) {
        end -= 1;
    }
    named[..end].into()
}

/// The address a bucket is kept for: an IPv4 address, or an IPv6 /64 prefix (an IPv4
/// address mapped into IPv6 counts as itself).
pub fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn decide<K: std::hash::Hash + Eq + Clone>(
    limiter: &Keyed<K>,
    key: &K,
    clock: &DefaultClock,
) -> Option<Decision> {
    Some(match limiter.check_key(key) {
        Ok(snapshot) => {
            let quota = snapshot.quota();
            let limit = quota.burst_size().get();
            let remaining = snapshot.remaining_burst_capacity().min(limit);
            Decision {
                allowed: true,
                limit,
                remaining,
                reset_after: quota.replenish_interval() * (limit - remaining),
                retry_after: Duration::ZERO,
            }
        }
        Err(not_until) => {
            let quota = not_until.quota();
            let limit = quota.burst_size().get();
            let wait = not_until.wait_time_from(clock.now());
            Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after: wait + quota.replenish_interval() * (limit - 1),
                retry_after: wait,
            }
        }
    })
}

/// Whole seconds, rounded up.
fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Decision {
    /// When the bucket is now empty: how long until it allows one more request.
    fn spent(&self) -> Option<Duration> {
        if !self.allowed {
            Some(self.retry_after)
        } else if self.remaining == 0 {
            // Just took the last one: the next comes after one replenish interval.
            Some(self.reset_after / self.limit.max(1))
        } else {
            None
        }
    }

    /// `x-ratelimit-reset`: the Unix second at which the bucket is full again (rounded up).
    pub fn reset_at(&self, now: SystemTime) -> u64 {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        ceil_seconds(now + self.reset_after)
    }

    /// Adds the `x-ratelimit-*` headers (and `retry-after` when refused).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: u64| {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        };
        set("x-ratelimit-limit", u64::from(self.limit));
        set("x-ratelimit-remaining", u64::from(self.remaining));
        set("x-ratelimit-reset", self.reset_at(SystemTime::now()));
        if !self.allowed {
            // At least 1: the SDKs ignore `retry-after: 0`.
            set("retry-after", ceil_seconds(self.retry_after).max(1));
        }
    }
}

/// The caller's IP address (unspecified when the listener did not record it).
fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The 429 answer of the Management API and every other path (Auth0's body; the token
/// endpoint answers its own, see [`TokenGate`]).
fn too_many_requests() -> Response {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        Some("too_many_requests"),
        "Global limit has been reached",
    )
    .into_response()
}

/// State of the rate-limiting middleware.
#[derive(Clone, Debug)]
pub struct Limiting {
    /// The application (to verify tokens).
    pub app: AppState,
    /// The buckets.
    pub limits: Arc<RateLimits>,
}

/// The middleware: picks the bucket, refuses with 429 or runs the request, and labels the
/// response. The token endpoint is charged by its handler, through the [`TokenGate`] put
/// into the request's extensions, once it knows whether the request authenticated.
pub async fn enforce(State(state): State<Limiting>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" || !state.limits.enabled() {
        return next.run(req).await;
    }
    let ip = bucket_address(peer_ip(&req));
    if path == "/oauth/token" {
        req.extensions_mut().insert(TokenGate {
            limits: state.limits.clone(),
            ip,
        });
        return next.run(req).await;
    }
    let key = if path.starts_with("/api/v2/") {
        match bearer(req.headers()).and_then(|t| state.app.verify_management_token(t).ok()) {
            Some(caller) => {
                let key = Key::Management(caller.client_id.clone());
                // The handler's `Auth` takes it from here instead of verifying again.
                req.extensions_mut().insert(caller);
                key
            }
            None => Key::Ip(ip),
        }
    } else {
        Key::Ip(ip)
    };
    let Some(decision) = state.limits.check(&key) else {
        return next.run(req).await;
    };
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        state.app.metrics.rate_limited(match &key {
            Key::Management(_) => crate::metrics::Bucket::ManagementClient,
            Key::Token(_) => crate::metrics::Bucket::TokenClient,
            Key::Ip(_) => crate::metrics::Bucket::Address,
        });
        let origin = super::audit::origin(&req);
        let (client_id, bucket) = match &key {
            Key::Management(id) => (Some(id.as_str()), "management client"),
            Key::Token(id) => (Some(id.as_str()), "token client"),
            Key::Ip(_) => (None, "ip"),
        };
        super::audit::rate_limited(
            &state.app,
            &origin,
            (req.method().as_str(), req.uri().path()),
            client_id,
            bucket,
            decision.limit,
        );
        tracing::info!(
            bucket = match &key {
                Key::Management(_) => "management client",
                Key::Token(_) => "token client",
                Key::Ip(_) => "ip",
            },
            path = %req.uri().path(),
            "rate limit reached"
        );
        too_many_requests()
    };
    decision.apply(response.headers_mut());
    response
}

/// The token endpoint's rate limits for one request (see the module documentation). The
/// handler asks, in this order: [`refusal`](Self::refusal) before authenticating;
/// [`admit`](Self::admit) once the client has authenticated; or
/// [`failed`](Self::failed) when it did not.
#[derive(Clone, Debug)]
pub struct TokenGate {
    limits: Arc<RateLimits>,
    ip: IpAddr,
}

impl TokenGate {
    /// Before authentication: a refusal when the sender, or the sender for the client id
    /// the request names (known or not, alike), has spent its failure budget.
    pub fn refusal(&self, named: &str) -> Option<Decision> {
        self.limits.refusal(named, self.ip)
    }

    /// Once the request has authenticated as `client_id`: charges that client's bucket.
    pub fn admit(&self, client_id: &str) -> Option<Decision> {
        let decision = self.limits.check(&Key::Token(client_id.to_string()))?;
        if !decision.allowed {
            tracing::info!(bucket = "token client", client_id, "rate limit reached");
        }
        Some(decision)
    }

    /// The request did not authenticate: charges its sender, and the pair (the client id
    /// it named, the sender).
    pub fn failed(&self, named: &str) -> Option<Decision> {
        self.limits.failed(named, self.ip)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits(per_second: u32, burst: u32) -> RateLimits {
        let q = RateQuota { per_second, burst };
        RateLimits::new(&HttpLimits {
            per_client: q,
            per_ip: q,
            ..HttpLimits::default()
        })
    }

    #[test]
    fn bucket_counts_down_then_refuses_with_a_near_reset() {
        let l = limits(1, 3);
        let key = Key::Management("c".into());
        let first = l.check(&key).unwrap();
        assert!(first.allowed);
        assert_eq!((first.limit, first.remaining), (3, 2));
        assert!(l.check(&key).unwrap().allowed);
        assert!(l.check(&key).unwrap().allowed);
        let refused = l.check(&key).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert!(refused.reset_after <= Duration::from_secs(3));
        // Another client and the token endpoint have their own buckets.
        assert!(l.check(&Key::Management("d".into())).unwrap().allowed);
        assert!(l.check(&Key::Token("c".into())).unwrap().allowed);
    }

    #[test]
    fn headers_are_epoch_seconds_in_the_near_future() {
        let l = limits(50, 100);
        let d = l.check(&Key::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))).unwrap();
        let mut h = HeaderMap::new();
        d.apply(&mut h);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset >= now && reset <= now + 3, "reset {reset} now {now}");
        assert_eq!(h["x-ratelimit-limit"], "100");
        assert_eq!(h["x-ratelimit-remaining"], "99");
        assert!(h.get("retry-after").is_none());
    }

    #[test]
    fn refused_request_carries_retry_after_of_at_least_one_second() {
        let l = limits(1, 1);
        let key = Key::Token("c".into());
        assert!(l.check(&key).unwrap().allowed);
        let d = l.check(&key).unwrap();
        let mut h = HeaderMap::new();
        d.apply(&mut h);
        assert_eq!(h["retry-after"], "1");
    }

    #[test]
    fn failures_block_the_pair_then_the_address_and_nothing_else() {
        let l = limits(1, 20);
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        );
        for _ in 0..PAIR_BURST {
            assert!(l.refusal("victim", a).is_none());
            assert!(l.failed("victim", a).unwrap().allowed);
        }
        let refused = l.refusal("victim", a).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 20);
        assert!(refused.retry_after <= PAIR_REFILL);
        // Another address naming the same client, and the same address naming another.
        assert!(l.refusal("victim", b).is_none());
        assert!(l.refusal("other", a).is_none());
        // The address's own budget (burst 20) runs out too.
        for _ in PAIR_BURST..20 {
            l.failed("other", a);
        }
        assert!(l.refusal("anyone", a).is_some());
        assert!(l.refusal("anyone", b).is_none());
        // No client bucket was touched.
        assert_eq!(l.check(&Key::Token("victim".into())).unwrap().remaining, 19);
    }

    #[test]
    fn ipv6_addresses_share_a_bucket_per_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_address(one), bucket_address(two));
        assert_ne!(bucket_address(one), bucket_address(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            bucket_address(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn zero_rate_turns_the_limit_off() {
        let l = limits(0, 10);
        assert!(!l.enabled());
        assert!(l.check(&Key::Management("c".into())).is_none());
    }
}

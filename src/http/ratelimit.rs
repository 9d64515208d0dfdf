//! Auth0-compatible rate limiting: token buckets (GCRA, `governor`) per client and per IP.
//!
//! - Management API: the client of a verified Bearer token; without one, the caller's IP.
//! - `POST /oauth/token`: the client the request names (`client_id` in the body or the
//!   Basic user), when that client exists; otherwise the caller's IP. The token endpoint
//!   and the Management API have separate buckets, as Auth0's Authentication and
//!   Management APIs do.
//! - Everything else except `/healthz` and `/readyz`: the caller's IP.
//!
//! Every limited response carries `x-ratelimit-limit` (the bucket size),
//! `x-ratelimit-remaining` and `x-ratelimit-reset` (Unix seconds at which the bucket is full
//! again — always near, because the SDKs sleep until it before retrying a 409 or a 5xx). A
//! refused request gets 429 with `retry-after` and Auth0's error body.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
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
use super::extract::{MAX_BODY_BYTES, is_form};
use super::json_response;
use crate::config::{HttpLimits, RateQuota};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// How often (in checked requests) idle buckets are dropped from memory.
const PRUNE_EVERY: u64 = 4096;

/// The rate limiters of one server.
pub struct RateLimits {
    management: Option<Keyed<String>>,
    token: Option<Keyed<String>>,
    ip: Option<Keyed<IpAddr>>,
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
    /// A client at the token endpoint.
    Token(String),
    /// An IP address (no known client).
    Ip(IpAddr),
}

impl RateLimits {
    /// Limiters for the configured quotas (a rate of 0 turns that limiter off).
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            management: keyed(limits.per_client),
            token: keyed(limits.per_client),
            ip: keyed(limits.per_ip),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
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

    /// Forgets buckets that are full again (they behave exactly like fresh ones).
    fn prune(&self) {
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

/// The 429 answer: Auth0's Management API body, or an OAuth error body at the token
/// endpoint.
fn too_many_requests(token_endpoint: bool) -> Response {
    const MESSAGE: &str = "Global limit has been reached";
    if token_endpoint {
        let mut response = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "too_many_requests", "error_description": MESSAGE}),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    } else {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Some("too_many_requests"),
            MESSAGE,
        )
        .into_response()
    }
}

/// State of the rate-limiting middleware.
#[derive(Clone, Debug)]
pub struct Limiting {
    /// The application (to verify tokens and look clients up).
    pub app: AppState,
    /// The buckets.
    pub limits: Arc<RateLimits>,
}

/// The middleware: picks the bucket, refuses with 429 or runs the request, and labels the
/// response. Expects a buffered body (see `http::hardening`) when it reads one.
pub async fn enforce(State(state): State<Limiting>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let ip = peer_ip(&req);
    let token_endpoint = path == "/oauth/token";
    let (key, req) = if token_endpoint {
        token_key(&state, req, ip).await
    } else if path.starts_with("/api/v2/") {
        let key = bearer(req.headers())
            .and_then(|t| state.app.verify_management_token(t).ok())
            .map_or(Key::Ip(ip), |caller| Key::Management(caller.client_id));
        (key, req)
    } else {
        (Key::Ip(ip), req)
    };
    let Some(decision) = state.limits.check(&key) else {
        return next.run(req).await;
    };
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        tracing::info!(
            bucket = match &key {
                Key::Management(_) => "management client",
                Key::Token(_) => "token client",
                Key::Ip(_) => "ip",
            },
            path = %req.uri().path(),
            "rate limit reached"
        );
        too_many_requests(token_endpoint)
    };
    decision.apply(response.headers_mut());
    response
}

/// The bucket of a token request: the client it names, if that client exists.
async fn token_key(state: &Limiting, req: Request, ip: IpAddr) -> (Key, Request) {
    let form = is_form(&req);
    let (parts, body) = req.into_parts();
    // The body was buffered (and capped) by the hardening layer; this only collects it.
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(b) => b,
        // Unreadable: the handler will refuse the empty body.
        Err(_) => return (Key::Ip(ip), Request::from_parts(parts, Body::empty())),
    };
    let key = super::oauth::parse_token_body(&parts.headers, &bytes, form)
        .ok()
        .and_then(|r| r.client_id.or(r.basic.map(|(id, _)| id)))
        .filter(|id| state.app.model.client(id).is_some())
        .map_or(Key::Ip(ip), Key::Token);
    (key, Request::from_parts(parts, Body::from(bytes)))
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
    fn zero_rate_turns_the_limit_off() {
        let l = limits(0, 10);
        assert!(l.check(&Key::Management("c".into())).is_none());
    }
}

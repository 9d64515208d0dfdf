//! What the listener does for every request before any handler sees it:
//!
//! - the body is read in full (up to one byte past [`MAX_BODY_BYTES`], so the handlers still
//!   answer an oversized body their own way) within the request timeout: a client that
//!   trickles its body gets 408 instead of holding a task forever;
//! - the handler runs on its own task, so a client that disconnects mid-request cannot
//!   cancel a write between its commit and the read-model update that follows it (which
//!   would leave the token endpoint acting on stale credentials until a restart); a panic
//!   there becomes a logged 500 instead of a dropped connection;
//! - security headers: `strict-transport-security` when serving HTTPS,
//!   `x-content-type-options: nosniff`, and `cache-control: no-store` on Management API
//!   answers (they can carry client secrets);
//! - a connection is closed once idle (no request in flight) for the idle timeout, whatever
//!   the client sends meanwhile (HTTP/2 PINGs), and asked to close (GOAWAY) at its maximum
//!   age; connections beyond the configured bound close the longest-idle connection and
//!   wait for its slot ([`ConnectionLimit`]);
//! - HTTP/1 and HTTP/2 header sizes and counts are capped ([`tune_http`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum_server::ConnectionShutdown;
use futures_util::task::AtomicWaker;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::AppState;
use super::error::ApiError;
use super::extract::MAX_BODY_BYTES;
use super::ratelimit::{Limiting, RateLimits};
use crate::config::HttpLimits;

/// Largest request head (request line plus headers) accepted over HTTP/1, in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 64;
/// Most concurrent HTTP/2 streams on one connection.
pub const MAX_STREAMS: u32 = 64;

/// Settings of the per-request middleware.
#[derive(Clone, Copy, Debug)]
struct Hardening {
    request_timeout: Duration,
    https: bool,
}

/// Wraps the application's router in the rate limiter and the hardening middleware.
pub fn wrap(router: Router, app: AppState, limits: &HttpLimits, https: bool) -> Router {
    let limiting = Limiting {
        app,
        limits: Arc::new(RateLimits::new(limits)),
    };
    router
        .layer(middleware::from_fn_with_state(
            limiting,
            super::ratelimit::enforce,
        ))
        .layer(middleware::from_fn_with_state(
            Hardening {
                request_timeout: limits.request_timeout,
                https,
            },
            harden,
        ))
}

async fn harden(State(settings): State<Hardening>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let management = path.starts_with("/api/v2/");
    let token_endpoint = path == "/oauth/token";
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(settings.request_timeout, buffer(body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(())) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The request body could not be read",
                token_endpoint,
            );
        }
        Err(_) => {
            return refuse(StatusCode::REQUEST_TIMEOUT, BODY_TIMEOUT, token_endpoint);
        }
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    let mut response = match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            ApiError::internal().into_response()
        }
    };
    let headers = response.headers_mut();
    if settings.https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if management && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A request refused before routing: Auth0's Management API error body, or an OAuth error
/// at the token endpoint.
/// The answer (408) to a body that does not arrive within the request timeout.
pub const BODY_TIMEOUT: &str = "The request body did not arrive in time";

fn refuse(status: StatusCode, message: &str, token_endpoint: bool) -> Response {
    if token_endpoint {
        super::json_response(
            status,
            &super::oauth::OAuthErrorBody {
                error: crate::service::token::OAuthErrorKind::InvalidRequest.code(),
                error_description: message,
            },
        )
    } else {
        ApiError::new(status, None, message).into_response()
    }
}

/// Most bytes of an oversized body read (and dropped) before answering 413: clients that
/// only read the answer once they have sent their whole body (most do) get the 413 instead
/// of a reset connection. Anything larger is cut off.
pub const MAX_DRAIN_BYTES: usize = 1024 * 1024;

/// Reads the body, keeping at most one byte past the cap (the handler then refuses it as
/// too large) and dropping the rest up to [`MAX_DRAIN_BYTES`].
async fn buffer(mut body: Body) -> Result<Bytes, ()> {
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            let room = (MAX_BODY_BYTES + 1).saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if seen > MAX_DRAIN_BYTES {
                break;
            }
        }
    }
    Ok(Bytes::from(out))
}

/// Caps header sizes and counts and bounds the time to receive a request head.
pub fn tune_http(builder: &mut Builder<TokioExecutor>, limits: &HttpLimits) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
}

/// A connection idle for less than this is never evicted: a busy client between two requests
/// keeps its connection.
const EVICT_MIN_IDLE: Duration = Duration::from_secs(1);
/// How often a connection waiting for a slot looks again for one to evict, when every
/// connection has a request in flight.
const EVICT_RETRY: Duration = Duration::from_millis(250);
/// How long an idle connection asked to close gracefully (HTTP/2: GOAWAY, then a PING
/// round trip) may take to close itself before its reads end.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Longest lifetime the timers handle (longer settings mean "never", in practice).
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// An `axum_server` acceptor that holds one of `max_connections` slots for each connection
/// it accepts, and releases it when the connection has been idle (no request in flight) for
/// the idle timeout or has reached its maximum age. A connection that finds no free slot
/// closes the connection idle the longest (for at least [`EVICT_MIN_IDLE`]) and waits for
/// its slot, up to the request timeout; it is closed if none frees by then.
///
/// Every connection is tracked twice: its stream ([`Counted`]) ends its reads once the
/// connection must close, and its service ([`Tracked`]) counts the requests in flight,
/// notes when the last one ended, and keeps the connection's [`ConnectionShutdown`] to ask
/// for a graceful close (HTTP/2 GOAWAY). A connection still in its TLS handshake or that
/// never sent a request is idle since it opened.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    limiter: Arc<Limiter>,
}

#[derive(Debug)]
struct Limiter {
    slots: Arc<Semaphore>,
    /// Longest wait for a slot.
    wait: Duration,
    lifetimes: Lifetimes,
    /// Milliseconds a connection must have been idle to be evicted.
    evict_min_idle: u64,
    /// Time zero of every connection's clock.
    epoch: Instant,
    next_id: AtomicU64,
    /// The connections holding a slot, by id.
    live: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl ConnectionLimit {
    /// A bound of `limits.max_connections`, with `limits`' idle timeout and maximum age.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            limiter: Arc::new(Limiter {
                slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
                wait: limits.request_timeout,
                lifetimes: Lifetimes::new(limits),
                evict_min_idle: millis(EVICT_MIN_IDLE),
                epoch: Instant::now(),
                next_id: AtomicU64::new(0),
                live: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for ConnectionLimit
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Counted<I>;
    type Service = Tracked<S>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Counted<I>, Tracked<S>)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let Some(slot) = limiter.acquire().await else {
                tracing::warn!("connection limit reached: closing a waiting connection");
                return Err(io::Error::other("connection limit reached"));
            };
            let conn = limiter.register();
            let now = conn.now();
            let first = match verdict(&conn.observe(now), &limiter.lifetimes) {
                Verdict::WaitUntil(at) => at,
                Verdict::Close(_) | Verdict::Eof => now,
            };
            let sleep = Box::pin(tokio::time::sleep_until(limiter.at(first)));
            Ok((
                Counted {
                    inner: stream,
                    conn: conn.clone(),
                    limiter,
                    sleep,
                    _slot: slot,
                },
                Tracked {
                    inner: service,
                    conn,
                },
            ))
        })
    }
}

/// What [`Limiter::evict_idlest`] did.
#[derive(Debug, PartialEq, Eq)]
enum Eviction {
    /// Asked the longest-idle connection to close.
    Closed,
    /// The longest-idle connection may be evicted from this time (milliseconds) on.
    NotBefore(u64),
    /// Every connection has a request in flight or is already closing.
    NoneIdle,
}

impl Limiter {
    /// A free slot, after evicting an idle connection if there is none; `None` if none
    /// frees within the wait.
    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(self.wait).unwrap_or(now + LONGEST);
        let slot = self.slots.clone().acquire_owned();
        tokio::pin!(slot);
        let mut evicted = false;
        loop {
            let retry = if evicted {
                deadline
            } else {
                match self.evict_idlest() {
                    Eviction::Closed => {
                        evicted = true;
                        deadline
                    }
                    Eviction::NotBefore(at) => self.at(at).min(deadline),
                    Eviction::NoneIdle => (tokio::time::Instant::now() + EVICT_RETRY).min(deadline),
                }
            };
            tokio::select! {
                slot = &mut slot => return slot.ok(),
                () = tokio::time::sleep_until(retry) => {
                    if retry >= deadline {
                        return None;
                    }
                }
            }
        }
    }

    /// Asks the connection idle the longest to close, if it has been idle long enough.
    fn evict_idlest(&self) -> Eviction {
        let now = millis(self.epoch.elapsed());
        let idlest = {
            let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
            let mut idlest: Option<(&Arc<Conn>, u64)> = None;
            for conn in live.values() {
                if conn.closing.load(Ordering::SeqCst) != 0
                    || conn.in_flight.load(Ordering::SeqCst) != 0
                {
                    continue;
                }
                let since = conn.last_active.load(Ordering::SeqCst);
                if idlest.is_none_or(|(_, idle_since)| since < idle_since) {
                    idlest = Some((conn, since));
                }
            }
            idlest.map(|(conn, since)| (conn.clone(), since))
        };
        match idlest {
            None => Eviction::NoneIdle,
            Some((_, since)) if now < since.saturating_add(self.evict_min_idle) => {
                Eviction::NotBefore(since.saturating_add(self.evict_min_idle))
            }
            Some((conn, since)) => {
                if conn.start_closing(now) {
                    tracing::debug!(
                        idle_ms = now.saturating_sub(since),
                        "connection limit reached: closing the longest-idle connection"
                    );
                }
                Eviction::Closed
            }
        }
    }

    /// Adds a connection opening now.
    fn register(&self) -> Arc<Conn> {
        let now = millis(self.epoch.elapsed());
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            epoch: self.epoch,
            opened: now,
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(now),
            closing: AtomicU64::new(0),
            shutdown: OnceLock::new(),
            waker: AtomicWaker::new(),
        });
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(conn.id, conn.clone());
        conn
    }

    /// The instant `at` milliseconds after the epoch.
    fn at(&self, at: u64) -> tokio::time::Instant {
        let epoch = tokio::time::Instant::from_std(self.epoch);
        epoch
            .checked_add(Duration::from_millis(at))
            .unwrap_or_else(|| tokio::time::Instant::now() + LONGEST)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The state of one connection, shared by its stream, its service, the guards of its
/// requests in flight and the limiter's registry. Times are milliseconds since the epoch.
#[derive(Debug)]
struct Conn {
    id: u64,
    epoch: Instant,
    opened: u64,
    in_flight: AtomicUsize,
    /// When the last request ended (when the connection opened, before any).
    last_active: AtomicU64,
    /// 0 while open; when asked to close, that time plus one.
    closing: AtomicU64,
    /// The handle of the first request's extensions, for a graceful close.
    shutdown: OnceLock<ConnectionShutdown>,
    /// The task reading the connection, woken when it must close.
    waker: AtomicWaker,
}

impl Conn {
    fn now(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn observe(&self, now: u64) -> Observed {
        let closing = self.closing.load(Ordering::SeqCst);
        Observed {
            now,
            opened: self.opened,
            last_active: self.last_active.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst) != 0,
            closing_since: closing.checked_sub(1),
            graceful: self.shutdown.get().is_some(),
        }
    }

    /// Marks the connection closing (once; true the first time), asks for a graceful close
    /// and wakes its reader.
    fn start_closing(&self, now: u64) -> bool {
        let first = self
            .closing
            .compare_exchange(0, now.saturating_add(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if first {
            if let Some(shutdown) = self.shutdown.get() {
                shutdown.graceful_shutdown();
            }
            self.waker.wake();
        }
        first
    }
}

/// The connection lifetimes, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Lifetimes {
    /// Longest time with no request in flight.
    idle: u64,
    /// Age from which the connection is asked to close.
    max_age: u64,
    /// Once closing, time left to requests in flight before the reads end anyway.
    drain: u64,
    /// Once closing with nothing in flight, time left to a graceful close before the
    /// reads end (without a graceful close handle, none).
    grace: u64,
}

impl Lifetimes {
    fn new(limits: &HttpLimits) -> Self {
        let bounded = |d: Duration| millis(d.min(LONGEST));
        Self {
            idle: bounded(limits.idle_timeout),
            max_age: bounded(limits.max_connection_age),
            drain: bounded(limits.request_timeout),
            grace: millis(CLOSE_GRACE),
        }
    }
}

/// A connection's state at one moment (milliseconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Observed {
    now: u64,
    opened: u64,
    last_active: u64,
    in_flight: bool,
    closing_since: Option<u64>,
    /// A graceful close was (or can be) asked through the connection's handle.
    graceful: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Idle,
    Age,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing to do before this time.
    WaitUntil(u64),
    /// Ask the connection to close.
    Close(Why),
    /// End the connection: its reads end (EOF), a stalled write fails.
    Eof,
}

/// What a connection must do now, and otherwise when to look again.
fn verdict(o: &Observed, l: &Lifetimes) -> Verdict {
    if let Some(since) = o.closing_since {
        let drained = since.saturating_add(l.drain);
        if o.now >= drained {
            return Verdict::Eof;
        }
        if o.in_flight {
            // The end of the last request wakes the reader.
            return Verdict::WaitUntil(drained);
        }
        // Without a handle no request was ever made: nothing to finish. With one, hyper
        // closes the connection itself (HTTP/2: GOAWAY, a PING round trip, the last frames
        // written); the reads end only if it has not within the grace.
        let closed = if o.graceful {
            since.max(o.last_active).saturating_add(l.grace)
        } else {
            since
        };
        return if o.now >= closed {
            Verdict::Eof
        } else {
            Verdict::WaitUntil(closed)
        };
    }
    let old = o.opened.saturating_add(l.max_age);
    if o.now >= old {
        return Verdict::Close(Why::Age);
    }
    let idle = if o.in_flight {
        // Looked at again after a full idle timeout: the timer is not moved on every request.
        o.now.saturating_add(l.idle)
    } else {
        let idle = o.last_active.saturating_add(l.idle);
        if o.now >= idle {
            return Verdict::Close(Why::Idle);
        }
        idle
    };
    Verdict::WaitUntil(old.min(idle))
}

/// A connection holding its slot until it is dropped; its reads end (EOF) once it must
/// close.
#[derive(Debug)]
pub struct Counted<I> {
    inner: I,
    conn: Arc<Conn>,
    limiter: Arc<Limiter>,
    /// Armed at the next deadline: the idle timeout, the maximum age, the end of a close.
    sleep: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<I> Counted<I> {
    /// Looks at the deadlines (every time while closing, otherwise when the timer fires),
    /// arming the timer for the next; true when the connection must end.
    fn must_end(&mut self, cx: &mut Context<'_>) -> bool {
        if self.conn.closing.load(Ordering::SeqCst) == 0
            && self.sleep.as_mut().poll(cx).is_pending()
        {
            return false;
        }
        for _ in 0..4 {
            let now = self.conn.now();
            match verdict(&self.conn.observe(now), &self.limiter.lifetimes) {
                Verdict::Eof => return true,
                Verdict::Close(why) => {
                    if self.conn.start_closing(now) {
                        match why {
                            Why::Idle => tracing::debug!("closing an idle connection"),
                            Why::Age => {
                                tracing::debug!("closing a connection at its maximum age");
                            }
                        }
                    }
                }
                Verdict::WaitUntil(at) => {
                    let at = self.limiter.at(at);
                    if self.sleep.deadline() != at {
                        self.sleep.as_mut().reset(at);
                    }
                    if self.sleep.as_mut().poll(cx).is_pending() {
                        return false;
                    }
                }
            }
        }
        // The timer keeps firing early: look again on the next poll.
        cx.waker().wake_by_ref();
        false
    }

    /// A write that cannot go on (the client does not read): it fails once the connection
    /// must end, so a client that stops reading in the middle of a response cannot hold its
    /// slot past the maximum age and the drain time (a response unsent is a request in
    /// flight: the idle timeout does not apply).
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.conn.waker.register(cx.waker());
        if self.must_end(cx) {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection closed: idle or too old",
            )))
        } else {
            Poll::Pending
        }
    }
}

impl<I> Drop for Counted<I> {
    fn drop(&mut self) {
        self.limiter
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.conn.id);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.conn.closing.load(Ordering::Relaxed) != 0 && this.must_end(cx) {
            return Poll::Ready(Ok(()));
        }
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if read.is_ready() {
            return read;
        }
        // Nothing to read: wake up at the next deadline, or when the limiter evicts it.
        this.conn.waker.register(cx.waker());
        if this.must_end(cx) {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.stalled(cx),
            ready => ready,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.stalled(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.stalled(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service: counts its requests in flight (until the response body is
/// done) and keeps its [`ConnectionShutdown`] handle.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for Tracked<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>>,
{
    type Response = axum::http::Response<TrackedBody<RB>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let conn = &self.conn;
        if conn.shutdown.get().is_none()
            && let Some(shutdown) = req.extensions().get::<ConnectionShutdown>()
            && conn.shutdown.set(shutdown.clone()).is_ok()
            && conn.closing.load(Ordering::SeqCst) != 0
        {
            shutdown.graceful_shutdown();
        }
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        TrackedFuture {
            inner: self.inner.call(req),
            guard: Some(InFlight(conn.clone())),
        }
    }
}

/// One request in flight on a connection, until dropped.
#[derive(Debug)]
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.last_active.fetch_max(conn.now(), Ordering::SeqCst);
        if conn.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && conn.closing.load(Ordering::SeqCst) != 0
        {
            conn.waker.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`Tracked`] service.
    #[derive(Debug)]
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, RB, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<axum::http::Response<RB>, E>>,
{
    type Output = Result<axum::http::Response<TrackedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(result.map(|response| response.map(|inner| TrackedBody { inner, guard })))
    }
}

pin_project_lite::pin_project! {
    /// A response body whose request stays in flight until it is dropped.
    #[derive(Debug)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B: HttpBody> HttpBody for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::convert::Infallible;

    use axum::http::{Request as HttpRequest, Response as HttpResponse};
    use axum_server::accept::Accept;
    use tokio::io::DuplexStream;
    use tower::Service;

    use super::*;

    const L: Lifetimes = Lifetimes {
        idle: 60_000,
        max_age: 3_600_000,
        drain: 30_000,
        grace: 500,
    };

    /// Opened at 1 s, no request yet, observed at `now`.
    fn open(now: u64) -> Observed {
        Observed {
            now,
            opened: 1_000,
            last_active: 1_000,
            in_flight: false,
            closing_since: None,
            graceful: false,
        }
    }

    #[test]
    fn idle_timeout_and_maximum_age() {
        assert_eq!(verdict(&open(1_000), &L), Verdict::WaitUntil(61_000));
        // Idle since it opened (whatever it sent meanwhile: only requests count).
        assert_eq!(verdict(&open(61_000), &L), Verdict::Close(Why::Idle));
        let used = Observed {
            last_active: 50_000,
            ..open(61_000)
        };
        assert_eq!(verdict(&used, &L), Verdict::WaitUntil(110_000));
        // In flight it is never idle; the timer looks again an idle timeout later.
        let busy = Observed {
            in_flight: true,
            ..open(200_000)
        };
        assert_eq!(verdict(&busy, &L), Verdict::WaitUntil(260_000));
        // Near the end of its life the maximum age comes first, in flight or not.
        let near = Observed {
            last_active: 3_590_000,
            ..open(3_595_000)
        };
        assert_eq!(verdict(&near, &L), Verdict::WaitUntil(3_601_000));
        let old = Observed {
            in_flight: true,
            ..open(3_601_000)
        };
        assert_eq!(verdict(&old, &L), Verdict::Close(Why::Age));
    }

    #[test]
    fn closing() {
        let closing = Observed {
            closing_since: Some(10_000),
            ..open(10_000)
        };
        // No handle for a graceful close (no request yet, or in the TLS handshake): at once.
        assert_eq!(verdict(&closing, &L), Verdict::Eof);
        // After a GOAWAY, hyper has the grace to close it itself.
        let graceful = Observed {
            graceful: true,
            ..closing
        };
        assert_eq!(verdict(&graceful, &L), Verdict::WaitUntil(10_500));
        assert_eq!(
            verdict(
                &Observed {
                    now: 10_500,
                    ..graceful
                },
                &L
            ),
            Verdict::Eof
        );
        // A request that ended after the close was asked: the grace counts from its end.
        let late = Observed {
            now: 20_100,
            last_active: 20_000,
            ..graceful
        };
        assert_eq!(verdict(&late, &L), Verdict::WaitUntil(20_500));
        // Requests in flight finish first, up to the drain time.
        let busy = Observed {
            in_flight: true,
            ..graceful
        };
        assert_eq!(verdict(&busy, &L), Verdict::WaitUntil(40_000));
        assert_eq!(
            verdict(
                &Observed {
                    now: 40_000,
                    ..busy
                },
                &L
            ),
            Verdict::Eof
        );
    }

    #[tokio::test]
    async fn huge_lifetimes_mean_never() {
        let limit = ConnectionLimit::new(&HttpLimits {
            max_connections: 1,
            idle_timeout: Duration::from_secs(u64::MAX),
            max_connection_age: Duration::from_secs(u64::MAX),
            request_timeout: Duration::from_secs(u64::MAX),
            ..HttpLimits::default()
        });
        let limiter = &limit.limiter;
        let Verdict::WaitUntil(at) = verdict(&open(1_000), &limiter.lifetimes) else {
            panic!("closing at once");
        };
        assert!(limiter.at(at) > tokio::time::Instant::now() + Duration::from_secs(86_400));
        // A newcomer waits "for ever" for a slot.
        let (held, _) = limit
            .accept(tokio::io::duplex(64).0, service())
            .await
            .unwrap();
        let waiting = limit.accept(tokio::io::duplex(64).0, service());
        assert!(
            tokio::time::timeout(Duration::from_millis(100), waiting)
                .await
                .is_err()
        );
        drop(held);
    }

    type Svc = tower::util::ServiceFn<
        fn(HttpRequest<()>) -> std::future::Ready<Result<HttpResponse<String>, Infallible>>,
    >;

    fn service() -> Svc {
        tower::service_fn(|_| std::future::ready(Ok(HttpResponse::new(String::new()))))
    }

    fn limit(max: usize, wait_ms: u64, idle_ms: u64, age_ms: u64) -> ConnectionLimit {
        let mut limit = ConnectionLimit::new(&HttpLimits {
            max_connections: max,
            request_timeout: Duration::from_millis(wait_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            max_connection_age: Duration::from_millis(age_ms),
            ..HttpLimits::default()
        });
        Arc::get_mut(&mut limit.limiter).unwrap().evict_min_idle = 100;
        limit
    }

    type Accepted = (Counted<DuplexStream>, Tracked<Svc>, DuplexStream);

    async fn accept(limit: &ConnectionLimit) -> io::Result<Accepted> {
        let (server, client) = tokio::io::duplex(1024);
        let (stream, service) = limit.accept(server, service()).await?;
        Ok((stream, service, client))
    }

    /// Reads until EOF (or an error); how long that took.
    async fn read_to_end(mut stream: Counted<DuplexStream>) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            let mut read = ReadBuf::new(&mut buf);
            let result =
                std::future::poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut read)).await;
            if result.is_err() || read.filled().is_empty() {
                return started.elapsed();
            }
        }
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_whatever_it_sends() {
        let limit = limit(4, 1_000, 200, 60_000);
        let (stream, _service, mut client) = accept(&limit).await.unwrap();
        let pings = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if tokio::io::AsyncWriteExt::write_all(&mut client, b"p")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let took = read_to_end(stream).await;
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_millis(600),
            "{took:?}"
        );
        pings.abort();
        assert!(limit.limiter.live.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_request_in_flight_holds_the_connection_past_its_maximum_age() {
        let limit = limit(4, 5_000, 60_000, 100);
        let (stream, mut service, _client) = accept(&limit).await.unwrap();
        let request = service.call(HttpRequest::new(()));
        let reader = tokio::spawn(read_to_end(stream));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!reader.is_finished(), "closed with a request in flight");
        let response = request.await.unwrap();
        assert!(!reader.is_finished(), "closed with a response body unsent");
        let ended = Instant::now();
        drop(response);
        reader.await.unwrap();
        assert!(ended.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_after_the_maximum_age_and_drain() {
        let limit = limit(4, 200, 60_000, 100);
        let (mut stream, mut service, _client) = accept(&limit).await.unwrap();
        let _request = service.call(HttpRequest::new(()));
        let started = Instant::now();
        let chunk = [0u8; 256];
        let error = loop {
            match std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, &chunk)).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(800),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_new_connection_evicts_the_idlest_but_not_a_busy_one() {
        let limit = limit(1, 300, 60_000, 60_000);
        let (stream, mut service, _client) = accept(&limit).await.unwrap();
        let request = service.call(HttpRequest::new(()));
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Busy: the newcomer waits, then is refused.
        let started = Instant::now();
        assert!(accept(&limit).await.is_err());
        assert!(started.elapsed() >= Duration::from_millis(290));
        // Idle for 100 ms: evicted for the next newcomer.
        drop(request);
        let reader = tokio::spawn(read_to_end(stream));
        let started = Instant::now();
        let (_stream, _service, _client) = accept(&limit).await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(90) && waited < Duration::from_millis(290),
            "{waited:?}"
        );
        assert!(reader.is_finished());
        assert_eq!(limit.limiter.live.lock().unwrap().len(), 1);
    }
}

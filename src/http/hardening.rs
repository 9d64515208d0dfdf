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
//! - connections beyond the configured bound wait for a free slot ([`ConnectionLimit`]), and
//!   HTTP/1 and HTTP/2 header sizes and counts are capped ([`tune_http`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "The request body did not arrive in time",
                token_endpoint,
            );
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
fn refuse(status: StatusCode, message: &str, token_endpoint: bool) -> Response {
    if token_endpoint {
        super::json_response(
            status,
            &serde_json::json!({"error": "invalid_request", "error_description": message}),
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

/// An `axum_server` acceptor that holds one of `max_connections` slots for each connection
/// it accepts. A connection that finds no free slot waits for one, up to the request
/// timeout, and is then closed.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl ConnectionLimit {
    /// A bound of `limits.max_connections`.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            wait: limits.request_timeout,
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for ConnectionLimit
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Counted<I>;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Counted<I>, S)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let slots = self.slots.clone();
        let wait = self.wait;
        Box::pin(async move {
            match tokio::time::timeout(wait, slots.acquire_owned()).await {
                Ok(Ok(slot)) => Ok((
                    Counted {
                        inner: stream,
                        _slot: slot,
                    },
                    service,
                )),
                _ => {
                    tracing::warn!("connection limit reached: closing a waiting connection");
                    Err(io::Error::other("connection limit reached"))
                }
            }
        })
    }
}

/// A connection holding its slot until it is dropped.
#[derive(Debug)]
pub struct Counted<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

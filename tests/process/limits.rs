//! The listener's bounds, seen on the wire: a body that trickles in gets 408, a request head
//! over 64 KiB gets 431, an oversized body gets its refusal (not a reset connection), a
//! connection beyond the bound is served once the longest-idle connection is closed for it
//! (raw HTTP/1.1); idle HTTP/2 sessions that keep PINGing are closed after the idle timeout,
//! and evicted within a second or so when a new client finds every slot taken (HTTPS).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::server::Server;

fn server() -> Server {
    Server::with_env(&[
        ("CLAVIS_INSECURE_HTTP", "true"),
        ("CLAVIS_REQUEST_TIMEOUT_SECONDS", "1"),
        ("CLAVIS_MAX_CONNECTIONS", "2"),
    ])
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the peer closes or the read times out.
fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 12 {
                    // Enough to see the status line and headers; the rest may follow.
                    if String::from_utf8_lossy(&out).contains("content-length: 0")
                        || out.ends_with(b"}")
                    {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn limits_on_the_wire() {
    let server = server();

    // A body that stops half way: 408 once the request timeout passes.
    let mut s = connect(&server);
    s.write_all(b"POST /api/v2/clients HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\":")
        .unwrap();
    let answer = read_all(s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("The request body did not arrive in time"),
        "{answer}"
    );

    // A request head over 64 KiB.
    let mut s = connect(&server);
    let big = "a".repeat(70 * 1024);
    let _ =
        s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes());
    let answer = read_all(s);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A body over 64 KiB, sent whole: the client reads the refusal, not a reset.
    let mut s = connect(&server);
    let body = "x".repeat(200 * 1024);
    s.write_all(
        format!("POST /oauth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
    .unwrap();
    let answer = read_all(s);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Request body too large"), "{answer}");

    // Two connections that send nothing fill the bound: a third waits until the one open the
    // longest has been idle 1 s; that one is closed (it reads EOF) and the third is served.
    let mut idlest = connect(&server);
    sleep(Duration::from_millis(100));
    let other = connect(&server);
    sleep(Duration::from_millis(500));
    let mut third = connect(&server);
    let started = Instant::now();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let answer = read_all(third);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "served before a connection had been idle 1 s"
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        idlest.read(&mut buf).unwrap(),
        0,
        "the idlest was not closed"
    );
    drop(other);
}

/// Counts the connections a reqwest client opens (a layer on its connector).
#[derive(Clone, Default)]
struct CountConnects(Arc<AtomicUsize>);

impl CountConnects {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl<S> tower::Layer<S> for CountConnects {
    type Service = Counting<S>;

    fn layer(&self, inner: S) -> Counting<S> {
        Counting {
            inner,
            count: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Counting<S> {
    inner: S,
    count: Arc<AtomicUsize>,
}

impl<S: tower::Service<R>, R> tower::Service<R> for Counting<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.call(req)
    }
}

/// An HTTP/2 client (one connection, PINGs every `ping` even while idle) trusting the
/// server's local CA, and the count of connections it opened.
fn h2_client(server: &Server, ping: Duration) -> (reqwest::Client, CountConnects) {
    let ca = std::fs::read(server.ca_path()).unwrap();
    let connects = CountConnects::default();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .http2_prior_knowledge()
        .http2_keep_alive_interval(Some(ping))
        .http2_keep_alive_while_idle(true)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .connector_layer(connects.clone())
        .build()
        .unwrap();
    (client, connects)
}

async fn healthz(server: &Server, client: &reqwest::Client) -> Result<u16, reqwest::Error> {
    let r = client
        .get(format!("{}/healthz", server.base()))
        .send()
        .await?;
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok(status)
}

fn assert_no_panic(server: &Server) {
    let log = server.log();
    assert!(!log.contains("panic"), "the server panicked:\n{log}");
}

/// Eight idle HTTP/2 sessions (keep-alive PINGs answered) hold all eight slots: a ninth
/// client is still answered within 2 s, because the longest-idle session is closed to make
/// room, and every session gets answers afterwards (an evicted one reconnects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_sessions_are_evicted_for_a_new_client() {
    let server = Server::with_env(&[
        ("CLAVIS_MAX_CONNECTIONS", "8"),
        ("CLAVIS_REQUEST_TIMEOUT_SECONDS", "5"),
    ]);
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let (client, connects) = h2_client(&server, Duration::from_secs(1));
        assert_eq!(healthz(&server, &client).await.unwrap(), 200);
        sessions.push((client, connects));
    }
    let opened: usize = sessions.iter().map(|(_, c)| c.get()).sum();
    assert_eq!(opened, 8, "one connection per session");
    // Idle past the eviction threshold (~1 s), PINGs going both ways.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (ninth, _) = h2_client(&server, Duration::from_secs(1));
    let started = Instant::now();
    let answer = healthz(&server, &ninth).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(answer, Ok(200)) && elapsed < Duration::from_secs(2),
        "ninth client: {answer:?} after {elapsed:?}\n{}",
        server.log()
    );

    for (client, _) in &sessions {
        assert_eq!(healthz(&server, client).await.unwrap(), 200);
    }
    let reopened: usize = sessions.iter().map(|(_, c)| c.get()).sum();
    assert!(
        reopened > 8,
        "no session was evicted ({reopened} connections)"
    );
    assert_no_panic(&server);
}

/// An HTTP/2 session that keeps PINGing but sends no request is closed after the idle
/// timeout (1 s here): the client's next request needs a new connection. A session used
/// again within the timeout keeps its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_session_is_closed_after_the_idle_timeout() {
    let server = Server::with_env(&[("CLAVIS_IDLE_TIMEOUT_SECONDS", "1")]);
    let (client, connects) = h2_client(&server, Duration::from_millis(200));
    assert_eq!(healthz(&server, &client).await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(healthz(&server, &client).await.unwrap(), 200);
    assert_eq!(connects.get(), 1, "closed before the idle timeout");

    // Idle for 2.5 idle timeouts, PINGing every 200 ms.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(healthz(&server, &client).await.unwrap(), 200);
    assert_eq!(connects.get(), 2, "the idle session was not closed");
    assert_no_panic(&server);
}

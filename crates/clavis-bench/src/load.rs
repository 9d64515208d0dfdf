//! The HTTP load generator: keep-alive HTTPS (HTTP/1.1) connections sending requests from a
//! list made before the timed phase.
//!
//! Two modes:
//! - closed loop (`rate = None`): every connection sends its next request as soon as the
//!   previous answer arrived — maximum throughput at a given concurrency;
//! - open loop (`rate = Some(r)`): requests are due at a fixed rate whatever the answers do,
//!   and latency is measured from the moment a request was *due*, so a stalled server is not
//!   hidden by fewer requests being sent (no coordinated omission). A pacing thread releases
//!   each request at its due time with the operating system's fine-grained sleep: the event
//!   loops' own timers tick in whole milliseconds, and a request that waited for the next
//!   tick would count up to a millisecond of the generator's lateness as the server's. The
//!   generator's threads run at a lower priority than the server ([`OPEN_LOOP_NICE`]).
//!
//! Requests go out as bytes rendered before the timed phase (request line, headers and body,
//! written with one call), and the answer is read with a minimal HTTP/1.1 parser (status,
//! `Content-Length` or chunked body). A general-purpose client (hyper, with a task driving
//! each connection and a channel to it) cost 45–90 µs of CPU per token request on the
//! bench machine, CPU taken from the server under test on the same two cores.
//!
//! A request list that is not `cycle` is used once (token requests carry single-use
//! assertions): when it runs out the run ends early and the report says so.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::{Buf as _, Bytes, BytesMut};
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::machine::{CpuTimes, ServerCpu, process_cpu_seconds};

/// One request of the list.
#[derive(Debug, Clone)]
pub struct Req {
    /// Path and query.
    pub path: String,
    /// Body (empty for GET).
    pub body: Bytes,
}

/// What to send, and how.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `https://127.0.0.1:port` (no path).
    pub base: url::Url,
    /// CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: Vec<u8>,
    /// HTTP method (`GET`, `POST`, `PATCH`).
    pub method: &'static str,
    /// `Content-Type` of bodies.
    pub content_type: Option<String>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// The requests.
    pub requests: Arc<Vec<Req>>,
    /// Reuse the list from the start when it runs out.
    pub cycle: bool,
    /// Connections.
    pub connections: usize,
    /// Measured duration.
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    pub warmup: Duration,
    /// Open-loop rate (requests per second), or closed loop.
    pub rate: Option<f64>,
    /// The server's pid (same machine): its CPU time over the measured window is reported.
    pub server_pid: Option<u32>,
    /// The server's separate store process (PostgreSQL's postmaster), reported apart.
    pub store_pid: Option<u32>,
    /// The server's `/metrics` (plain HTTP): its replay-batch commits over the measured
    /// window are reported.
    pub metrics_url: Option<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Connections used.
    pub connections: usize,
    /// Target rate (open loop) or null.
    pub target_rate: Option<f64>,
    /// Answers with a 2xx status in the measured phase.
    pub ok: u64,
    /// Other answers and transport errors in the measured phase.
    pub errors: u64,
    /// Statuses seen (measured phase).
    pub statuses: BTreeMap<u16, u64>,
    /// Measured seconds (shorter than asked when the list ran out).
    pub seconds: f64,
    /// 2xx answers per second.
    pub rps: f64,
    /// Latency percentiles in milliseconds (2xx and errors alike).
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Whether the single-use request list ran out before the duration.
    pub exhausted: bool,
    /// A sample error body, for diagnosis.
    pub sample_error: Option<String>,
    /// The machine's CPU time stolen and idle during the measured phase.
    pub cpu: Option<crate::machine::CpuShares>,
    /// The server process's CPU time over the measured window, per answer (with a server pid).
    pub server_cpu: Option<crate::machine::ServerCpu>,
    /// The same for the store's processes (with a store pid).
    pub store_cpu: Option<crate::machine::ServerCpu>,
    /// The server's replay-batch commits over the measured window (with a metrics URL).
    pub jti_batches: Option<crate::commits::Batches>,
}

struct Shared {
    plan: Plan,
    /// Each request of the plan as it goes on the wire.
    wire: Vec<Bytes>,
    /// Open loop: one permit per request that is due (see [`pace`]).
    due: tokio::sync::Semaphore,
    next: AtomicUsize,
    stop: AtomicBool,
    exhausted: AtomicBool,
}

#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u32>,
    ok: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    sample_error: Option<String>,
}

fn tls_connector(ca_pem: &[u8]) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        let cert: rustls::pki_types::CertificateDer<'static> = cert.context("bad CA PEM")?;
        roots.add(cert).context("CA certificate refused")?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Runs the plan on `threads` OS threads, each with its own single-threaded event loop
/// driving its share of the connections (as wrk does), and returns the report.
pub fn run(plan: Plan, threads: usize) -> Result<Report> {
    if plan.requests.is_empty() {
        return Err(anyhow!("no requests to send"));
    }
    let host = plan
        .base
        .host_str()
        .ok_or_else(|| anyhow!("URL without host"))?
        .to_string();
    let port = plan
        .base
        .port_or_known_default()
        .ok_or_else(|| anyhow!("URL without port"))?;
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .context("the target must be an IP address (loopback)")?;
    if !addr.ip().is_loopback() {
        return Err(anyhow!("refusing to load a non-loopback address: {addr}"));
    }
    let connector = tls_connector(&plan.ca_pem)?;
    let server_name = ServerName::try_from(host.clone())?.to_owned();
    let authority = format!("{host}:{port}");
    let wire = plan
        .requests
        .iter()
        .map(|req| render(&plan, &authority, req))
        .collect();
    let shared = Arc::new(Shared {
        wire,
        plan: plan.clone(),
        due: tokio::sync::Semaphore::new(0),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        exhausted: AtomicBool::new(false),
    });
    let threads = threads.clamp(1, plan.connections.max(1));
    // Everyone connects (TLS handshakes) before the clock starts.
    let connected = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let start_at: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let share = plan.connections / threads + usize::from(t < plan.connections % threads);
        let (shared, connector, server_name) =
            (shared.clone(), connector.clone(), server_name.clone());
        let (connected, go, start_at) = (connected.clone(), go.clone(), start_at.clone());
        let open_loop = plan.rate.is_some();
        handles.push(std::thread::spawn(move || -> Result<ConnStats> {
            if open_loop {
                yield_to_server();
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut conns = Vec::with_capacity(share);
                let mut failure = None;
                for _ in 0..share {
                    match connect(addr, &connector, &server_name).await {
                        Ok(c) => conns.push(c),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                connected.wait();
                go.wait();
                if let Some(e) = failure {
                    shared.stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                let start = *start_at.get().ok_or_else(|| anyhow!("no start time"))?;
                let measure_from = start + shared.plan.warmup;
                let end = measure_from + shared.plan.duration;
                let tasks: Vec<_> = conns
                    .into_iter()
                    .map(|c| tokio::spawn(connection(c, shared.clone(), start, measure_from, end)))
                    .collect();
                let mut all = ConnStats::default();
                for task in tasks {
                    all.merge(task.await?);
                }
                Ok(all)
            })
        }));
    }
    connected.wait();
    let start = Instant::now();
    let _ = start_at.set(start);
    go.wait();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let pacer = plan.rate.map(|rate| {
        let shared = shared.clone();
        std::thread::spawn(move || {
            yield_to_server();
            pace(&shared, rate, start, end)
        })
    });
    let sampler = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
            let pids = [shared.plan.server_pid, shared.plan.store_pid];
            let first = CpuTimes::now();
            let firsts = pids.map(|pid| pid.and_then(process_cpu_seconds));
            let metrics = shared.plan.metrics_url.as_deref();
            let first_batches = metrics.and_then(scrape_batches);
            while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
                let left = end.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
            let [server, store] = [0, 1].map(|i| {
                pids[i]
                    .zip(firsts[i])
                    .and_then(|(pid, first)| Some((pid, process_cpu_seconds(pid)? - first)))
            });
            let cpu = CpuTimes::shares_since(first);
            let batches = first_batches
                .zip(metrics.and_then(scrape_batches))
                .map(|(first, last)| first.until(&last));
            (cpu, server, store, batches)
        })
    };
    let mut all = ConnStats::default();
    for h in handles {
        all.merge(h.join().map_err(|_| anyhow!("load thread failed"))??);
    }
    let finished = Instant::now().min(end);
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(pacer) = pacer {
        let _ = pacer.join();
    }
    let (cpu, server, store, jti_batches) = sampler.join().unwrap_or((None, None, None, None));
    let requests = all.ok + all.errors;
    let per_request = |(pid, cpu_seconds): (u32, f64)| ServerCpu {
        pid,
        cpu_seconds,
        requests,
        us_per_request: if requests > 0 {
            cpu_seconds * 1e6 / requests as f64
        } else {
            0.0
        },
    };
    let exhausted = shared.exhausted.load(Ordering::Relaxed);
    let seconds = finished
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((all.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, all.latencies_us.len())
            - 1;
        f64::from(all.latencies_us[idx]) / 1000.0
    };
    Ok(Report {
        connections: plan.connections,
        target_rate: plan.rate,
        ok: all.ok,
        errors: all.errors,
        statuses: all.statuses.clone(),
        seconds,
        rps: if seconds > 0.0 {
            all.ok as f64 / seconds
        } else {
            0.0
        },
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: pct(1.0),
        exhausted,
        sample_error: all.sample_error.clone(),
        cpu,
        server_cpu: server.map(per_request),
        store_cpu: store.map(per_request),
        jti_batches,
    })
}

/// A reading of the server's replay-batch histogram; a failed scrape is said on stderr and
/// leaves the figure out of the report.
fn scrape_batches(url: &str) -> Option<crate::commits::Reading> {
    crate::commits::Reading::scrape(url)
        .map_err(|e| eprintln!("metrics scrape failed: {e:#}"))
        .ok()
}

/// The nice value of the open-loop generator's threads: ten steps below a server at the
/// default 0 (where a woken thread gets about a tenth of the share of a core that a woken
/// server worker gets).
pub const OPEN_LOOP_NICE: i32 = 10;

/// Sets the calling thread's nice value to [`OPEN_LOOP_NICE`]: an open-loop
/// phase stands for clients on other machines, and measures the server's latency. On the
/// server's own cores the pacing thread, woken at each request's due time, would otherwise
/// preempt a server worker in the middle of a signature at almost every release (1.3–1.7
/// involuntary switches per request at half load by hand, against 0.4–0.6 with this). The
/// generator still runs whenever the server leaves a core, and any lateness of its own —
/// releasing a request or reading its answer — counts against the server: latency is
/// measured from the request's due time.
fn yield_to_server() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id (Linux applies a thread id to that
    // thread alone); no memory is passed.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, OPEN_LOOP_NICE) != 0 {
            eprintln!("the open-loop generator keeps its priority: setpriority failed");
        }
    }
}

/// Open loop: releases request `k` at `start + k / rate` until `end` (or until the run
/// stops), then closes the semaphore so that connections waiting for a request end.
fn pace(shared: &Shared, rate: f64, start: Instant, end: Instant) {
    let mut released: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let next_due = start + Duration::from_secs_f64(released as f64 / rate);
        if next_due >= end {
            break;
        }
        let now = Instant::now();
        if next_due > now {
            std::thread::sleep(next_due - now);
            continue;
        }
        // Every request due by now (more than one when this thread was late).
        let due_by_now = ((now - start).as_secs_f64() * rate).floor() as u64 + 1;
        let batch = due_by_now.saturating_sub(released).max(1);
        shared
            .due
            .add_permits(usize::try_from(batch).unwrap_or(usize::MAX));
        released += batch;
    }
    shared.due.close();
}

/// The bytes of one request: request line, headers, body.
fn render(plan: &Plan, authority: &str, req: &Req) -> Bytes {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {authority}\r\n",
        plan.method, req.path
    );
    if let Some(ct) = &plan.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(auth) = &plan.authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    if !req.body.is_empty() || plan.method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    let mut wire = BytesMut::with_capacity(head.len() + req.body.len());
    wire.extend_from_slice(head.as_bytes());
    wire.extend_from_slice(&req.body);
    wire.freeze()
}

/// One keep-alive HTTPS connection.
struct Connection {
    tls: TlsStream<TcpStream>,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
}

/// An answer: its status, and the start of its body when it is not a 2xx.
struct Answer {
    status: u16,
    error_body: Option<String>,
}

async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
    server_name: &ServerName<'static>,
) -> Result<Connection> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(server_name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    Ok(Connection {
        tls,
        buf: BytesMut::with_capacity(16 * 1024),
    })
}

impl Connection {
    /// Sends one request and reads its answer.
    async fn exchange(&mut self, wire: &[u8]) -> Result<Answer> {
        self.tls.write_all(wire).await.context("write")?;
        self.tls.flush().await.context("flush")?;
        let (status, head_len, body) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill().await?;
        };
        self.buf.advance(head_len);
        let mut error_body = Vec::new();
        let keep = !(200..300).contains(&status);
        match body {
            BodyLength::Fixed(n) => {
                while self.buf.len() < n {
                    self.fill().await?;
                }
                if keep {
                    error_body.extend_from_slice(&self.buf[..n.min(300)]);
                }
                self.buf.advance(n);
            }
            BodyLength::Chunked => loop {
                let (size, line) = loop {
                    if let Some(found) = chunk_size(&self.buf)? {
                        break found;
                    }
                    self.fill().await?;
                };
                if size == 0 {
                    // Trailer fields (if any), then the empty line.
                    self.buf.advance(line);
                    loop {
                        match find_crlf(&self.buf) {
                            Some(0) => {
                                self.buf.advance(2);
                                break;
                            }
                            Some(end) => self.buf.advance(end + 2),
                            None => self.fill().await?,
                        }
                    }
                    break;
                }
                while self.buf.len() < line + size + 2 {
                    self.fill().await?;
                }
                if keep && error_body.len() < 300 {
                    let take = size.min(300 - error_body.len());
                    error_body.extend_from_slice(&self.buf[line..line + take]);
                }
                self.buf.advance(line + size + 2);
            },
        }
        Ok(Answer {
            status,
            error_body: keep.then(|| String::from_utf8_lossy(&error_body).into_owned()),
        })
    }

    /// Reads more bytes; the end of the stream here is an error (the answer is incomplete).
    async fn fill(&mut self) -> Result<()> {
        self.buf.reserve(8 * 1024);
        if self.tls.read_buf(&mut self.buf).await.context("read")? == 0 {
            return Err(anyhow!("the server closed the connection"));
        }
        Ok(())
    }
}

/// How the body of an answer is delimited.
#[derive(Debug, PartialEq, Eq)]
enum BodyLength {
    Fixed(usize),
    Chunked,
}

/// The status, head length and body length of the answer at the start of `buf`, or `None`
/// while its head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, BodyLength)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf).context("malformed answer")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response
        .code
        .ok_or_else(|| anyhow!("answer without status"))?;
    let mut body = BodyLength::Fixed(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| anyhow!("bad Content-Length"))?;
            body = BodyLength::Fixed(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            body = BodyLength::Chunked;
            break;
        }
    }
    Ok(Some((status, head_len, body)))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The size of the chunk whose size line starts `buf`, and the length of that line with
/// its CRLF; `None` while the line is incomplete.
fn chunk_size(buf: &[u8]) -> Result<Option<(usize, usize)>> {
    let Some(end) = find_crlf(buf) else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..end]).context("bad chunk size")?;
    let hex = line.split(';').next().unwrap_or_default().trim();
    let size = usize::from_str_radix(hex, 16).context("bad chunk size")?;
    Ok(Some((size, end + 2)))
}

impl ConnStats {
    fn merge(&mut self, s: ConnStats) {
        self.latencies_us.extend(s.latencies_us);
        self.ok += s.ok;
        self.errors += s.errors;
        for (k, v) in s.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        if self.sample_error.is_none() {
            self.sample_error = s.sample_error;
        }
    }
}

async fn connection(
    mut conn: Connection,
    shared: Arc<Shared>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> ConnStats {
    let plan = &shared.plan;
    let mut stats = ConnStats {
        latencies_us: Vec::with_capacity(16 * 1024),
        ..ConnStats::default()
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if plan.rate.is_some() {
            // Wait until a request is due; the permit is this request's.
            match shared.due.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let idx = if i < plan.requests.len() {
            i
        } else if plan.cycle {
            i % plan.requests.len()
        } else {
            shared.exhausted.store(true, Ordering::Relaxed);
            shared.stop.store(true, Ordering::Relaxed);
            break;
        };
        // When the request is due: now (closed loop) or on the fixed schedule (open loop;
        // its permit was released at that moment, so it is due by now).
        let due = match plan.rate {
            Some(rate) => {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if due >= end {
                    break;
                }
                due
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        let outcome = conn.exchange(&shared.wire[idx]).await;
        let done = Instant::now();
        if due < measure_from {
            continue;
        }
        let micros = done.saturating_duration_since(due).as_micros();
        stats
            .latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        match outcome {
            Ok(answer) => {
                *stats.statuses.entry(answer.status).or_default() += 1;
                if (200..300).contains(&answer.status) {
                    stats.ok += 1;
                } else {
                    stats.errors += 1;
                    if stats.sample_error.is_none() {
                        stats.sample_error = Some(format!(
                            "{}: {}",
                            answer.status,
                            answer.error_body.unwrap_or_default()
                        ));
                    }
                }
            }
            Err(e) => {
                stats.errors += 1;
                if stats.sample_error.is_none() {
                    stats.sample_error = Some(format!("transport: {e:#}"));
                }
                break;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_head_is_read_only_when_complete() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
        for cut in 0..answer.len() - 7 {
            assert!(
                parse_head(&answer[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        let (status, head, body) = parse_head(answer).unwrap().unwrap();
        assert_eq!(
            (status, head, body),
            (200, answer.len() - 7, BodyLength::Fixed(7))
        );
        let chunked = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_head(chunked).unwrap().unwrap(),
            (400, chunked.len(), BodyLength::Chunked)
        );
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_head(empty).unwrap().unwrap().2, BodyLength::Fixed(0));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn chunk_sizes_are_hexadecimal_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a\r\n").unwrap(), Some((26, 4)));
        assert_eq!(chunk_size(b"0;ext=1\r\n\r\n").unwrap(), Some((0, 9)));
        assert_eq!(chunk_size(b"1a").unwrap(), None);
        assert!(chunk_size(b"zz\r\n").is_err());
    }

    #[test]
    fn a_request_is_rendered_with_its_headers_and_body() {
        let plan = Plan {
            base: url::Url::parse("https://127.0.0.1:1").unwrap(),
            ca_pem: Vec::new(),
            method: "POST",
            content_type: Some("application/x-www-form-urlencoded".into()),
            authorization: Some("Bearer t".into()),
            requests: Arc::new(Vec::new()),
            cycle: false,
            connections: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            rate: None,
            server_pid: None,
            store_pid: None,
            metrics_url: None,
        };
        let req = Req {
            path: "/oauth/token".into(),
            body: Bytes::from_static(b"a=b"),
        };
        assert_eq!(
            &render(&plan, "127.0.0.1:1", &req)[..],
            b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\na=b"
        );
        let get = Plan {
            method: "GET",
            content_type: None,
            authorization: None,
            ..plan
        };
        let req = Req {
            path: "/healthz".into(),
            body: Bytes::new(),
        };
        assert_eq!(
            &render(&get, "h:1", &req)[..],
            b"GET /healthz HTTP/1.1\r\nHost: h:1\r\n\r\n"
        );
    }
}

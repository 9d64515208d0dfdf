//! Delivery of log streams: every active stream has a cursor (the last event delivered,
//! stored); a background task on each node reads the events after it, keeps those the
//! stream's filters carry, and POSTs them in batches to the stream's endpoint. The cursor
//! moves only after a 2xx, so each event is delivered at least once. A node delivers a
//! stream only while it holds the stream's lease (a stored owner and expiry, taken with a
//! conditional update for a round that has events to deliver, and released after it), so
//! with several nodes one of them delivers each stream at a time. A lease left by a node
//! that died expires after [`DeliveryOptions::lease`]; on SQLite, which one process serves,
//! opening the store releases them.
//!
//! A failed POST is retried at once with back-off (Auth0: "up to three times"), then the
//! stream waits, with exponential back-off, before its next round. A stream that has been
//! failing for [`DeliveryOptions::suspend_after`] (Auth0: 7 days) is `suspended`; a PATCH
//! to `active` resumes it from its cursor.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, header};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::domain::log_query::log_id;
use crate::domain::log_stream::{LogStream, bodies, envelope};
use crate::domain::time::Timestamp;
use crate::service::Clavis;
use crate::store::{Delivery, LogRow, LogStreamRecord, StoreError};

/// Events read (and at most POSTed) per batch.
pub const BATCH: u64 = 100;
/// Attempts of one POST within a round (Auth0: up to three).
const ATTEMPTS: u32 = 3;
/// Batches one stream delivers per round before the other streams get their turn.
const BATCHES_PER_ROUND: usize = 50;

/// How streams are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Time between rounds (each round looks at every stream).
    pub interval: Duration,
    /// Longest a POST may take.
    pub timeout: Duration,
    /// A stream failing for this long is suspended.
    pub suspend_after: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            suspend_after: Duration::from_secs(7 * 86_400),
        }
    }
}

impl DeliveryOptions {
    /// How long a lease lasts: longer than one POST attempt and the pause before it (the
    /// holder renews it before each). A node that dies holding a lease holds up its stream
    /// this long.
    pub fn lease(&self) -> Duration {
        self.timeout + self.retry_pause(ATTEMPTS) + Duration::from_secs(5)
    }

    /// The pause before retry `attempt` (1-based) within a round.
    fn retry_pause(&self, attempt: u32) -> Duration {
        self.interval.min(Duration::from_secs(1)) * 2u32.saturating_pow(attempt.saturating_sub(1))
    }

    /// The wait before a failing stream's next round, after `failures` failed rounds.
    fn backoff(&self, failures: u32) -> Duration {
        let cap = (self.interval * 64).min(Duration::from_secs(60));
        (self.interval * 2u32.saturating_pow(failures.min(16))).min(cap)
    }
}

/// A failing stream's pause.
struct Backoff {
    failures: u32,
    until: Instant,
}

fn now_ms() -> i64 {
    Timestamp::now().unix_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Starts delivery on this node, until `clavis` is dropped.
pub fn start(clavis: &Arc<Clavis>, options: DeliveryOptions) {
    let clavis = Arc::downgrade(clavis);
    tokio::spawn(run(clavis, options));
}

async fn run(clavis: Weak<Clavis>, options: DeliveryOptions) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "log streams: no HTTP client; streams are not delivered");
            return;
        }
    };
    // This node's name in leases.
    let node = clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 16);
    let mut waits: HashMap<String, Backoff> = HashMap::new();
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(app) = clavis.upgrade() else {
            return;
        };
        let streams = match app.store.log_streams().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "log streams: reading the streams failed");
                continue;
            }
        };
        // A stream paused, suspended or deleted starts afresh when it is active again.
        waits.retain(|id, _| {
            streams
                .iter()
                .any(|r| &r.stream.id == id && r.stream.is_active())
        });
        for record in streams.iter().filter(|r| r.stream.is_active()) {
            let id = &record.stream.id;
            if waits.get(id).is_some_and(|w| w.until > Instant::now()) {
                continue;
            }
            // Nothing to deliver: no write (the lease is taken only for work).
            match app.store.logs_after(record.cursor, 1).await {
                Ok(pending) if pending.is_empty() => {
                    app.metrics.log_stream_lag(id, 0);
                    continue;
                }
                Ok(pending) => {
                    let oldest = pending
                        .first()
                        .and_then(|row| serde_json::from_str::<Map<String, Value>>(&row.doc).ok())
                        .and_then(|doc| {
                            doc.get("date")
                                .and_then(Value::as_str)
                                .and_then(Timestamp::parse)
                        });
                    if let Some(date) = oldest {
                        let age = Timestamp::now().unix_seconds() - date.unix_seconds();
                        app.metrics.log_stream_lag(id, age.max(0));
                    }
                }
                Err(e) => {
                    tracing::warn!(log_stream_id = %id, error = %e, "log streams: store unavailable");
                    continue;
                }
            }
            let stream = Stream {
                app: &app,
                client: &client,
                node: &node,
                options: &options,
            };
            let outcome = stream.deliver(id).await;
            // The round is over: any node may take the next one.
            if let Err(e) = app
                .store
                .record_delivery(id, &node, Delivery::Release)
                .await
            {
                tracing::warn!(log_stream_id = %id, error = %e, "log streams: releasing the lease failed");
            }
            match outcome {
                Ok(()) => {
                    waits.remove(id);
                }
                Err(Failure::Store(e)) => {
                    tracing::warn!(log_stream_id = %id, error = %e, "log streams: store unavailable");
                }
                Err(Failure::Delivery) => {
                    let failures = waits.get(id).map_or(0, |w| w.failures) + 1;
                    waits.insert(
                        id.clone(),
                        Backoff {
                            failures,
                            until: Instant::now() + options.backoff(failures),
                        },
                    );
                }
            }
        }
    }
}

enum Failure {
    Store(StoreError),
    Delivery,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

struct Stream<'a> {
    app: &'a Clavis,
    client: &'a reqwest::Client,
    node: &'a str,
    options: &'a DeliveryOptions,
}

impl Stream<'_> {
    /// Delivers the stream's pending events, batch by batch, while it holds the lease.
    async fn deliver(&self, id: &str) -> Result<(), Failure> {
        let store = &self.app.store;
        for _ in 0..BATCHES_PER_ROUND {
            let now = now_ms();
            let until = now.saturating_add(millis(self.options.lease()));
            let Some(record) = store.lease_log_stream(id, self.node, now, until).await? else {
                return Ok(()); // another node delivers it
            };
            if !record.stream.is_active() {
                return Ok(());
            }
            let rows = store.logs_after(record.cursor, BATCH).await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                return Ok(());
            };
            let events = carried(&record.stream, &rows);
            if let Err(failed_at) = self.post(&record, &events).await {
                // The events before the first one not delivered (JSONOBJECT: one POST each)
                // are not sent again.
                if let Some(before) = failed_at.checked_sub(1)
                    && before > record.cursor
                {
                    store
                        .record_delivery(id, self.node, Delivery::Delivered(before))
                        .await?;
                }
                self.failed(&record).await?;
                return Err(Failure::Delivery);
            }
            self.app
                .metrics
                .log_stream_delivered(id, events.len() as u64);
            if !store
                .record_delivery(id, self.node, Delivery::Delivered(last))
                .await?
            {
                return Ok(()); // the lease was lost: the new holder resumes
            }
            if rows.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Records a failed round; suspends the stream once it has failed for long enough.
    async fn failed(&self, record: &LogStreamRecord) -> Result<(), StoreError> {
        let now = now_ms();
        let id = &record.stream.id;
        self.app
            .store
            .record_delivery(id, self.node, Delivery::Failed(now))
            .await?;
        let since = record.failing_since_ms.unwrap_or(now);
        if now.saturating_sub(since) < millis(self.options.suspend_after) {
            return Ok(());
        }
        tracing::warn!(log_stream_id = %id, "log stream suspended after failing deliveries");
        self.app
            .store
            .update_log_stream(id, &mut |r| {
                if r.stream.status == "active" {
                    r.stream.status = "suspended".into();
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// POSTs the events (sequence number, event) in the stream's format; when a POST gets
    /// no 2xx, the sequence number of its first event.
    async fn post(&self, record: &LogStreamRecord, events: &[(i64, Value)]) -> Result<(), i64> {
        if events.is_empty() {
            return Ok(());
        }
        let stream = &record.stream;
        let authorization = self.app.open_authorization(record).and_then(|a| {
            let mut v = HeaderValue::from_str(&a).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        let content_type = stream
            .sink
            .content_type
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
            .unwrap_or(HeaderValue::from_static("application/json"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type);
        for (name, value) in &stream.sink.custom_headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        if let Some(a) = authorization {
            headers.insert(header::AUTHORIZATION, a);
        }
        let format = stream.format();
        if format == "JSONOBJECT" {
            for (seq, event) in events {
                for body in bodies(format, std::slice::from_ref(event)) {
                    if !self.post_one(stream, &headers, body).await {
                        return Err(*seq);
                    }
                }
            }
            return Ok(());
        }
        let values: Vec<Value> = events.iter().map(|(_, e)| e.clone()).collect();
        for body in bodies(format, &values) {
            if !self.post_one(stream, &headers, body).await {
                return Err(events.first().map_or(0, |(seq, _)| *seq));
            }
        }
        Ok(())
    }

    async fn post_one(
        &self,
        stream: &LogStream,
        headers: &reqwest::header::HeaderMap,
        body: Vec<u8>,
    ) -> bool {
        for attempt in 1..=ATTEMPTS {
            let now = now_ms();
            let until = now.saturating_add(millis(self.options.lease()));
            match self
                .app
                .store
                .lease_log_stream(&stream.id, self.node, now, until)
                .await
            {
                Ok(Some(_)) => {}
                // Lost (or unknown): whoever holds it now delivers.
                Ok(None) | Err(_) => return false,
            }
            let sent = self
                .client
                .post(&stream.sink.endpoint)
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            let delivered = matches!(&sent, Ok(r) if r.status().is_success());
            self.app.metrics.log_stream_post(&stream.id, delivered);
            match sent {
                Ok(_) if delivered => return true,
                Ok(r) => {
                    tracing::debug!(log_stream_id = %stream.id, status = r.status().as_u16(), attempt, "log stream delivery refused");
                }
                Err(e) => {
                    // Without the URL: it may carry a secret of its own.
                    tracing::debug!(log_stream_id = %stream.id, error = %e.without_url(), attempt, "log stream delivery failed");
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(self.options.retry_pause(attempt)).await;
            }
        }
        tracing::warn!(log_stream_id = %stream.id, attempts = ATTEMPTS, "log stream delivery failed; will retry");
        false
    }
}

/// The events of `rows` that `stream` carries, each as `{log_id, data}` with its sequence
/// number.
fn carried(stream: &LogStream, rows: &[LogRow]) -> Vec<(i64, Value)> {
    rows.iter()
        .filter_map(|row| {
            let mut doc: Map<String, Value> = match serde_json::from_str(&row.doc) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(seq = row.seq, error = %e, "stored log event is not JSON; not streamed");
                    return None;
                }
            };
            let kind = doc.get("type").and_then(Value::as_str).unwrap_or_default();
            if !stream.carries(kind) {
                return None;
            }
            let id = log_id(row.seq);
            doc.insert("log_id".into(), Value::String(id.clone()));
            Some((row.seq, envelope(&id, Value::Object(doc))))
        })
        .collect()
}

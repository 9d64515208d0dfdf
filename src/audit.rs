//! The audit trail (`/api/v2/logs`): events in the shape of Auth0's tenant logs, queued in
//! memory and written by a background task in batches, one transaction per batch.
//!
//! Recording never waits and never fails the request that records: the queue is bounded,
//! and an event that does not fit is counted as dropped (and a warning logged). What a crash
//! can lose is what is queued and not yet committed: see SECURITY.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::domain::time::Timestamp;
use crate::store::{NewLog, Store, StoreError};

/// Events the queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Most events written in one transaction.
pub const MAX_BATCH: usize = 500;
/// Longest text kept in a field of an event (user agents, descriptions, ids), in bytes.
const MAX_TEXT: usize = 512;
/// Longest an event waits in the queue for others to share its transaction (SQLite).
const LINGER: Duration = Duration::from_millis(50);
/// Old events deleted per transaction by the retention purge.
pub const PURGE_CHUNK: u64 = 5_000;
/// How often the retention purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Auth0's event type codes that Clavis records.
pub mod types {
    /// Successful exchange of client credentials for an access token.
    pub const SECCFT: &str = "seccft";
    /// Failed exchange of client credentials for an access token.
    pub const FECCFT: &str = "feccft";
    /// Successful Management API write.
    pub const SAPI: &str = "sapi";
    /// Management API read that returned a secret.
    pub const MGMT_API_READ: &str = "mgmt_api_read";
    /// A rate limit refused a request.
    pub const API_LIMIT: &str = "api_limit";
    /// A token quota's consumption reached 60, 80 or 100 %.
    pub const TOKEN_QUOTA_CONSUMPTION_WARNING: &str = "token_quota_consumption_warning";
}

/// Text fit for an event field: at most [`MAX_TEXT`] bytes (cut at a character boundary),
/// without control characters.
pub fn clean(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end]
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The peer's IP address.
    pub ip: String,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

/// One event, built field by field.
#[derive(Debug, Clone)]
pub struct Event {
    date: Timestamp,
    doc: Map<String, Value>,
}

impl Event {
    /// An event of `kind` now.
    pub fn new(kind: &str, description: &str) -> Self {
        let date = Timestamp::now();
        let mut doc = Map::new();
        doc.insert("date".into(), Value::String(date.to_string()));
        doc.insert("type".into(), Value::String(kind.into()));
        doc.insert("description".into(), Value::String(clean(description)));
        Self { date, doc }
    }

    /// Sets a text field (cleaned); nothing when `None`.
    pub fn text(mut self, key: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.doc.insert(key.into(), Value::String(clean(value)));
        }
        self
    }

    /// Sets a field to a JSON value.
    pub fn value(mut self, key: &str, value: Value) -> Self {
        self.doc.insert(key.into(), value);
        self
    }

    /// Sets `ip` and `user_agent`.
    pub fn origin(self, origin: &Origin) -> Self {
        self.text("ip", Some(&origin.ip))
            .text("user_agent", origin.user_agent.as_deref())
    }

    /// The document as it will be stored (tests).
    pub fn doc(&self) -> &Map<String, Value> {
        &self.doc
    }
}

enum Message {
    Event(NewLog),
    Flush(oneshot::Sender<()>),
}

/// The queue of events and its writer.
#[derive(Debug)]
pub struct AuditLog {
    /// None when the audit trail is off (`--audit-trail false`): nothing is recorded.
    tx: Option<mpsc::Sender<Message>>,
    dropped: Arc<AtomicU64>,
    hostname: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Event(_) => "Event",
            Message::Flush(_) => "Flush",
        })
    }
}

impl AuditLog {
    /// Starts the writer (inside a Tokio runtime). `hostname` is every event's `hostname`:
    /// the host of the public URL, as Auth0's is the tenant's domain.
    pub fn start(store: Arc<dyn Store>, hostname: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        // On a shared store a lingering batch would take its log_ids after events another
        // node recorded later: the feed's order is the events' order only without it.
        let linger = if store.single_process() {
            LINGER
        } else {
            Duration::ZERO
        };
        tokio::spawn(writer(store, rx, linger));
        Self {
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
            hostname,
        }
    }

    /// An audit trail that records nothing (`--audit-trail false`).
    pub fn off() -> Self {
        Self {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
            hostname: String::new(),
        }
    }

    /// Whether events are recorded; callers skip building an event when not.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues an event without waiting; when the queue is full the event is dropped and
    /// counted.
    pub fn record(&self, event: Event) {
        let Some(tx) = &self.tx else {
            return;
        };
        let Event { date, mut doc } = event;
        doc.insert("hostname".into(), Value::String(self.hostname.clone()));
        let log = NewLog {
            date_ms: date.unix_millis(),
            doc,
        };
        match tx.try_send(Message::Event(log)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // The first drop and then every thousandth: a full queue must not flood the log.
                if dropped == 1 || dropped.is_multiple_of(1000) {
                    tracing::warn!(
                        dropped,
                        capacity = QUEUE_CAPACITY,
                        "audit log queue full: events dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Returns once every event queued before the call has been written (or given up on).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Message>, linger: Duration) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while gather(&mut rx, &mut messages, linger).await {
        for message in messages.drain(..) {
            match message {
                Message::Event(log) => batch.push(log),
                Message::Flush(done) => flushes.push(done),
            }
        }
        write(store.as_ref(), &batch).await;
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The next batch: lingering up to `linger` ([`LINGER`] on SQLite) for more events, until a
/// full batch or a flush. Each commit appends every page it touched to the WAL, so small
/// commits rewrite the same pages over and over; at 7,000 tokens/s that was most of the audit
/// trail's cost on the token path.
async fn gather(
    rx: &mut mpsc::Receiver<Message>,
    messages: &mut Vec<Message>,
    linger: Duration,
) -> bool {
    crate::batch::gather(rx, messages, MAX_BATCH, linger, |m| {
        matches!(m, Message::Flush(_))
    })
    .await
}

/// Writes a batch; an unavailable store is retried a few times (about 3 s in all) before
/// the batch is given up, with an error in the process log.
async fn write(store: &dyn Store, batch: &[NewLog]) {
    if batch.is_empty() {
        return;
    }
    let mut pause = Duration::from_millis(100);
    for attempt in 1..=4 {
        match store.insert_logs(batch).await {
            Ok(()) => return,
            Err(StoreError::Unavailable(cause)) if attempt < 4 => {
                tracing::warn!(%cause, attempt, "writing audit events failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 3;
            }
            Err(e) => {
                tracing::error!(error = %e, lost = batch.len(), "audit events could not be written");
                return;
            }
        }
    }
}

/// Deletes the events dated before `before_ms`, in paced chunks of [`PURGE_CHUNK`] (each
/// its own transaction, see [`crate::store::purge_in_chunks`]); returns how many.
pub async fn purge(store: &dyn Store, before_ms: i64) -> Result<u64, StoreError> {
    crate::store::purge_in_chunks(PURGE_CHUNK, || store.purge_logs(before_ms, PURGE_CHUNK)).await
}

/// Purges events older than `retention` a minute after the start and then every hour,
/// until the store is dropped.
pub fn start_retention(store: &Arc<dyn Store>, retention: Duration) {
    let store = Arc::downgrade(store);
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut tick = tokio::time::interval_at(first, PURGE_EVERY);
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            let cutoff = Timestamp::now().unix_millis()
                - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            match purge(store.as_ref(), cutoff).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "purged audit events past retention"),
                Err(e) => tracing::warn!(error = %e, "purging audit events failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn clean_cuts_at_a_character_boundary_and_replaces_controls() {
        assert_eq!(clean("a\0b\nc"), "a\u{fffd}b\u{fffd}c");
        let long = "é".repeat(400);
        let cut = clean(&long);
        assert!(cut.len() <= MAX_TEXT);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    fn event() -> Message {
        Message::Event(NewLog {
            date_ms: 0,
            doc: Map::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_lingers_for_later_events_and_not_past_its_deadline() {
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let start = tokio::time::Instant::now();
        tx.send(event()).await.unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            for pause in [10, 30, 30] {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                late.send(event()).await.unwrap();
            }
        });
        let mut messages = Vec::new();
        assert!(gather(&mut rx, &mut messages, LINGER).await);
        // Sent at 0, 10 and 40 ms: one batch; the one at 70 ms waits for the next.
        assert_eq!(messages.len(), 3);
        assert_eq!(start.elapsed(), LINGER);
        messages.clear();
        assert!(gather(&mut rx, &mut messages, LINGER).await);
        assert_eq!(messages.len(), 1);
        drop(tx);
        messages.clear();
        assert!(!gather(&mut rx, &mut messages, LINGER).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_or_a_full_batch_ends_the_wait() {
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let start = tokio::time::Instant::now();
        tx.send(event()).await.unwrap();
        let (done, _wait) = oneshot::channel();
        tx.send(Message::Flush(done)).await.unwrap();
        let mut messages = Vec::new();
        assert!(gather(&mut rx, &mut messages, LINGER).await);
        assert_eq!(messages.len(), 2);
        assert_eq!(start.elapsed(), Duration::ZERO);

        for _ in 0..MAX_BATCH + 1 {
            tx.send(event()).await.unwrap();
        }
        messages.clear();
        assert!(gather(&mut rx, &mut messages, LINGER).await);
        assert_eq!(messages.len(), MAX_BATCH);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

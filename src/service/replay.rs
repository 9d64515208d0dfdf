//! Single-use client-assertion ids, durable across restarts and shared by every node that
//! uses the same store.
//!
//! This is the only write on the token hot path. Requests hand their `jti` to one writer
//! task, which commits whatever has queued up in a single transaction and waits until it is
//! durable ([`Store::durable`]) before any of them gets a token (group commit): one batch at
//! a time, so records that arrive meanwhile make up the next batch, and under load many
//! assertions share one commit and one fsync.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{JtiRecord, Store, StoreError};

/// Most records committed in one transaction.
const MAX_BATCH: usize = 512;

/// How long a batch waits for more records once requests queue up. Each commit costs a
/// write of the log and an fsync whatever its size (on this bench machine ~120 µs of CPU,
/// most of it the virtual disk's), so under load a short wait makes them a small share of a
/// token; with one request at a time nobody waits.
const LINGER: Duration = Duration::from_millis(2);

struct Pending {
    record: JtiRecord,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    tx: mpsc::Sender<Pending>,
}

impl ReplayGuard {
    /// Starts the writer task and the periodic purge of expired records.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(purger(Arc::downgrade(&store)));
        tokio::spawn(writer(store, rx));
        Self { tx }
    }

    /// Records the id; `Ok(true)` when it was unused, `Ok(false)` for a replay.
    pub async fn record(&self, record: JtiRecord) -> Result<bool, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Pending { record, reply })
            .await
            .map_err(|_| StoreError::Unavailable("replay writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("replay writer stopped".into()))?
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut queueing = false;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if queueing || batch.len() > 1 {
            // Requests are queueing: let those of the next moment share this commit.
            tokio::time::sleep(LINGER).await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
        }
        queueing = batch.len() > 1;
        let records: Vec<JtiRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let now = crate::domain::time::Timestamp::now().unix_seconds();
        let recorded = match store.record_jtis(&records, now).await {
            Ok(fresh) => store.durable().await.map(|()| fresh),
            Err(e) => Err(e),
        };
        match recorded {
            Ok(fresh) if fresh.len() == batch.len() => {
                for (pending, fresh) in batch.drain(..).zip(fresh) {
                    let _ = pending.reply.send(Ok(fresh));
                }
            }
            Ok(_) => {
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(StoreError::Internal(
                        "replay batch size mismatch".into(),
                    )));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "recording assertion ids failed");
                let message = e.to_string();
                let unavailable = matches!(e, StoreError::Unavailable(_));
                for pending in batch.drain(..) {
                    let err = if unavailable {
                        StoreError::Unavailable(message.clone())
                    } else {
                        StoreError::Internal(message.clone())
                    };
                    let _ = pending.reply.send(Err(err));
                }
            }
        }
    }
}

/// Purges every minute until the store is dropped (the writer holds it while the service
/// lives).
async fn purger(store: std::sync::Weak<dyn Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        let now = crate::domain::time::Timestamp::now().unix_seconds();
        match store.purge_jtis(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired assertion ids purged"),
            Err(e) => tracing::warn!(error = %e, "purging assertion ids failed"),
        }
    }
}

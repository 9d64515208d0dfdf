//! Single-use client-assertion ids, durable across restarts and shared by every node that
//! uses the same store.
//!
//! This is the only write on the token hot path. Requests hand their `jti` to one writer
//! task, which commits whatever has queued up in a single transaction; each batch then waits
//! until it is durable ([`Store::durable`]) before any of its requests gets a token (group
//! commit). While one batch waits for its fsync the writer lingers for and commits the next,
//! so under load many assertions share one commit and one fsync, and a request waits for
//! about one linger, one commit and one or two fsyncs (the one running when its batch
//! commits, then its own).

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
        let (records, replies): (Vec<JtiRecord>, Vec<_>) =
            batch.drain(..).map(|p| (p.record, p.reply)).unzip();
        let now = crate::domain::time::Timestamp::now().unix_seconds();
        match store.record_jtis(&records, now).await {
            Ok(fresh) if fresh.len() == replies.len() => {
                // The wait for the fsync runs beside the next batch, whose linger and commit
                // overlap it; the store's group commit covers both batches with one fsync
                // when they meet. Nobody gets an answer before their record is durable.
                let store = store.clone();
                tokio::spawn(async move {
                    match store.durable().await {
                        Ok(()) => {
                            for (reply, fresh) in replies.into_iter().zip(fresh) {
                                let _ = reply.send(Ok(fresh));
                            }
                        }
                        Err(e) => fail(replies, &e),
                    }
                });
            }
            Ok(_) => fail(
                replies,
                &StoreError::Internal("replay batch size mismatch".into()),
            ),
            Err(e) => fail(replies, &e),
        }
    }
}

/// Answers every request of a batch that could not be recorded: `Unavailable` stays
/// `Unavailable` (the client may retry), anything else is an internal error.
fn fail(replies: Vec<oneshot::Sender<Result<bool, StoreError>>>, e: &StoreError) {
    tracing::warn!(error = %e, "recording assertion ids failed");
    let message = e.to_string();
    let unavailable = matches!(e, StoreError::Unavailable(_));
    for reply in replies {
        let err = if unavailable {
            StoreError::Unavailable(message.clone())
        } else {
            StoreError::Internal(message.clone())
        };
        let _ = reply.send(Err(err));
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

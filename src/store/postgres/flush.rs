//! Durability of the service's writes on PostgreSQL.
//!
//! A write the service runs ([`crate::store::commit_order::in_write`]) commits with
//! `synchronous_commit = off`: its commit returns once it is in the server's WAL, visible to
//! every session, without waiting for the disk. That keeps a node's commit turn, and the row
//! locks the transaction held, as short as a round trip. Before the write is acknowledged,
//! [`Flusher::when_durable`] makes it durable: one `setval` on the `durability_mark` sequence
//! (migration 0011), committed with the server's own `synchronous_commit`, flushes the WAL up
//! to its own commit record, and so every commit before it, including the standby's
//! acknowledgement when the server replicates synchronously. Every write waiting while one
//! flush runs is made durable by the next: one round trip for all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgPool;

use crate::store::{StoreError, WhenDurable};

/// Makes the writes that committed without waiting for the disk durable, a group at a time.
#[derive(Default)]
pub(super) struct Flusher {
    /// Commits made without waiting for the disk, counted once they returned.
    commits: AtomicU64,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Callers waiting for the next flush.
    waiting: Vec<WhenDurable>,
    /// A flush task runs; it takes `waiting` before each flush.
    running: bool,
    /// `commits` as it stood when the last successful flush started: those are durable.
    flushed: u64,
}

impl Flusher {
    /// Counts a commit made without waiting for the disk (after it returned).
    pub(super) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// Calls `then` once every commit counted before this call is durable: at once when a
    /// flush that started after the last of them has succeeded, otherwise after the next.
    pub(super) fn when_durable(
        self: &Arc<Self>,
        pool: &PgPool,
        deadline: Duration,
        then: WhenDurable,
    ) {
        let commits = self.commits.load(Ordering::SeqCst);
        let mut state = self.state();
        if commits <= state.flushed {
            drop(state);
            then(Ok(()));
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(state);
            then(Err(StoreError::Internal(
                "making writes durable needs the async runtime".into(),
            )));
            return;
        };
        state.waiting.push(then);
        if !state.running {
            state.running = true;
            runtime.spawn(self.clone().run(pool.clone(), deadline));
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes while callers wait.
    async fn run(self: Arc<Self>, pool: PgPool, deadline: Duration) {
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            if let Some(last) = last {
                tokio::time::sleep_until(last + SPACING).await;
            }
            let (batch, target) = {
                let mut state = self.state();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                // Every commit counted now returned before the flush is sent: it is in the
                // WAL before the flush's own commit record.
                (
                    std::mem::take(&mut state.waiting),
                    self.commits.load(Ordering::SeqCst),
                )
            };
            last = Some(tokio::time::Instant::now());
            let result = flush(&pool, deadline).await;
            match &result {
                Ok(()) => {
                    let mut state = self.state();
                    state.flushed = state.flushed.max(target);
                }
                Err(e) => tracing::warn!(error = %e, "making writes durable failed"),
            }
            for then in batch {
                then(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| StoreError::Unavailable(e.clone())),
                );
            }
        }
    }
}

/// Least time from one flush's start to the next one's. A flush is a commit of its own
/// with an fsync, whose CPU (the server's, in the kernel) weighs on a busy machine as much as
/// the writes' statements: while writes keep coming, each flush makes those of the last
/// couple of milliseconds durable at once. A write that finds no flush recent waits for none.
const SPACING: Duration = Duration::from_millis(2);

/// One flush: a `setval` in a transaction of its own, with the server's `synchronous_commit`.
async fn flush(pool: &PgPool, deadline: Duration) -> Result<(), String> {
    let query = sqlx::query("SELECT setval('durability_mark', 1)").execute(pool);
    match tokio::time::timeout(deadline, query).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("flushing the WAL failed: {e}")),
        Err(_) => Err(format!("flushing the WAL timed out after {deadline:?}")),
    }
}

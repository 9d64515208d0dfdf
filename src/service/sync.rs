//! Keeps this node's read model in step with writes committed by other nodes that share the
//! store (PostgreSQL).
//!
//! The store announces every committed write as a [`Change`]. For each one this task takes
//! the node's commit turn — the one local writes hold from their commit until the model has
//! them (`write_order`) — re-reads the entity from the store and puts it into the model (or
//! removes it). The read happens after the remote commit and in that turn, so the model never
//! applies an older version of a row after a newer one. [`Change::Resync`] (announcements were
//! missed while the listener was disconnected) reloads everything, with no local write
//! running, and so does a periodic resynchronisation, the safety net for anything else (at
//! the configured period, or 20 times the last reload's duration when that is longer). A
//! re-read that fails (the database is down) is made good by a full resynchronisation,
//! retried until it succeeds.
//!
//! The listener and the re-reads run on a thread and runtime of their own, through
//! connections of their own ([`Subscription`]): on a node busy serving tokens, a change
//! announced by another node would otherwise wait behind the token requests three times —
//! for the notification to be noticed, for a pooled connection and for the re-read's answer
//! to be noticed — before the model refuses what it revoked. The operating system schedules
//! the woken thread at once. Full reloads run there too, through the same connection.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::Clavis;
use crate::model::KeyRing;
use crate::store::{Change, Store, StoreError, StoreResult, Subscription};

/// Most announcements handled in one round (duplicates within a round are read once).
const MAX_BATCH: usize = 256;

/// Least time from the start of one round of re-reads to the next: a change that arrives
/// sooner waits for the rest of it (a lone change is read at once).
const PACE: Duration = Duration::from_millis(2);

/// The periodic full reload waits at least this many times as long as the last reload
/// took: it holds every write back while it runs (`write_order`), and at a million clients
/// it takes as long as a start-up (about 15 s on 2 cores), which every 30 s would stall the
/// node's writes half of the time. A reload of a small store takes milliseconds: the
/// configured period rules.
const RELOAD_SPACING: u32 = 20;

/// Wait before retrying a failed resynchronisation.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A node listening for other nodes' changes, before its read model exists.
pub struct Listening {
    start: oneshot::Sender<Weak<Clavis>>,
}

impl Listening {
    /// Starts keeping `clavis`'s read model in step with what was announced since
    /// [`listen`] returned. Dropping the `Listening` instead stops listening.
    pub fn start(self, clavis: &Arc<Clavis>) {
        // The thread is gone only if its runtime could not run; nothing then to start.
        let _ = self.start.send(Arc::downgrade(clavis));
    }
}

/// Subscribes to `store`'s announcements on the sync thread, which it starts; `None` for a
/// store only this process uses (no thread is left running). A change committed after this
/// returns is delivered. The thread ends when the store closes (the stream ends), when the
/// service is dropped, or with the runtime this is called on.
pub async fn listen(
    store: &Arc<dyn Store>,
    resync_every: Duration,
) -> StoreResult<Option<Listening>> {
    let (subscribed, is_subscribed) = oneshot::channel::<StoreResult<bool>>();
    let (start, started) = oneshot::channel::<Weak<Clavis>>();
    let (runtime_alive, runtime_gone) = oneshot::channel::<()>();
    let node = Handle::current();
    let store = store.clone();
    let body = move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = subscribed.send(Err(StoreError::Internal(format!(
                    "cannot start the change listener's runtime: {e}"
                ))));
                return;
            }
        };
        runtime.block_on(async move {
            let subscription = match store.subscribe().await {
                Ok(Some(subscription)) => subscription,
                other => {
                    let _ = subscribed.send(other.map(|_| false));
                    return;
                }
            };
            drop(store);
            if subscribed.send(Ok(true)).is_err() {
                return;
            }
            tokio::select! {
                _ = runtime_gone => {}
                () = async {
                    if let Ok(clavis) = started.await {
                        run(clavis, subscription, resync_every).await;
                    }
                } => {}
            }
        });
    };
    std::thread::Builder::new()
        .name("clavis-sync".into())
        .spawn(body)
        .map_err(|e| StoreError::Internal(format!("cannot start the change listener: {e}")))?;
    match is_subscribed.await {
        Ok(Ok(true)) => {
            // Dropped with the node's runtime (a runtime drops its tasks when it shuts
            // down), which ends the thread.
            node.spawn(async move {
                let _alive = runtime_alive;
                std::future::pending::<()>().await;
            });
            Ok(Some(Listening { start }))
        }
        Ok(Ok(false)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StoreError::Internal(
            "the change listener's thread ended before subscribing".into(),
        )),
    }
}

async fn run(clavis: Weak<Clavis>, subscription: Subscription, resync_every: Duration) {
    let Subscription {
        mut changes,
        reader,
    } = subscription;
    let every = resync_every.max(Duration::from_secs(1));
    // The model was just loaded.
    let mut next_reload = Instant::now() + every;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut resync_pending = false;
    let mut last_round: Option<Instant> = None;
    loop {
        let retry = async {
            if resync_pending {
                tokio::time::sleep(RETRY_AFTER).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let work: Vec<Change> = tokio::select! {
            n = changes.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                // Rounds come at most every PACE: each one takes the commit turn that local
                // writes wait for, so while changes keep coming they are read in groups.
                if let Some(last) = last_round
                    && last.elapsed() < PACE
                {
                    tokio::time::sleep_until((last + PACE).into()).await;
                    while batch.len() < MAX_BATCH {
                        match changes.try_recv() {
                            Ok(change) => batch.push(change),
                            Err(_) => break,
                        }
                    }
                }
                let mut round: Vec<Change> = Vec::with_capacity(batch.len());
                for change in batch.drain(..) {
                    if !round.contains(&change) {
                        round.push(change);
                    }
                }
                round
            }
            () = tokio::time::sleep_until(next_reload.into()) => vec![Change::Resync],
            () = retry => vec![Change::Resync],
        };
        let Some(clavis) = clavis.upgrade() else {
            return;
        };
        let started = Instant::now();
        last_round = Some(started);
        let reload = work.contains(&Change::Resync);
        let result = clavis.apply_changes(reader.as_ref(), &work).await;
        match result {
            Ok(()) => {
                resync_pending = false;
                if reload {
                    next_reload = Instant::now() + every.max(started.elapsed() * RELOAD_SPACING);
                }
                tracing::debug!(changes = work.len(), elapsed = ?started.elapsed(), "read model synchronised");
            }
            Err(e) => {
                if !resync_pending {
                    tracing::warn!(error = %e, "read model synchronisation failed; resynchronising when the store answers");
                }
                resync_pending = true;
            }
        }
    }
}

impl Clavis {
    /// Reloads the whole read model from `store`.
    pub async fn resync(&self, store: &dyn Store) -> StoreResult<()> {
        let _turn = self.writes.exclusive().await?;
        self.model.reload_from(store, &self.master_key).await
    }

    /// Re-reads the entities named by `changes` from `store` and updates the read model; a
    /// [`Change::Resync`] among them reloads it all instead ([`Clavis::resync`]).
    pub async fn apply_changes(&self, store: &dyn Store, changes: &[Change]) -> StoreResult<()> {
        if changes.contains(&Change::Resync) {
            // Under the exclusive turn: no local write may interleave with a reload.
            return self.resync(store).await;
        }
        let _turn = self.writes.apply().await?;
        for change in changes {
            self.apply_locked(store, change).await?;
        }
        Ok(())
    }

    async fn apply_locked(&self, store: &dyn Store, change: &Change) -> StoreResult<()> {
        match change {
            Change::Client(client_id) => match store.client(client_id).await? {
                Some(aggregate) => self.model.put_client(&aggregate, &self.master_key),
                // Its grants were announced one by one.
                None => self.model.remove_client(client_id, &[]),
            },
            Change::ResourceServer { id, identifier } => {
                let mut current = store.resource_server(id).await?;
                if current.is_none() {
                    // Deleted; another may hold the identifier by now.
                    current = store
                        .resource_server(identifier)
                        .await?
                        .filter(|rs| rs.identifier == *identifier);
                }
                match current {
                    Some(rs) => self.model.put_api(&rs, &self.master_key),
                    None => self.model.remove_api(identifier, &[]),
                }
            }
            Change::ClientGrant(id) => match store.client_grant(id).await? {
                Some(grant) => self.model.put_grant(&grant),
                None => self.model.remove_grant(id),
            },
            Change::Organization(id) => match store.organization(id).await? {
                Some(record) => self.model.put_organization(&record),
                None => self.model.remove_organization(id),
            },
            Change::TenantSettings => {
                let settings = store.tenant_settings().await?;
                self.model.put_tenant_settings(&settings);
            }
            Change::SigningKeys => {
                let keys = store.signing_keys().await?;
                let ring = KeyRing::build(&keys, &self.master_key).map_err(StoreError::Internal)?;
                self.model.put_keys(ring);
            }
            // `apply_changes` reloads under the exclusive turn instead of the apply turn held
            // here.
            Change::Resync => {
                return Err(StoreError::Internal(
                    "a reload is not applied as a re-read".into(),
                ));
            }
        }
        Ok(())
    }
}

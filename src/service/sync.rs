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

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Clavis;
use crate::model::KeyRing;
use crate::store::{Change, StoreError, StoreResult};

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

/// Starts the task. It ends when the store closes (the stream ends) or the service is
/// dropped.
pub fn start(
    clavis: &Arc<Clavis>,
    changes: mpsc::Receiver<Change>,
    resync_every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(run(Arc::downgrade(clavis), changes, resync_every))
}

async fn run(clavis: Weak<Clavis>, mut changes: mpsc::Receiver<Change>, resync_every: Duration) {
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
        let result = if reload {
            clavis.resync().await
        } else {
            clavis.apply_changes(&work).await
        };
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
    /// Reloads the whole read model from the store.
    pub async fn resync(&self) -> StoreResult<()> {
        let _turn = self.writes.exclusive().await?;
        self.model
            .reload_from(self.store.as_ref(), &self.master_key)
            .await
    }

    /// Re-reads the entities named by `changes` and updates the read model.
    pub async fn apply_changes(&self, changes: &[Change]) -> StoreResult<()> {
        let _turn = self.writes.apply().await?;
        for change in changes {
            self.apply_locked(change).await?;
        }
        Ok(())
    }

    async fn apply_locked(&self, change: &Change) -> StoreResult<()> {
        match change {
            Change::Client(client_id) => match self.store.client(client_id).await? {
                Some(aggregate) => self.model.put_client(&aggregate, &self.master_key),
                // Its grants were announced one by one.
                None => self.model.remove_client(client_id, &[]),
            },
            Change::ResourceServer { id, identifier } => {
                let mut current = self.store.resource_server(id).await?;
                if current.is_none() {
                    // Deleted; another may hold the identifier by now.
                    current = self
                        .store
                        .resource_server(identifier)
                        .await?
                        .filter(|rs| rs.identifier == *identifier);
                }
                match current {
                    Some(rs) => self.model.put_api(&rs, &self.master_key),
                    None => self.model.remove_api(identifier, &[]),
                }
            }
            Change::ClientGrant(id) => match self.store.client_grant(id).await? {
                Some(grant) => self.model.put_grant(&grant),
                None => self.model.remove_grant(id),
            },
            Change::Organization(id) => match self.store.organization(id).await? {
                Some(record) => self.model.put_organization(&record),
                None => self.model.remove_organization(id),
            },
            Change::TenantSettings => {
                let settings = self.store.tenant_settings().await?;
                self.model.put_tenant_settings(&settings);
            }
            Change::SigningKeys => {
                let keys = self.store.signing_keys().await?;
                let ring = KeyRing::build(&keys, &self.master_key).map_err(StoreError::Internal)?;
                self.model.put_keys(ring);
            }
            Change::Resync => {
                self.model
                    .reload_from(self.store.as_ref(), &self.master_key)
                    .await?;
            }
        }
        Ok(())
    }
}

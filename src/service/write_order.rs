//! The turns a node's writes take: how many run at once, and who may touch the read model
//! when (see [`crate::store::commit_order`]).

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore, SemaphorePermit};

use super::ServiceResult;
use crate::store::{StoreError, StoreResult, commit_order};

/// Admission and ordering of a node's writes.
pub(super) struct WriteOrder {
    /// One permit per write running; all of them for a full reload of the model.
    writers: Semaphore,
    permits: u32,
    /// Held from a write's commit until the read model has it, and while the change listener
    /// re-reads and applies what another node changed.
    commit: Arc<Mutex<()>>,
}

/// What the change listener holds while it applies changes (one of the two).
pub(super) struct ApplyTurn<'a> {
    _commit: Option<OwnedMutexGuard<()>>,
    _permit: Option<SemaphorePermit<'a>>,
}

impl WriteOrder {
    /// `permits` writes at once (at least one): the store's [`crate::store::Store::concurrent_writes`].
    pub(super) fn new(permits: u32) -> Self {
        let permits = permits.max(1);
        Self {
            writers: Semaphore::new(permits as usize),
            permits,
            commit: Arc::default(),
        }
    }

    /// Runs one write: its store call and its read-model update. With one permit the whole
    /// write is the turn; with more, its commit and what follows it are
    /// ([`commit_order::run`]).
    pub(super) async fn write<T>(
        &self,
        f: impl AsyncFnOnce() -> ServiceResult<T>,
    ) -> ServiceResult<T> {
        let _permit = self.writers.acquire().await.map_err(closed)?;
        commit_order::run(self.commit.clone(), f()).await
    }

    /// The turn to re-read changed entities and apply them. With concurrent writes, the
    /// commit lock: a write past its statements waits to commit, and a re-read made now sees
    /// every commit whose model update is done. With one write at a time, its permit: no
    /// write is running.
    pub(super) async fn apply(&self) -> StoreResult<ApplyTurn<'_>> {
        Ok(if self.permits > 1 {
            ApplyTurn {
                _commit: Some(self.commit.clone().lock_owned().await),
                _permit: None,
            }
        } else {
            ApplyTurn {
                _commit: None,
                _permit: Some(self.writers.acquire().await.map_err(closed)?),
            }
        })
    }

    /// Every permit: no write runs until it is dropped (a full reload of the model).
    pub(super) async fn exclusive(&self) -> StoreResult<SemaphorePermit<'_>> {
        self.writers
            .acquire_many(self.permits)
            .await
            .map_err(closed)
    }
}

/// The semaphore is never closed; a closed one would be a bug, not a wait.
fn closed(_: tokio::sync::AcquireError) -> StoreError {
    StoreError::Internal("the write admission was closed".into())
}

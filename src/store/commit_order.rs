//! Commit order for a node's read model when its write transactions run side by side.
//!
//! A node applies each of its writes to its in-memory read model after the store has
//! committed it, and must apply any two writes to the same rows in the order they committed
//! (a stale version applied last would, say, bring back an expired credential). With SQLite
//! the node writes one transaction at a time, so the order holds by itself. On PostgreSQL a
//! whole transaction under one node-wide lock made every write wait for the one before it,
//! commit (and fsync) included: a node wrote about as many times per second as one connection
//! can commit.
//!
//! Instead, the service runs a write inside [`run`] with its commit lock. The store takes
//! that lock right before `COMMIT` ([`commit`]) and it stays held until the write (its store
//! call and its read-model update) has finished. Two transactions that touch the same rows
//! cannot both get past their statements before the first commits (PostgreSQL's row locks,
//! which the store takes for every rule it checks), so the one that commits first holds the
//! lock first and updates the model first. Writes to different rows run their statements
//! meanwhile; only their commits and model updates take turns. The change listener re-reads
//! what other nodes changed under the same lock (`service::sync`).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

tokio::task_local! {
    static ORDER: Ordered;
}

struct Ordered {
    lock: Arc<Mutex<()>>,
    /// The lock, from the write's first commit until the write has finished.
    held: std::sync::Mutex<Option<OwnedMutexGuard<()>>>,
}

/// Runs one write (store call, then read-model update). Every commit the store makes in it
/// through [`commit`] takes `lock` first, and the lock stays held until `write` has
/// finished.
pub async fn run<F: Future>(lock: Arc<Mutex<()>>, write: F) -> F::Output {
    let ordered = Ordered {
        lock,
        held: std::sync::Mutex::new(None),
    };
    // The guard, if a commit took it, is dropped with the scope's value, after `write`.
    ORDER.scope(ordered, write).await
}

/// Whether this runs inside [`run`]: a write of the service's, which waits for
/// [`super::Store::durable`] before it is acknowledged.
pub fn in_write() -> bool {
    ORDER.try_with(|_| ()).is_ok()
}

/// Commits with `commit`, in commit order when called inside [`run`]: takes the write's
/// lock first (unless an earlier commit of the same write holds it) and keeps it if the
/// commit succeeds; a failed commit releases it (the write is retried or fails, and updates
/// nothing). Outside [`run`], commits at once.
pub async fn commit<T, E>(commit: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let lock = ORDER
        .try_with(|o| {
            let held = o.held.lock().unwrap_or_else(|e| e.into_inner()).is_some();
            (!held).then(|| o.lock.clone())
        })
        .ok()
        .flatten();
    let Some(lock) = lock else {
        return commit.await;
    };
    let guard = lock.lock_owned().await;
    let out = commit.await;
    if out.is_ok() {
        let _ = ORDER.try_with(|o| {
            *o.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_lock_is_held_from_the_commit_to_the_end_of_the_write() {
        let lock = Arc::new(Mutex::new(()));
        let probe = lock.clone();
        run(lock.clone(), async {
            assert!(probe.try_lock().is_ok(), "free before the commit");
            commit(async { Ok::<_, ()>(()) }).await.unwrap();
            assert!(probe.try_lock().is_err(), "held after the commit");
            // A second commit in the same write does not wait for itself.
            commit(async { Ok::<_, ()>(()) }).await.unwrap();
        })
        .await;
        assert!(probe.try_lock().is_ok(), "released with the write");
    }

    #[tokio::test]
    async fn a_failed_commit_releases_the_lock() {
        let lock = Arc::new(Mutex::new(()));
        let probe = lock.clone();
        run(lock, async {
            commit(async { Err::<(), _>("no") }).await.unwrap_err();
            assert!(probe.try_lock().is_ok());
            commit(async { Ok::<_, ()>(()) }).await.unwrap();
            assert!(probe.try_lock().is_err());
        })
        .await;
    }

    #[tokio::test]
    async fn a_write_knows_it_is_one() {
        assert!(!in_write());
        run(Arc::default(), async { assert!(in_write()) }).await;
    }

    #[tokio::test]
    async fn outside_a_write_a_commit_takes_no_lock() {
        let lock = Arc::new(Mutex::new(()));
        let _held = lock.clone().lock_owned().await;
        // Would wait forever if it took the lock.
        commit(async { Ok::<_, ()>(()) }).await.unwrap();
    }

    #[tokio::test]
    async fn commits_wait_for_the_write_holding_the_lock() {
        let lock = Arc::new(Mutex::new(()));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (committed, wait_committed) = tokio::sync::oneshot::channel();
        let (release, wait_release) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let (lock, order) = (lock.clone(), order.clone());
            run(lock, async move {
                commit(async { Ok::<_, ()>(()) }).await.unwrap();
                committed.send(()).unwrap();
                wait_release.await.unwrap();
                order.lock().unwrap().push("first applied");
            })
        });
        wait_committed.await.unwrap();
        let second = tokio::spawn({
            let (lock, order) = (lock.clone(), order.clone());
            run(lock, async move {
                commit(async {
                    order.lock().unwrap().push("second committed");
                    Ok::<_, ()>(())
                })
                .await
                .unwrap();
            })
        });
        tokio::task::yield_now().await;
        assert!(order.lock().unwrap().is_empty(), "the second waits");
        release.send(()).unwrap();
        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            vec!["first applied", "second committed"]
        );
    }
}

//! Single-use client-assertion ids, durable across restarts and shared by every node that
//! uses the same store.
//!
//! This is the only write on the token hot path. Requests hand their `jti` to one writer
//! task, which commits whatever has queued up in a single transaction (group commit). The
//! commit decides which ids are fresh, and the writer answers at once; each answer carries a
//! [`Durable`] that resolves when the batch's fsync has finished
//! ([`Store::when_jtis_durable`]). The token endpoint signs its token while that fsync runs
//! and sends it only once the record is durable, so no token leaves before its assertion's
//! id is on stable storage, and the fsync's latency overlaps the signing instead of adding
//! to it. A replay is known at commit time and is refused without signing anything.
//!
//! Before committing, the writer lets the requests already under way join the batch (see
//! [`gather`]); while one batch commits and waits for its fsync the writer gathers the next,
//! and commits it beside the first once it holds a few records ([`IN_FLIGHT`],
//! [`SECOND_BATCH`]), so under load many assertions share one commit and one fsync.
//!
//! That is the guard of a shared store (PostgreSQL), where the commit is what tells nodes
//! apart. A store this process alone uses (SQLite) gets the [`local`] guard instead: ids are
//! decided in memory and written behind, and a durable horizon bounds what a crash can lose.

mod local;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::AtomicHistogram;
use crate::store::{JtiRecord, Store, StoreError};

/// Most records committed in one transaction.
const MAX_BATCH: usize = 512;

/// The longest a batch waits for more records. Each commit costs a write of the log and an
/// fsync whatever its size (on the bench machine ~120 µs of CPU, most of it the virtual
/// disk's), so under load sharing them makes them a small share of a token.
const LINGER: Duration = Duration::from_millis(2);

/// Batches committing at once. On PostgreSQL a commit returns once its WAL is flushed, so
/// with one batch at a time every request waited for that round trip and the CPU idled
/// (8 % of the bench's PostgreSQL phase at 64 connections); with two, the next batch gathers
/// and commits while one flushes. A `jti` in both is decided by the table's primary key: the
/// later insert waits for the earlier one's row lock and then finds it (each batch locks its
/// rows in one order, so two never deadlock).
const IN_FLIGHT: usize = 2;

/// Records that start a batch beside one still committing; fewer wait for that commit to end
/// and go in the next one. Below full load a second commit at once bought no throughput and
/// cost commits: on PostgreSQL at 2,300 tokens/s (half its full rate, 2 cores) 15-s rounds
/// took 19–23k commits with any two at once (once 11.8k) and 11–15k one at a time, and the
/// database spent 161–192 µs of CPU per token against 146–155. One at a time cost a tenth of
/// the full rate, which this keeps (interleaved: 4,197 and 3,908 tokens/s against 4,032 and
/// 3,701 unconditionally; 4,080, 4,033 and 4,598 against 4,187, 4,037 and 4,091).
const SECOND_BATCH: usize = 4;

/// The writer's answer: `Some` when the id was unused, `None` for a replay.
type Reply = oneshot::Sender<Result<Option<Durable>, StoreError>>;

struct Pending {
    record: JtiRecord,
    reply: Reply,
}

/// The outcome of a batch's fsync: `None` while it runs.
type Outcome = Option<Result<(), StoreError>>;

/// What recording an assertion id decided.
#[derive(Debug)]
pub enum Recorded {
    /// The id was unused: wait for the [`Durable`] before answering.
    Fresh(Durable),
    /// The id was used already.
    Replay,
    /// Issued before an unclean stop whose last ids may be lost (the local guard's floor):
    /// refused, since it may have been used.
    IssuedBeforeCrash,
}

/// Resolves once a recorded id is durable; see [`Durable::wait`].
#[derive(Debug)]
pub struct Durable(Option<watch::Receiver<Outcome>>);

impl Durable {
    /// A record whose loss a crash cannot turn into a replay already (the local guard).
    fn now() -> Self {
        Self(None)
    }

    /// Waits for the fsync that covers the record. Nothing that depends on the record (a
    /// token) may be sent before this returns `Ok`.
    pub async fn wait(self) -> Result<(), StoreError> {
        let Some(mut outcome) = self.0 else {
            return Ok(());
        };
        match outcome.wait_for(Option::is_some).await {
            Ok(outcome) => match &*outcome {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(e.duplicate()),
                None => Err(StoreError::Internal("replay fsync outcome missing".into())),
            },
            Err(_) => Err(StoreError::Unavailable("replay writer stopped".into())),
        }
    }
}

/// Handle to the guard.
#[derive(Debug, Clone)]
pub struct ReplayGuard(Guard);

#[derive(Debug, Clone)]
enum Guard {
    /// A shared store decides each id at commit (the writer task below).
    Shared(mpsc::Sender<Pending>),
    /// This process alone uses the store: ids are decided in memory ([`local`]).
    Local(Arc<local::LocalGuard>),
}

impl ReplayGuard {
    /// Starts the guard the store calls for, and the periodic purge of expired records.
    /// `latency` gets one observation per batch written.
    pub fn start(store: Arc<dyn Store>, latency: AtomicHistogram) -> Self {
        tokio::spawn(purger(Arc::downgrade(&store)));
        if store.single_process() {
            return Self(Guard::Local(local::LocalGuard::start(store, latency)));
        }
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(writer(rx, move |batch| {
            let store = Arc::clone(&store);
            let latency = latency.clone();
            async move { commit(store.as_ref(), batch, &latency).await }
        }));
        Self(Guard::Shared(tx))
    }

    /// Records the id of an assertion issued at `iat` (if it says).
    pub async fn record(
        &self,
        record: JtiRecord,
        iat: Option<i64>,
    ) -> Result<Recorded, StoreError> {
        let tx = match &self.0 {
            Guard::Local(guard) => return guard.record(record, iat).await,
            Guard::Shared(tx) => tx,
        };
        let (reply, wait) = oneshot::channel();
        tx.send(Pending { record, reply })
            .await
            .map_err(|_| StoreError::Unavailable("replay writer stopped".into()))?;
        Ok(
            match wait
                .await
                .map_err(|_| StoreError::Unavailable("replay writer stopped".into()))??
            {
                Some(durable) => Recorded::Fresh(durable),
                None => Recorded::Replay,
            },
        )
    }

    /// Graceful stop (after the last request): the local guard writes every id and clears
    /// its horizon, so that the next start refuses nothing. Nothing to do on a shared store,
    /// whose ids are durable before their tokens leave.
    pub async fn close(&self) {
        if let Guard::Local(guard) = &self.0 {
            guard.close().await;
        }
    }
}

/// Takes the queued records in batches and hands each to `commit`, up to [`IN_FLIGHT`] at a
/// time.
async fn writer<F, C>(mut rx: mpsc::Receiver<Pending>, commit: C)
where
    C: Fn(Vec<Pending>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        // Records queue in the channel while every slot commits: the next batch takes them
        // all at once.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        // While another batch commits, this one waits for it to end unless it grows to a
        // commit's worth first (under full load it does within the commit).
        while batch.len() < SECOND_BATCH && slots.available_permits() + 1 < IN_FLIGHT {
            tokio::select! {
                ended = slots.acquire() => {
                    drop(ended);
                    break;
                }
                n = rx.recv_many(&mut batch, MAX_BATCH - SECOND_BATCH) => {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
        gather(&mut rx, &mut batch).await;
        let committed = commit(batch);
        tokio::spawn(async move {
            committed.await;
            drop(slot);
        });
    }
}

/// Commits one batch and answers its requests.
async fn commit(store: &dyn Store, batch: Vec<Pending>, latency: &AtomicHistogram) {
    let (records, replies): (Vec<JtiRecord>, Vec<_>) =
        batch.into_iter().map(|p| (p.record, p.reply)).unzip();
    let now = crate::domain::time::Timestamp::now().unix_seconds();
    let started = std::time::Instant::now();
    match store.record_jtis(&records, now).await {
        Ok(fresh) if fresh.len() == replies.len() => {
            // The fsync is asked for first, then each request learns whether its id was
            // fresh. The fsync runs on the store's sync thread beside their signing and
            // beside the next batch's gathering and commit, and tells the waiting requests
            // itself when it is done. A batch of replays only wrote nothing a token depends
            // on: no fsync.
            let (done, outcome) = watch::channel(None);
            if fresh.contains(&true) {
                let latency = latency.clone();
                store.when_jtis_durable(Box::new(move |result| {
                    latency.observe(started.elapsed());
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "making assertion ids durable failed");
                    }
                    let _ = done.send(Some(result));
                }));
            }
            for (reply, fresh) in replies.into_iter().zip(fresh) {
                let _ = reply.send(Ok(fresh.then(|| Durable(Some(outcome.clone())))));
            }
        }
        Ok(_) => fail(
            replies,
            &StoreError::Internal("replay batch size mismatch".into()),
        ),
        Err(e) => fail(replies, &e),
    }
}

/// Lets the requests that are already under way join the batch: the writer yields to the
/// scheduler and takes what arrived, again while each pass brings more, for up to
/// [`LINGER`]. With spare CPU the run queue is empty, a pass takes microseconds and the batch
/// commits at once; under load a pass lasts as long as the tasks ahead of the writer run,
/// and the records they hand over share the commit. (A fixed 2 ms wait whenever requests
/// queued, the earlier design, held every batch at half load: 1,200 tokens/s open loop on 2
/// cores, p50 3.6–4.1 ms and p99 8.4–9.3 ms against 2.4–2.6 and 4.2–6.2 ms now, with the
/// same full-load throughput.)
async fn gather(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < MAX_BATCH && tokio::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        if batch.len() == before {
            break;
        }
    }
}

/// Answers every request of a batch that could not be recorded.
fn fail(replies: Vec<Reply>, e: &StoreError) {
    tracing::warn!(error = %e, "recording assertion ids failed");
    for reply in replies {
        let _ = reply.send(Err(e.duplicate()));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pending(jti: &str) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            record: JtiRecord {
                client_id: "c".into(),
                jti: jti.into(),
                expires_at: 0,
            },
            reply,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_takes_in_the_requests_already_under_way() {
        let (tx, mut rx) = mpsc::channel(64);
        // Requests that are runnable but have not run yet when the writer wakes.
        for i in 0..10 {
            let tx = tx.clone();
            tokio::spawn(async move {
                tx.send(pending(&i.to_string())).await.unwrap();
            });
        }
        let mut batch = vec![pending("first")];
        gather(&mut rx, &mut batch).await;
        assert_eq!(batch.len(), 11);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_second_batch_commits_beside_the_first_only_with_a_commits_worth() {
        let (tx, rx) = mpsc::channel(64);
        let (started, mut commits) = mpsc::unbounded_channel();
        // Commit `i` ends once `released` exceeds `i`.
        let (release, released) = watch::channel(0usize);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(writer(rx, move |batch: Vec<Pending>| {
            let started = started.clone();
            let mut released = released.clone();
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let _ = started.send((i, batch.len()));
                let _ = released.wait_for(|r| *r > i).await;
            }
        }));
        let wait = Duration::from_secs(5);
        let quiet = Duration::from_millis(50);
        // Nothing commits: the first record goes at once.
        tx.send(pending("0")).await.unwrap();
        let first = tokio::time::timeout(wait, commits.recv()).await.unwrap();
        assert_eq!(first, Some((0, 1)));
        // A lone record waits for that commit to end, then goes.
        tx.send(pending("1")).await.unwrap();
        assert!(tokio::time::timeout(quiet, commits.recv()).await.is_err());
        release.send(1).unwrap();
        let second = tokio::time::timeout(wait, commits.recv()).await.unwrap();
        assert_eq!(second, Some((1, 1)));
        // A commit's worth commits beside the one under way.
        for i in 0..SECOND_BATCH {
            tx.send(pending(&format!("w{i}"))).await.unwrap();
        }
        let beside = tokio::time::timeout(wait, commits.recv()).await.unwrap();
        assert_eq!(beside, Some((2, SECOND_BATCH)));
        // Every slot is taken: the next records queue until a commit ends, then go together,
        // however many they are.
        for i in 0..SECOND_BATCH + 1 {
            tx.send(pending(&format!("q{i}"))).await.unwrap();
        }
        assert!(tokio::time::timeout(quiet, commits.recv()).await.is_err());
        release.send(2).unwrap();
        let queued = tokio::time::timeout(wait, commits.recv()).await.unwrap();
        assert_eq!(queued, Some((3, SECOND_BATCH + 1)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_recorded_id_is_durable_only_when_its_fsync_succeeded() {
        let (done, outcome) = watch::channel(None);
        let mut waiting = tokio::spawn(Durable(Some(outcome.clone())).wait());
        // The fsync has not finished: the wait goes on.
        tokio::task::yield_now().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err()
        );
        done.send(Some(Ok(()))).unwrap();
        assert!(waiting.await.unwrap().is_ok());

        let (done, outcome) = watch::channel(None);
        done.send(Some(Err(StoreError::Unavailable("disk gone".into()))))
            .unwrap();
        let err = Durable(Some(outcome.clone())).wait().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(m) if m == "disk gone"));

        let (done, outcome) = watch::channel(None);
        done.send(Some(Err(StoreError::Internal("io error".into()))))
            .unwrap();
        let err = Durable(Some(outcome)).wait().await.unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)));

        // The fsync task went away without an outcome: never taken as durable.
        let (done, outcome) = watch::channel(None);
        drop(done);
        assert!(matches!(
            Durable(Some(outcome)).wait().await,
            Err(StoreError::Unavailable(_))
        ));
    }
}

//! Group commit for the SQLite store: many commits, one fsync.
//!
//! The writer connection runs with `synchronous=NORMAL`: a commit appends its frames to the
//! write-ahead log (the OS has them, so a process crash loses nothing) without an fsync.
//! Before any write is acknowledged, [`WalSync::when_durable`] (or [`WalSync::durable`])
//! makes sure an fsync of the log started *after* that write committed has finished.
//! Writes that arrive while an fsync is running wait for it and then share the next one, so
//! under concurrency one fsync covers a whole batch of commits; alone, a write costs one
//! fsync as with `synchronous=FULL`.
//!
//! The fsyncs run on threads of their own, which answer the waiting writes themselves: a
//! request does not wait for an async worker to get round to starting its fsync or to
//! passing on the result (on a busy worker, each costs up to a token's signing time).
//! Measured at 1,400 tokens/s on the 2-core bench machine, the time a token waited for its
//! `jti` record after its signature was done fell from 220–1,215 µs to 83–277 µs (mean).
//!
//! SQLite's own rules with `synchronous=NORMAL` in WAL mode keep the rest durable: the log
//! is synced before each checkpoint copies it into the database file, the database file is
//! synced after the checkpoint, and the log header is synced when the log is reused.
//! The log file can be replaced (SQLite deletes it when the last connection closes, after a
//! checkpoint that made it durable in the database file); every sync checks the file's
//! identity and reopens it when it changed, syncing the directory once for the new entry.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{StoreError, StoreResult, WhenDurable};

/// Threads that run fsyncs of the log, so at most this many run at once.
const SYNC_THREADS: usize = 2;

/// How long the running fsync may take before the other thread starts the next one beside
/// it. Most fsyncs of the bench machine's virtual disk take 0.1–1 ms; about one in a
/// hundred stalls for 5–20 ms, and of the fsyncs started during a stall 44 % finished
/// before it. Each fsync, whichever finishes first, covers the writes committed before it
/// started.
const HEDGE_AFTER: Duration = Duration::from_millis(1);

/// See the module documentation.
#[derive(Debug)]
pub struct WalSync {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The `-wal` file.
    wal: PathBuf,
    state: Mutex<State>,
    /// Signalled when a request needs a thread that is not already on its way (see
    /// [`WalSync::when_durable`]) and at shutdown.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Requests so far; each takes its number after its write committed.
    requested: u64,
    /// Every request numbered up to this one has been answered: covered by a finished
    /// fsync, or told why it could not be.
    settled: u64,
    /// The running fsyncs: when each started and the request number it covers.
    running: Vec<(Instant, u64)>,
    /// A thread waits for the running fsync's hedge time.
    hedging: bool,
    /// Requests not yet covered, by number.
    waiting: VecDeque<(u64, WhenDurable)>,
    /// Set by a failed fsync: the kernel may have dropped the pages it could not write, so a
    /// later fsync's success would not mean they are on disk. Every later request fails.
    failed: Option<String>,
    /// The open log file and its inode.
    file: Option<(Arc<File>, u64)>,
    /// fsyncs done (for tests).
    syncs: u64,
    /// The `WalSync` was dropped: the threads finish the waiting requests and stop.
    closing: bool,
    /// A fault the tests inject into the next fsync (never set outside tests).
    fault: Option<Fault>,
}

/// Faults the tests inject into an fsync; none exist outside tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The fsync fails.
    Fail,
    /// The fsync takes this much longer.
    Stall(Duration),
}

#[cfg(not(test))]
#[derive(Debug, Clone, Copy)]
enum Fault {}

impl Fault {
    /// The fsync of `file` with this fault.
    fn sync(self, file: &File) -> std::io::Result<()> {
        #[cfg(test)]
        match self {
            Fault::Fail => Err(std::io::Error::other("injected failure")),
            Fault::Stall(stall) => {
                std::thread::sleep(stall);
                file.sync_data()
            }
        }
        #[cfg(not(test))]
        {
            let _ = file;
            match self {}
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("requested", &self.requested)
            .field("settled", &self.settled)
            .field("running", &self.running.len())
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl WalSync {
    /// For the database file at `db`; starts the sync threads.
    pub fn new(db: &Path) -> std::io::Result<Self> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let shared = Arc::new(Shared {
            wal: PathBuf::from(wal),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        for i in 0..SYNC_THREADS {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("clavis-wal-sync-{i}"))
                .spawn(move || shared.run())?;
        }
        Ok(Self { shared })
    }

    /// Calls `then` once every write committed before this call is on stable storage (or
    /// with the error that prevented it), from a sync thread. Must be called after the
    /// write's commit.
    pub fn when_durable(&self, then: WhenDurable) {
        let mut state = self.shared.lock();
        if let Some(failure) = &state.failed {
            let e = failed_before(failure);
            drop(state);
            then(Err(e));
            return;
        }
        state.requested += 1;
        let ticket = state.requested;
        state.waiting.push_back((ticket, then));
        // A thread that finishes an fsync looks for uncovered requests before it waits, and
        // a thread waiting for the hedge time wakes by itself: wake one only when no fsync
        // runs, or to start waiting for the hedge time. (Waking the other thread on every
        // request cost a context switch, often a preempted signing, per batch: at 1,150
        // tokens/s the sync threads made 3.0-3.1 futex calls per fsync, now 1.15.)
        let wake = state.running.is_empty() || !state.hedging;
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Returns once every write committed before this call is on stable storage (the
    /// tests' short form of [`WalSync::when_durable`]).
    #[cfg(test)]
    pub async fn durable(&self) -> StoreResult<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.when_durable(Box::new(move |result| {
            let _ = tx.send(result);
        }));
        rx.await
            .map_err(|_| StoreError::Internal("write-ahead log sync stopped".into()))?
    }

    /// fsyncs done so far.
    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.shared.lock().syncs
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
    }
}

fn failed_before(failure: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "an earlier fsync of the write-ahead log failed ({failure}); restart to recover"
    ))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A sync thread: starts an fsync when a request is not covered by a finished or running
    /// one and no other fsync runs (or the running one has taken longer than
    /// [`HEDGE_AFTER`]); answers the requests each finished fsync covers.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            // Running fsyncs are in start order, so the last covers the most.
            let reached = state
                .running
                .last()
                .map_or(state.settled, |(_, covers)| state.settled.max(*covers));
            if state.requested <= reached {
                if state.closing && state.running.is_empty() {
                    return;
                }
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let now = Instant::now();
            if let Some((newest, _)) = state.running.last() {
                let hedge = *newest + HEDGE_AFTER;
                if now < hedge {
                    state.hedging = true;
                    state = self
                        .wake
                        .wait_timeout(state, hedge - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    state.hedging = false;
                    continue;
                }
            }
            let covers = state.requested;
            state.running.push((now, covers));
            let file = current_file(&self.wal, &mut state.file);
            let fault = state.fault.take();
            drop(state);
            // A failed fsync is final (see `State::failed`); not finding the file is not.
            let (result, sticky) = match file {
                Ok(None) => (Ok(false), false),
                Ok(Some(file)) => match fault.map_or_else(|| file.sync_data(), |f| f.sync(&file)) {
                    Ok(()) => (Ok(true), false),
                    Err(e) => (
                        Err(StoreError::Internal(format!(
                            "fsync of the write-ahead log: {e}"
                        ))),
                        true,
                    ),
                },
                Err(e) => (Err(e), false),
            };
            state = self.lock();
            if let Some(i) = state.running.iter().position(|r| *r == (now, covers)) {
                state.running.remove(i);
            }
            state.settled = state.settled.max(covers);
            match &result {
                Ok(synced) => state.syncs += u64::from(*synced),
                Err(e) if sticky => {
                    tracing::error!(error = %e, "writes are refused until restart");
                    state.failed = Some(e.to_string());
                }
                Err(_) => {}
            }
            // Answered: on success every request this fsync covers; on failure every request
            // it was to cover (and, when the failure is final, every request).
            let upto = if sticky { u64::MAX } else { covers };
            let answered = state.waiting.iter().take_while(|(t, _)| *t <= upto).count();
            let answered: Vec<_> = state.waiting.drain(..answered).collect();
            // This thread looks for uncovered requests itself next; only at shutdown may the
            // other one be waiting for this fsync to finish.
            let closing = state.closing;
            drop(state);
            if closing {
                self.wake.notify_all();
            }
            for (_, then) in answered {
                then(result.as_ref().map(|_| ()).map_err(StoreError::duplicate));
            }
            state = self.lock();
        }
    }
}

/// The log file to sync, reopened when SQLite replaced it. `None` when there is no log: the
/// last connection closed, and SQLite checkpointed it into the (synced) database file.
fn current_file(
    wal: &Path,
    cached: &mut Option<(Arc<File>, u64)>,
) -> StoreResult<Option<Arc<File>>> {
    let inode = match std::fs::metadata(wal) {
        Ok(meta) => meta.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *cached = None;
            return Ok(None);
        }
        Err(e) => return Err(StoreError::Internal(format!("write-ahead log: {e}"))),
    };
    if let Some((file, ino)) = cached
        && *ino == inode
    {
        return Ok(Some(file.clone()));
    }
    let file = Arc::new(
        File::open(wal).map_err(|e| StoreError::Internal(format!("write-ahead log: {e}")))?,
    );
    // A new log file: make its directory entry durable too.
    if let Some(dir) = wal.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::Internal(format!("fsync of the data directory: {e}")))?;
    }
    *cached = Some((file.clone(), inode));
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn log_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        std::fs::write(dir.path().join("db.sqlite-wal"), b"frames").unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn each_call_alone_gets_its_own_fsync() {
        let (_dir, db) = log_dir();
        let sync = WalSync::new(&db).unwrap();
        sync.durable().await.unwrap();
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_fsyncs() {
        let (_dir, db) = log_dir();
        let sync = Arc::new(WalSync::new(&db).unwrap());
        let calls: Vec<_> = (0..64)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.durable().await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let syncs = sync.syncs();
        assert!((1..64).contains(&syncs), "{syncs} fsyncs for 64 calls");
    }

    #[test]
    fn a_callback_is_answered_from_a_sync_thread_and_the_threads_stop_when_dropped() {
        let (_dir, db) = log_dir();
        let sync = WalSync::new(&db).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            sync.when_durable(Box::new(move |result| {
                let thread = std::thread::current().name().map(str::to_owned);
                tx.send((i, result.is_ok(), thread)).unwrap();
            }));
        }
        let mut answers: Vec<_> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        answers.sort_by_key(|a| a.0);
        for (i, (n, ok, thread)) in answers.into_iter().enumerate() {
            assert_eq!(n, i);
            assert!(ok);
            assert!(thread.unwrap().starts_with("clavis-wal-sync-"));
        }
        let shared = Arc::downgrade(&sync.shared);
        drop(sync);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.strong_count() > 0 {
            assert!(Instant::now() < deadline, "sync threads still running");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_its_writes_and_every_later_one() {
        let (_dir, db) = log_dir();
        let sync = WalSync::new(&db).unwrap();
        sync.durable().await.unwrap();
        sync.shared.lock().fault = Some(Fault::Fail);
        let err = sync.durable().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Internal(m) if m.contains("injected failure")),
            "{err}"
        );
        // The kernel may have dropped the pages it could not write: a later fsync's success
        // would prove nothing, so none is tried.
        let err = sync.durable().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("restart")),
            "{err}"
        );
        assert_eq!(sync.syncs(), 1);
    }

    #[test]
    fn a_write_during_a_stalled_fsync_is_answered_by_a_second_one_beside_it() {
        let (_dir, db) = log_dir();
        let sync = WalSync::new(&db).unwrap();
        sync.shared.lock().fault = Some(Fault::Stall(Duration::from_secs(3)));
        let (tx, rx) = std::sync::mpsc::channel();
        let first = tx.clone();
        sync.when_durable(Box::new(move |result| {
            first.send((1, result.is_ok())).unwrap()
        }));
        while sync.shared.lock().running.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        sync.when_durable(Box::new(move |result| {
            tx.send((2, result.is_ok())).unwrap()
        }));
        // The hedge started after both writes committed, so it covers both; the stalled
        // fsync is still running when they are answered.
        let answers: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(answers, [(1, true), (2, true)]);
        let state = sync.shared.lock();
        assert_eq!(state.running.len(), 1, "the stalled fsync answered them");
        assert_eq!(state.syncs, 1);
    }

    #[tokio::test]
    async fn a_replaced_log_is_reopened_and_a_missing_one_skipped() {
        let (dir, db) = log_dir();
        let wal = dir.path().join("db.sqlite-wal");
        let sync = WalSync::new(&db).unwrap();
        sync.durable().await.unwrap();

        std::fs::remove_file(&wal).unwrap();
        sync.durable().await.unwrap();
        assert!(sync.shared.lock().file.is_none());
        assert_eq!(sync.syncs(), 1);

        std::fs::write(&wal, b"new frames").unwrap();
        sync.durable().await.unwrap();
        assert!(sync.shared.lock().file.is_some());
        assert_eq!(sync.syncs(), 2);
    }
}

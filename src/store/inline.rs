//! The SQLite store's connections, used on the calling thread.
//!
//! An embedded database answers a point read or a small write transaction in microseconds.
//! A client library that gives every connection a thread of its own (as sqlx does) turns
//! each statement into a hand-off to that thread and back — channel, futex wake-ups, two
//! context switches — which costs several times the work itself and, for writes, stretches
//! the serial section every write waits for. So the store runs its statements here, on the
//! async worker that asked:
//!
//! - [`InlineReader`]: a small pool of read-only connections. In WAL mode a reader never
//!   waits for the writer.
//! - [`InlineWriter`]: the one write connection (SQLite has one writer anyway), behind a
//!   mutex held only while a transaction runs. It commits with `synchronous=NORMAL`; the
//!   store's group commit makes acknowledged writes durable (see `wal_sync`).
//!
//! Nothing here waits on the async worker. A database that is busy — another process holds
//! the write lock, or a connection is recovering the log — is waited for off the worker:
//! reads retry on the blocking pool with a busy timeout, writes retry after an async pause,
//! both for up to [`BUSY_WAIT`], then report [`StoreError::Unavailable`]. Checkpoints (the
//! copy of the log into the database file, with two fsyncs) run on the blocking pool from a
//! task of their own, never inside a write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::Notify;

use super::{StoreError, StoreResult};

/// How long a busy database is waited for before the caller gets `Unavailable` (503).
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Read connections kept for reuse; more may be open for a moment under a burst.
const MAX_IDLE_READERS: usize = 16;

/// Commits after which the log is checkpointed (a few pages each: about SQLite's own
/// default of 1,000 pages).
const CHECKPOINT_EVERY: u32 = 256;

/// A log with fewer commits than that is still checkpointed after this much quiet.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// Statements a connection keeps prepared (the store has about twenty).
const STATEMENT_CACHE: usize = 64;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) {
            StoreError::Unavailable(format!("database busy: {e}"))
        } else {
            StoreError::Internal(format!("sqlite: {e}"))
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether `e` is the failure of a `UNIQUE` or primary-key constraint.
pub fn unique_violation(e: &rusqlite::Error) -> bool {
    extended_code(e).is_some_and(|code| {
        code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    })
}

/// Whether `e` is the failure of a foreign-key constraint.
pub fn fk_violation(e: &rusqlite::Error) -> bool {
    extended_code(e) == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

fn extended_code(e: &rusqlite::Error) -> Option<std::ffi::c_int> {
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    }
}

fn open(path: &Path, flags: OpenFlags, pragmas: &str) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.execute_batch(pragmas)?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// See the module documentation.
#[derive(Debug)]
pub struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReader {
    /// For the database file at `path` (connections are opened on first use).
    pub fn new(path: &Path) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> StoreResult<Connection> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match reused {
            Some(conn) => Ok(conn),
            None => open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY, ""),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }

    fn run<T>(&self, wait: Duration, f: &impl Fn(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.take()?;
        conn.busy_timeout(wait)?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Runs the read `f` here and now, or, if the database is busy, on the blocking pool
    /// with a busy timeout. `f` runs in one read transaction when it reads more than once
    /// (see [`InlineReader::snapshot`]); otherwise each statement sees the latest commit.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        match self.run(Duration::ZERO, &f) {
            Err(StoreError::Unavailable(_)) => self.read_blocking(f).await,
            other => other,
        }
    }

    /// Runs the read `f` on the blocking pool, waiting up to [`BUSY_WAIT`] for a busy
    /// database.
    pub async fn read_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run(BUSY_WAIT, &f))
            .await
            .map_err(|e| StoreError::Internal(format!("read task: {e}")))?
    }

    /// Runs `f` inside one read transaction, so that all it reads is one consistent state.
    pub fn snapshot<T>(
        conn: &Connection,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        conn.execute_batch("BEGIN DEFERRED")?;
        let out = f(conn);
        let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out?;
        end?;
        Ok(out)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct InlineWriter {
    /// The write connection, `None` once the store is closed. An async mutex: a write waits
    /// for another, or for the end of a checkpoint, without holding up its worker thread.
    conn: Arc<tokio::sync::Mutex<Option<Connection>>>,
    /// Commits since the checkpointer last looked.
    commits: AtomicU32,
    /// Wakes the checkpointer early.
    wake: Arc<Notify>,
    /// The connection of the first checkpoint pass.
    checkpointer: Arc<Mutex<Connection>>,
    /// Checkpoints done (for tests).
    checkpoints: AtomicU64,
}

impl InlineWriter {
    /// Opens the write connection to the (existing, migrated) database at `path`, and
    /// starts its checkpointer.
    pub fn open(path: &Path) -> StoreResult<Arc<Self>> {
        let pragmas = "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                       PRAGMA wal_autocheckpoint = 0;";
        let conn = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE, pragmas)?;
        let checkpointer = open(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE,
            "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
        )?;
        let writer = Arc::new(Self {
            conn: Arc::new(tokio::sync::Mutex::new(Some(conn))),
            commits: AtomicU32::new(0),
            wake: Arc::new(Notify::new()),
            checkpointer: Arc::new(Mutex::new(checkpointer)),
            checkpoints: AtomicU64::new(0),
        });
        tokio::spawn(checkpoints(Arc::downgrade(&writer), writer.wake.clone()));
        Ok(writer)
    }

    /// Runs `f` in an immediate write transaction and commits it if `f` succeeds; an error
    /// from `f` rolls everything back. `f` runs once, with the write lock held.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> StoreResult<T>,
    {
        let mut f = Some(f);
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            let out = {
                let mut conn = self.conn.lock().await;
                Self::try_write(conn.as_mut(), &mut f)?
            };
            if let Some(out) = out {
                if self.commits.fetch_add(1, Ordering::Relaxed) + 1 >= CHECKPOINT_EVERY {
                    self.wake.notify_one();
                }
                return Ok(out);
            }
            // Another process holds the write lock: wait off the worker, then try again.
            if started.elapsed() >= BUSY_WAIT {
                return Err(StoreError::Unavailable(
                    "database busy: another process holds the write lock".into(),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// `Ok(None)`: the database was busy and `f` did not run.
    fn try_write<T, F>(conn: Option<&mut Connection>, f: &mut Option<F>) -> StoreResult<Option<T>>
    where
        F: FnOnce(&Transaction<'_>) -> StoreResult<T>,
    {
        let conn = conn.ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        if !conn.is_autocommit() {
            // A transaction whose rollback failed earlier: end it before the next.
            conn.execute_batch("ROLLBACK")?;
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) if is_busy(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let f = f
            .take()
            .ok_or_else(|| StoreError::Internal("write closure ran twice".into()))?;
        // On an error the transaction is dropped, which rolls it back.
        let out = f(&tx)?;
        tx.commit()?;
        Ok(Some(out))
    }

    /// Copies the log into the database file so that SQLite can start it over, on the
    /// blocking pool, in up to two passes. The first runs on a connection of its own while
    /// writes go on. When it copied the whole log (no write committed meanwhile) the next
    /// write starts the log over and nothing more is needed. Under a steady stream of writes
    /// it never reaches the end of the log, and SQLite starts the log over only once every
    /// frame of it has been copied; so then a second pass copies what was committed meanwhile
    /// with the write lock held (writes wait for it asynchronously, for two fsyncs: the
    /// pause every write behind it sees), and the next write starts the log over. A passive
    /// checkpoint does not wait for readers; SQLite syncs the log before copying it and the
    /// database file after.
    pub async fn checkpoint(&self) -> StoreResult<()> {
        const SQL: &str = "PRAGMA wal_checkpoint(PASSIVE)";
        let first = self.checkpointer.clone();
        let whole_log = tokio::task::spawn_blocking(move || {
            let first = first.lock().unwrap_or_else(PoisonError::into_inner);
            // (busy, frames in the log, frames copied)
            first.query_row(SQL, [], |row| {
                Ok(row.get::<_, i64>(0)? == 0 && row.get::<_, i64>(1)? == row.get::<_, i64>(2)?)
            })
        })
        .await
        .map_err(|e| StoreError::Internal(format!("checkpoint task: {e}")))??;
        if whole_log {
            self.checkpoints.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let held = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || match held.as_ref() {
            Some(writer) => writer.query_row(SQL, [], |_| Ok(())),
            None => Ok(()),
        })
        .await
        .map_err(|e| StoreError::Internal(format!("checkpoint task: {e}")))??;
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Copies the whole log into the database file and empties it, waiting for the write
    /// lock and for readers (for loaders, whose writes follow one another without a pause:
    /// the background checkpoints never catch up with them).
    pub async fn truncate_log(&self) -> StoreResult<()> {
        let held = self.conn.clone().lock_owned().await;
        let first = self.checkpointer.clone();
        let busy = tokio::task::spawn_blocking(move || {
            // Not beside a background pass, which would make this one busy.
            let _first = first.lock().unwrap_or_else(PoisonError::into_inner);
            match held.as_ref() {
                Some(writer) => writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    row.get::<_, i64>(0)
                }),
                None => Ok(0),
            }
        })
        .await
        .map_err(|e| StoreError::Internal(format!("checkpoint task: {e}")))??;
        if busy != 0 {
            return Err(StoreError::Unavailable(
                "the log could not be emptied: a reader holds it".into(),
            ));
        }
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the write connection once the running write is done; later writes get
    /// `Unavailable`.
    pub async fn close(&self) {
        let conn = self.conn.lock().await.take();
        drop(conn);
        self.wake.notify_one();
    }
}

/// Wakes after [`CHECKPOINT_EVERY`] commits, or after [`CHECKPOINT_IDLE`] when there were
/// some, and runs [`InlineWriter::checkpoint`]; ends with the writer.
async fn checkpoints(writer: Weak<InlineWriter>, wake: Arc<Notify>) {
    loop {
        let _ = tokio::time::timeout(CHECKPOINT_IDLE, wake.notified()).await;
        let Some(w) = writer.upgrade() else { return };
        if w.commits.swap(0, Ordering::Relaxed) == 0 {
            if w.conn.lock().await.is_none() {
                return;
            }
            continue;
        }
        if let Err(e) = w.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint of the SQLite log failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn database(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL);",
        )
        .unwrap();
        path
    }

    fn insert(tx: &Transaction<'_>, v: &str) -> StoreResult<()> {
        tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    /// Commits `n` rows of 200 characters, one per transaction.
    async fn write_rows(writer: &InlineWriter, n: usize) {
        for i in 0..n {
            let v = format!("{i:0>200}");
            writer.write(|tx| insert(tx, &v)).await.unwrap();
        }
    }

    /// The size of the log file next to the database of `dir`.
    fn wal_len(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len()
    }

    fn values(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY seq").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_write_waits_for_another_process_holding_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let writer = InlineWriter::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('other');")
            .unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            other.execute_batch("COMMIT").unwrap();
        });
        writer.write(|tx| insert(tx, "ours")).await.unwrap();
        holder.join().unwrap();
        assert_eq!(values(&path), ["other", "ours"]);
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_and_the_next_one_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let writer = InlineWriter::open(&path).unwrap();
        let err = writer
            .write(|tx| {
                insert(tx, "lost")?;
                Err::<(), _>(StoreError::Internal("refused".into()))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
        writer.write(|tx| insert(tx, "kept")).await.unwrap();
        assert_eq!(values(&path), ["kept"]);
    }

    #[tokio::test]
    async fn after_a_checkpoint_the_log_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let writer = InlineWriter::open(&path).unwrap();
        write_rows(&writer, 400).await;
        let grown = wal_len(&dir);
        // A reader in the middle of the log does not stop the checkpoint.
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT COUNT(*) FROM t;")
            .unwrap();
        writer.checkpoint().await.unwrap();
        reader.execute_batch("COMMIT").unwrap();
        writer.checkpoint().await.unwrap();
        // Rewritten from the start: no longer than before.
        write_rows(&writer, 300).await;
        assert_eq!(wal_len(&dir), grown);
        assert_eq!(values(&path).len(), 700);
    }

    #[tokio::test]
    async fn a_checkpoint_that_copies_the_whole_log_does_not_hold_up_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let writer = InlineWriter::open(&path).unwrap();
        write_rows(&writer, 200).await;
        let grown = wal_len(&dir);
        // Nothing commits meanwhile: the first pass copies everything and the checkpoint
        // never waits for the write lock (held here as by a long write).
        let held = writer.conn.clone().lock_owned().await;
        let Ok(done) = tokio::time::timeout(Duration::from_secs(10), writer.checkpoint()).await
        else {
            panic!("the checkpoint waited for the write lock");
        };
        done.unwrap();
        drop(held);
        // The next writes start the log over.
        for i in 0..100 {
            writer
                .write(|tx| insert(tx, &format!("again {i}")))
                .await
                .unwrap();
        }
        assert_eq!(wal_len(&dir), grown);
        assert_eq!(values(&path).len(), 300);
    }

    #[tokio::test]
    async fn the_checkpointer_runs_after_enough_commits_and_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let writer = InlineWriter::open(&path).unwrap();
        let done = || writer.checkpoints.load(Ordering::Relaxed);
        let wait_for = |n: u64| async move {
            for _ in 0..500 {
                if done() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("no checkpoint");
        };
        for i in 0..CHECKPOINT_EVERY {
            writer.write(|tx| insert(tx, &i.to_string())).await.unwrap();
        }
        wait_for(1).await;
        writer.write(|tx| insert(tx, "one more")).await.unwrap();
        wait_for(2).await;
    }

    #[tokio::test]
    async fn a_closed_writer_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let writer = InlineWriter::open(&path).unwrap();
        writer.close().await;
        let err = writer.write(|tx| insert(tx, "late")).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(values(&path).is_empty());
    }
}

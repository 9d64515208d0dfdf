//! Group commit for the SQLite store: many commits, one fsync.
//!
//! The writer connection runs with `synchronous=NORMAL`: a commit appends its frames to the
//! write-ahead log (the OS has them, so a process crash loses nothing) without an fsync.
//! Before any write is acknowledged, [`WalSync::durable`] makes sure an fsync of the log
//! started *after* that write committed has finished. Writers that arrive while an fsync is
//! running wait for it and then share the next one, so under concurrency one fsync covers a
//! whole batch of commits; alone, a write costs one fsync as with `synchronous=FULL`.
//!
//! SQLite's own rules with `synchronous=NORMAL` in WAL mode keep the rest durable: the log
//! is synced before each checkpoint copies it into the database file, the database file is
//! synced after the checkpoint, and the log header is synced when the log is reused.
//! The log file can be replaced (SQLite deletes it when the last connection closes, after a
//! checkpoint that made it durable in the database file); every sync checks the file's
//! identity and reopens it when it changed, syncing the directory once for the new entry.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StoreError, StoreResult};

/// See the module documentation.
#[derive(Debug)]
pub struct WalSync {
    /// The `-wal` file.
    wal: PathBuf,
    /// Calls to `durable` so far; each takes its number after its write committed.
    requested: AtomicU64,
    /// Serialises fsyncs and remembers how far they reached.
    state: tokio::sync::Mutex<State>,
    /// fsyncs done (for tests).
    syncs: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Every `durable` call numbered up to this one is covered by a finished fsync.
    synced: u64,
    /// The open log file and its inode.
    file: Option<(Arc<File>, u64)>,
}

impl WalSync {
    /// For the database file at `db`.
    pub fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: PathBuf::from(wal),
            requested: AtomicU64::new(0),
            state: tokio::sync::Mutex::new(State::default()),
            syncs: AtomicU64::new(0),
        }
    }

    /// Returns once every write committed before this call is on stable storage.
    pub async fn durable(&self) -> StoreResult<()> {
        // Taken after the caller's commit: an fsync that starts after some call has read a
        // number ≥ this one covers this caller's frames.
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state.lock().await;
        if state.synced >= ticket {
            return Ok(());
        }
        let covers = self.requested.load(Ordering::SeqCst);
        let file = current_file(&self.wal, &mut state.file)?;
        if let Some(file) = file {
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| StoreError::Internal(format!("fsync task: {e}")))?
                .map_err(|e| StoreError::Internal(format!("fsync of the write-ahead log: {e}")))?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        state.synced = covers;
        Ok(())
    }

    /// fsyncs done so far.
    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
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

    #[tokio::test]
    async fn each_call_alone_gets_its_own_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        std::fs::write(dir.path().join("db.sqlite-wal"), b"frames").unwrap();
        let sync = WalSync::new(&db);
        sync.durable().await.unwrap();
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        std::fs::write(dir.path().join("db.sqlite-wal"), b"frames").unwrap();
        let sync = Arc::new(WalSync::new(&db));
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

    #[tokio::test]
    async fn a_replaced_log_is_reopened_and_a_missing_one_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let wal = dir.path().join("db.sqlite-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = WalSync::new(&db);
        sync.durable().await.unwrap();

        std::fs::remove_file(&wal).unwrap();
        sync.durable().await.unwrap();
        assert!(sync.state.lock().await.file.is_none());
        assert_eq!(sync.syncs(), 1);

        std::fs::write(&wal, b"new frames").unwrap();
        sync.durable().await.unwrap();
        assert!(sync.state.lock().await.file.is_some());
        assert_eq!(sync.syncs(), 2);
    }
}

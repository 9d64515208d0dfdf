//! Point reads on the calling thread, for the SQLite store's hottest lookups.
//!
//! sqlx gives every SQLite connection a thread of its own, so each query is a hand-off to
//! that thread and back (futex wake-ups, context switches) that costs several times the
//! indexed lookup itself. Here a small pool of read-only connections (rusqlite on the same
//! bundled SQLite) is used directly on the async worker: a primary-key lookup in WAL mode
//! takes microseconds and never waits for the writer. Only when SQLite reports the
//! database busy (a reader can briefly be, e.g. while another connection recovers the WAL
//! index) does the read move to the blocking pool and wait there, up to the same 5 s as
//! the other connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, StoreResult};

/// Connections kept for reuse; more may be open for a moment under a burst.
const MAX_IDLE: usize = 16;

/// See the module documentation.
#[derive(Debug)]
pub struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn map_err(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("sqlite read: {e}"))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl InlineReader {
    /// For the database file at `path` (opened on first use).
    pub fn new(path: &Path) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> StoreResult<Connection> {
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(conn) => Ok(conn),
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(map_err),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    fn run<T>(
        &self,
        wait: Duration,
        f: &impl Fn(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<Result<T, rusqlite::Error>> {
        let conn = self.take()?;
        conn.busy_timeout(wait).map_err(map_err)?;
        let out = f(&conn);
        self.give_back(conn);
        Ok(out)
    }

    /// Runs the read `f`: here and now, or, if the database is busy, on the blocking pool
    /// with a busy timeout.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        match self.run(Duration::ZERO, &f)? {
            Err(e) if is_busy(&e) => {}
            other => return other.map_err(map_err),
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run(Duration::from_secs(5), &f))
            .await
            .map_err(|e| StoreError::Internal(format!("read task: {e}")))?
            .and_then(|out| {
                out.map_err(|e| {
                    if is_busy(&e) {
                        StoreError::Unavailable(format!("database busy: {e}"))
                    } else {
                        map_err(e)
                    }
                })
            })
    }
}

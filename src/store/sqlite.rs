//! The embedded SQLite store.
//!
//! Durability: WAL journal with `synchronous=NORMAL` plus group commit ([`WalSync`]): a
//! commit reaches the OS at once (a process crash loses nothing), and [`super::Store::durable`],
//! which every write awaits before it is acknowledged, fsyncs the log, one fsync for all the
//! commits made while the previous one ran. So an acknowledged write survives a process
//! crash or power loss, as with `synchronous=FULL`, at a fraction of the fsyncs.
//!
//! Statements run on the calling thread ([`super::inline`]): all writes through the one
//! write connection, which makes each read-modify-write transaction serial without
//! `SQLITE_BUSY` upgrades; reads through a pool of read-only connections. sqlx is used only
//! to apply the migrations when the store opens.
//!
//! The operations themselves are written once for both backends ([`super::ops`]); this
//! module gives them the [`Tx`] primitives on a SQLite connection and runs them there.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params, params_from_iter};
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use super::inline::{InlineReader, InlineWriter, fk_violation, unique_violation};
use super::logs::LOG_COLUMNS;
use super::ops;
use super::sql::{Lock, Query, Row, Stmt, Tx, Value, decode, encode};
use super::wal_sync::WalSync;
use super::{
    Bootstrap, Change, ClientFilter, ClientRow, Delivery, ExpiryNotice, GrantFilter, JtiRecord,
    LogRow, LogSearch, LogStreamRecord, Mutation, NewLog, OrganizationFilter, OrganizationRecord,
    Page, PageRequest, RawItem, SigningKeyRecord, Snapshot, SnapshotSink, SqlDialect, StoreError,
    StoreResult, decoder_gone, decoding_stage, finish_decoding,
};
use crate::domain::client::ClientAggregate;
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::Credential;
use crate::domain::log_stream::LogStream;
use crate::domain::organization::Organization;
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::TenantSettings;

/// Expired assertion ids deleted per transaction by [`super::Store::purge_jtis`].
const PURGE_CHUNK: i64 = 250;

/// The schema, `migrations/sqlite/` (see [`super::migrator`]).
pub(super) const MIGRATIONS: &[super::MigrationFile] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "assertion replay",
        include_str!("../../migrations/sqlite/0002_assertion_replay.sql"),
    ),
    (
        3,
        "grant subject type",
        include_str!("../../migrations/sqlite/0003_grant_subject_type.sql"),
    ),
    (
        4,
        "resource server signing secret",
        include_str!("../../migrations/sqlite/0004_resource_server_signing_secret.sql"),
    ),
    (
        5,
        "management api name",
        include_str!("../../migrations/sqlite/0005_management_api_name.sql"),
    ),
    (
        6,
        "logs",
        include_str!("../../migrations/sqlite/0006_logs.sql"),
    ),
    (
        7,
        "organizations",
        include_str!("../../migrations/sqlite/0007_organizations.sql"),
    ),
    (
        8,
        "expiry notices",
        include_str!("../../migrations/sqlite/0008_expiry_notices.sql"),
    ),
    (
        9,
        "log streams",
        include_str!("../../migrations/sqlite/0009_log_streams.sql"),
    ),
    (
        10,
        "token quotas",
        include_str!("../../migrations/sqlite/0010_token_quotas.sql"),
    ),
    (
        11,
        "client lists",
        include_str!("../../migrations/sqlite/0011_client_lists.sql"),
    ),
    (
        12,
        "client positions",
        include_str!("../../migrations/sqlite/0012_client_positions.sql"),
    ),
    (
        13,
        "assertion log",
        include_str!("../../migrations/sqlite/0013_assertion_log.sql"),
    ),
];

/// SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<InlineWriter>,
    reader: Arc<InlineReader>,
    wal: Arc<WalSync>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

/// A text column read in place.
fn text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> StoreResult<&'r str> {
    row.get_ref(column)?
        .as_str()
        .map_err(|e| StoreError::Internal(format!("column {column}: {e}")))
}

/// A client's columns as read: its document, its sealed secret, and its credentials as
/// one text, a line per credential: its id, a tab, its document.
type ClientColumns = (String, Option<Vec<u8>>, String);

fn decode_client_columns(
    (doc, sealed, credentials): ClientColumns,
    keep: ops::Keep,
) -> StoreResult<ClientAggregate> {
    ops::snapshot_client(
        &doc,
        sealed,
        credentials.split_terminator('\n').map(|line| {
            line.split_once('\t')
                .ok_or_else(|| StoreError::Internal("a stored credential could not be read".into()))
        }),
        keep,
    )
}

/// [`decode_client_columns`] for [`Store::snapshot_into`].
fn decode_attached(columns: ClientColumns) -> StoreResult<ClientAggregate> {
    decode_client_columns(columns, ops::Keep::Attached)
}

fn decode_grant_column(doc: String) -> StoreResult<ClientGrant> {
    decode(&doc, "doc")
}

/// Every client (with its credentials), then every grant, in creation order, each handed
/// to `emit` as read (not decoded: see [`decoding_stage`]); inside the caller's read
/// transaction.
fn read_snapshot(
    conn: &rusqlite::Connection,
    emit: &mut dyn FnMut(RawItem<ClientColumns, String>) -> StoreResult<()>,
) -> StoreResult<()> {
    // One row per client with its credentials spliced into one text, a line each: the id,
    // a tab, the stored document as written (compact JSON from this store, which holds no
    // raw tab or line break; not parsed here: json_group_array(json()) would parse and print
    // each one again, ~8 % of start-up at 100k clients). The decoder reads only the
    // documents of the credentials the client's method uses (`ops::snapshot_client`). In
    // process, the lookup per client is cheap: PostgreSQL merges two ordered passes instead
    // (see its `read_snapshot`).
    let mut stmt = conn.prepare(
        "SELECT c.doc, c.sealed_secret,
                coalesce((SELECT group_concat(cr.id || char(9) || cr.doc || char(10), ''
                                              ORDER BY cr.seq)
                   FROM credentials cr WHERE cr.client_id = c.client_id), '')
           FROM clients c ORDER BY c.seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        emit(RawItem::Client((
            text(row, 0)?.to_owned(),
            row.get(1)?,
            text(row, 2)?.to_owned(),
        )))?;
    }
    let mut stmt = conn.prepare("SELECT doc FROM client_grants ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        emit(RawItem::Grant(text(row, 0)?.to_owned()))?;
    }
    Ok(())
}

/// SQLite's spelling of the list filters.
pub(super) struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }
    fn doc_bool(path: &str, value: bool) -> String {
        format!("json_type(doc, '$.{path}') = '{value}'")
    }
    fn doc_text(path: &str) -> String {
        format!("json_extract(doc, '$.{path}')")
    }
    fn greatest(a: &str, b: &str) -> String {
        format!("MAX({a}, {b})")
    }

    fn row_count(table: &str) -> Option<&'static str> {
        // Kept by triggers (migration 0011): COUNT(*) walked an index of every client
        // (10 ms at a million) on each page of GET /api/v2/clients.
        (table == "clients").then_some("SELECT n FROM row_counts WHERE name = 'clients'")
    }

    fn position_sample(table: &str) -> Option<&'static str> {
        // Kept by triggers (migration 0012): an offset of half a million walked half a
        // million index entries (12 ms) on each page of GET /api/v2/clients.
        (table == "clients").then_some(
            "SELECT pos, seq FROM client_positions WHERE pos <= ?1 ORDER BY pos DESC LIMIT 1",
        )
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Text(Some(t)) => ValueRef::Text(t.as_bytes()),
            Value::Int(Some(n)) => ValueRef::Integer(*n),
            Value::Blob(Some(b)) => ValueRef::Blob(b),
            Value::Text(None) | Value::Int(None) | Value::Blob(None) => ValueRef::Null,
        }))
    }
}

/// The [`Tx`] primitives on one SQLite connection: the write transaction, or a read-only
/// connection. Writes are serial (one write connection), so nothing locks.
struct SqliteTx<'c>(&'c Connection);

impl Tx for SqliteTx<'_> {
    type Dialect = SqliteDialect;

    async fn rows(&mut self, q: Query) -> StoreResult<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(&q.sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(&q.binds))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Text(None),
                    ValueRef::Integer(n) => Value::Int(Some(n)),
                    ValueRef::Text(_) => Value::Text(Some(text(row, i)?.to_owned())),
                    ValueRef::Blob(b) => Value::Blob(Some(b.to_vec())),
                    ValueRef::Real(_) => {
                        return Err(StoreError::Internal(format!("column {i} is a real")));
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    async fn exec(&mut self, s: Stmt) -> StoreResult<u64> {
        match self
            .0
            .prepare_cached(&s.sql)?
            .execute(params_from_iter(&s.binds))
        {
            Ok(n) => Ok(n as u64),
            Err(e) => Err(if unique_violation(&e) {
                s.conflict
            } else if fk_violation(&e) {
                s.missing
            } else {
                None
            }
            .unwrap_or_else(|| e.into())),
        }
    }

    async fn notify(&mut self, _: Change) -> StoreResult<()> {
        Ok(())
    }

    async fn serialize(&mut self, _: i64) -> StoreResult<()> {
        Ok(())
    }

    async fn lock_table(&mut self, _: &'static str) -> StoreResult<()> {
        Ok(())
    }

    fn storable(&self, _: &str, _: &str) -> StoreResult<()> {
        Ok(())
    }

    fn column_text(&self, text: String) -> String {
        text
    }
}

/// Runs a shared operation on a SQLite connection: its statements run as they are reached
/// (nothing waits), so it completes in one poll.
fn now<T>(op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let mut op = std::pin::pin!(op);
    match op.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(StoreError::Internal("a SQLite operation waited".into())),
    }
}

/// Runs `$op` (an expression of the [`SqliteTx`] `$tx`) in the write transaction.
macro_rules! write_tx {
    ($self:ident, |$tx:ident| $op:expr) => {
        $self
            .writer
            .write(|conn| {
                let $tx = &mut SqliteTx(conn);
                now($op)
            })
            .await
    };
}

/// Runs `$op` (an expression of the [`SqliteTx`] `$tx`) on a read connection, after moving
/// the `$arg`s (owned) into it.
macro_rules! read_tx {
    ($self:ident, [$($arg:ident),*], |$tx:ident| $op:expr) => {{
        $(let $arg = $arg.to_owned();)*
        $self
            .reader
            .read(move |conn| {
                $(let $arg = &$arg;)*
                let $tx = &mut SqliteTx(conn);
                now($op)
            })
            .await
    }};
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad database url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename().to_path_buf();
        if file.as_os_str().is_empty()
            || file == Path::new(":memory:")
            || url.contains("mode=memory")
        {
            // Each of the store's connections would get a database of its own.
            return Err(StoreError::Internal(
                "the SQLite store needs a database file, not an in-memory database".into(),
            ));
        }
        // sqlx creates the file, switches it to WAL and applies the migrations (its
        // bookkeeping table is the schema's version); the store's own connections follow.
        let mut migrator = options.connect().await.map_err(|e| {
            StoreError::Unavailable(format!("cannot open the database {}: {e}", file.display()))
        })?;
        super::migrator(MIGRATIONS)
            .run(&mut migrator)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        // One process at a time serves a SQLite store: a log-stream lease still held is a
        // previous process's, which is gone.
        sqlx::query("UPDATE log_streams SET lease_owner = NULL, lease_until_ms = 0")
            .execute(&mut migrator)
            .await
            .map_err(|e| StoreError::Internal(format!("releasing log-stream leases: {e}")))?;
        // The write connection stays open for the store's life, so the log file stays
        // the same one (see `WalSync`); opened before the migrator closes, so that the
        // migrator's close does not remove the log.
        let writer = InlineWriter::open(&file)?;
        sqlx::Connection::close(migrator)
            .await
            .map_err(|e| StoreError::Internal(format!("closing the migrator: {e}")))?;
        Ok(Self {
            writer,
            reader: InlineReader::new(&file),
            wal: Arc::new(WalSync::new(&file).map_err(|e| {
                StoreError::Internal(format!("starting the write-ahead log's sync threads: {e}"))
            })?),
        })
    }

    /// Copies the write-ahead log into the database file and empties it, for loaders between
    /// their [`super::Store::bulk_insert`] calls: their writes follow one another without a pause,
    /// and the background checkpoints would let the log grow to many times the database.
    pub async fn truncate_log(&self) -> StoreResult<()> {
        self.writer.truncate_log().await
    }
}

// The trait's shared methods come from `impl_store!`; these are this backend's own.
super::ops::impl_store! {
SqliteStore;


    async fn ping(&self) -> StoreResult<()> {
        self.reader
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn close(&self) {
        self.writer.close().await;
    }

    fn when_durable(&self, then: super::WhenDurable) {
        self.wal.when_durable(then);
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // On the calling thread (start-up, before the node serves): decoded on the blocking
        // pool, the aggregates came from another malloc arena and left ~80 MB more resident
        // at 100k clients.
        self.reader
            .read(|conn| {
                InlineReader::snapshot(conn, |conn| {
                    let (mut clients, mut grants) = (Vec::new(), Vec::new());
                    read_snapshot(conn, &mut |item| {
                        match item {
                            RawItem::Client(c) => {
                                clients.push(decode_client_columns(c, ops::Keep::Every)?)
                            }
                            RawItem::Grant(g) => grants.push(decode_grant_column(g)?),
                            RawItem::Restart => {}
                        }
                        Ok(())
                    })?;
                    now(ops::snapshot(&mut SqliteTx(conn), clients, Some(grants)))
                })
            })
            .await
    }

    async fn snapshot_into(&self, sink: SnapshotSink) -> StoreResult<Snapshot> {
        // Read on a thread of the blocking pool, decoded on another (`decoding_stage`), while
        // the caller builds from what arrives: the three parts of a start-up run side by
        // side, and only the items in the channels are held at once.
        let (raw, decoder) = decoding_stage(&sink, decode_attached, decode_grant_column);
        let read = self
            .reader
            .read_blocking(move |conn| {
                InlineReader::snapshot(conn, |conn| {
                    let mut batch = vec![RawItem::Restart];
                    read_snapshot(conn, &mut |item| match SnapshotSink::fill(&mut batch, item) {
                        Some(full) => raw.blocking_send(full).map_err(|_| decoder_gone()),
                        None => Ok(()),
                    })?;
                    raw.blocking_send(batch).map_err(|_| decoder_gone())?;
                    now(ops::snapshot(&mut SqliteTx(conn), Vec::new(), Some(Vec::new())))
                })
            })
            .await;
        finish_decoding(decoder, read).await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientAggregate>> {
        let client_id = client_id.to_owned();
        self.reader
            .read(move |conn| {
                InlineReader::snapshot(conn, |conn| {
                    now(ops::client(&mut SqliteTx(conn), &client_id, Lock::None))
                })
            })
            .await
    }

    async fn write_jtis(&self, records: &[JtiRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Appended: `seq` takes the next number, so the rows fill the table's last pages.
        self.writer
            .write(|tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO assertion_log (client_id, jti, expires_at) VALUES (?1, ?2, ?3)",
                )?;
                for r in records {
                    stmt.execute(params![r.client_id, r.jti, r.expires_at])?;
                }
                Ok(())
            })
            .await
    }

    fn single_process(&self) -> bool {
        true
    }

    async fn live_jtis(
        &self,
        now: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, JtiRecord)>> {
        self.reader
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq, client_id, jti, expires_at FROM assertion_log
                     WHERE seq > ?2 AND expires_at > ?1 ORDER BY seq LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![now, after, limit], |r| {
                    Ok((
                        r.get(0)?,
                        JtiRecord {
                            client_id: r.get(1)?,
                            jti: r.get(2)?,
                            expires_at: r.get(3)?,
                        },
                    ))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn purge_jtis(&self, now: i64) -> StoreResult<u64> {
        // From the front, up to the first record still live. Only this purge deletes, so the
        // rows before that one stay expired while it runs, and rows appended meanwhile come
        // after it — except into a table this purge has just emptied, where `seq` starts
        // again at 1: hence the expiry test in the delete too (an appended record is live,
        // since it was accepted after `now`), so that no live record is ever deleted.
        let live_from: i64 = self
            .reader
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT COALESCE(
                             (SELECT seq FROM assertion_log WHERE expires_at > ?1
                              ORDER BY seq LIMIT 1),
                             (SELECT MAX(seq) + 1 FROM assertion_log),
                             0)",
                    )?
                    .query_row(params![now], |r| r.get(0))?)
            })
            .await?;
        // In paced chunks, each its own transaction: a minute of records at full load is
        // hundreds of thousands of rows, and the other writes (Management, the audit trail,
        // the replay guard's own records and horizon) must not wait behind one long delete
        // holding the write lock, nor behind a run of short ones.
        super::purge_in_chunks(PURGE_CHUNK as u64, || async {
            let deleted = self
                .writer
                .write(|tx| {
                    let deleted = tx
                        .prepare_cached(
                            "DELETE FROM assertion_log WHERE seq IN (
                                 SELECT seq FROM assertion_log
                                 WHERE seq < ?1 AND expires_at <= ?3
                                 ORDER BY seq LIMIT ?2)",
                        )?
                        .execute(params![live_from, PURGE_CHUNK, now])?;
                    Ok(deleted)
                })
                .await?;
            Ok(deleted as u64)
        })
        .await
    }
    async fn insert_logs(&self, logs: &[NewLog]) -> StoreResult<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let rows = logs
            .iter()
            .map(|log| Ok((log, encode(&log.doc)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.writer
            .write(|tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO logs (date_ms, type, client_id, client_name, description, ip,
                         hostname, user_agent, audience, scope, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for (log, doc) in &rows {
                    let [a, b, c, d, e, f, g, h, i] = LOG_COLUMNS.map(|name| log.column(name));
                    stmt.execute(params![
                        log.date_ms,
                        a.unwrap_or_default(),
                        b,
                        c,
                        d,
                        e,
                        f,
                        g,
                        h,
                        i,
                        doc
                    ])?;
                }
                Ok(())
            })
            .await
    }
    async fn reserve_token_quota(
        &self,
        bucket: &str,
        window_start: i64,
        want: u64,
        limit: u64,
    ) -> StoreResult<(u64, u64)> {
        let want = i64::try_from(want).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.writer
            .write(|tx| {
                // SET's expressions read the row as it was: `last_grant` is what this
                // reservation added.
                let (used, granted): (i64, i64) = tx
                    .prepare_cached(
                        "INSERT INTO token_quota_usage (bucket, window_start, used, last_grant)
                         VALUES (?1, ?2, min(?3, ?4), min(?3, ?4))
                         ON CONFLICT (bucket, window_start) DO UPDATE
                         SET last_grant = min(?3, max(?4 - used, 0)),
                             used = used + min(?3, max(?4 - used, 0))
                         RETURNING used, last_grant",
                    )?
                    .query_row(params![bucket, window_start, want, limit], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                Ok((
                    u64::try_from(granted).unwrap_or(0),
                    u64::try_from(used).unwrap_or(0),
                ))
            })
            .await
    }
}

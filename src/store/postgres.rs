//! The PostgreSQL store: several Clavis nodes share one database.
//!
//! Same shapes as the SQLite store (JSON documents as text beside the queried columns, `seq`
//! for creation order). What differs is concurrency between nodes:
//! - A rule-bearing mutation locks its aggregate with `SELECT ... FOR UPDATE` (the client row
//!   stands for the client and its credentials; the signing keys are locked as a set), runs
//!   the domain closure, writes the difference and commits. Under READ COMMITTED each
//!   statement after the lock sees the latest committed rows, so two nodes' mutations of one
//!   aggregate are serial. A serialization failure or deadlock (SQLSTATE 40001/40P01) reruns
//!   the whole transaction, closure included, a bounded number of times.
//! - Every write transaction announces what it changed with `pg_notify` on the channel
//!   `clavis:<schema>` (so deployments in different schemas of one database do not hear
//!   each other); PostgreSQL delivers it at commit, to every node's listener (see
//!   [`Store::subscribe`]), which re-reads the entity into its read model.
//! - `record_jtis` is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` statement: a
//!   concurrent insert of the same id on another node waits for the first to commit and then
//!   sees it, so exactly one node accepts an assertion.
//!
//! Errors: a database that cannot be reached, a pool or statement timeout, or a server
//! shutting down is [`StoreError::Unavailable`] (503); every operation is also bounded by a
//! client-side deadline, so a hung server cannot hang a request.
//!
//! The operations themselves are written once for both backends ([`super::ops`]); this
//! module gives them the [`Tx`] primitives on a PostgreSQL connection (row locks, NUL
//! handling, `pg_notify`) and runs them, retried.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{Column as _, PgConnection, Postgres, Row as _, Transaction, TypeInfo as _};
use tokio::sync::{mpsc, watch};

mod flush;

use self::flush::Flusher;
use super::logs::LOG_COLUMNS;
use super::ops;
use super::sql::{Lock, Query, Row, Stmt, Tx, Value, decode, encode};
use super::{
    Bootstrap, Change, ClientFilter, ClientRow, Delivery, ExpiryNotice, GrantFilter, JtiRecord,
    LogRow, LogSearch, LogStreamRecord, Mutation, NewLog, OrganizationFilter, OrganizationRecord,
    Page, PageRequest, RawItem, RawSender, SigningKeyRecord, Snapshot, SnapshotItem, SnapshotSink,
    SqlDialect, StoreError, StoreResult, Subscription, decoder_gone, decoding_stage,
    finish_decoding,
};
use crate::domain::client::ClientAggregate;
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::Credential;
use crate::domain::log_stream::LogStream;
use crate::domain::organization::Organization;
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::TenantSettings;

/// SQL for the notification channel of the session's schema: `clavis:<schema>` (cut to
/// PostgreSQL's 63-byte identifier limit).
const CHANNEL_SQL: &str = "left('clavis:' || current_schema(), 63)";

/// The client-side deadline of a whole snapshot (start-up and resynchronisation): reading
/// a million clients with their credentials took 7 s on the bench machine, over the 9 s
/// deadline of an operation once decoding is counted.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(300);

/// How often a transaction is rerun after a serialization failure or deadlock.
const MAX_ATTEMPTS: u32 = 5;

/// PostgreSQL's spelling of a grant filter.
struct PgDialect;

impl SqlDialect for PgDialect {
    fn placeholder(n: usize) -> String {
        format!("${n}")
    }
    fn doc_bool(path: &str, value: bool) -> String {
        format!(
            "doc::jsonb #> '{{{}}}' = '{value}'::jsonb",
            path.replace('.', ",")
        )
    }
    fn doc_text(path: &str) -> String {
        format!("doc::jsonb #>> '{{{}}}'", path.replace('.', ","))
    }
    fn greatest(a: &str, b: &str) -> String {
        format!("GREATEST({a}, {b})")
    }
}

/// The schema, `migrations/postgres/` (see [`super::migrator`]).
pub(super) const MIGRATIONS: &[super::MigrationFile] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "grant subject type",
        include_str!("../../migrations/postgres/0002_grant_subject_type.sql"),
    ),
    (
        3,
        "resource server signing secret",
        include_str!("../../migrations/postgres/0003_resource_server_signing_secret.sql"),
    ),
    (
        4,
        "management api name",
        include_str!("../../migrations/postgres/0004_management_api_name.sql"),
    ),
    (
        5,
        "logs",
        include_str!("../../migrations/postgres/0005_logs.sql"),
    ),
    (
        6,
        "organizations",
        include_str!("../../migrations/postgres/0006_organizations.sql"),
    ),
    (
        7,
        "expiry notices",
        include_str!("../../migrations/postgres/0007_expiry_notices.sql"),
    ),
    (
        8,
        "log streams",
        include_str!("../../migrations/postgres/0008_log_streams.sql"),
    ),
    (
        9,
        "token quotas",
        include_str!("../../migrations/postgres/0009_token_quotas.sql"),
    ),
    (
        10,
        "credential client seq",
        include_str!("../../migrations/postgres/0010_credential_client_seq.sql"),
    ),
    (
        11,
        "durability mark",
        include_str!("../../migrations/postgres/0011_durability_mark.sql"),
    ),
];

/// The advisory lock a node holds while it appends log events: sequence numbers are taken
/// and committed by one transaction at a time, so they become visible in increasing order
/// (a checkpoint reader never skips an event that commits late).
const LOG_APPEND_LOCK: i64 = 0x636c_6176_6973_6c67; // "clavislg"

/// Longest notification payload PostgreSQL accepts is 8000 bytes; larger changes are sent as
/// a full resynchronisation.
const MAX_PAYLOAD: usize = 7900;

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections in the pool (the change listener has one more of its own).
    pub pool_size: u32,
    /// Longest wait for a pooled connection, including connecting.
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout`.
    pub statement_timeout: Duration,
    /// CA certificate (PEM) that verifies the server; implies `sslmode=verify-full` unless
    /// the URL names a mode.
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// A client's row (`seq`, `doc`, `sealed_secret`) with its credentials' rows (`client_seq`,
/// `id`, `doc`), in stored order.
fn decode_client_rows((row, credentials): (PgRow, Vec<PgRow>)) -> StoreResult<ClientAggregate> {
    ops::snapshot_client(
        row.try_get(1).map_err(map_err)?,
        row.try_get(2).map_err(map_err)?,
        credentials.iter().map(|row| {
            Ok((
                row.try_get(1).map_err(map_err)?,
                row.try_get(2).map_err(map_err)?,
            ))
        }),
        ops::Keep::Attached,
    )
}

/// A grant's row (`doc`).
fn decode_grant_row(row: PgRow) -> StoreResult<ClientGrant> {
    decode(row.try_get(0).map_err(map_err)?, "doc")
}

/// Every client (with its credentials) and then every grant, in stored order, to `sink` in
/// batches as the rows arrive, decoded on a thread of their own ([`decoding_stage`]). `conn`
/// and `second` are two transactions on one snapshot ([`PostgresStore::stream_snapshot_into`]).
async fn stream_snapshot(
    conn: &mut PgConnection,
    second: &mut PgConnection,
    sink: &SnapshotSink,
) -> StoreResult<()> {
    let (raw, decoder) = decoding_stage(sink, decode_client_rows, decode_grant_row);
    let read = read_snapshot(conn, second, raw).await;
    finish_decoding(decoder, read).await
}

/// [`stream_snapshot`]'s reads. The clients and the credentials are two passes in the same
/// order (the clients' `seq`, which each credential carries: migration 0010), merged as
/// their rows arrive: each pass walks its index in the order the rows were written. A
/// credentials lookup per client took 16 s of a 20 s start-up at a million clients.
///
/// The two passes are two statements on two connections, so that the database sends both
/// at once, as fast as the reader takes them. Through two cursors of one connection, 2,000
/// rows a fetch in turn, it produced a batch only when asked and waited while the reader
/// took it in, at twice the CPU: at a million clients 5.8–6.1 s of the database's CPU and an
/// 11.1–11.3 s start-up, against 3.1–3.4 s and 8.1–9.5 s (docs/design.md).
async fn read_snapshot(
    conn: &mut PgConnection,
    second: &mut PgConnection,
    raw: RawSender<(PgRow, Vec<PgRow>), PgRow>,
) -> StoreResult<()> {
    use futures_util::StreamExt as _;
    let mut batch = Vec::new();
    {
        let mut clients = sqlx::query("SELECT seq, doc, sealed_secret FROM clients ORDER BY seq")
            .fetch(&mut *conn);
        let mut credentials =
            sqlx::query("SELECT client_seq, id, doc FROM credentials ORDER BY client_seq, seq")
                .fetch(&mut *second);
        // The first credential not yet given to a client, with its client's seq.
        let mut next_credential: Option<(i64, PgRow)> = None;
        let orphan = |client_seq: i64| {
            StoreError::Internal(format!(
                "a stored credential names client position {client_seq}, which no client has"
            ))
        };
        while let Some(row) = clients.next().await {
            let row = row.map_err(map_err)?;
            let seq: i64 = row.try_get(0).map_err(map_err)?;
            let mut own = Vec::new();
            loop {
                if next_credential.is_none() {
                    next_credential = match credentials.next().await {
                        Some(row) => {
                            let row = row.map_err(map_err)?;
                            Some((row.try_get(0).map_err(map_err)?, row))
                        }
                        None => None,
                    };
                }
                match next_credential.take() {
                    Some((client_seq, row)) if client_seq == seq => own.push(row),
                    Some((client_seq, _)) if client_seq < seq => return Err(orphan(client_seq)),
                    rest => {
                        next_credential = rest;
                        break;
                    }
                }
            }
            if let Some(full) = SnapshotSink::fill(&mut batch, RawItem::Client((row, own))) {
                raw.send(full).await.map_err(|_| decoder_gone())?;
            }
        }
        // A credential past the last client (which also reads the pass to its end).
        let leftover = match next_credential {
            Some((client_seq, _)) => Some(client_seq),
            None => match credentials.next().await {
                Some(row) => Some(row.map_err(map_err)?.try_get(0).map_err(map_err)?),
                None => None,
            },
        };
        if let Some(client_seq) = leftover {
            return Err(orphan(client_seq));
        }
    }
    let mut rows = sqlx::query("SELECT doc FROM client_grants ORDER BY seq").fetch(&mut *conn);
    while let Some(row) = rows.next().await {
        if let Some(full) = SnapshotSink::fill(&mut batch, RawItem::Grant(row.map_err(map_err)?)) {
            raw.send(full).await.map_err(|_| decoder_gone())?;
        }
    }
    raw.send(batch).await.map_err(|_| decoder_gone())
}

/// PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    connect: PgConnectOptions,
    acquire_timeout: Duration,
    /// Deadline of one whole operation (all its statements and the commit).
    op_timeout: Duration,
    /// Writes the service may run at once ([`Store::concurrent_writes`]).
    writers: u32,
    /// Makes the service's writes durable ([`Store::when_durable`]).
    flusher: Arc<Flusher>,
    /// Set to `true` by `close()`: stops the change listener.
    closing: Arc<watch::Sender<bool>>,
    /// The change listener's state, once one runs (for `/metrics`).
    listener: Arc<std::sync::OnceLock<Arc<crate::metrics::ListenerState>>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

/// Why one attempt of a transaction failed.
enum TxError {
    /// Serialization failure or deadlock: run the transaction again.
    Retry(sqlx::Error),
    /// Final.
    Fail(StoreError),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Fail(e)
    }
}

impl From<crate::domain::DomainError> for TxError {
    fn from(e: crate::domain::DomainError) -> Self {
        Self::Fail(StoreError::Rejected(e))
    }
}

type TxResult<T> = Result<T, TxError>;

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

/// Maps a database error to the store's error kinds.
fn map_err(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(_) => match sqlstate(&e).as_deref() {
            // connection exceptions, insufficient resources, shutdown / cannot connect now,
            // statement timeout or cancel, lock timeout, read-only (a standby after failover),
            // and conflicts that outlived the retries.
            Some(code) => {
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || matches!(code, "57014" | "55P03" | "25006" | "40001" | "40P01")
            }
            None => false,
        },
        _ => false,
    };
    // Characters the database cannot store (NUL) that slipped past the guards: bad input.
    if matches!(sqlstate(&e).as_deref(), Some("22021" | "22P05")) {
        return nul_refused("text");
    }
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

/// PostgreSQL text cannot hold NUL. No stored key contains one, so a lookup by such a key
/// finds nothing, and a new key with one is refused as bad input.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

fn nul_refused(what: &str) -> StoreError {
    StoreError::Rejected(crate::domain::DomainError::invalid_body(format!(
        "{what} must not contain NUL characters"
    )))
}

/// Maps a database error inside a transaction attempt.
fn db(e: sqlx::Error) -> TxError {
    if retryable(&e) {
        TxError::Retry(e)
    } else {
        TxError::Fail(map_err(e))
    }
}
fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(map_err)
}

/// The connection a [`PgTx`] runs on.
enum PgConn {
    /// A write transaction, committed when the operation succeeds.
    Tx(Transaction<'static, Postgres>),
    /// A pooled connection for reads (each statement its own transaction).
    Pooled(PoolConnection<Postgres>),
}

/// The [`Tx`] primitives on one PostgreSQL connection. A statement that failed with a
/// serialization failure or deadlock is kept, so that the whole operation is run again.
struct PgTx {
    conn: PgConn,
    retry: Option<sqlx::Error>,
    /// A write of the service's ([`super::commit_order::in_write`]): it commits without
    /// waiting for the disk, in the read model's order, and counts on the flusher to make it
    /// durable before it is acknowledged.
    flusher: Option<Arc<Flusher>>,
}

impl PgTx {
    /// A write transaction on `store`'s pool.
    async fn begin(store: &PostgresStore) -> TxResult<Self> {
        let in_write = super::commit_order::in_write();
        let tx = if in_write {
            store
                .pool
                .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
                .await
        } else {
            store.pool.begin().await
        };
        Ok(Self {
            conn: PgConn::Tx(tx.map_err(db)?),
            retry: None,
            flusher: in_write.then(|| store.flusher.clone()),
        })
    }

    /// One read-only repeatable-read transaction: every statement in it sees the same
    /// snapshot of the store (a start-up's read).
    async fn consistent_read(pool: &PgPool) -> TxResult<Self> {
        Ok(Self {
            conn: PgConn::Tx(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(db)?,
            ),
            retry: None,
            flusher: None,
        })
    }

    /// A pooled connection of `store`'s for reads.
    async fn acquire(store: &PostgresStore) -> TxResult<Self> {
        Ok(Self {
            conn: PgConn::Pooled(store.pool.acquire().await.map_err(db)?),
            retry: None,
            flusher: None,
        })
    }

    fn conn(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            PgConn::Tx(tx) => tx,
            PgConn::Pooled(conn) => conn,
        }
    }

    fn fail(&mut self, e: sqlx::Error) -> StoreError {
        if retryable(&e) {
            let error = StoreError::Unavailable(e.to_string());
            self.retry = Some(e);
            error
        } else {
            map_err(e)
        }
    }

    /// Commits after the operation's success; tells a failure to retry from a final one.
    async fn finish<T>(self, out: StoreResult<T>) -> TxResult<T> {
        match (out, self.retry) {
            (Ok(value), _) => {
                if let PgConn::Tx(tx) = self.conn {
                    match self.flusher {
                        Some(flusher) => {
                            super::commit_order::commit(tx.commit()).await.map_err(db)?;
                            flusher.committed();
                        }
                        None => tx.commit().await.map_err(db)?,
                    }
                }
                Ok(value)
            }
            (Err(_), Some(retry)) => Err(TxError::Retry(retry)),
            (Err(e), None) => Err(TxError::Fail(e)),
        }
    }

    /// `sql` with PostgreSQL's placeholders, bound.
    fn bound(
        sql: String,
        binds: &[Value],
    ) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        // Only SQL text written in the store modules reaches here; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = match b {
                Value::Text(t) => q.bind(t.clone()),
                Value::Int(n) => q.bind(*n),
                Value::Blob(b) => q.bind(b.clone()),
            };
        }
        q
    }
}

/// A row's columns as [`Value`]s.
fn values(row: &PgRow) -> StoreResult<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        out.push(match column.type_info().name() {
            "TEXT" | "VARCHAR" | "NAME" => Value::Text(row.try_get(i).map_err(map_err)?),
            "INT8" => Value::Int(row.try_get(i).map_err(map_err)?),
            "INT4" => Value::Int(
                row.try_get::<Option<i32>, _>(i)
                    .map_err(map_err)?
                    .map(i64::from),
            ),
            "BYTEA" => Value::Blob(row.try_get(i).map_err(map_err)?),
            other => {
                return Err(StoreError::Internal(format!(
                    "column {i} has the unexpected type {other}"
                )));
            }
        });
    }
    Ok(Row(out))
}

impl Tx for PgTx {
    type Dialect = PgDialect;

    async fn rows(&mut self, q: Query) -> StoreResult<Vec<Row>> {
        // PostgreSQL text cannot hold NUL: no stored key contains one.
        if q.binds.iter().any(Value::has_nul) {
            return Ok(Vec::new());
        }
        let lock = match q.lock {
            Lock::None => "",
            Lock::Update => " FOR UPDATE",
            Lock::KeyShare => " FOR KEY SHARE",
        };
        let sql = format!("{}{lock}", q.sql.replace('?', "$"));
        let result = Self::bound(sql, &q.binds).fetch_all(self.conn()).await;
        match result {
            Ok(rows) => rows.iter().map(values).collect(),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn exec(&mut self, s: Stmt) -> StoreResult<u64> {
        if s.lookup && s.binds.iter().any(Value::has_nul) {
            return Ok(0);
        }
        let result = Self::bound(s.sql.replace('?', "$"), &s.binds)
            .execute(self.conn())
            .await;
        match result {
            Ok(done) => Ok(done.rows_affected()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() && s.conflict.is_some() => {
                Err(s
                    .conflict
                    .unwrap_or_else(|| StoreError::Internal(d.to_string())))
            }
            Err(sqlx::Error::Database(d))
                if d.is_foreign_key_violation() && s.missing.is_some() =>
            {
                Err(s
                    .missing
                    .unwrap_or_else(|| StoreError::Internal(d.to_string())))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn notify(&mut self, change: Change) -> StoreResult<()> {
        self.exec(super::sql::stmt(
            format!("SELECT pg_notify({CHANNEL_SQL}, ?1)"),
            vec![encode_change(&change).into()],
        ))
        .await
        .map(|_| ())
    }

    async fn serialize(&mut self, key: i64) -> StoreResult<()> {
        self.exec(super::sql::stmt(
            "SELECT pg_advisory_xact_lock(?1)",
            vec![key.into()],
        ))
        .await
        .map(|_| ())
    }

    async fn lock_table(&mut self, table: &'static str) -> StoreResult<()> {
        self.exec(super::sql::stmt(
            format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"),
            Vec::new(),
        ))
        .await
        .map(|_| ())
    }

    fn storable(&self, text: &str, what: &str) -> StoreResult<()> {
        if has_nul(text) {
            return Err(nul_refused(what));
        }
        Ok(())
    }

    fn column_text(&self, text: String) -> String {
        // The log's columns hold NUL as U+FFFD (see `insert_logs`).
        text.replace('\0', "\u{fffd}")
    }
}

/// Runs `$op` (an expression of the [`PgTx`] `$tx`) on a connection `PgTx::$open` opens,
/// committed when it succeeds, retried after a serialization failure.
macro_rules! run_tx {
    ($self:ident, $open:ident, |$tx:ident| $op:expr) => {
        retrying!($self, async {
            let mut conn = PgTx::$open($self).await?;
            let out = {
                let $tx = &mut conn;
                $op.await
            };
            conn.finish(out).await
        })
    };
}

/// Runs `$op` in a write transaction.
macro_rules! write_tx {
    ($self:ident, |$tx:ident| $op:expr) => {
        run_tx!($self, begin, |$tx| $op)
    };
}

/// Runs `$op` on a pooled connection (the `$arg`s are borrowed as they are).
macro_rules! read_tx {
    ($self:ident, [$($arg:ident),*], |$tx:ident| $op:expr) => {
        run_tx!($self, acquire, |$tx| $op)
    };
}

/// The notification payload of a change ([`Change::to_text`]); a full resynchronisation when
/// it would be longer than a notification may be.
pub fn encode_change(change: &Change) -> String {
    let payload = change.to_text();
    if payload.len() > MAX_PAYLOAD {
        Change::Resync.to_text()
    } else {
        payload
    }
}

/// Runs one attempt of a transactional operation again while it fails with a serialization
/// failure or deadlock; bounds every attempt by the operation deadline.
macro_rules! retrying {
    ($self:ident, $attempt:expr) => {
        retrying!($self, $attempt, $self.op_timeout)
    };
    ($self:ident, $attempt:expr, $deadline:expr) => {{
        let mut attempt: u32 = 0;
        let deadline: Duration = $deadline;
        loop {
            attempt += 1;
            match tokio::time::timeout(deadline, $attempt).await {
                Err(_) => {
                    break Err(StoreError::Unavailable(format!(
                        "database operation timed out after {:?}",
                        deadline
                    )));
                }
                Ok(Ok(value)) => break Ok(value),
                Ok(Err(TxError::Fail(e))) => break Err(e),
                Ok(Err(TxError::Retry(e))) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "transaction conflict, retrying");
                    tokio::time::sleep(Duration::from_millis(
                        5 * u64::from(attempt) + u64::from(rand_jitter()),
                    ))
                    .await;
                }
                Ok(Err(TxError::Retry(e))) => break Err(map_err(e)),
            }
        }
    }};
}

/// Writes a node runs at once with a pool of `pool_size` connections: half of them. A write
/// waiting for its turn to commit holds its connection: the writes never hold them all, and
/// replay records and reads keep the rest. (The change listener re-reads through a
/// connection of its own, [`Subscription::reader`], while it holds the turn.)
fn concurrent_writes(pool_size: u32) -> u32 {
    pool_size
        .div_ceil(2)
        .min(pool_size.saturating_sub(1))
        .max(1)
}

/// A few milliseconds of jitter so that two retrying nodes do not collide again.
fn rand_jitter() -> u8 {
    clavis_crypto::random::bytes::<1>()[0] % 10
}
impl PostgresStore {
    /// Connects, applies migrations, and returns the store.
    pub async fn connect(url: &str, options: &PostgresOptions) -> StoreResult<Self> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad database url: {e}")))?
            .application_name("clavis");
        if let Some(ca) = &options.ca_file {
            connect = connect.ssl_root_cert(ca);
            if !url.contains("sslmode=") {
                connect = connect.ssl_mode(PgSslMode::VerifyFull);
            }
        }
        let statement_ms = options.statement_timeout.as_millis().max(1);
        // A transaction left open by a stuck node must not hold its row locks for long.
        let idle_ms = (statement_ms * 2).max(10_000);
        connect = connect.options([
            ("statement_timeout", statement_ms.to_string()),
            ("idle_in_transaction_session_timeout", idle_ms.to_string()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        // On a connection of its own without the statement timeout: a migration rewrites
        // whole tables (0010 at a million clients: about a minute), one time.
        let mut migrating =
            sqlx::ConnectOptions::connect(&connect.clone().options([("statement_timeout", "0")]))
                .await
                .map_err(map_err)?;
        super::migrator(MIGRATIONS)
            .run(&mut migrating)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        sqlx::Connection::close(migrating).await.map_err(map_err)?;
        let (closing, _) = watch::channel(false);
        Ok(Self {
            pool,
            connect,
            acquire_timeout: options.acquire_timeout,
            op_timeout: options.acquire_timeout
                + options.statement_timeout
                + Duration::from_secs(1),
            writers: concurrent_writes(options.pool_size),
            flusher: Arc::default(),
            closing: Arc::new(closing),
            listener: Arc::default(),
        })
    }

    /// A pool of one connection outside the requests' pool, opened when first used, by the
    /// runtime that uses it, and kept: never idled out or aged out, so the pool spawns no
    /// maintenance task either (the change listener's `LISTEN` and its reader).
    fn own_connection(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.connect.clone())
    }

    /// [`Store::snapshot_into`]'s reader, in one repeatable-read transaction (rerun from
    /// the start, after [`SnapshotItem::Restart`], when it fails to serialize).
    async fn stream_snapshot_into(&self, sink: &SnapshotSink) -> StoreResult<Snapshot> {
        let deadline = self.op_timeout.max(SNAPSHOT_DEADLINE);
        // The credentials' pass runs on a connection of its own (`read_snapshot`), outside
        // the requests' pool: a pool of one connection must not wait for itself.
        let own = self.own_connection();
        let out = retrying!(
            self,
            async {
                let mut conn = PgTx::consistent_read(&self.pool).await?;
                let mut second = PgTx::consistent_read(&own).await?;
                let out = async {
                    // The second transaction reads the first one's snapshot: the same rows.
                    let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                        .fetch_one(conn.conn())
                        .await
                        .map_err(map_err)?;
                    if !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                        return Err(StoreError::Internal(format!(
                            "unexpected snapshot id from the database: {id:?}"
                        )));
                    }
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SET TRANSACTION SNAPSHOT '{id}'"
                    )))
                    .execute(second.conn())
                    .await
                    .map_err(map_err)?;
                    // The passes last as long as the caller takes to build from their rows
                    // (seconds at a million), and the first transaction waits while the
                    // decoder and the caller catch up: bounded by the snapshot's deadline,
                    // not by the limits of one request. JIT compiling the passes' plans
                    // costs more than it saves on index scans.
                    let ms = deadline.as_millis();
                    for tx in [&mut conn, &mut second] {
                        for set in [
                            format!("SET LOCAL statement_timeout = {ms}"),
                            format!("SET LOCAL idle_in_transaction_session_timeout = {ms}"),
                            "SET LOCAL jit = off".to_owned(),
                        ] {
                            sqlx::query(sqlx::AssertSqlSafe(set))
                                .execute(tx.conn())
                                .await
                                .map_err(map_err)?;
                        }
                    }
                    sink.send(vec![SnapshotItem::Restart]).await?;
                    stream_snapshot(conn.conn(), second.conn(), sink).await?;
                    ops::snapshot(&mut conn, Vec::new(), Some(Vec::new())).await
                }
                .await;
                // Read-only: ending the second transaction commits nothing.
                let out = match second.finish(Ok(())).await {
                    Ok(()) => out,
                    Err(TxError::Fail(e)) => out.and(Err(e)),
                    Err(TxError::Retry(e)) => out.and(Err(map_err(e))),
                };
                conn.finish(out).await
            },
            deadline
        );
        own.close().await;
        out
    }

    /// Bounds a single-statement operation by the deadline.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        tokio::time::timeout(self.op_timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "database operation timed out after {:?}",
                    self.op_timeout
                )))
            })
    }

    async fn begin(&self) -> TxResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
    }

    async fn record_jtis_once(&self, records: &[JtiRecord], now: i64) -> TxResult<Vec<bool>> {
        // Within the batch a later duplicate is a replay of the earlier one; only first
        // occurrences go to the database, sorted so that two nodes' batches lock their rows
        // in the same order (no deadlock).
        let mut first: Vec<usize> = Vec::with_capacity(records.len());
        let mut seen = std::collections::HashSet::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if seen.insert((r.client_id.as_str(), r.jti.as_str())) {
                first.push(i);
            }
        }
        first.sort_by(|&a, &b| {
            (&records[a].client_id, &records[a].jti).cmp(&(&records[b].client_id, &records[b].jti))
        });
        let client_ids: Vec<&str> = first
            .iter()
            .map(|&i| records[i].client_id.as_str())
            .collect();
        let jtis: Vec<&[u8]> = first.iter().map(|&i| records[i].jti.as_bytes()).collect();
        let expiries: Vec<i64> = first.iter().map(|&i| records[i].expires_at).collect();
        // Inserts, or takes over an expired record; an unexpired one stays and makes this a
        // replay (not returned).
        let rows = sqlx::query(
            "INSERT INTO assertion_replay (client_id, jti, expires_at)
             SELECT c, j, e FROM unnest($1::text[], $2::bytea[], $3::bigint[])
                 WITH ORDINALITY AS t(c, j, e, o)
             ORDER BY o
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
             WHERE assertion_replay.expires_at <= $4
             RETURNING client_id, jti",
        )
        .bind(&client_ids)
        .bind(&jtis)
        .bind(&expiries)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut fresh_keys = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            let c: String = get(row, "client_id")?;
            let j: Vec<u8> = get(row, "jti")?;
            fresh_keys.insert((c, j));
        }
        let mut taken = std::collections::HashSet::with_capacity(records.len());
        Ok(records
            .iter()
            .map(|r| {
                let key = (r.client_id.clone(), r.jti.as_bytes().to_vec());
                fresh_keys.contains(&key) && taken.insert(key)
            })
            .collect())
    }
}
// The trait's shared methods come from `impl_store!`; these are this backend's own.
super::ops::impl_store! {
PostgresStore;


    fn concurrent_writes(&self) -> u32 {
        self.writers
    }

    fn when_durable(&self, then: super::WhenDurable) {
        self.flusher.when_durable(&self.pool, self.op_timeout, then);
    }

    fn when_jtis_durable(&self, then: super::WhenDurable) {
        // `record_jtis` commits with the server's `synchronous_commit`: its records are
        // durable once it returned, whatever Management writes still wait for a flush.
        then(Ok(()));
    }

    async fn ping(&self) -> StoreResult<()> {
        self.bounded(async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    fn gauges(&self) -> Option<crate::metrics::StoreGauges> {
        Some(crate::metrics::StoreGauges {
            pool_size: self.pool.size(),
            pool_idle: self.pool.num_idle(),
            pool_max: self.pool.options().get_max_connections(),
            listener: self.listener.get().map(|l| l.gauges()),
        })
    }

    async fn close(&self) {
        self.closing.send_replace(true);
        self.pool.close().await;
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // Every row of the store: at a million clients longer than any request may take
        // (each statement is still bounded by the server's statement_timeout).
        let deadline = self.op_timeout.max(SNAPSHOT_DEADLINE);
        retrying!(self, async {
            let mut conn = PgTx::consistent_read(&self.pool).await?;
            let out = async {
                let clients = ops::all_clients(&mut conn).await?;
                ops::snapshot(&mut conn, clients, None).await
            }
            .await;
            conn.finish(out).await
        }, deadline)
    }

    async fn snapshot_into(&self, sink: SnapshotSink) -> StoreResult<Snapshot> {
        // As `snapshot`, but each client is handed over as its rows arrive, so start-up holds
        // a few batches rather than every row and every document at once. Read on a task of
        // its own and decoded on a thread of its own (`stream_snapshot`), so that the caller
        // builds from one batch while the next ones are decoded and fetched (in the caller's
        // task, reading, decoding and building took turns on one core).
        let store = self.clone();
        tokio::spawn(async move { store.stream_snapshot_into(&sink).await })
            .await
            .map_err(|e| StoreError::Internal(format!("the snapshot's reader failed: {e}")))?
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientAggregate>> {
        read_tx!(self, [], |tx| ops::client(tx, client_id, Lock::None))
    }

    async fn record_jtis(&self, records: &[JtiRecord], now: i64) -> StoreResult<Vec<bool>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        retrying!(self, self.record_jtis_once(records, now))
    }

    async fn purge_jtis(&self, now: i64) -> StoreResult<u64> {
        self.bounded(async {
            let deleted = sqlx::query("DELETE FROM assertion_replay WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
            Ok(deleted)
        })
        .await
    }

    async fn insert_logs(&self, logs: &[NewLog]) -> StoreResult<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let mut dates = Vec::with_capacity(logs.len());
        let mut columns: [Vec<Option<String>>; 9] = Default::default();
        let mut docs = Vec::with_capacity(logs.len());
        for log in logs {
            dates.push(log.date_ms);
            for (values, name) in columns.iter_mut().zip(LOG_COLUMNS) {
                // The database stores no NUL; the document keeps it escaped.
                values.push(log.column(name).map(|v| v.replace('\0', "\u{fffd}")));
            }
            docs.push(encode(&log.doc)?);
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LOG_APPEND_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let [a, b, c, d, e, f, g, h, i] = &columns;
            sqlx::query(
                "INSERT INTO logs (date_ms, type, client_id, client_name, description, ip,
                     hostname, user_agent, audience, scope, doc)
                 SELECT a, b, c, d, e, f, g, h, i, j, k FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                     $11::text[]) WITH ORDINALITY AS t(a, b, c, d, e, f, g, h, i, j, k, o)
                 ORDER BY o",
            )
            .bind(&dates)
            .bind(
                a.iter()
                    .map(|t| t.clone().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .bind(b)
            .bind(c)
            .bind(d)
            .bind(e)
            .bind(f)
            .bind(g)
            .bind(h)
            .bind(i)
            .bind(&docs)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn reserve_token_quota(
        &self,
        bucket: &str,
        window_start: i64,
        want: u64,
        limit: u64,
    ) -> StoreResult<(u64, u64)> {
        if has_nul(bucket) {
            return Err(StoreError::Internal("bucket name holds a NUL".into()));
        }
        let want = i64::try_from(want).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One statement: concurrent reservations of the same window (any node) queue on
        // its row, and each sees the count the previous one left. SET's expressions read
        // the row as it was, so `last_grant` is what this reservation added.
        self.bounded(async {
            let (used, granted): (i64, i64) = sqlx::query_as(
                "INSERT INTO token_quota_usage (bucket, window_start, used, last_grant)
                 VALUES ($1, $2, LEAST($3, $4), LEAST($3, $4))
                 ON CONFLICT (bucket, window_start) DO UPDATE
                 SET last_grant = LEAST($3, GREATEST($4 - token_quota_usage.used, 0)),
                     used = token_quota_usage.used + LEAST($3, GREATEST($4 - token_quota_usage.used, 0))
                 RETURNING used, last_grant",
            )
            .bind(bucket)
            .bind(window_start)
            .bind(want)
            .bind(limit)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
            Ok((
                u64::try_from(granted).unwrap_or(0),
                u64::try_from(used).unwrap_or(0),
            ))
        })
        .await
    }

    async fn subscribe(&self) -> StoreResult<Option<Subscription>> {
        // The listener has a connection of its own, outside the pool that requests use.
        let pool = self.own_connection();
        let channel: String = self
            .bounded(async {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {CHANNEL_SQL} AS channel"
                )))
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
                get(&row, "channel")
            })
            .await?;
        // Listening before returning: a change committed after `subscribe` returns is
        // delivered (the caller loads its snapshot afterwards).
        let listener = listen(&pool, &channel).await.map_err(map_err)?;
        let state = self.listener.get_or_init(Arc::default).clone();
        state.set_connected(true);
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(forward_changes(
            channel,
            listener,
            pool,
            tx,
            self.pool.clone(),
            self.closing.subscribe(),
            state,
        ));
        // The change listener reads one entity at a time.
        Ok(Some(Subscription {
            changes: rx,
            reader: Arc::new(Self {
                pool: self.own_connection(),
                ..self.clone()
            }),
        }))
    }
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is ours (see `forward_changes`): it must be followed by a resync.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}

/// How often the listener proves it still receives: it notifies itself and expects the
/// notification back (a silently dropped connection would otherwise go unnoticed).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Forwards notifications as [`Change`]s until the store closes or the receiver is dropped.
/// A lost connection is re-established with back-off and followed by [`Change::Resync`]:
/// whatever was announced in between was missed.
async fn forward_changes(
    channel: String,
    listener: PgListener,
    pool: PgPool,
    tx: mpsc::Sender<Change>,
    writer: PgPool,
    mut closing: watch::Receiver<bool>,
    state: Arc<crate::metrics::ListenerState>,
) {
    let nonce = format!(
        "ping:{}",
        clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 16)
    );
    let mut listener = Some(listener);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_ping = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *closing.borrow() {
            return;
        }
        let Some(current) = listener.as_mut() else {
            // Reconnect, then resync.
            tokio::select! {
                _ = closing.changed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            match listen(&pool, &channel).await {
                Ok(l) => {
                    tracing::info!("change listener reconnected; resynchronising");
                    listener = Some(l);
                    state.set_connected(true);
                    awaiting_ping = false;
                    backoff = Duration::from_millis(100);
                    if tx.send(Change::Resync).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "change listener cannot reconnect yet");
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            continue;
        };
        tokio::select! {
            _ = closing.changed() => return,
            _ = heartbeat.tick() => {
                if awaiting_ping {
                    tracing::warn!("change listener missed its heartbeat; reconnecting");
                    listener = None;
                    state.set_connected(false);
                    continue;
                }
                // A failed ping means the database is unreachable; the listener will see it.
                let sent = tokio::time::timeout(
                    Duration::from_secs(2),
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(&channel)
                        .bind(&nonce)
                        .execute(&writer),
                )
                .await;
                awaiting_ping = matches!(sent, Ok(Ok(_)));
            }
            received = current.try_recv() => match received {
                Ok(Some(notification)) => {
                    state.notified();
                    let payload = notification.payload();
                    if payload == nonce {
                        awaiting_ping = false;
                    } else if let Some(change) = Change::from_text(payload)
                        && tx.send(change).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!("change listener lost its connection");
                    listener = None;
                    state.set_connected(false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed");
                    listener = None;
                    state.set_connected(false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_never_hold_every_pooled_connection() {
        for (pool, writes) in [(1, 1), (2, 1), (3, 2), (4, 2), (10, 5), (11, 6)] {
            assert_eq!(concurrent_writes(pool), writes, "pool of {pool}");
        }
    }

    #[test]
    fn change_payloads_round_trip() {
        for change in [
            Change::Client("abc".into()),
            Change::ResourceServer {
                id: "0123456789abcdef01234567".into(),
                identifier: "https://api.example.com/ with space".into(),
            },
            Change::ClientGrant("cgr_1".into()),
            Change::Organization("org_1".into()),
            Change::SigningKeys,
            Change::TenantSettings,
            Change::Resync,
        ] {
            assert_eq!(Change::from_text(&encode_change(&change)), Some(change));
        }
        assert_eq!(Change::from_text("ping:1"), None);
        let long = Change::Client("x".repeat(MAX_PAYLOAD));
        assert_eq!(encode_change(&long), "resync");
    }
}

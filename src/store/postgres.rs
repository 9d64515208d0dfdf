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

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{PgConnection, Postgres, Row, Transaction};
use tokio::sync::{mpsc, watch};

use super::logs::{LOG_COLUMNS, SqlValue};

use super::{
    ASSOCIATION_CONFLICT, ASSOCIATION_QUOTA, Bootstrap, Change, ClientDiff, ClientFilter,
    ClientRow, Conditions, Delivery, Entity, ExpiryNotice, GRANT_CONFLICT, GrantFilter, JtiRecord,
    LogRow, LogSearch, LogStreamRecord, Mutation, NewLog, ORGANIZATION_CONFLICT,
    OrganizationFilter, OrganizationRecord, Page, PageRequest, SigningKeyRecord, Snapshot,
    SqlDialect, Store, StoreError, StoreResult,
};
use crate::domain::client::{Client, ClientAggregate};
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::Credential;
use crate::domain::ids::is_resource_server_id;
use crate::domain::log_stream::LogStream;
use crate::domain::organization::{MAX_GRANTS_PER_ORGANIZATION, Organization};
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::TenantSettings;

/// SQL for the notification channel of the session's schema: `clavis:<schema>` (cut to
/// PostgreSQL's 63-byte identifier limit).
const CHANNEL_SQL: &str = "left('clavis:' || current_schema(), 63)";

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
];

/// The advisory lock a node holds while it appends log events: sequence numbers are taken
/// and committed by one transaction at a time, so they become visible in increasing order
/// (a checkpoint reader never skips an event that commits late).
const LOG_APPEND_LOCK: i64 = 0x636c_6176_6973_6c67; // "clavislg"

/// Longest notification payload PostgreSQL accepts is 8000 bytes; larger changes are sent as
/// a full resynchronisation.
const MAX_PAYLOAD: usize = 7900;

/// Key of the advisory lock that serialises first-start bootstrap between nodes.
const BOOTSTRAP_LOCK: i64 = 0x636c_6176_6973; // "clavis"

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

/// PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    connect: PgConnectOptions,
    acquire_timeout: Duration,
    /// Deadline of one whole operation (all its statements and the commit).
    op_timeout: Duration,
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

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn encode<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(row: &PgRow, column: &str) -> StoreResult<T> {
    let text: String = row.try_get(column).map_err(map_err)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Internal(format!("corrupt {column}: {e}")))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(map_err)
}

const LOG_STREAM_COLUMNS: &str = "doc, sealed_authorization, cursor, failing_since_ms";

/// A log stream from its `LOG_STREAM_COLUMNS`.
fn log_stream_row(row: &PgRow) -> StoreResult<LogStreamRecord> {
    Ok(LogStreamRecord {
        stream: decode(row, "doc")?,
        sealed_authorization: get(row, "sealed_authorization")?,
        cursor: get(row, "cursor")?,
        failing_since_ms: get(row, "failing_since_ms")?,
    })
}

/// A resource server from its `doc` and `sealed_signing_secret` columns.
fn log_row(row: &PgRow) -> StoreResult<LogRow> {
    Ok(LogRow {
        seq: get(row, "seq")?,
        doc: get(row, "doc")?,
    })
}

fn resource_server_row(row: &PgRow) -> StoreResult<ResourceServer> {
    let mut rs: ResourceServer = decode(row, "doc")?;
    rs.sealed_signing_secret = get(row, "sealed_signing_secret")?;
    Ok(rs)
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// `(after_seq, limit, offset)` of a page request.
fn limit_offset(page: PageRequest) -> (i64, i64, i64) {
    match page {
        PageRequest::Offset { page, per_page } => {
            (0, clamp(per_page), clamp(page.saturating_mul(per_page)))
        }
        PageRequest::Checkpoint { after, take } => {
            (after.unwrap_or(0), clamp(take.saturating_add(1)), 0)
        }
    }
}

/// Builds a [`Page`] from rows fetched with one extra item for checkpoint paging.
fn finish_page<T>(page: PageRequest, mut items: Vec<(i64, T)>, total: Option<u64>) -> Page<T> {
    let mut next = None;
    if let PageRequest::Checkpoint { take, .. } = page
        && items.len() as u64 > take
    {
        items.truncate(take as usize);
        next = items.last().map(|(seq, _)| *seq);
    }
    Page {
        items: items.into_iter().map(|(_, item)| item).collect(),
        total,
        next,
    }
}

/// The notification payload of a change: `client:<id>`, `rs:<id> <identifier>`,
/// `grant:<id>`, `keys`, `resync`.
pub fn encode_change(change: &Change) -> String {
    let payload = match change {
        Change::Client(id) => format!("client:{id}"),
        Change::ResourceServer { id, identifier } => format!("rs:{id} {identifier}"),
        Change::ClientGrant(id) => format!("grant:{id}"),
        Change::Organization(id) => format!("org:{id}"),
        Change::SigningKeys => "keys".into(),
        Change::TenantSettings => "tenant".into(),
        Change::Resync => "resync".into(),
    };
    if payload.len() > MAX_PAYLOAD {
        "resync".into()
    } else {
        payload
    }
}

/// Reads a notification payload; `None` for what is not a change (e.g. a heartbeat).
pub fn decode_change(payload: &str) -> Option<Change> {
    if let Some(id) = payload.strip_prefix("client:") {
        return Some(Change::Client(id.to_string()));
    }
    if let Some(rest) = payload.strip_prefix("rs:") {
        let (id, identifier) = rest.split_once(' ')?;
        return Some(Change::ResourceServer {
            id: id.to_string(),
            identifier: identifier.to_string(),
        });
    }
    if let Some(id) = payload.strip_prefix("grant:") {
        return Some(Change::ClientGrant(id.to_string()));
    }
    if let Some(id) = payload.strip_prefix("org:") {
        return Some(Change::Organization(id.to_string()));
    }
    match payload {
        "keys" => Some(Change::SigningKeys),
        "tenant" => Some(Change::TenantSettings),
        "resync" => Some(Change::Resync),
        _ => None,
    }
}

async fn notify(tx: &mut PgConnection, change: &Change) -> TxResult<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_notify({CHANNEL_SQL}, $1)"
    )))
    .bind(encode_change(change))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Runs one attempt of a transactional operation again while it fails with a serialization
/// failure or deadlock; bounds every attempt by the operation deadline.
macro_rules! retrying {
    ($self:ident, $attempt:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            match tokio::time::timeout($self.op_timeout, $attempt).await {
                Err(_) => {
                    break Err(StoreError::Unavailable(format!(
                        "database operation timed out after {:?}",
                        $self.op_timeout
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
        super::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        let (closing, _) = watch::channel(false);
        Ok(Self {
            pool,
            connect,
            acquire_timeout: options.acquire_timeout,
            op_timeout: options.acquire_timeout
                + options.statement_timeout
                + Duration::from_secs(1),
            closing: Arc::new(closing),
            listener: Arc::default(),
        })
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

    /// A page of `table`'s rows (the `columns` besides `seq`, read by `row`) that meet the
    /// filter's conditions, in `seq` order, with the total of the filtered set for offset
    /// paging.
    async fn filtered_page<T>(
        &self,
        columns: &str,
        table: &str,
        filter: Conditions,
        page: PageRequest,
        row: impl Fn(&sqlx::postgres::PgRow) -> StoreResult<T>,
    ) -> StoreResult<Page<T>> {
        let Conditions {
            sql: conditions,
            binds,
        } = filter;
        // PostgreSQL text cannot hold NUL: such a value matches no stored row.
        if binds.iter().any(|b| has_nul(b)) {
            return Ok(Page {
                items: Vec::new(),
                total: matches!(page, PageRequest::Offset { .. }).then_some(0),
                next: None,
            });
        }
        self.bounded(async {
            let n = binds.len();
            let sql = format!(
                "SELECT seq, {columns} FROM {table} WHERE TRUE{conditions} AND seq > ${} ORDER BY seq LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2,
                n + 3
            );
            let (after, limit, offset) = limit_offset(page);
            // Only fixed SQL text built in this module reaches here; values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            let rows = q
                .bind(after)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
            let items = rows
                .iter()
                .map(|r| Ok((get(r, "seq")?, row(r)?)))
                .collect::<StoreResult<Vec<_>>>()?;
            let total = match page {
                PageRequest::Offset { .. } => Some(
                    self.count(
                        &format!("SELECT COUNT(*) AS n FROM {table} WHERE TRUE{conditions}"),
                        &binds.iter().map(String::as_str).collect::<Vec<_>>(),
                    )
                    .await?,
                ),
                PageRequest::Checkpoint { .. } => None,
            };
            Ok(finish_page(page, items, total))
        })
        .await
    }

    /// A page of organizations in another order than creation order (offset paging; the
    /// caller refuses checkpoint paging with a sort).
    async fn sorted_organizations(
        &self,
        filter: &OrganizationFilter,
        sort: super::OrganizationSort,
        page: PageRequest,
    ) -> StoreResult<Page<Organization>> {
        let Conditions {
            sql: conditions,
            binds,
        } = filter.conditions::<PgDialect>();
        if binds.iter().any(|b| has_nul(b)) {
            return Ok(Page {
                items: Vec::new(),
                total: Some(0),
                next: None,
            });
        }
        let (_, limit, offset) = limit_offset(page);
        let order = sort.order_by(PgDialect::doc_text);
        self.bounded(async {
            let n = binds.len();
            let sql = format!(
                "SELECT doc FROM organizations WHERE TRUE{conditions} ORDER BY {order} LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            );
            // Only fixed SQL text built in this module reaches here; values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            let items = q
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| decode(r, "doc"))
                .collect::<StoreResult<Vec<_>>>()?;
            let total = self
                .count(
                    &format!("SELECT COUNT(*) AS n FROM organizations WHERE TRUE{conditions}"),
                    &binds.iter().map(String::as_str).collect::<Vec<_>>(),
                )
                .await?;
            Ok(Page {
                items,
                total: Some(total),
                next: None,
            })
        })
        .await
    }

    async fn begin(&self) -> TxResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
    }

    async fn load_client(
        conn: &mut PgConnection,
        client_id: &str,
        lock: bool,
    ) -> TxResult<Option<ClientAggregate>> {
        if has_nul(client_id) {
            return Ok(None);
        }
        let sql = if lock {
            "SELECT doc, sealed_secret FROM clients WHERE client_id = $1 FOR UPDATE"
        } else {
            "SELECT doc, sealed_secret FROM clients WHERE client_id = $1"
        };
        let Some(row) = sqlx::query(sql)
            .bind(client_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let client: Client = decode(&row, "doc")?;
        let sealed_secret: Option<Vec<u8>> = get(&row, "sealed_secret")?;
        let rows = sqlx::query("SELECT doc FROM credentials WHERE client_id = $1 ORDER BY seq")
            .bind(client_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        let credentials = rows
            .iter()
            .map(|r| decode::<Credential>(r, "doc"))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(ClientAggregate {
            client,
            sealed_secret,
            credentials,
        }))
    }

    async fn write_new_client(
        conn: &mut PgConnection,
        aggregate: &ClientAggregate,
    ) -> TxResult<()> {
        let result =
            sqlx::query("INSERT INTO clients (client_id, doc, sealed_secret) VALUES ($1, $2, $3)")
                .bind(&aggregate.client.client_id)
                .bind(encode(&aggregate.client)?)
                .bind(aggregate.sealed_secret.as_deref())
                .execute(&mut *conn)
                .await;
        match result {
            Err(e) if unique_violation(&e) => {
                return Err(TxError::Fail(StoreError::Conflict {
                    entity: Entity::Client,
                    message: "A client with this client_id already exists".into(),
                }));
            }
            other => {
                other.map_err(db)?;
            }
        }
        for credential in &aggregate.credentials {
            Self::insert_credential(conn, credential).await?;
        }
        notify(conn, &Change::Client(aggregate.client.client_id.clone())).await
    }

    async fn insert_credential(conn: &mut PgConnection, credential: &Credential) -> TxResult<()> {
        let result =
            sqlx::query("INSERT INTO credentials (id, client_id, doc) VALUES ($1, $2, $3)")
                .bind(&credential.id)
                .bind(&credential.client_id)
                .bind(encode(credential)?)
                .execute(&mut *conn)
                .await;
        match result {
            Err(e) if unique_violation(&e) => Err(TxError::Fail(StoreError::Conflict {
                entity: Entity::Credential,
                message: "A credential with this id already exists".into(),
            })),
            other => other.map(|_| ()).map_err(db),
        }
    }

    async fn insert_resource_server_tx(
        conn: &mut PgConnection,
        rs: &ResourceServer,
    ) -> TxResult<()> {
        let result =
            sqlx::query("INSERT INTO resource_servers (id, identifier, doc, sealed_signing_secret) VALUES ($1, $2, $3, $4)")
                .bind(&rs.id)
                .bind(&rs.identifier)
                .bind(encode(rs)?)
                .bind(rs.sealed_signing_secret.as_deref())
                .execute(&mut *conn)
                .await;
        match result {
            Err(e) if unique_violation(&e) => {
                return Err(TxError::Fail(StoreError::Conflict {
                    entity: Entity::ResourceServer,
                    message: format!(
                        "Resource server with identifier {} already exists.",
                        rs.identifier
                    ),
                }));
            }
            other => {
                other.map_err(db)?;
            }
        }
        notify(conn, &rs_change(rs)).await
    }

    async fn insert_grant_tx(conn: &mut PgConnection, grant: &ClientGrant) -> TxResult<()> {
        if has_nul(&grant.client_id) {
            return Err(StoreError::NotFound(Entity::Client).into());
        }
        if has_nul(&grant.audience) {
            return Err(StoreError::NotFound(Entity::ResourceServer).into());
        }
        // KEY SHARE locks keep the client and the API from being deleted until commit.
        let client_exists = sqlx::query("SELECT 1 FROM clients WHERE client_id = $1 FOR KEY SHARE")
            .bind(&grant.client_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
            .is_some();
        if !client_exists {
            return Err(TxError::Fail(StoreError::NotFound(Entity::Client)));
        }
        let rs_exists =
            sqlx::query("SELECT 1 FROM resource_servers WHERE identifier = $1 FOR KEY SHARE")
                .bind(&grant.audience)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?
                .is_some();
        if !rs_exists {
            return Err(TxError::Fail(StoreError::NotFound(Entity::ResourceServer)));
        }
        let result = sqlx::query(
            "INSERT INTO client_grants (id, client_id, audience, subject_type, doc) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(&grant.audience)
        .bind(grant.subject_type().as_str())
        .bind(encode(grant)?)
        .execute(&mut *conn)
        .await;
        match result {
            Err(e) if unique_violation(&e) => {
                return Err(TxError::Fail(StoreError::Conflict {
                    entity: Entity::ClientGrant,
                    message: GRANT_CONFLICT.into(),
                }));
            }
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                let entity = if d.constraint() == Some("client_grants_audience_fkey") {
                    Entity::ResourceServer
                } else {
                    Entity::Client
                };
                return Err(TxError::Fail(StoreError::NotFound(entity)));
            }
            other => {
                other.map_err(db)?;
            }
        }
        notify(conn, &Change::ClientGrant(grant.id.clone())).await
    }

    async fn insert_signing_key_tx(
        conn: &mut PgConnection,
        key: &SigningKeyRecord,
    ) -> TxResult<()> {
        sqlx::query("INSERT INTO signing_keys (kid, sealed_pkcs8, doc) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(&key.sealed_pkcs8)
            .bind(encode(key)?)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn load_signing_keys(
        conn: &mut PgConnection,
        lock: bool,
    ) -> TxResult<Vec<SigningKeyRecord>> {
        let sql = if lock {
            "SELECT sealed_pkcs8, doc FROM signing_keys ORDER BY seq FOR UPDATE"
        } else {
            "SELECT sealed_pkcs8, doc FROM signing_keys ORDER BY seq"
        };
        let rows = sqlx::query(sql).fetch_all(&mut *conn).await.map_err(db)?;
        Ok(rows
            .iter()
            .map(|row| {
                let mut key: SigningKeyRecord = decode(row, "doc")?;
                key.sealed_pkcs8 = get(row, "sealed_pkcs8")?;
                Ok(key)
            })
            .collect::<StoreResult<Vec<_>>>()?)
    }

    async fn load_resource_server(
        conn: &mut PgConnection,
        key: &str,
        lock: bool,
    ) -> TxResult<Option<(i64, ResourceServer)>> {
        if has_nul(key) {
            return Ok(None);
        }
        // An identifier may itself look like an id; an id match wins.
        let sql = match (is_resource_server_id(key), lock) {
            (true, false) => {
                "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE id = $1 OR identifier = $1
                 ORDER BY id = $1 DESC LIMIT 1"
            }
            (true, true) => {
                "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE id = $1 OR identifier = $1
                 ORDER BY id = $1 DESC LIMIT 1 FOR UPDATE"
            }
            (false, false) => "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE identifier = $1",
            (false, true) => {
                "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE identifier = $1 FOR UPDATE"
            }
        };
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        Ok(row
            .map(|r| Ok::<_, StoreError>((get(&r, "seq")?, resource_server_row(&r)?)))
            .transpose()?)
    }

    async fn count(&self, sql: &str, binds: &[&str]) -> StoreResult<u64> {
        // Only fixed SQL text built in this module reaches here; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for b in binds {
            q = q.bind(*b);
        }
        let row = q.fetch_one(&self.pool).await.map_err(map_err)?;
        let n: i64 = get(&row, "n")?;
        Ok(n.max(0) as u64)
    }

    /// Organizations (one, or all) with their associated grant ids.
    async fn load_organizations(
        conn: &mut PgConnection,
        id: Option<&str>,
    ) -> StoreResult<Vec<OrganizationRecord>> {
        let (org_sql, assoc_sql) = match id {
            Some(_) => (
                "SELECT doc FROM organizations WHERE id = $1",
                "SELECT organization_id, grant_id FROM organization_client_grants WHERE organization_id = $1 ORDER BY seq",
            ),
            None => (
                "SELECT doc FROM organizations ORDER BY seq",
                "SELECT organization_id, grant_id FROM organization_client_grants ORDER BY seq",
            ),
        };
        let mut q = sqlx::query(org_sql);
        let mut a = sqlx::query(assoc_sql);
        if let Some(id) = id {
            q = q.bind(id);
            a = a.bind(id);
        }
        let orgs = q
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| decode::<Organization>(r, "doc"))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut by_org: std::collections::HashMap<String, Vec<String>> = Default::default();
        for row in a.fetch_all(&mut *conn).await.map_err(map_err)? {
            by_org
                .entry(get(&row, "organization_id")?)
                .or_default()
                .push(get(&row, "grant_id")?);
        }
        Ok(orgs
            .into_iter()
            .map(|organization| OrganizationRecord {
                grant_ids: by_org.remove(&organization.id).unwrap_or_default(),
                organization,
            })
            .collect())
    }

    async fn load_tenant_settings(conn: &mut PgConnection) -> StoreResult<TenantSettings> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc FROM tenant_settings WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
        Ok(TenantSettings::from_stored(doc.as_deref()))
    }

    async fn update_tenant_settings_once(
        &self,
        mutation: Mutation<'_, TenantSettings>,
    ) -> TxResult<TenantSettings> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO tenant_settings (id, doc) VALUES (1, '{}') ON CONFLICT (id) DO NOTHING",
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let doc: String =
            sqlx::query_scalar("SELECT doc FROM tenant_settings WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let mut settings = TenantSettings::from_stored(Some(&doc));
        mutation(&mut settings)?;
        let stored = settings.to_stored();
        if has_nul(&stored) {
            return Err(nul_refused("tenant settings").into());
        }
        sqlx::query("UPDATE tenant_settings SET doc = $1 WHERE id = 1")
            .bind(stored)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        notify(&mut tx, &Change::TenantSettings).await?;
        tx.commit().await.map_err(db)?;
        Ok(settings)
    }

    async fn update_organization_once(
        &self,
        id: &str,
        mutation: Mutation<'_, Organization>,
    ) -> TxResult<Organization> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT doc FROM organizations WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound(Entity::Organization))?;
        let mut org: Organization = decode(&row, "doc")?;
        mutation(&mut org)?;
        if org.id != id {
            return Err(StoreError::Internal("id cannot change".into()).into());
        }
        if has_nul(&org.name) {
            return Err(nul_refused("name").into());
        }
        let result = sqlx::query("UPDATE organizations SET name = $1, doc = $2 WHERE id = $3")
            .bind(&org.name)
            .bind(encode(&org)?)
            .bind(id)
            .execute(&mut *tx)
            .await;
        match result {
            Err(e) if unique_violation(&e) => {
                return Err(TxError::Fail(org_name_conflict()));
            }
            other => {
                other.map_err(db)?;
            }
        }
        notify(&mut tx, &Change::Organization(id.to_string())).await?;
        tx.commit().await.map_err(db)?;
        Ok(org)
    }

    async fn update_log_stream_once(
        &self,
        id: &str,
        mutation: Mutation<'_, LogStreamRecord>,
    ) -> TxResult<LogStreamRecord> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LOG_STREAM_COLUMNS} FROM log_streams WHERE id = $1 FOR UPDATE"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound(Entity::LogStream))?;
        let mut record = log_stream_row(&row)?;
        mutation(&mut record)?;
        if record.stream.id != id {
            return Err(StoreError::Internal("id cannot change".into()).into());
        }
        sqlx::query(
            "UPDATE log_streams SET doc = $1, sealed_authorization = $2, failing_since_ms = $3
             WHERE id = $4",
        )
        .bind(encode(&record.stream)?)
        .bind(record.sealed_authorization.as_deref())
        .bind(record.failing_since_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn associate_once(&self, org_id: &str, grant_id: &str) -> TxResult<ClientGrant> {
        let mut tx = self.begin().await?;
        // The organization's row lock makes the cap check serial across nodes.
        let org = sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if org.is_none() {
            return Err(StoreError::NotFound(Entity::Organization).into());
        }
        let row = sqlx::query("SELECT doc FROM client_grants WHERE id = $1 FOR KEY SHARE")
            .bind(grant_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
        let grant: ClientGrant = decode(&row, "doc")?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE grant_id = $2) AS here
               FROM organization_client_grants WHERE organization_id = $1",
        )
        .bind(org_id)
        .bind(grant_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let (n, here): (i64, i64) = (get(&row, "n")?, get(&row, "here")?);
        if here > 0 {
            return Err(StoreError::Conflict {
                entity: Entity::Organization,
                message: ASSOCIATION_CONFLICT.into(),
            }
            .into());
        }
        if n.max(0) as usize >= MAX_GRANTS_PER_ORGANIZATION {
            return Err(StoreError::Conflict {
                entity: Entity::Organization,
                message: ASSOCIATION_QUOTA.into(),
            }
            .into());
        }
        sqlx::query(
            "INSERT INTO organization_client_grants (organization_id, grant_id) VALUES ($1, $2)",
        )
        .bind(org_id)
        .bind(grant_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        notify(&mut tx, &Change::Organization(org_id.to_string())).await?;
        tx.commit().await.map_err(db)?;
        Ok(grant)
    }

    // ----- one attempt of each transactional write -----

    async fn update_client_once(
        &self,
        client_id: &str,
        mutation: Mutation<'_, ClientAggregate>,
    ) -> TxResult<ClientAggregate> {
        let mut tx = self.begin().await?;
        let before = Self::load_client(&mut tx, client_id, true)
            .await?
            .ok_or(StoreError::NotFound(Entity::Client))?;
        let mut after = before.clone();
        mutation(&mut after)?;
        let diff = ClientDiff::between(&before, &after)?;
        if diff.client_changed {
            sqlx::query("UPDATE clients SET doc = $1, sealed_secret = $2 WHERE client_id = $3")
                .bind(encode(&after.client)?)
                .bind(after.sealed_secret.as_deref())
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for id in &diff.deleted {
            sqlx::query("DELETE FROM credentials WHERE id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for credential in &diff.updated {
            sqlx::query("UPDATE credentials SET doc = $1 WHERE id = $2")
                .bind(encode(*credential)?)
                .bind(&credential.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for credential in &diff.inserted {
            Self::insert_credential(&mut tx, credential).await?;
        }
        notify(&mut tx, &Change::Client(client_id.to_string())).await?;
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    async fn delete_client_once(&self, client_id: &str) -> TxResult<Vec<String>> {
        if has_nul(client_id) {
            return Err(StoreError::NotFound(Entity::Client).into());
        }
        let mut tx = self.begin().await?;
        let locked = sqlx::query("SELECT 1 FROM clients WHERE client_id = $1 FOR UPDATE")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .is_some();
        if !locked {
            return Err(StoreError::NotFound(Entity::Client).into());
        }
        let grants: Vec<String> =
            sqlx::query("SELECT id FROM client_grants WHERE client_id = $1 ORDER BY seq")
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?
                .iter()
                .map(|r| get(r, "id"))
                .collect::<StoreResult<_>>()?;
        sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        notify(&mut tx, &Change::Client(client_id.to_string())).await?;
        for id in &grants {
            notify(&mut tx, &Change::ClientGrant(id.clone())).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(grants)
    }

    async fn update_resource_server_once(
        &self,
        key: &str,
        mutation: Mutation<'_, ResourceServer>,
    ) -> TxResult<ResourceServer> {
        let mut tx = self.begin().await?;
        let (seq, mut rs) = Self::load_resource_server(&mut tx, key, true)
            .await?
            .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
        let identifier = rs.identifier.clone();
        mutation(&mut rs)?;
        if rs.identifier != identifier {
            return Err(StoreError::Internal("identifier cannot change".into()).into());
        }
        sqlx::query(
            "UPDATE resource_servers SET doc = $1, sealed_signing_secret = $2 WHERE seq = $3",
        )
        .bind(encode(&rs)?)
        .bind(rs.sealed_signing_secret.as_deref())
        .bind(seq)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        notify(&mut tx, &rs_change(&rs)).await?;
        tx.commit().await.map_err(db)?;
        Ok(rs)
    }

    async fn delete_resource_server_once(
        &self,
        key: &str,
        guard: Mutation<'_, ResourceServer>,
    ) -> TxResult<(ResourceServer, Vec<String>)> {
        let mut tx = self.begin().await?;
        let (seq, mut rs) = Self::load_resource_server(&mut tx, key, true)
            .await?
            .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
        guard(&mut rs)?;
        let grants: Vec<String> =
            sqlx::query("SELECT id FROM client_grants WHERE audience = $1 ORDER BY seq")
                .bind(&rs.identifier)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?
                .iter()
                .map(|r| get(r, "id"))
                .collect::<StoreResult<_>>()?;
        sqlx::query("DELETE FROM resource_servers WHERE seq = $1")
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        notify(&mut tx, &rs_change(&rs)).await?;
        for id in &grants {
            notify(&mut tx, &Change::ClientGrant(id.clone())).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok((rs, grants))
    }

    async fn update_client_grant_once(
        &self,
        id: &str,
        mutation: Mutation<'_, ClientGrant>,
    ) -> TxResult<ClientGrant> {
        if has_nul(id) {
            return Err(StoreError::NotFound(Entity::ClientGrant).into());
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT doc FROM client_grants WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
        let mut grant: ClientGrant = decode(&row, "doc")?;
        mutation(&mut grant)?;
        sqlx::query("UPDATE client_grants SET doc = $1 WHERE id = $2")
            .bind(encode(&grant)?)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        notify(&mut tx, &Change::ClientGrant(id.to_string())).await?;
        tx.commit().await.map_err(db)?;
        Ok(grant)
    }

    async fn update_signing_keys_once(
        &self,
        mutation: Mutation<'_, Vec<SigningKeyRecord>>,
    ) -> TxResult<Vec<SigningKeyRecord>> {
        let mut tx = self.begin().await?;
        // The keys are one aggregate: a rotation on two nodes at once must not promote the
        // same `next` key twice. Locking the rows is not enough while the table could be
        // empty, so the whole table is locked against other writers.
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let before = Self::load_signing_keys(&mut tx, false).await?;
        let mut after = before.clone();
        mutation(&mut after)?;
        if before
            .iter()
            .any(|old| !after.iter().any(|k| k.kid == old.kid))
        {
            return Err(StoreError::Internal("signing keys are never deleted".into()).into());
        }
        for key in &after {
            match before.iter().find(|k| k.kid == key.kid) {
                None => Self::insert_signing_key_tx(&mut tx, key).await?,
                Some(old) if old != key => {
                    sqlx::query("UPDATE signing_keys SET doc = $1 WHERE kid = $2")
                        .bind(encode(key)?)
                        .bind(&key.kid)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                Some(_) => {}
            }
        }
        notify(&mut tx, &Change::SigningKeys).await?;
        tx.commit().await.map_err(db)?;
        Ok(after)
    }

    async fn bootstrap_once(&self, data: &Bootstrap) -> TxResult<bool> {
        let mut tx = self.begin().await?;
        // Nodes starting together on an empty database: one bootstraps, the others wait and
        // then find it done.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let done = sqlx::query("SELECT 1 FROM settings WHERE key = 'bootstrapped'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .is_some();
        if done {
            return Ok(false);
        }
        Self::insert_resource_server_tx(&mut tx, &data.management_api).await?;
        Self::write_new_client(&mut tx, &data.admin).await?;
        Self::insert_grant_tx(&mut tx, &data.admin_grant).await?;
        for key in &data.signing_keys {
            Self::insert_signing_key_tx(&mut tx, key).await?;
        }
        sqlx::query("INSERT INTO settings (key, value) VALUES ('bootstrapped', $1)")
            .bind(crate::domain::time::Timestamp::now().to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        notify(&mut tx, &Change::Resync).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
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

fn org_name_conflict() -> StoreError {
    StoreError::Conflict {
        entity: Entity::Organization,
        message: ORGANIZATION_CONFLICT.into(),
    }
}

fn rs_change(rs: &ResourceServer) -> Change {
    Change::ResourceServer {
        id: rs.id.clone(),
        identifier: rs.identifier.clone(),
    }
}

#[async_trait]
impl Store for PostgresStore {
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

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        if has_nul(key) {
            return Ok(None);
        }
        self.bounded(async {
            let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            row.map(|r| get(&r, "value")).transpose()
        })
        .await
    }

    async fn init_setting(&self, key: &str, value: &str) -> StoreResult<String> {
        self.bounded(async {
            // ON CONFLICT waits for a concurrent insert of the same key to commit, and the
            // following statement then sees whichever value won.
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
            get(&row, "value")
        })
        .await
    }

    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool> {
        retrying!(self, self.bootstrap_once(data))
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        self.bounded(async {
            // One repeatable-read transaction, so the snapshot is consistent.
            let mut tx = self
                .pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(map_err)?;
            let client_rows =
                sqlx::query("SELECT client_id, doc, sealed_secret FROM clients ORDER BY seq")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let credential_rows =
                sqlx::query("SELECT client_id, doc FROM credentials ORDER BY seq")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let mut by_client: std::collections::HashMap<String, Vec<Credential>> =
                std::collections::HashMap::new();
            for row in &credential_rows {
                let client_id: String = get(row, "client_id")?;
                by_client
                    .entry(client_id)
                    .or_default()
                    .push(decode(row, "doc")?);
            }
            let mut clients = Vec::with_capacity(client_rows.len());
            for row in &client_rows {
                let client: Client = decode(row, "doc")?;
                let credentials = by_client.remove(&client.client_id).unwrap_or_default();
                clients.push(ClientAggregate {
                    client,
                    sealed_secret: get(row, "sealed_secret")?,
                    credentials,
                });
            }
            let resource_servers =
                sqlx::query("SELECT doc, sealed_signing_secret FROM resource_servers ORDER BY seq")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .iter()
                    .map(resource_server_row)
                    .collect::<StoreResult<Vec<_>>>()?;
            let client_grants = sqlx::query("SELECT doc FROM client_grants ORDER BY seq")
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .iter()
                .map(|r| decode(r, "doc"))
                .collect::<StoreResult<Vec<_>>>()?;
            let signing_keys = match Self::load_signing_keys(&mut tx, false).await {
                Ok(keys) => keys,
                Err(TxError::Fail(e)) => return Err(e),
                Err(TxError::Retry(e)) => return Err(map_err(e)),
            };
            let organizations = Self::load_organizations(&mut tx, None).await?;
            let tenant_settings = Self::load_tenant_settings(&mut tx).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(Snapshot {
                clients,
                resource_servers,
                client_grants,
                signing_keys,
                organizations,
                tenant_settings,
            })
        })
        .await
    }

    async fn insert_client(&self, aggregate: &ClientAggregate) -> StoreResult<()> {
        retrying!(self, async {
            let mut tx = self.begin().await?;
            Self::write_new_client(&mut tx, aggregate).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientAggregate>> {
        retrying!(self, async {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            Self::load_client(&mut conn, client_id, false).await
        })
    }

    async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientRow>> {
        self.filtered_page(
            "doc, sealed_secret",
            "clients",
            filter.conditions::<PgDialect>(),
            page,
            |r| {
                Ok(ClientRow {
                    client: decode(r, "doc")?,
                    sealed_secret: get(r, "sealed_secret")?,
                })
            },
        )
        .await
    }

    async fn update_client(
        &self,
        client_id: &str,
        mutation: Mutation<'_, ClientAggregate>,
    ) -> StoreResult<ClientAggregate> {
        retrying!(self, self.update_client_once(client_id, &mut *mutation))
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<Vec<String>> {
        retrying!(self, self.delete_client_once(client_id))
    }

    async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
        retrying!(self, async {
            let mut tx = self.begin().await?;
            Self::insert_resource_server_tx(&mut tx, rs).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn resource_server(&self, key: &str) -> StoreResult<Option<ResourceServer>> {
        retrying!(self, async {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            Ok(Self::load_resource_server(&mut conn, key, false)
                .await?
                .map(|(_, rs)| rs))
        })
    }

    async fn list_resource_servers(&self, page: PageRequest) -> StoreResult<Page<ResourceServer>> {
        self.filtered_page(
            "doc, sealed_signing_secret",
            "resource_servers",
            Conditions::default(),
            page,
            resource_server_row,
        )
        .await
    }

    async fn update_resource_server(
        &self,
        key: &str,
        mutation: Mutation<'_, ResourceServer>,
    ) -> StoreResult<ResourceServer> {
        retrying!(self, self.update_resource_server_once(key, &mut *mutation))
    }

    async fn delete_resource_server(
        &self,
        key: &str,
        guard: Mutation<'_, ResourceServer>,
    ) -> StoreResult<(ResourceServer, Vec<String>)> {
        retrying!(self, self.delete_resource_server_once(key, &mut *guard))
    }

    async fn insert_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        retrying!(self, async {
            let mut tx = self.begin().await?;
            Self::insert_grant_tx(&mut tx, grant).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>> {
        if has_nul(id) {
            return Ok(None);
        }
        self.bounded(async {
            let row = sqlx::query("SELECT doc FROM client_grants WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            row.map(|r| decode(&r, "doc")).transpose()
        })
        .await
    }

    async fn list_client_grants(
        &self,
        filter: &GrantFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>> {
        self.filtered_page(
            "doc",
            "client_grants",
            filter.conditions::<PgDialect>(),
            page,
            |r| decode(r, "doc"),
        )
        .await
    }

    async fn update_client_grant(
        &self,
        id: &str,
        mutation: Mutation<'_, ClientGrant>,
    ) -> StoreResult<ClientGrant> {
        retrying!(self, self.update_client_grant_once(id, &mut *mutation))
    }

    async fn delete_client_grant(&self, id: &str) -> StoreResult<()> {
        if has_nul(id) {
            return Err(StoreError::NotFound(Entity::ClientGrant));
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            let deleted = sqlx::query("DELETE FROM client_grants WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound(Entity::ClientGrant).into());
            }
            notify(&mut tx, &Change::ClientGrant(id.to_string())).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
        if has_nul(&org.name) {
            return Err(nul_refused("name"));
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            let result =
                sqlx::query("INSERT INTO organizations (id, name, doc) VALUES ($1, $2, $3)")
                    .bind(&org.id)
                    .bind(&org.name)
                    .bind(encode(org)?)
                    .execute(&mut *tx)
                    .await;
            match result {
                Err(e) if unique_violation(&e) => {
                    return Err(TxError::Fail(org_name_conflict()));
                }
                other => {
                    other.map_err(db)?;
                }
            }
            notify(&mut tx, &Change::Organization(org.id.clone())).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn organization(&self, id: &str) -> StoreResult<Option<OrganizationRecord>> {
        if has_nul(id) {
            return Ok(None);
        }
        self.bounded(async {
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            Ok(Self::load_organizations(&mut conn, Some(id)).await?.pop())
        })
        .await
    }

    async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>> {
        if has_nul(name) {
            return Ok(None);
        }
        self.bounded(async {
            let row = sqlx::query("SELECT doc FROM organizations WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            row.map(|r| decode(&r, "doc")).transpose()
        })
        .await
    }

    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Organization>> {
        match filter.sort.filter(|s| !s.is_creation_order()) {
            None => {
                self.filtered_page(
                    "doc",
                    "organizations",
                    filter.conditions::<PgDialect>(),
                    page,
                    |r| decode(r, "doc"),
                )
                .await
            }
            Some(sort) => self.sorted_organizations(filter, sort, page).await,
        }
    }

    async fn update_organization(
        &self,
        id: &str,
        mutation: Mutation<'_, Organization>,
    ) -> StoreResult<Organization> {
        if has_nul(id) {
            return Err(StoreError::NotFound(Entity::Organization));
        }
        retrying!(self, self.update_organization_once(id, &mut *mutation))
    }

    async fn delete_organization(&self, id: &str) -> StoreResult<()> {
        if has_nul(id) {
            return Err(StoreError::NotFound(Entity::Organization));
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            let deleted = sqlx::query("DELETE FROM organizations WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound(Entity::Organization).into());
            }
            notify(&mut tx, &Change::Organization(id.to_string())).await?;
            tx.commit().await.map_err(db)
        })
    }

    async fn associate_client_grant(
        &self,
        org_id: &str,
        grant_id: &str,
    ) -> StoreResult<ClientGrant> {
        if has_nul(org_id) {
            return Err(StoreError::NotFound(Entity::Organization));
        }
        if has_nul(grant_id) {
            return Err(StoreError::NotFound(Entity::ClientGrant));
        }
        retrying!(self, self.associate_once(org_id, grant_id))
    }

    async fn dissociate_client_grant(&self, org_id: &str, grant_id: &str) -> StoreResult<()> {
        if has_nul(org_id) {
            return Err(StoreError::NotFound(Entity::Organization));
        }
        if has_nul(grant_id) {
            return Ok(());
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            let org = sqlx::query("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE")
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if org.is_none() {
                return Err(StoreError::NotFound(Entity::Organization).into());
            }
            sqlx::query(
                "DELETE FROM organization_client_grants WHERE organization_id = $1 AND grant_id = $2",
            )
            .bind(org_id)
            .bind(grant_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            notify(&mut tx, &Change::Organization(org_id.to_string())).await?;
            tx.commit().await.map_err(db)
        })
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

    async fn claim_expiry_notice(&self, notice: &ExpiryNotice) -> StoreResult<bool> {
        if has_nul(&notice.credential_id) {
            return Ok(false);
        }
        // One statement: a concurrent claim of the same notice on another node waits for
        // the first to commit, then sees its row and its expiry (not earlier: no update).
        self.bounded(async {
            let claimed = sqlx::query(
                "INSERT INTO credential_expiry_notices
                     (credential_id, threshold_s, expires_at_ms, sent_at_ms)
                 SELECT $1, $2, $3, $4
                 WHERE EXISTS (SELECT 1 FROM credentials WHERE id = $1)
                 ON CONFLICT (credential_id, threshold_s) DO UPDATE
                 SET expires_at_ms = excluded.expires_at_ms, sent_at_ms = excluded.sent_at_ms
                 WHERE credential_expiry_notices.expires_at_ms < excluded.expires_at_ms",
            )
            .bind(&notice.credential_id)
            .bind(notice.threshold_s)
            .bind(notice.expires_at_ms)
            .bind(notice.sent_at_ms)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
            Ok(claimed == 1)
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

    async fn log(&self, seq: i64) -> StoreResult<Option<LogRow>> {
        self.bounded(async {
            let row = sqlx::query("SELECT seq, doc FROM logs WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            row.map(|r| log_row(&r)).transpose()
        })
        .await
    }

    async fn logs_after(&self, after: i64, take: u64) -> StoreResult<Vec<LogRow>> {
        self.bounded(async {
            let rows =
                sqlx::query("SELECT seq, doc FROM logs WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after)
                    .bind(clamp(take))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
            rows.iter().map(log_row).collect()
        })
        .await
    }

    async fn search_logs(&self, search: &LogSearch) -> StoreResult<(Vec<LogRow>, Option<u64>)> {
        let mut binds = Vec::new();
        let (filter, order) = super::logs::search_sql::<PgDialect>(search, &mut binds);
        let bind_all = |sql: String, binds: &[SqlValue]| {
            // Only fixed SQL text built in `store::logs` reaches here; values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = match b {
                    SqlValue::Text(t) => q.bind(t.replace('\0', "\u{fffd}")),
                    SqlValue::Int(n) => q.bind(*n),
                };
            }
            q
        };
        self.bounded(async {
            let n = binds.len();
            let rows = bind_all(
                format!(
                    "SELECT seq, doc FROM logs{filter}{order} LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                ),
                &binds,
            )
            .bind(clamp(search.limit))
            .bind(clamp(search.offset))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            let rows = rows.iter().map(log_row).collect::<StoreResult<Vec<_>>>()?;
            let total = if search.totals {
                let row = bind_all(format!("SELECT COUNT(*) AS n FROM logs{filter}"), &binds)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                let n: i64 = get(&row, "n")?;
                Some(n.max(0) as u64)
            } else {
                None
            };
            Ok((rows, total))
        })
        .await
    }

    async fn purge_logs(&self, before_ms: i64, chunk: u64) -> StoreResult<u64> {
        self.bounded(async {
            let deleted = sqlx::query(
                "DELETE FROM logs WHERE seq IN (
                     SELECT seq FROM logs WHERE date_ms < $1 ORDER BY seq LIMIT $2)",
            )
            .bind(before_ms)
            .bind(clamp(chunk))
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
            Ok(deleted)
        })
        .await
    }

    async fn insert_log_stream(
        &self,
        stream: &LogStream,
        sealed_authorization: Option<&[u8]>,
        start_ms: Option<i64>,
    ) -> StoreResult<()> {
        let doc = encode(stream)?;
        retrying!(self, async {
            let mut tx = self.begin().await?;
            sqlx::query(
                "INSERT INTO log_streams (id, doc, sealed_authorization, cursor)
                 VALUES ($1, $2, $3, COALESCE((SELECT MAX(seq) FROM logs
                     WHERE $4::bigint IS NULL OR date_ms < $4::bigint), 0))",
            )
            .bind(&stream.id)
            .bind(&doc)
            .bind(sealed_authorization)
            .bind(start_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }

    async fn log_stream(&self, id: &str) -> StoreResult<Option<LogStreamRecord>> {
        if has_nul(id) {
            return Ok(None);
        }
        self.bounded(async {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LOG_STREAM_COLUMNS} FROM log_streams WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            row.as_ref().map(log_stream_row).transpose()
        })
        .await
    }

    async fn log_streams(&self) -> StoreResult<Vec<LogStreamRecord>> {
        self.bounded(async {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LOG_STREAM_COLUMNS} FROM log_streams ORDER BY seq"
            )))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            rows.iter().map(log_stream_row).collect()
        })
        .await
    }

    async fn update_log_stream(
        &self,
        id: &str,
        mutation: Mutation<'_, LogStreamRecord>,
    ) -> StoreResult<LogStreamRecord> {
        if has_nul(id) {
            return Err(StoreError::NotFound(Entity::LogStream));
        }
        retrying!(self, self.update_log_stream_once(id, &mut *mutation))
    }

    async fn delete_log_stream(&self, id: &str) -> StoreResult<()> {
        if has_nul(id) {
            return Err(StoreError::NotFound(Entity::LogStream));
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            let deleted = sqlx::query("DELETE FROM log_streams WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound(Entity::LogStream).into());
            }
            tx.commit().await.map_err(db)
        })
    }

    async fn lease_log_stream(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<LogStreamRecord>> {
        if has_nul(id) || has_nul(owner) {
            return Ok(None);
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            // One statement: the row lock makes two nodes' takes serial, and the second
            // sees the first's lease.
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE log_streams SET lease_owner = $1, lease_until_ms = $2
                 WHERE id = $3 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms < $4)
                 RETURNING {LOG_STREAM_COLUMNS}"
            )))
            .bind(owner)
            .bind(until_ms)
            .bind(id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let record = row.as_ref().map(log_stream_row).transpose()?;
            tx.commit().await.map_err(db)?;
            Ok(record)
        })
    }

    async fn record_delivery(&self, id: &str, owner: &str, outcome: Delivery) -> StoreResult<bool> {
        if has_nul(id) || has_nul(owner) {
            return Ok(false);
        }
        retrying!(self, async {
            let mut tx = self.begin().await?;
            let query = match outcome {
                Delivery::Delivered(cursor) => sqlx::query(
                    "UPDATE log_streams SET cursor = GREATEST(cursor, $1), failing_since_ms = NULL
                     WHERE id = $2 AND lease_owner = $3",
                )
                .bind(cursor),
                Delivery::Failed(now) => sqlx::query(
                    "UPDATE log_streams SET failing_since_ms = COALESCE(failing_since_ms, $1)
                     WHERE id = $2 AND lease_owner = $3",
                )
                .bind(now),
                Delivery::Release => sqlx::query(
                    "UPDATE log_streams SET lease_owner = NULL, lease_until_ms = 0
                     WHERE $1::bigint IS NULL AND id = $2 AND lease_owner = $3",
                )
                .bind(None::<i64>),
            };
            let changed = query
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(changed > 0)
        })
    }

    async fn tenant_settings(&self) -> StoreResult<TenantSettings> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            Self::load_tenant_settings(&mut conn).await
        })
        .await
    }

    async fn update_tenant_settings(
        &self,
        mutation: Mutation<'_, TenantSettings>,
    ) -> StoreResult<TenantSettings> {
        retrying!(self, self.update_tenant_settings_once(&mut *mutation))
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

    async fn purge_token_quota_usage(&self, before: i64) -> StoreResult<u64> {
        self.bounded(async {
            Ok(
                sqlx::query("DELETE FROM token_quota_usage WHERE window_start < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected(),
            )
        })
        .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        retrying!(self, async {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            Self::load_signing_keys(&mut conn, false).await
        })
    }

    async fn update_signing_keys(
        &self,
        mutation: Mutation<'_, Vec<SigningKeyRecord>>,
    ) -> StoreResult<Vec<SigningKeyRecord>> {
        retrying!(self, self.update_signing_keys_once(&mut *mutation))
    }

    async fn subscribe(&self) -> StoreResult<Option<mpsc::Receiver<Change>>> {
        // The listener has a connection of its own, outside the pool that requests use.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.connect.clone());
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
        Ok(Some(rx))
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
                    } else if let Some(change) = decode_change(payload)
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
    fn change_payloads_round_trip() {
        for change in [
            Change::Client("abc".into()),
            Change::ResourceServer {
                id: "0123456789abcdef01234567".into(),
                identifier: "https://api.example.com/ with space".into(),
            },
            Change::ClientGrant("cgr_1".into()),
            Change::SigningKeys,
            Change::Resync,
        ] {
            assert_eq!(decode_change(&encode_change(&change)), Some(change));
        }
        assert_eq!(decode_change("ping:1"), None);
        let long = Change::Client("x".repeat(MAX_PAYLOAD));
        assert_eq!(encode_change(&long), "resync");
    }
}

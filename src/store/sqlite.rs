//! The embedded SQLite store.
//!
//! Durability: WAL journal with `synchronous=NORMAL` plus group commit ([`WalSync`]): a
//! commit reaches the OS at once (a process crash loses nothing), and [`Store::durable`],
//! which every write awaits before it is acknowledged, fsyncs the log, one fsync for all the
//! commits made while the previous one ran. So an acknowledged write survives a process
//! crash or power loss, as with `synchronous=FULL`, at a fraction of the fsyncs.
//!
//! Statements run on the calling thread ([`super::inline`]): all writes through the one
//! write connection, which makes each read-modify-write transaction serial without
//! `SQLITE_BUSY` upgrades; reads through a pool of read-only connections. sqlx is used only
//! to apply the migrations when the store opens.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use super::inline::{InlineReader, InlineWriter, fk_violation, unique_violation};
use super::logs::LOG_COLUMNS;
use super::wal_sync::WalSync;
use super::{
    ASSOCIATION_CONFLICT, ASSOCIATION_QUOTA, Bootstrap, ClientDiff, ClientFilter, ClientRow,
    Conditions, Delivery, Entity, ExpiryNotice, GRANT_CONFLICT, GrantFilter, JtiRecord, LogRow,
    LogSearch, LogStreamRecord, Mutation, NewLog, ORGANIZATION_CONFLICT, OrganizationFilter,
    OrganizationRecord, Page, PageRequest, SigningKeyRecord, Snapshot, SqlDialect, Store,
    StoreError, StoreResult,
};
use crate::domain::client::ClientAggregate;
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::Credential;
use crate::domain::ids::is_resource_server_id;
use crate::domain::log_stream::LogStream;
use crate::domain::organization::{MAX_GRANTS_PER_ORGANIZATION, Organization};
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::TenantSettings;

/// Expired assertion ids deleted per transaction by [`Store::purge_jtis`].
const PURGE_CHUNK: i64 = 2_000;

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

fn encode<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

/// A stored JSON document.
fn decode_text<T: DeserializeOwned>(text: &str, column: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("corrupt {column}: {e}")))
}

fn limit_offset(page: PageRequest) -> (i64, i64, i64) {
    // (after_seq, limit, offset)
    match page {
        PageRequest::Offset { page, per_page } => (
            0,
            per_page as i64,
            (page.saturating_mul(per_page)).min(i64::MAX as u64) as i64,
        ),
        PageRequest::Checkpoint { after, take } => (after.unwrap_or(0), take as i64 + 1, 0),
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

/// `(seq, doc)` rows of `sql`, documents decoded.
fn docs<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    binds: &[Value],
) -> StoreResult<Vec<(i64, T)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(binds), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (seq, doc) = row?;
        Ok((seq, decode_text(&doc, "doc")?))
    })
    .collect()
}

/// The documents of `sql`'s `(seq, doc)` rows.
fn all_docs<T: DeserializeOwned>(conn: &Connection, sql: &str) -> StoreResult<Vec<T>> {
    Ok(docs(conn, sql, &[])?.into_iter().map(|(_, d)| d).collect())
}

/// A text column read in place.
fn text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> StoreResult<&'r str> {
    row.get_ref(column)?
        .as_str()
        .map_err(|e| StoreError::Internal(format!("column {column}: {e}")))
}

/// One page of `(seq, doc)` rows: `sql` ends with `seq > ? ORDER BY seq LIMIT ? OFFSET ?`.
fn page_of<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    binds: &[Value],
    page: PageRequest,
) -> StoreResult<Vec<(i64, T)>> {
    let (after, limit, offset) = limit_offset(page);
    let mut all = binds.to_vec();
    all.extend([after, limit, offset].map(Value::Integer));
    docs(conn, sql, &all)
}

/// The total for offset paging; none for checkpoint paging.
fn total(
    conn: &Connection,
    page: PageRequest,
    sql: &str,
    binds: &[Value],
) -> StoreResult<Option<u64>> {
    match page {
        PageRequest::Offset { .. } => {
            let n: i64 = conn
                .prepare_cached(sql)?
                .query_row(params_from_iter(binds), |r| r.get(0))?;
            Ok(Some(n.max(0) as u64))
        }
        PageRequest::Checkpoint { .. } => Ok(None),
    }
}

fn load_client(conn: &Connection, client_id: &str) -> StoreResult<Option<ClientAggregate>> {
    let row = conn
        .prepare_cached("SELECT doc, sealed_secret FROM clients WHERE client_id = ?1")?
        .query_row([client_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
        })
        .optional()?;
    let Some((doc, sealed_secret)) = row else {
        return Ok(None);
    };
    let credentials = docs(
        conn,
        "SELECT seq, doc FROM credentials WHERE client_id = ?1 ORDER BY seq",
        &[Value::Text(client_id.to_owned())],
    )?
    .into_iter()
    .map(|(_, credential)| credential)
    .collect();
    Ok(Some(ClientAggregate {
        client: decode_text(&doc, "doc")?,
        sealed_secret,
        credentials,
    }))
}

fn write_new_client(conn: &Connection, aggregate: &ClientAggregate) -> StoreResult<()> {
    let result = conn
        .prepare_cached("INSERT INTO clients (client_id, doc, sealed_secret) VALUES (?1, ?2, ?3)")?
        .execute(params![
            aggregate.client.client_id,
            encode(&aggregate.client)?,
            aggregate.sealed_secret.as_deref()
        ]);
    match result {
        Err(e) if unique_violation(&e) => {
            return Err(StoreError::Conflict {
                entity: Entity::Client,
                message: "A client with this client_id already exists".into(),
            });
        }
        other => {
            other?;
        }
    }
    for credential in &aggregate.credentials {
        insert_credential(conn, credential)?;
    }
    Ok(())
}

fn insert_credential(conn: &Connection, credential: &Credential) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO credentials (id, client_id, doc) VALUES (?1, ?2, ?3)")?
        .execute(params![
            credential.id,
            credential.client_id,
            encode(credential)?
        ])?;
    Ok(())
}

fn insert_resource_server(conn: &Connection, rs: &ResourceServer) -> StoreResult<()> {
    let result = conn
        .prepare_cached(
            "INSERT INTO resource_servers (id, identifier, doc, sealed_signing_secret) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            rs.id,
            rs.identifier,
            encode(rs)?,
            rs.sealed_signing_secret
        ]);
    match result {
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict {
            entity: Entity::ResourceServer,
            message: format!(
                "Resource server with identifier {} already exists.",
                rs.identifier
            ),
        }),
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

fn exists(conn: &Connection, sql: &str, key: &str) -> StoreResult<bool> {
    Ok(conn.prepare_cached(sql)?.exists([key])?)
}

fn insert_grant(conn: &Connection, grant: &ClientGrant) -> StoreResult<()> {
    // The grant's client and API must exist (reported before the constraints would).
    for (sql, key, entity) in [
        (
            "SELECT 1 FROM clients WHERE client_id = ?1",
            &grant.client_id,
            Entity::Client,
        ),
        (
            "SELECT 1 FROM resource_servers WHERE identifier = ?1",
            &grant.audience,
            Entity::ResourceServer,
        ),
    ] {
        if !exists(conn, sql, key)? {
            return Err(StoreError::NotFound(entity));
        }
    }
    let result = conn
        .prepare_cached(
            "INSERT INTO client_grants (id, client_id, audience, subject_type, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            grant.id,
            grant.client_id,
            grant.audience,
            grant.subject_type().as_str(),
            encode(grant)?
        ]);
    match result {
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict {
            entity: Entity::ClientGrant,
            message: GRANT_CONFLICT.into(),
        }),
        Err(e) if fk_violation(&e) => Err(StoreError::NotFound(Entity::Client)),
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

fn insert_signing_key(conn: &Connection, key: &SigningKeyRecord) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO signing_keys (kid, sealed_pkcs8, doc) VALUES (?1, ?2, ?3)")?
        .execute(params![key.kid, key.sealed_pkcs8, encode(key)?])?;
    Ok(())
}

fn load_signing_keys(conn: &Connection) -> StoreResult<Vec<SigningKeyRecord>> {
    let mut stmt =
        conn.prepare_cached("SELECT sealed_pkcs8, doc FROM signing_keys ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (sealed_pkcs8, doc) = row?;
        let mut key: SigningKeyRecord = decode_text(&doc, "doc")?;
        key.sealed_pkcs8 = sealed_pkcs8;
        Ok(key)
    })
    .collect()
}

/// The resource servers of `sql`'s `(seq, doc, sealed_signing_secret)` rows.
fn resource_servers(
    conn: &Connection,
    sql: &str,
    binds: &[Value],
) -> StoreResult<Vec<(i64, ResourceServer)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(binds), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<Vec<u8>>>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (seq, doc, sealed) = row?;
        let mut rs: ResourceServer = decode_text(&doc, "doc")?;
        rs.sealed_signing_secret = sealed;
        Ok((seq, rs))
    })
    .collect()
}

fn load_resource_server(
    conn: &Connection,
    key: &str,
) -> StoreResult<Option<(i64, ResourceServer)>> {
    // An identifier may itself look like an id; an id match wins.
    let sql = if is_resource_server_id(key) {
        "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE id = ?1 OR identifier = ?1 ORDER BY id = ?1 DESC LIMIT 1"
    } else {
        "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE identifier = ?1"
    };
    Ok(resource_servers(conn, sql, &[Value::Text(key.to_owned())])?.pop())
}

fn load_tenant_settings(conn: &Connection) -> StoreResult<TenantSettings> {
    let doc: Option<String> = conn
        .prepare_cached("SELECT doc FROM tenant_settings WHERE id = 1")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(TenantSettings::from_stored(doc.as_deref()))
}

fn setting(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Every organization with its associated grant ids (one ordered pass over each table).
fn load_organizations(conn: &Connection, id: Option<&str>) -> StoreResult<Vec<OrganizationRecord>> {
    let (org_sql, assoc_sql, binds): (&str, &str, Vec<Value>) = match id {
        Some(id) => (
            "SELECT seq, doc FROM organizations WHERE id = ?1",
            "SELECT organization_id, grant_id FROM organization_client_grants WHERE organization_id = ?1 ORDER BY seq",
            vec![Value::Text(id.to_owned())],
        ),
        None => (
            "SELECT seq, doc FROM organizations ORDER BY seq",
            "SELECT organization_id, grant_id FROM organization_client_grants ORDER BY seq",
            Vec::new(),
        ),
    };
    let orgs: Vec<(i64, Organization)> = docs(conn, org_sql, &binds)?;
    let mut by_org: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut stmt = conn.prepare_cached(assoc_sql)?;
    let rows = stmt.query_map(params_from_iter(&binds), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (org, grant) = row?;
        by_org.entry(org).or_default().push(grant);
    }
    Ok(orgs
        .into_iter()
        .map(|(_, organization)| OrganizationRecord {
            grant_ids: by_org.remove(&organization.id).unwrap_or_default(),
            organization,
        })
        .collect())
}

fn org_name_conflict() -> StoreError {
    StoreError::Conflict {
        entity: Entity::Organization,
        message: ORGANIZATION_CONFLICT.into(),
    }
}

/// SQLite's spelling of the list filters.
struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn placeholder(_: usize) -> String {
        "?".into()
    }
    fn doc_bool(path: &str, value: bool) -> String {
        format!("json_type(doc, '$.{path}') = '{value}'")
    }
    fn doc_text(path: &str) -> String {
        format!("json_extract(doc, '$.{path}')")
    }
}

/// A list filter's conditions with their values bound as SQLite text.
fn sqlite_conditions(c: Conditions) -> (String, Vec<Value>) {
    (c.sql, c.binds.into_iter().map(Value::Text).collect())
}

fn sql_value(value: super::logs::SqlValue) -> Value {
    match value {
        super::logs::SqlValue::Text(text) => Value::Text(text),
        super::logs::SqlValue::Int(n) => Value::Integer(n),
    }
}

/// `(seq, doc)` rows of a log query.
fn log_rows(conn: &Connection, sql: &str, binds: &[Value]) -> StoreResult<Vec<LogRow>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params_from_iter(binds), |r| {
        Ok(LogRow {
            seq: r.get(0)?,
            doc: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

const LOG_STREAM_COLUMNS: &str = "doc, sealed_authorization, cursor, failing_since_ms";

/// The log streams of `sql`'s `(doc, sealed_authorization, cursor, failing_since_ms)` rows.
fn log_stream_rows(
    conn: &Connection,
    sql: &str,
    binds: &[Value],
) -> StoreResult<Vec<LogStreamRecord>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(binds), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<Vec<u8>>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    rows.map(|row| {
        let (doc, sealed_authorization, cursor, failing_since_ms) = row?;
        Ok(LogStreamRecord {
            stream: decode_text(&doc, "doc")?,
            sealed_authorization,
            cursor,
            failing_since_ms,
        })
    })
    .collect()
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

    /// Inserts many clients (with their credentials) and grants in one transaction, for
    /// loading large data sets (the bench's scale scenario). The Management API's rules are
    /// the caller's business; the store's constraints still apply. Runs on the calling
    /// thread: for loaders, not for a serving node.
    pub async fn bulk_insert(
        &self,
        clients: &[ClientAggregate],
        grants: &[ClientGrant],
    ) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                for aggregate in clients {
                    write_new_client(tx, aggregate)?;
                }
                for grant in grants {
                    insert_grant(tx, grant)?;
                }
                Ok(())
            })
            .await?;
        Store::durable(self).await
    }
}

#[async_trait]
impl Store for SqliteStore {
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

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.reader.read(move |conn| setting(conn, &key)).await
    }

    async fn init_setting(&self, key: &str, value: &str) -> StoreResult<String> {
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                )?
                .execute([key, value])?;
                setting(tx, key)?.ok_or_else(|| StoreError::Internal("setting vanished".into()))
            })
            .await
    }

    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                tx.prepare_cached(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )?
                .execute([key, value])?;
                Ok(())
            })
            .await
    }

    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool> {
        self.writer
            .write(|tx| {
                if setting(tx, "bootstrapped")?.is_some() {
                    return Ok(false);
                }
                insert_resource_server(tx, &data.management_api)?;
                write_new_client(tx, &data.admin)?;
                insert_grant(tx, &data.admin_grant)?;
                for key in &data.signing_keys {
                    insert_signing_key(tx, key)?;
                }
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES ('bootstrapped', ?1)",
                    [crate::domain::time::Timestamp::now().to_string()],
                )?;
                Ok(true)
            })
            .await
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // Every row of the store, in one read transaction so the snapshot is consistent;
        // one row per client with its credentials as a JSON array spliced from the stored
        // documents (this store wrote them, so they are valid JSON; json_group_array(json())
        // would parse and print each one again, ~8 % of start-up at 100k clients). On the
        // calling thread (start-up, before the node serves): decoded on the blocking pool,
        // the aggregates came from another malloc arena and left ~80 MB more resident at
        // 100k clients.
        self.reader
            .read(|conn| {
                InlineReader::snapshot(conn, |conn| {
                    let mut stmt = conn.prepare(
                        "SELECT c.doc, c.sealed_secret,
                                '[' || coalesce((SELECT group_concat(cr.doc, ',' ORDER BY cr.seq)
                                   FROM credentials cr WHERE cr.client_id = c.client_id), '') || ']'
                           FROM clients c ORDER BY c.seq",
                    )?;
                    let mut rows = stmt.query([])?;
                    let mut clients = Vec::new();
                    while let Some(row) = rows.next()? {
                        clients.push(ClientAggregate {
                            client: decode_text(text(row, 0)?, "doc")?,
                            sealed_secret: row.get(1)?,
                            credentials: decode_text(text(row, 2)?, "credentials")?,
                        });
                    }
                    Ok(Snapshot {
                        clients,
                        resource_servers: resource_servers(
                            conn,
                            "SELECT seq, doc, sealed_signing_secret FROM resource_servers ORDER BY seq",
                            &[],
                        )?
                        .into_iter()
                        .map(|(_, rs)| rs)
                        .collect(),
                        client_grants: all_docs(
                            conn,
                            "SELECT seq, doc FROM client_grants ORDER BY seq",
                        )?,
                        signing_keys: load_signing_keys(conn)?,
                        organizations: load_organizations(conn, None)?,
                        tenant_settings: load_tenant_settings(conn)?,
                    })
                })
            })
            .await
    }

    async fn insert_client(&self, aggregate: &ClientAggregate) -> StoreResult<()> {
        self.writer
            .write(|tx| write_new_client(tx, aggregate))
            .await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientAggregate>> {
        let client_id = client_id.to_owned();
        self.reader
            .read(move |conn| InlineReader::snapshot(conn, |conn| load_client(conn, &client_id)))
            .await
    }

    async fn credential(
        &self,
        client_id: &str,
        credential_id: &str,
    ) -> StoreResult<Option<Credential>> {
        // The Management API's GET of one credential.
        let (client_id, credential_id) = (client_id.to_owned(), credential_id.to_owned());
        self.reader
            .read(move |conn| {
                let doc: Option<String> = conn
                    .prepare_cached("SELECT doc FROM credentials WHERE id = ?1 AND client_id = ?2")?
                    .query_row([&credential_id, &client_id], |row| row.get(0))
                    .optional()?;
                match doc {
                    Some(doc) => decode_text(&doc, "doc").map(Some),
                    None if exists(
                        conn,
                        "SELECT 1 FROM clients WHERE client_id = ?1",
                        &client_id,
                    )? =>
                    {
                        Ok(None)
                    }
                    None => Err(StoreError::NotFound(Entity::Client)),
                }
            })
            .await
    }

    async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientRow>> {
        let (conditions, binds) = sqlite_conditions(filter.conditions::<SqliteDialect>());
        self.reader
            .read(move |conn| {
                let (after, limit, offset) = limit_offset(page);
                let mut all = binds.clone();
                all.extend([after, limit, offset].map(Value::Integer));
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT seq, doc, sealed_secret FROM clients WHERE 1=1{conditions} AND seq > ? ORDER BY seq LIMIT ? OFFSET ?"
                ))?;
                let rows = stmt.query_map(params_from_iter(&all), |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })?;
                let items = rows
                    .map(|row| {
                        let (seq, doc, sealed_secret) = row?;
                        Ok((
                            seq,
                            ClientRow {
                                client: decode_text(&doc, "doc")?,
                                sealed_secret,
                            },
                        ))
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                let total = total(
                    conn,
                    page,
                    &format!("SELECT COUNT(*) FROM clients WHERE 1=1{conditions}"),
                    &binds,
                )?;
                Ok(finish_page(page, items, total))
            })
            .await
    }

    async fn update_client(
        &self,
        client_id: &str,
        mutation: Mutation<'_, ClientAggregate>,
    ) -> StoreResult<ClientAggregate> {
        self.writer
            .write(|tx| {
                let before =
                    load_client(tx, client_id)?.ok_or(StoreError::NotFound(Entity::Client))?;
                let mut after = before.clone();
                mutation(&mut after)?;
                let diff = ClientDiff::between(&before, &after)?;
                if diff.client_changed {
                    tx.prepare_cached(
                        "UPDATE clients SET doc = ?1, sealed_secret = ?2 WHERE client_id = ?3",
                    )?
                    .execute(params![
                        encode(&after.client)?,
                        after.sealed_secret.as_deref(),
                        client_id
                    ])?;
                }
                for id in &diff.deleted {
                    tx.prepare_cached("DELETE FROM credentials WHERE id = ?1")?
                        .execute([id])?;
                }
                for credential in &diff.updated {
                    tx.prepare_cached("UPDATE credentials SET doc = ?1 WHERE id = ?2")?
                        .execute([encode(*credential)?, credential.id.clone()])?;
                }
                for credential in &diff.inserted {
                    insert_credential(tx, credential)?;
                }
                Ok(after)
            })
            .await
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<Vec<String>> {
        self.writer
            .write(|tx| {
                let grants = tx
                    .prepare_cached("SELECT id FROM client_grants WHERE client_id = ?1")?
                    .query_map([client_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                let deleted = tx
                    .prepare_cached("DELETE FROM clients WHERE client_id = ?1")?
                    .execute([client_id])?;
                if deleted == 0 {
                    return Err(StoreError::NotFound(Entity::Client));
                }
                Ok(grants)
            })
            .await
    }

    async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
        self.writer.write(|tx| insert_resource_server(tx, rs)).await
    }

    async fn resource_server(&self, key: &str) -> StoreResult<Option<ResourceServer>> {
        let key = key.to_owned();
        self.reader
            .read(move |conn| Ok(load_resource_server(conn, &key)?.map(|(_, rs)| rs)))
            .await
    }

    async fn list_resource_servers(&self, page: PageRequest) -> StoreResult<Page<ResourceServer>> {
        self.reader
            .read(move |conn| {
                let (after, limit, offset) = limit_offset(page);
                let items = resource_servers(
                    conn,
                    "SELECT seq, doc, sealed_signing_secret FROM resource_servers WHERE seq > ? ORDER BY seq LIMIT ? OFFSET ?",
                    &[after, limit, offset].map(Value::Integer),
                )?;
                let total = total(conn, page, "SELECT COUNT(*) FROM resource_servers", &[])?;
                Ok(finish_page(page, items, total))
            })
            .await
    }

    async fn update_resource_server(
        &self,
        key: &str,
        mutation: Mutation<'_, ResourceServer>,
    ) -> StoreResult<ResourceServer> {
        self.writer
            .write(|tx| {
                let (seq, mut rs) = load_resource_server(tx, key)?
                    .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
                let identifier = rs.identifier.clone();
                mutation(&mut rs)?;
                if rs.identifier != identifier {
                    return Err(StoreError::Internal("identifier cannot change".into()));
                }
                tx.prepare_cached(
                    "UPDATE resource_servers SET doc = ?1, sealed_signing_secret = ?2 WHERE seq = ?3",
                )?
                .execute(params![encode(&rs)?, rs.sealed_signing_secret, seq])?;
                Ok(rs)
            })
            .await
    }

    async fn delete_resource_server(
        &self,
        key: &str,
        guard: Mutation<'_, ResourceServer>,
    ) -> StoreResult<(ResourceServer, Vec<String>)> {
        self.writer
            .write(|tx| {
                let (seq, mut rs) = load_resource_server(tx, key)?
                    .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
                guard(&mut rs)?;
                let grants = tx
                    .prepare_cached("SELECT id FROM client_grants WHERE audience = ?1")?
                    .query_map([&rs.identifier], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                tx.prepare_cached("DELETE FROM resource_servers WHERE seq = ?1")?
                    .execute([seq])?;
                Ok((rs, grants))
            })
            .await
    }

    async fn insert_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        self.writer.write(|tx| insert_grant(tx, grant)).await
    }

    async fn client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>> {
        let id = id.to_owned();
        self.reader
            .read(move |conn| {
                Ok(docs(
                    conn,
                    "SELECT seq, doc FROM client_grants WHERE id = ?1",
                    &[Value::Text(id.clone())],
                )?
                .pop()
                .map(|(_, grant)| grant))
            })
            .await
    }

    async fn list_client_grants(
        &self,
        filter: &GrantFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>> {
        let (conditions, binds) = sqlite_conditions(filter.conditions::<SqliteDialect>());
        self.reader
            .read(move |conn| {
                let items = page_of(
                    conn,
                    &format!(
                        "SELECT seq, doc FROM client_grants WHERE 1=1{conditions} AND seq > ? ORDER BY seq LIMIT ? OFFSET ?"
                    ),
                    &binds,
                    page,
                )?;
                let total = total(
                    conn,
                    page,
                    &format!("SELECT COUNT(*) FROM client_grants WHERE 1=1{conditions}"),
                    &binds,
                )?;
                Ok(finish_page(page, items, total))
            })
            .await
    }

    async fn update_client_grant(
        &self,
        id: &str,
        mutation: Mutation<'_, ClientGrant>,
    ) -> StoreResult<ClientGrant> {
        self.writer
            .write(|tx| {
                let (seq, mut grant) = docs::<ClientGrant>(
                    tx,
                    "SELECT seq, doc FROM client_grants WHERE id = ?1",
                    &[Value::Text(id.to_owned())],
                )?
                .pop()
                .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
                mutation(&mut grant)?;
                tx.prepare_cached("UPDATE client_grants SET doc = ?1 WHERE seq = ?2")?
                    .execute(params![encode(&grant)?, seq])?;
                Ok(grant)
            })
            .await
    }

    async fn delete_client_grant(&self, id: &str) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                let deleted = tx
                    .prepare_cached("DELETE FROM client_grants WHERE id = ?1")?
                    .execute([id])?;
                if deleted == 0 {
                    return Err(StoreError::NotFound(Entity::ClientGrant));
                }
                Ok(())
            })
            .await
    }

    async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                let result = tx
                    .prepare_cached(
                        "INSERT INTO organizations (id, name, doc) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![org.id, org.name, encode(org)?]);
                match result {
                    Err(e) if unique_violation(&e) => Err(org_name_conflict()),
                    other => {
                        other?;
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn organization(&self, id: &str) -> StoreResult<Option<OrganizationRecord>> {
        let id = id.to_owned();
        self.reader
            .read(move |conn| Ok(load_organizations(conn, Some(&id))?.pop()))
            .await
    }

    async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>> {
        let name = name.to_owned();
        self.reader
            .read(move |conn| {
                Ok(docs(
                    conn,
                    "SELECT seq, doc FROM organizations WHERE name = ?1",
                    &[Value::Text(name.clone())],
                )?
                .pop()
                .map(|(_, org)| org))
            })
            .await
    }

    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Organization>> {
        let (conditions, binds) = sqlite_conditions(filter.conditions::<SqliteDialect>());
        let order = filter.sort.map_or_else(
            || "seq".to_string(),
            |s| s.order_by(SqliteDialect::doc_text),
        );
        self.reader
            .read(move |conn| {
                let items = page_of(
                    conn,
                    &format!(
                        "SELECT seq, doc FROM organizations WHERE 1=1{conditions} AND seq > ? ORDER BY {order} LIMIT ? OFFSET ?"
                    ),
                    &binds,
                    page,
                )?;
                let total = total(
                    conn,
                    page,
                    &format!("SELECT COUNT(*) FROM organizations WHERE 1=1{conditions}"),
                    &binds,
                )?;
                Ok(finish_page(page, items, total))
            })
            .await
    }

    async fn update_organization(
        &self,
        id: &str,
        mutation: Mutation<'_, Organization>,
    ) -> StoreResult<Organization> {
        self.writer
            .write(|tx| {
                let (seq, mut org) = docs::<Organization>(
                    tx,
                    "SELECT seq, doc FROM organizations WHERE id = ?1",
                    &[Value::Text(id.to_owned())],
                )?
                .pop()
                .ok_or(StoreError::NotFound(Entity::Organization))?;
                mutation(&mut org)?;
                if org.id != id {
                    return Err(StoreError::Internal("id cannot change".into()));
                }
                let result = tx
                    .prepare_cached("UPDATE organizations SET name = ?1, doc = ?2 WHERE seq = ?3")?
                    .execute(params![org.name, encode(&org)?, seq]);
                match result {
                    Err(e) if unique_violation(&e) => Err(org_name_conflict()),
                    other => {
                        other?;
                        Ok(org)
                    }
                }
            })
            .await
    }

    async fn delete_organization(&self, id: &str) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                let deleted = tx
                    .prepare_cached("DELETE FROM organizations WHERE id = ?1")?
                    .execute([id])?;
                if deleted == 0 {
                    return Err(StoreError::NotFound(Entity::Organization));
                }
                Ok(())
            })
            .await
    }

    async fn associate_client_grant(
        &self,
        org_id: &str,
        grant_id: &str,
    ) -> StoreResult<ClientGrant> {
        self.writer
            .write(|tx| {
                if !exists(tx, "SELECT 1 FROM organizations WHERE id = ?1", org_id)? {
                    return Err(StoreError::NotFound(Entity::Organization));
                }
                let (_, grant) = docs::<ClientGrant>(
                    tx,
                    "SELECT seq, doc FROM client_grants WHERE id = ?1",
                    &[Value::Text(grant_id.to_owned())],
                )?
                .pop()
                .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
                if tx
                    .prepare_cached(
                        "SELECT 1 FROM organization_client_grants WHERE organization_id = ?1 AND grant_id = ?2",
                    )?
                    .exists([org_id, grant_id])?
                {
                    return Err(StoreError::Conflict {
                        entity: Entity::Organization,
                        message: ASSOCIATION_CONFLICT.into(),
                    });
                }
                let count: i64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM organization_client_grants WHERE organization_id = ?1",
                    )?
                    .query_row([org_id], |r| r.get(0))?;
                if count as usize >= MAX_GRANTS_PER_ORGANIZATION {
                    return Err(StoreError::Conflict {
                        entity: Entity::Organization,
                        message: ASSOCIATION_QUOTA.into(),
                    });
                }
                tx.prepare_cached(
                    "INSERT INTO organization_client_grants (organization_id, grant_id) VALUES (?1, ?2)",
                )?
                .execute([org_id, grant_id])?;
                Ok(grant)
            })
            .await
    }

    async fn dissociate_client_grant(&self, org_id: &str, grant_id: &str) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                if !exists(tx, "SELECT 1 FROM organizations WHERE id = ?1", org_id)? {
                    return Err(StoreError::NotFound(Entity::Organization));
                }
                tx.prepare_cached(
                    "DELETE FROM organization_client_grants WHERE organization_id = ?1 AND grant_id = ?2",
                )?
                .execute([org_id, grant_id])?;
                Ok(())
            })
            .await
    }

    async fn record_jtis(&self, records: &[JtiRecord], now: i64) -> StoreResult<Vec<bool>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // In order, one prepared statement per record: a new id is inserted, or takes over
        // an expired record, and either comes back from RETURNING. An unexpired record
        // stays (the upsert's WHERE fails) and nothing is returned: a replay — including a
        // duplicate later in the same batch, which conflicts with the copy inserted just
        // before it.
        self.writer
            .write(|tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO assertion_replay (client_id, jti, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE assertion_replay.expires_at <= ?4
                     RETURNING 1",
                )?;
                records
                    .iter()
                    .map(|r| Ok(stmt.exists(params![r.client_id, r.jti, r.expires_at, now])?))
                    .collect()
            })
            .await
    }

    fn replay_is_local(&self) -> bool {
        true
    }

    async fn live_jtis(
        &self,
        now: i64,
        after: (&str, &str),
        limit: u32,
    ) -> StoreResult<Vec<JtiRecord>> {
        let (client_id, jti) = (after.0.to_owned(), after.1.to_owned());
        self.reader
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT client_id, jti, expires_at FROM assertion_replay
                     WHERE expires_at > ?1 AND (client_id, jti) > (?2, ?3)
                     ORDER BY client_id, jti LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![now, client_id, jti, limit], |r| {
                    Ok(JtiRecord {
                        client_id: r.get(0)?,
                        jti: r.get(1)?,
                        expires_at: r.get(2)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn purge_jtis(&self, now: i64) -> StoreResult<u64> {
        // In chunks, each its own transaction: a minute of records at full load is hundreds
        // of thousands of rows, and the token path's commits must not wait behind one long
        // delete holding the write lock.
        let mut total = 0;
        loop {
            let deleted = self
                .writer
                .write(|tx| {
                    let deleted = tx
                        .prepare_cached(
                            "DELETE FROM assertion_replay WHERE (client_id, jti) IN (
                                 SELECT client_id, jti FROM assertion_replay
                                 WHERE expires_at <= ?1 LIMIT ?2)",
                        )?
                        .execute(params![now, PURGE_CHUNK])?;
                    Ok(deleted)
                })
                .await?;
            total += deleted as u64;
            if (deleted as i64) < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    async fn claim_expiry_notice(&self, notice: &ExpiryNotice) -> StoreResult<bool> {
        let n = notice.clone();
        self.writer
            .write(move |tx| {
                let claimed = tx
                    .prepare_cached(
                        "INSERT INTO credential_expiry_notices
                             (credential_id, threshold_s, expires_at_ms, sent_at_ms)
                         SELECT ?1, ?2, ?3, ?4
                         WHERE EXISTS (SELECT 1 FROM credentials WHERE id = ?1)
                         ON CONFLICT (credential_id, threshold_s) DO UPDATE
                         SET expires_at_ms = excluded.expires_at_ms, sent_at_ms = excluded.sent_at_ms
                         WHERE credential_expiry_notices.expires_at_ms < excluded.expires_at_ms",
                    )?
                    .execute(params![
                        n.credential_id,
                        n.threshold_s,
                        n.expires_at_ms,
                        n.sent_at_ms
                    ])?;
                Ok(claimed == 1)
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

    async fn log(&self, seq: i64) -> StoreResult<Option<LogRow>> {
        self.reader
            .read(move |conn| {
                Ok(log_rows(
                    conn,
                    "SELECT seq, doc FROM logs WHERE seq = ?1",
                    &[Value::Integer(seq)],
                )?
                .pop())
            })
            .await
    }

    async fn logs_after(&self, after: i64, take: u64) -> StoreResult<Vec<LogRow>> {
        let take = i64::try_from(take).unwrap_or(i64::MAX);
        self.reader
            .read(move |conn| {
                log_rows(
                    conn,
                    "SELECT seq, doc FROM logs WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    &[Value::Integer(after), Value::Integer(take)],
                )
            })
            .await
    }

    async fn search_logs(&self, search: &LogSearch) -> StoreResult<(Vec<LogRow>, Option<u64>)> {
        let mut binds = Vec::new();
        let (filter, order) = super::logs::search_sql::<SqliteDialect>(search, &mut binds);
        let binds: Vec<Value> = binds.into_iter().map(sql_value).collect();
        let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(search.offset).unwrap_or(i64::MAX);
        let totals = search.totals;
        self.reader
            .read(move |conn| {
                let mut all = binds.clone();
                all.extend([Value::Integer(limit), Value::Integer(offset)]);
                let rows = log_rows(
                    conn,
                    &format!("SELECT seq, doc FROM logs{filter}{order} LIMIT ? OFFSET ?"),
                    &all,
                )?;
                let total = if totals {
                    let n: i64 = conn
                        .prepare(&format!("SELECT COUNT(*) FROM logs{filter}"))?
                        .query_row(params_from_iter(&binds), |r| r.get(0))?;
                    Some(n.max(0) as u64)
                } else {
                    None
                };
                Ok((rows, total))
            })
            .await
    }

    async fn purge_logs(&self, before_ms: i64, chunk: u64) -> StoreResult<u64> {
        let chunk = i64::try_from(chunk).unwrap_or(i64::MAX);
        self.writer
            .write(|tx| {
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM logs WHERE seq IN (
                             SELECT seq FROM logs WHERE date_ms < ?1 ORDER BY seq LIMIT ?2)",
                    )?
                    .execute(params![before_ms, chunk])?;
                Ok(deleted as u64)
            })
            .await
    }

    async fn insert_log_stream(
        &self,
        stream: &LogStream,
        sealed_authorization: Option<&[u8]>,
        start_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                let cursor: i64 = match start_ms {
                    None => tx
                        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM logs")?
                        .query_row([], |r| r.get(0))?,
                    Some(start) => tx
                        .prepare_cached(
                            "SELECT COALESCE((SELECT MAX(seq) FROM logs WHERE date_ms < ?1), 0)",
                        )?
                        .query_row([start], |r| r.get(0))?,
                };
                tx.prepare_cached(
                    "INSERT INTO log_streams (id, doc, sealed_authorization, cursor) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![stream.id, encode(stream)?, sealed_authorization, cursor])?;
                Ok(())
            })
            .await
    }

    async fn log_stream(&self, id: &str) -> StoreResult<Option<LogStreamRecord>> {
        let id = id.to_owned();
        self.reader
            .read(move |conn| {
                Ok(log_stream_rows(
                    conn,
                    &format!("SELECT {LOG_STREAM_COLUMNS} FROM log_streams WHERE id = ?1"),
                    &[Value::Text(id.clone())],
                )?
                .pop())
            })
            .await
    }

    async fn log_streams(&self) -> StoreResult<Vec<LogStreamRecord>> {
        self.reader
            .read(move |conn| {
                log_stream_rows(
                    conn,
                    &format!("SELECT {LOG_STREAM_COLUMNS} FROM log_streams ORDER BY seq"),
                    &[],
                )
            })
            .await
    }

    async fn update_log_stream(
        &self,
        id: &str,
        mutation: Mutation<'_, LogStreamRecord>,
    ) -> StoreResult<LogStreamRecord> {
        self.writer
            .write(|tx| {
                let mut record = log_stream_rows(
                    tx,
                    &format!("SELECT {LOG_STREAM_COLUMNS} FROM log_streams WHERE id = ?1"),
                    &[Value::Text(id.to_owned())],
                )?
                .pop()
                .ok_or(StoreError::NotFound(Entity::LogStream))?;
                mutation(&mut record)?;
                if record.stream.id != id {
                    return Err(StoreError::Internal("id cannot change".into()));
                }
                tx.prepare_cached(
                    "UPDATE log_streams SET doc = ?1, sealed_authorization = ?2, failing_since_ms = ?3 WHERE id = ?4",
                )?
                .execute(params![
                    encode(&record.stream)?,
                    record.sealed_authorization,
                    record.failing_since_ms,
                    id
                ])?;
                Ok(record)
            })
            .await
    }

    async fn delete_log_stream(&self, id: &str) -> StoreResult<()> {
        self.writer
            .write(|tx| {
                let deleted = tx
                    .prepare_cached("DELETE FROM log_streams WHERE id = ?1")?
                    .execute([id])?;
                if deleted == 0 {
                    return Err(StoreError::NotFound(Entity::LogStream));
                }
                Ok(())
            })
            .await
    }

    async fn lease_log_stream(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<LogStreamRecord>> {
        self.writer
            .write(|tx| {
                let taken = tx
                    .prepare_cached(
                        "UPDATE log_streams SET lease_owner = ?1, lease_until_ms = ?2
                         WHERE id = ?3 AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_until_ms < ?4)",
                    )?
                    .execute(params![owner, until_ms, id, now_ms])?;
                if taken == 0 {
                    return Ok(None);
                }
                Ok(log_stream_rows(
                    tx,
                    &format!("SELECT {LOG_STREAM_COLUMNS} FROM log_streams WHERE id = ?1"),
                    &[Value::Text(id.to_owned())],
                )?
                .pop())
            })
            .await
    }

    async fn record_delivery(&self, id: &str, owner: &str, outcome: Delivery) -> StoreResult<bool> {
        self.writer
            .write(|tx| {
                let changed = match outcome {
                    Delivery::Delivered(cursor) => tx
                        .prepare_cached(
                            "UPDATE log_streams SET cursor = MAX(cursor, ?1), failing_since_ms = NULL
                             WHERE id = ?2 AND lease_owner = ?3",
                        )?
                        .execute(params![cursor, id, owner])?,
                    Delivery::Failed(now) => tx
                        .prepare_cached(
                            "UPDATE log_streams SET failing_since_ms = COALESCE(failing_since_ms, ?1)
                             WHERE id = ?2 AND lease_owner = ?3",
                        )?
                        .execute(params![now, id, owner])?,
                    Delivery::Release => tx
                        .prepare_cached(
                            "UPDATE log_streams SET lease_owner = NULL, lease_until_ms = 0
                             WHERE id = ?1 AND lease_owner = ?2",
                        )?
                        .execute(params![id, owner])?,
                };
                Ok(changed > 0)
            })
            .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.reader.read(load_signing_keys).await
    }

    async fn tenant_settings(&self) -> StoreResult<TenantSettings> {
        self.reader.read(load_tenant_settings).await
    }

    async fn update_tenant_settings(
        &self,
        mutation: Mutation<'_, TenantSettings>,
    ) -> StoreResult<TenantSettings> {
        self.writer
            .write(|tx| {
                let mut settings = load_tenant_settings(tx)?;
                mutation(&mut settings)?;
                tx.prepare_cached(
                    "INSERT INTO tenant_settings (id, doc) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                )?
                .execute([settings.to_stored()])?;
                Ok(settings)
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

    async fn purge_token_quota_usage(&self, before: i64) -> StoreResult<u64> {
        self.writer
            .write(|tx| {
                Ok(tx
                    .prepare_cached("DELETE FROM token_quota_usage WHERE window_start < ?1")?
                    .execute([before])? as u64)
            })
            .await
    }

    async fn update_signing_keys(
        &self,
        mutation: Mutation<'_, Vec<SigningKeyRecord>>,
    ) -> StoreResult<Vec<SigningKeyRecord>> {
        self.writer
            .write(|tx| {
                let before = load_signing_keys(tx)?;
                let mut after = before.clone();
                mutation(&mut after)?;
                if before
                    .iter()
                    .any(|old| !after.iter().any(|k| k.kid == old.kid))
                {
                    return Err(StoreError::Internal(
                        "signing keys are never deleted".into(),
                    ));
                }
                for key in &after {
                    match before.iter().find(|k| k.kid == key.kid) {
                        None => insert_signing_key(tx, key)?,
                        Some(old) if old != key => {
                            tx.prepare_cached("UPDATE signing_keys SET doc = ?1 WHERE kid = ?2")?
                                .execute([encode(key)?, key.kid.clone()])?;
                        }
                        Some(_) => {}
                    }
                }
                Ok(after)
            })
            .await
    }
}

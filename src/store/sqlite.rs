//! The embedded SQLite store.
//!
//! Durability: WAL journal with `synchronous=NORMAL` plus group commit ([`WalSync`]): a
//! commit reaches the OS at once (a process crash loses nothing), and [`Store::durable`],
//! which every write awaits before it is acknowledged, fsyncs the log, one fsync for all the
//! commits made while the previous one ran. So an acknowledged write survives a process
//! crash or power loss, as with `synchronous=FULL`, at a fraction of the fsyncs.
//! All writes go through one connection (SQLite has one writer anyway), which makes each
//! read-modify-write transaction serial without `SQLITE_BUSY` upgrades; reads use a pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::inline_reader::InlineReader;
use super::wal_sync::WalSync;
use super::{
    Bootstrap, ClientDiff, ClientRow, Entity, GrantFilter, JtiRecord, Mutation, Page, PageRequest,
    SigningKeyRecord, Snapshot, Store, StoreError, StoreResult,
};
use crate::domain::client::{Client, ClientAggregate};
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::Credential;
use crate::domain::ids::is_resource_server_id;
use crate::domain::resource_server::ResourceServer;

/// SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    wal: Arc<WalSync>,
    inline: Arc<InlineReader>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn encode<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> StoreResult<T> {
    let text: String = row.try_get(column).map_err(map_err)?;
    decode_text(&text, column)
}

/// A stored JSON document, whichever connection read it.
fn decode_text<T: DeserializeOwned>(text: &str, column: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("corrupt {column}: {e}")))
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
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

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad database url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Not FULL: `durable` fsyncs the log for a whole batch of commits (module docs).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename();
        if file.as_os_str().is_empty()
            || file == Path::new(":memory:")
            || url.contains("mode=memory")
        {
            // Each of the store's connections would get a database of its own.
            return Err(StoreError::Internal(
                "the SQLite store needs a database file, not an in-memory database".into(),
            ));
        }
        let wal = Arc::new(WalSync::new(file));
        let inline = InlineReader::new(file);
        // No ping before handing out a connection: an embedded database does not drop
        // connections, and the ping is one more round trip to the connection's thread on
        // every acquire (every token's replay record, every Management API read).
        // The writer stays open for the store's life, so the log file stays the same.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        // One reader per core: each sqlx connection is a thread, and more threads than
        // cores only add context switches and futex wake-ups to every read.
        let readers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 16) as u32;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self {
            writer,
            reader,
            wal,
            inline,
        })
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer.begin().await.map_err(map_err)
    }

    async fn load_client(
        tx: &mut sqlx::SqliteConnection,
        client_id: &str,
    ) -> StoreResult<Option<ClientAggregate>> {
        let Some(row) = sqlx::query("SELECT doc, sealed_secret FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let client: Client = decode(&row, "doc")?;
        let sealed_secret: Option<Vec<u8>> = row.try_get("sealed_secret").map_err(map_err)?;
        let rows = sqlx::query("SELECT doc FROM credentials WHERE client_id = ? ORDER BY seq")
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
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
        tx: &mut sqlx::SqliteConnection,
        aggregate: &ClientAggregate,
    ) -> StoreResult<()> {
        let result =
            sqlx::query("INSERT INTO clients (client_id, doc, sealed_secret) VALUES (?, ?, ?)")
                .bind(&aggregate.client.client_id)
                .bind(encode(&aggregate.client)?)
                .bind(aggregate.sealed_secret.as_deref())
                .execute(&mut *tx)
                .await;
        match result {
            Err(e) if unique_violation(&e) => {
                return Err(StoreError::Conflict {
                    entity: Entity::Client,
                    message: "A client with this client_id already exists".into(),
                });
            }
            other => {
                other.map_err(map_err)?;
            }
        }
        for credential in &aggregate.credentials {
            Self::insert_credential(tx, credential).await?;
        }
        Ok(())
    }

    async fn insert_credential(
        tx: &mut sqlx::SqliteConnection,
        credential: &Credential,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO credentials (id, client_id, doc) VALUES (?, ?, ?)")
            .bind(&credential.id)
            .bind(&credential.client_id)
            .bind(encode(credential)?)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_resource_server_tx(
        tx: &mut sqlx::SqliteConnection,
        rs: &ResourceServer,
    ) -> StoreResult<()> {
        let result =
            sqlx::query("INSERT INTO resource_servers (id, identifier, doc) VALUES (?, ?, ?)")
                .bind(&rs.id)
                .bind(&rs.identifier)
                .bind(encode(rs)?)
                .execute(&mut *tx)
                .await;
        match result {
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict {
                entity: Entity::ResourceServer,
                message: format!(
                    "Resource server with identifier {} already exists.",
                    rs.identifier
                ),
            }),
            other => other.map(|_| ()).map_err(map_err),
        }
    }

    async fn insert_grant_tx(
        tx: &mut sqlx::SqliteConnection,
        grant: &ClientGrant,
    ) -> StoreResult<()> {
        let client_exists = sqlx::query("SELECT 1 FROM clients WHERE client_id = ?")
            .bind(&grant.client_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .is_some();
        if !client_exists {
            return Err(StoreError::NotFound(Entity::Client));
        }
        let rs_exists = sqlx::query("SELECT 1 FROM resource_servers WHERE identifier = ?")
            .bind(&grant.audience)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .is_some();
        if !rs_exists {
            return Err(StoreError::NotFound(Entity::ResourceServer));
        }
        let result = sqlx::query(
            "INSERT INTO client_grants (id, client_id, audience, doc) VALUES (?, ?, ?, ?)",
        )
        .bind(&grant.id)
        .bind(&grant.client_id)
        .bind(&grant.audience)
        .bind(encode(grant)?)
        .execute(&mut *tx)
        .await;
        match result {
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict {
                entity: Entity::ClientGrant,
                message: "A client grant for this client and audience already exists".into(),
            }),
            Err(e) if fk_violation(&e) => Err(StoreError::NotFound(Entity::Client)),
            other => other.map(|_| ()).map_err(map_err),
        }
    }

    async fn insert_signing_key_tx(
        tx: &mut sqlx::SqliteConnection,
        key: &SigningKeyRecord,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO signing_keys (kid, sealed_pkcs8, doc) VALUES (?, ?, ?)")
            .bind(&key.kid)
            .bind(&key.sealed_pkcs8)
            .bind(encode(key)?)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn load_signing_keys(
        conn: &mut sqlx::SqliteConnection,
    ) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT sealed_pkcs8, doc FROM signing_keys ORDER BY seq")
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let mut key: SigningKeyRecord = decode(row, "doc")?;
                key.sealed_pkcs8 = row.try_get("sealed_pkcs8").map_err(map_err)?;
                Ok(key)
            })
            .collect()
    }

    async fn load_resource_server(
        conn: &mut sqlx::SqliteConnection,
        key: &str,
    ) -> StoreResult<Option<(i64, ResourceServer)>> {
        // An identifier may itself look like an id; an id match wins.
        let query = if is_resource_server_id(key) {
            "SELECT seq, doc FROM resource_servers WHERE id = ?1 OR identifier = ?1 ORDER BY id = ?1 DESC LIMIT 1"
        } else {
            "SELECT seq, doc FROM resource_servers WHERE identifier = ?1"
        };
        let row = sqlx::query(query)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        row.map(|r| Ok((r.try_get("seq").map_err(map_err)?, decode(&r, "doc")?)))
            .transpose()
    }

    async fn fetch_docs<T: DeserializeOwned>(
        &self,
        sql: &str,
        binds: &[&str],
        page: PageRequest,
    ) -> StoreResult<Vec<(i64, T)>> {
        let (after, limit, offset) = limit_offset(page);
        // Only fixed SQL text built in this module reaches here; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q
            .bind(after)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq").map_err(map_err)?, decode(r, "doc")?)))
            .collect()
    }

    async fn count(&self, sql: &str, binds: &[&str]) -> StoreResult<u64> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for b in binds {
            q = q.bind(*b);
        }
        let row = q.fetch_one(&self.reader).await.map_err(map_err)?;
        let n: i64 = row.try_get(0).map_err(map_err)?;
        Ok(n.max(0) as u64)
    }
}

impl SqliteStore {
    /// Inserts many clients (with their credentials) and grants in one transaction, for
    /// loading large data sets (the bench's scale scenario). The Management API's rules are
    /// the caller's business; the store's constraints still apply.
    pub async fn bulk_insert(
        &self,
        clients: &[ClientAggregate],
        grants: &[ClientGrant],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for aggregate in clients {
            Self::write_new_client(&mut tx, aggregate).await?;
        }
        for grant in grants {
            Self::insert_grant_tx(&mut tx, grant).await?;
        }
        tx.commit().await.map_err(map_err)?;
        self.wal.durable().await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn durable(&self) -> StoreResult<()> {
        self.wal.durable().await
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        row.map(|r| r.try_get("value").map_err(map_err)).transpose()
    }

    async fn init_setting(&self, key: &str, value: &str) -> StoreResult<String> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let stored: String = row.try_get("value").map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("SELECT 1 FROM settings WHERE key = 'bootstrapped'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
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
        sqlx::query("INSERT INTO settings (key, value) VALUES ('bootstrapped', ?)")
            .bind(crate::domain::time::Timestamp::now().to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // One read transaction so the snapshot is consistent.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        // One row per client with its credentials as a JSON array, decoded as it streams:
        // no buffer of every row's text beside the decoded aggregates, and a third of the
        // rows (each row is a message from the connection's thread).
        let mut clients = Vec::new();
        {
            let mut rows = sqlx::query(
                "SELECT c.doc, c.sealed_secret,
                        (SELECT json_group_array(json(cr.doc) ORDER BY cr.seq)
                           FROM credentials cr WHERE cr.client_id = c.client_id) AS credentials
                   FROM clients c ORDER BY c.seq",
            )
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(map_err)? {
                clients.push(ClientAggregate {
                    client: decode(&row, "doc")?,
                    sealed_secret: row.try_get("sealed_secret").map_err(map_err)?,
                    credentials: decode(&row, "credentials")?,
                });
            }
        }
        let resource_servers = sqlx::query("SELECT doc FROM resource_servers ORDER BY seq")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| decode(r, "doc"))
            .collect::<StoreResult<Vec<_>>>()?;
        let client_grants = sqlx::query("SELECT doc FROM client_grants ORDER BY seq")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| decode(r, "doc"))
            .collect::<StoreResult<Vec<_>>>()?;
        let signing_keys = Self::load_signing_keys(&mut tx).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Snapshot {
            clients,
            resource_servers,
            client_grants,
            signing_keys,
        })
    }

    async fn insert_client(&self, aggregate: &ClientAggregate) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::write_new_client(&mut tx, aggregate).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientAggregate>> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        Self::load_client(&mut conn, client_id).await
    }

    async fn credential(
        &self,
        client_id: &str,
        credential_id: &str,
    ) -> StoreResult<Option<Credential>> {
        // The Management API's GET of one credential: on the calling thread (InlineReader).
        let (client_id, credential_id) = (client_id.to_owned(), credential_id.to_owned());
        let found = self
            .inline
            .read(move |conn| {
                use rusqlite::OptionalExtension as _;
                let doc: Option<String> = conn
                    .prepare_cached("SELECT doc FROM credentials WHERE id = ?1 AND client_id = ?2")?
                    .query_row([&credential_id, &client_id], |row| row.get(0))
                    .optional()?;
                match doc {
                    Some(doc) => Ok(Some(Some(doc))),
                    None => {
                        let client = conn
                            .prepare_cached("SELECT 1 FROM clients WHERE client_id = ?1")?
                            .exists([&client_id])?;
                        Ok(client.then_some(None))
                    }
                }
            })
            .await?;
        match found {
            Some(Some(doc)) => decode_text(&doc, "doc").map(Some),
            Some(None) => Ok(None),
            None => Err(StoreError::NotFound(Entity::Client)),
        }
    }

    async fn list_clients(&self, page: PageRequest) -> StoreResult<Page<ClientRow>> {
        let (after, limit, offset) = limit_offset(page);
        let rows = sqlx::query(
            "SELECT seq, doc, sealed_secret FROM clients WHERE seq > ? ORDER BY seq LIMIT ? OFFSET ?",
        )
        .bind(after)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("seq").map_err(map_err)?,
                    ClientRow {
                        client: decode(r, "doc")?,
                        sealed_secret: r.try_get("sealed_secret").map_err(map_err)?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let total = match page {
            PageRequest::Offset { .. } => {
                Some(self.count("SELECT COUNT(*) FROM clients", &[]).await?)
            }
            PageRequest::Checkpoint { .. } => None,
        };
        Ok(finish_page(page, items, total))
    }

    async fn update_client(
        &self,
        client_id: &str,
        mutation: Mutation<'_, ClientAggregate>,
    ) -> StoreResult<ClientAggregate> {
        let mut tx = self.begin().await?;
        let before = Self::load_client(&mut tx, client_id)
            .await?
            .ok_or(StoreError::NotFound(Entity::Client))?;
        let mut after = before.clone();
        mutation(&mut after)?;
        let diff = ClientDiff::between(&before, &after)?;
        if diff.client_changed {
            sqlx::query("UPDATE clients SET doc = ?, sealed_secret = ? WHERE client_id = ?")
                .bind(encode(&after.client)?)
                .bind(after.sealed_secret.as_deref())
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for id in &diff.deleted {
            sqlx::query("DELETE FROM credentials WHERE id = ?")
                .bind(*id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for credential in &diff.updated {
            sqlx::query("UPDATE credentials SET doc = ? WHERE id = ?")
                .bind(encode(*credential)?)
                .bind(&credential.id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        for credential in &diff.inserted {
            Self::insert_credential(&mut tx, credential).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(after)
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        let grants: Vec<String> = sqlx::query("SELECT id FROM client_grants WHERE client_id = ?")
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.try_get("id").map_err(map_err))
            .collect::<StoreResult<_>>()?;
        let deleted = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(Entity::Client));
        }
        tx.commit().await.map_err(map_err)?;
        Ok(grants)
    }

    async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::insert_resource_server_tx(&mut tx, rs).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn resource_server(&self, key: &str) -> StoreResult<Option<ResourceServer>> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        Ok(Self::load_resource_server(&mut conn, key)
            .await?
            .map(|(_, rs)| rs))
    }

    async fn list_resource_servers(&self, page: PageRequest) -> StoreResult<Page<ResourceServer>> {
        let items = self
            .fetch_docs(
                "SELECT seq, doc FROM resource_servers WHERE seq > ? ORDER BY seq LIMIT ? OFFSET ?",
                &[],
                page,
            )
            .await?;
        let total = match page {
            PageRequest::Offset { .. } => Some(
                self.count("SELECT COUNT(*) FROM resource_servers", &[])
                    .await?,
            ),
            PageRequest::Checkpoint { .. } => None,
        };
        Ok(finish_page(page, items, total))
    }

    async fn update_resource_server(
        &self,
        key: &str,
        mutation: Mutation<'_, ResourceServer>,
    ) -> StoreResult<ResourceServer> {
        let mut tx = self.begin().await?;
        let (seq, mut rs) = Self::load_resource_server(&mut tx, key)
            .await?
            .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
        let identifier = rs.identifier.clone();
        mutation(&mut rs)?;
        if rs.identifier != identifier {
            return Err(StoreError::Internal("identifier cannot change".into()));
        }
        sqlx::query("UPDATE resource_servers SET doc = ? WHERE seq = ?")
            .bind(encode(&rs)?)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(rs)
    }

    async fn delete_resource_server(
        &self,
        key: &str,
        guard: Mutation<'_, ResourceServer>,
    ) -> StoreResult<(ResourceServer, Vec<String>)> {
        let mut tx = self.begin().await?;
        let (seq, mut rs) = Self::load_resource_server(&mut tx, key)
            .await?
            .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
        guard(&mut rs)?;
        let grants: Vec<String> = sqlx::query("SELECT id FROM client_grants WHERE audience = ?")
            .bind(&rs.identifier)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.try_get("id").map_err(map_err))
            .collect::<StoreResult<_>>()?;
        sqlx::query("DELETE FROM resource_servers WHERE seq = ?")
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok((rs, grants))
    }

    async fn insert_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::insert_grant_tx(&mut tx, grant).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>> {
        let row = sqlx::query("SELECT doc FROM client_grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| decode(&r, "doc")).transpose()
    }

    async fn list_client_grants(
        &self,
        filter: &GrantFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>> {
        let mut conditions = String::new();
        let mut binds: Vec<&str> = Vec::new();
        if let Some(a) = &filter.audience {
            conditions.push_str(" AND audience = ?");
            binds.push(a);
        }
        if let Some(c) = &filter.client_id {
            conditions.push_str(" AND client_id = ?");
            binds.push(c);
        }
        let sql = format!(
            "SELECT seq, doc FROM client_grants WHERE 1=1{conditions} AND seq > ? ORDER BY seq LIMIT ? OFFSET ?"
        );
        let items = self.fetch_docs(&sql, &binds, page).await?;
        let total = match page {
            PageRequest::Offset { .. } => Some(
                self.count(
                    &format!("SELECT COUNT(*) FROM client_grants WHERE 1=1{conditions}"),
                    &binds,
                )
                .await?,
            ),
            PageRequest::Checkpoint { .. } => None,
        };
        Ok(finish_page(page, items, total))
    }

    async fn update_client_grant(
        &self,
        id: &str,
        mutation: Mutation<'_, ClientGrant>,
    ) -> StoreResult<ClientGrant> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT doc FROM client_grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
        let mut grant: ClientGrant = decode(&row, "doc")?;
        mutation(&mut grant)?;
        sqlx::query("UPDATE client_grants SET doc = ? WHERE id = ?")
            .bind(encode(&grant)?)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(grant)
    }

    async fn delete_client_grant(&self, id: &str) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM client_grants WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(Entity::ClientGrant));
        }
        Ok(())
    }

    async fn record_jtis(&self, records: &[JtiRecord], now: i64) -> StoreResult<Vec<bool>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // The whole batch in one statement (one round trip to the database thread, one
        // prepared statement whatever the batch size): rows come from a JSON array, in
        // order. A new id is inserted, or takes over an expired record; both come back from
        // RETURNING. An unexpired record stays (the upsert's WHERE fails), so it is a replay
        // — including a duplicate later in the same batch, which conflicts with the copy
        // inserted just before it.
        let rows: Vec<(&str, &str, i64)> = records
            .iter()
            .map(|r| (r.client_id.as_str(), r.jti.as_str(), r.expires_at))
            .collect();
        let mut tx = self.begin().await?;
        let returned = sqlx::query(
            "INSERT INTO assertion_replay (client_id, jti, expires_at)
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
             WHERE assertion_replay.expires_at <= ?
             RETURNING client_id, jti",
        )
        .bind(encode(&rows)?)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let mut fresh_ids = std::collections::HashSet::with_capacity(returned.len());
        for row in &returned {
            let client_id: String = row.try_get("client_id").map_err(map_err)?;
            let jti: String = row.try_get("jti").map_err(map_err)?;
            fresh_ids.insert((client_id, jti));
        }
        // Only the first of duplicates in the batch is fresh.
        Ok(records
            .iter()
            .map(|r| fresh_ids.remove(&(r.client_id.clone(), r.jti.clone())))
            .collect())
    }

    async fn purge_jtis(&self, now: i64) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM assertion_replay WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(deleted)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        Self::load_signing_keys(&mut conn).await
    }

    async fn update_signing_keys(
        &self,
        mutation: Mutation<'_, Vec<SigningKeyRecord>>,
    ) -> StoreResult<Vec<SigningKeyRecord>> {
        let mut tx = self.begin().await?;
        let before = Self::load_signing_keys(&mut tx).await?;
        let mut after = before.clone();
        mutation(&mut after)?;
        for key in &after {
            match before.iter().find(|k| k.kid == key.kid) {
                None => Self::insert_signing_key_tx(&mut tx, key).await?,
                Some(old) if old != key => {
                    sqlx::query("UPDATE signing_keys SET doc = ? WHERE kid = ?")
                        .bind(encode(key)?)
                        .bind(&key.kid)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                Some(_) => {}
            }
        }
        if before
            .iter()
            .any(|old| !after.iter().any(|k| k.kid == old.kid))
        {
            return Err(StoreError::Internal(
                "signing keys are never deleted".into(),
            ));
        }
        tx.commit().await.map_err(map_err)?;
        Ok(after)
    }
}

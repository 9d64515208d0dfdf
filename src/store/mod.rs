//! Persistence. [`Store`] is the one interface the rest of Clavis uses; SQLite (one node) and
//! PostgreSQL (several nodes sharing one database) implement it and pass the same test suite
//! (`tests/store.rs`).
//!
//! Design rules that keep the trait backend-neutral:
//! - Writes that must respect a rule across rows (credential caps, attachment, deletion of an
//!   attached credential) are expressed as a *mutation* of one aggregate: the store loads the
//!   aggregate inside a write transaction (locking it), runs the pure domain closure, and
//!   writes back what changed. The closure is `FnMut` so a backend may retry it after a
//!   serialization failure.
//! - Uniqueness and existence are reported as [`StoreError::Conflict`] and
//!   [`StoreError::NotFound`]; a database that cannot be reached is
//!   [`StoreError::Unavailable`] (the API answers 503); anything else is `Internal` (500).
//! - Documents are stored as JSON text beside the few columns that are queried, so both
//!   backends store the same shapes.
//! - A store shared by several nodes announces every committed write as a [`Change`]
//!   ([`Store::subscribe`]); each node re-reads the entity into its read model.

pub mod commit_order;
mod inline;
pub mod logs;
mod ops;
pub mod postgres;
mod sql;
pub mod sqlite;
mod wal_sync;

use async_trait::async_trait;

use crate::domain::DomainError;
use crate::domain::client::{Client, ClientAggregate};
use crate::domain::client_grant::{ClientGrant, SubjectType};
use crate::domain::credential::Credential;
use crate::domain::log_stream::LogStream;
use crate::domain::organization::Organization;
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::TenantSettings;
use crate::domain::time::Timestamp;
pub use logs::{LogRow, LogSearch, NewLog};

/// What a missing or conflicting row was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A client.
    Client,
    /// A credential.
    Credential,
    /// A resource server.
    ResourceServer,
    /// A client grant.
    ClientGrant,
    /// A signing key.
    SigningKey,
    /// An organization.
    Organization,
    /// A log stream.
    LogStream,
}

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("{0:?} not found")]
    NotFound(Entity),
    /// A uniqueness rule refused the write.
    #[error("{entity:?} conflict: {message}")]
    Conflict {
        /// What conflicted.
        entity: Entity,
        /// Human-readable text.
        message: String,
    },
    /// A mutation closure refused the change; nothing was written.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// The database cannot be reached or timed out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (corrupt row, bug).
    #[error("store error: {0}")]
    Internal(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The same failure for another caller (one failure told to many requests):
    /// `Unavailable` stays `Unavailable` (the client may retry), anything else is an
    /// internal error.
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
            StoreError::Internal(message) => StoreError::Internal(message.clone()),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// Told once a store's writes are durable, or why they could not be made so.
pub type WhenDurable = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// A background delete's pause after each full chunk, as a multiple of the time the chunk
/// took: it leaves the writer (SQLite's one connection) and the cores to the other writes and
/// the token path in between. A purge of 300,000 assertion ids deleted back to back (2,000
/// per chunk, 1.2 s) raised the p99 of tokens answered meanwhile at half load from about 4 ms
/// to 88 ms; paced, it took five times as long and the p99 was 6 ms.
const PURGE_PACE: u32 = 4;

/// Runs `chunk_once` (which deletes at most `chunk` rows in one transaction and returns how
/// many) until a chunk comes back short, pausing [`PURGE_PACE`] times as long as each full
/// chunk took; returns the total.
pub async fn purge_in_chunks<F, Fut>(chunk: u64, mut chunk_once: F) -> StoreResult<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let deleted = chunk_once().await?;
        total += deleted;
        if deleted < chunk {
            return Ok(total);
        }
        tokio::time::sleep(started.elapsed() * PURGE_PACE).await;
    }
}

/// A change to one aggregate, run inside the write transaction.
pub type Mutation<'a, T> = &'a mut (dyn FnMut(&mut T) -> Result<(), DomainError> + Send);

/// How a list is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRequest {
    /// `page` (0-based) and `per_page`.
    Offset {
        /// Page number.
        page: u64,
        /// Items per page.
        per_page: u64,
    },
    /// Checkpoint paging: items after the cursor.
    Checkpoint {
        /// Cursor from a previous page (`None` for the first page).
        after: Option<i64>,
        /// Items per page.
        take: u64,
    },
}

/// A page of items.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, in creation order.
    pub items: Vec<T>,
    /// Total matching items (offset paging only).
    pub total: Option<u64>,
    /// Cursor of the next page (checkpoint paging, when more items follow).
    pub next: Option<i64>,
}

impl<T> Page<T> {
    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            next: self.next,
        }
    }
}

/// What a mutation changed in a client aggregate: the rows a backend must write.
#[derive(Debug)]
pub struct ClientDiff<'a> {
    /// The client row (document or sealed secret) changed.
    pub client_changed: bool,
    /// Credentials removed by the mutation.
    pub deleted: Vec<&'a str>,
    /// Credentials whose document changed.
    pub updated: Vec<&'a Credential>,
    /// Credentials added by the mutation.
    pub inserted: Vec<&'a Credential>,
}

impl<'a> ClientDiff<'a> {
    /// Compares the aggregate before and after a mutation; refuses changes a mutation may
    /// not make (another client id, a credential of another client).
    pub fn between(before: &'a ClientAggregate, after: &'a ClientAggregate) -> StoreResult<Self> {
        let client_id = &before.client.client_id;
        if after.client.client_id != *client_id {
            return Err(StoreError::Internal("client_id cannot change".into()));
        }
        let mut diff = ClientDiff {
            client_changed: after.client != before.client
                || after.sealed_secret != before.sealed_secret,
            deleted: Vec::new(),
            updated: Vec::new(),
            inserted: Vec::new(),
        };
        for old in &before.credentials {
            match after.credentials.iter().find(|c| c.id == old.id) {
                None => diff.deleted.push(&old.id),
                Some(new) if new != old => diff.updated.push(new),
                Some(_) => {}
            }
        }
        for new in &after.credentials {
            if !before.credentials.iter().any(|c| c.id == new.id) {
                if new.client_id != *client_id {
                    return Err(StoreError::Internal("credential of another client".into()));
                }
                diff.inserted.push(new);
            }
        }
        Ok(diff)
    }
}

/// Filters for listing client grants (Auth0's query parameters of `GET /client-grants`).
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// Only grants for this audience.
    pub audience: Option<String>,
    /// Only grants of this client.
    pub client_id: Option<String>,
    /// Only grants of this subject type.
    pub subject_type: Option<SubjectType>,
    /// Only grants with `allow_any_organization: true` (Auth0's only value of the filter).
    pub allow_any_organization: bool,
    /// `default_for=third_party_clients`: only default grants, which Clavis does not store
    /// (`default_for` is refused on create), so nothing matches.
    pub default_grants_only: bool,
    /// Only grants associated with this organization.
    pub organization_id: Option<String>,
    /// Only grants with one of these ids.
    pub ids: Option<Vec<String>>,
}

/// Filters for listing organizations.
#[derive(Debug, Clone, Default)]
pub struct OrganizationFilter {
    /// Only organizations associated with this client grant.
    pub grant_id: Option<String>,
    /// Auth0's `sort` (offset paging only); creation order when `None`.
    pub sort: Option<OrganizationSort>,
}

/// Auth0's `sort` of `GET /organizations`: `name`, `display_name` or `created_at`, ascending
/// or descending. Organizations without a `display_name` come last either way; ties go in
/// creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrganizationSort {
    /// The field.
    pub field: OrganizationSortField,
    /// `:1` (true) or `:-1`.
    pub ascending: bool,
}

/// A field organizations sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationSortField {
    /// `name`.
    Name,
    /// `display_name`.
    DisplayName,
    /// `created_at` (creation order).
    CreatedAt,
}

impl OrganizationSort {
    /// Reads Auth0's `field:1` / `field:-1`.
    pub fn parse(s: &str) -> Option<Self> {
        let (field, order) = s.split_once(':')?;
        let field = match field {
            "name" => OrganizationSortField::Name,
            "display_name" => OrganizationSortField::DisplayName,
            "created_at" => OrganizationSortField::CreatedAt,
            _ => return None,
        };
        let ascending = match order {
            "1" => true,
            "-1" => false,
            _ => return None,
        };
        Some(Self { field, ascending })
    }

    /// Whether it is the natural (creation) order.
    pub fn is_creation_order(self) -> bool {
        self.field == OrganizationSortField::CreatedAt && self.ascending
    }

    /// The `ORDER BY` clause; `text` spells a document field as text.
    pub(crate) fn order_by(self, text: impl Fn(&str) -> String) -> String {
        let dir = if self.ascending { "ASC" } else { "DESC" };
        match self.field {
            OrganizationSortField::CreatedAt => format!("seq {dir}"),
            OrganizationSortField::Name => format!("name {dir}, seq {dir}"),
            OrganizationSortField::DisplayName => {
                let d = text("display_name");
                format!("({d}) IS NULL, {d} {dir}, seq {dir}")
            }
        }
    }
}

impl OrganizationFilter {
    /// The filter as SQL conditions.
    pub(crate) fn conditions<D: SqlDialect>(&self) -> Conditions {
        let mut c = Conditions::default();
        if let Some(grant_id) = &self.grant_id {
            c.in_subquery::<D>(
                "id",
                "SELECT organization_id FROM organization_client_grants WHERE grant_id",
                grant_id,
            );
        }
        c
    }
}

/// An organization with the ids of the client grants associated with it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationRecord {
    /// The organization.
    pub organization: Organization,
    /// Its associated client grants, in association order.
    pub grant_ids: Vec<String>,
}

/// The message of the 409 for a second organization of one name (Auth0's OpenAPI).
pub const ORGANIZATION_CONFLICT: &str = "An organization with this name already exists.";

/// The message of the 409 for a grant associated twice (Auth0's OpenAPI).
pub const ASSOCIATION_CONFLICT: &str =
    "The client grant has already been added to this organization.";

/// The message of the 409 beyond the association cap (Auth0's OpenAPI).
pub const ASSOCIATION_QUOTA: &str =
    "Quota exceeded; cannot add more than 100 client grants to a single organization";

/// The message of the 409 for a second grant of one client, audience and subject type.
pub const GRANT_CONFLICT: &str = "A client grant for this client and audience already exists";

/// How a backend spells the SQL of a list filter over the stored JSON documents (`doc`).
pub(crate) trait SqlDialect {
    /// The placeholder of the `n`th bound value (1-based).
    fn placeholder(n: usize) -> String;
    /// An expression that is true when the document's value at `path` (dot-separated keys)
    /// is the JSON boolean `value`.
    fn doc_bool(path: &str, value: bool) -> String;
    /// An expression for the text of the document's string at `path`.
    fn doc_text(path: &str) -> String;
    /// The greater of two integer expressions.
    fn greatest(a: &str, b: &str) -> String;
    /// A query of the number of rows of `table` kept up to date by the schema, when it
    /// keeps one (else lists count with `COUNT(*)`).
    fn row_count(table: &str) -> Option<&'static str> {
        let _ = table;
        None
    }
    /// A query of the nearest position sample at or before the offset bound as the first
    /// value, as `(position, seq)` in creation order, when the schema keeps samples of
    /// `table`'s positions (else an offset page walks every position before it).
    fn position_sample(table: &str) -> Option<&'static str> {
        let _ = table;
        None
    }
}

/// Conditions (each starting with ` AND `) and the text values they bind, in order.
#[derive(Default)]
pub(crate) struct Conditions {
    /// The SQL.
    pub sql: String,
    /// The bound values.
    pub binds: Vec<String>,
}

impl Conditions {
    fn equals<D: SqlDialect>(&mut self, expr: &str, value: &str) {
        self.binds.push(value.to_string());
        self.sql.push_str(&format!(
            " AND {expr} = {}",
            D::placeholder(self.binds.len())
        ));
    }

    fn one_of<D: SqlDialect>(&mut self, expr: &str, values: &[String]) {
        if values.is_empty() {
            self.nothing();
            return;
        }
        let mut marks = Vec::with_capacity(values.len());
        for v in values {
            self.binds.push(v.clone());
            marks.push(D::placeholder(self.binds.len()));
        }
        self.sql
            .push_str(&format!(" AND {expr} IN ({})", marks.join(", ")));
    }

    /// `expr IN (<subquery> = value)`: `subquery` ends with the column compared to `value`.
    fn in_subquery<D: SqlDialect>(&mut self, expr: &str, subquery: &str, value: &str) {
        self.binds.push(value.to_string());
        self.sql.push_str(&format!(
            " AND {expr} IN ({subquery} = {})",
            D::placeholder(self.binds.len())
        ));
    }

    fn holds(&mut self, expr: &str) {
        self.sql.push_str(&format!(" AND {expr}"));
    }

    fn nothing(&mut self) {
        self.sql.push_str(" AND 1 = 0");
    }
}

impl ClientFilter {
    /// The filter as SQL conditions, the same for both backends but for [`SqlDialect`]'s
    /// spelling.
    pub(crate) fn conditions<D: SqlDialect>(&self) -> Conditions {
        let mut c = Conditions::default();
        if self.is_global == Some(true) {
            c.nothing();
        }
        if let Some(first_party) = self.is_first_party {
            c.holds(&D::doc_bool("is_first_party", first_party));
        }
        if let Some(types) = &self.app_types {
            c.one_of::<D>(&D::doc_text("app_type"), types);
        }
        c
    }
}

impl GrantFilter {
    /// The filter as SQL conditions, the same for both backends but for [`SqlDialect`]'s
    /// spelling.
    pub(crate) fn conditions<D: SqlDialect>(&self) -> Conditions {
        let mut c = Conditions::default();
        if let Some(audience) = &self.audience {
            c.equals::<D>("audience", audience);
        }
        if let Some(client_id) = &self.client_id {
            c.equals::<D>("client_id", client_id);
        }
        if let Some(subject_type) = self.subject_type {
            c.equals::<D>("subject_type", subject_type.as_str());
        }
        if self.allow_any_organization {
            c.holds(&D::doc_bool("extra.allow_any_organization", true));
        }
        if self.default_grants_only {
            c.nothing();
        }
        if let Some(org) = &self.organization_id {
            c.in_subquery::<D>(
                "id",
                "SELECT grant_id FROM organization_client_grants WHERE organization_id",
                org,
            );
        }
        if let Some(ids) = &self.ids {
            c.one_of::<D>("id", ids);
        }
        c
    }
}

/// Which clients a list returns (Auth0's `GET /clients` filters); the default is every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFilter {
    /// `is_global`: Clavis has no global client, so `Some(true)` matches none.
    pub is_global: Option<bool>,
    /// Only first-party (`true`) or only third-party (`false`) clients.
    pub is_first_party: Option<bool>,
    /// Only clients whose `app_type` is one of these (a client without one matches none).
    pub app_types: Option<Vec<String>>,
}

/// Lifecycle state of a token-signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, will sign after the next rotation.
    Next,
    /// Signs tokens now.
    Current,
    /// Signed before a rotation; still published and verifying until revoked.
    Previous,
}

/// A token-signing key as stored. The private key is sealed with the master key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SigningKeyRecord {
    /// Key id (JWT header `kid`).
    pub kid: String,
    /// PKCS#8 DER sealed with the master key (AAD = kid).
    #[serde(skip)]
    pub sealed_pkcs8: Vec<u8>,
    /// Self-signed certificate for the key (PEM), as Auth0's API returns.
    pub cert_pem: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it became current.
    pub current_since: Option<Timestamp>,
    /// When it stopped being current.
    pub current_until: Option<Timestamp>,
    /// When it was revoked (revoked keys neither sign nor verify).
    pub revoked_at: Option<Timestamp>,
}

/// A client without its credentials, as listed.
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// The client.
    pub client: Client,
    /// Its sealed secret.
    pub sealed_secret: Option<Vec<u8>>,
}

/// A used client-assertion id, remembered until `expires_at` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JtiRecord {
    /// The client that used it.
    pub client_id: String,
    /// The assertion's `jti`.
    pub jti: String,
    /// When the record may be forgotten: the assertion's `exp` plus the clock skew.
    pub expires_at: i64,
}

/// A credential-expiry notice (see `crate::expiry`): `threshold_s` seconds before the
/// credential's effective expiry `expires_at_ms` (0: the expiry itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryNotice {
    /// The credential.
    pub credential_id: String,
    /// Seconds before the expiry; 0 for the expiry itself.
    pub threshold_s: i64,
    /// The effective expiry the notice is about (Unix milliseconds).
    pub expires_at_ms: i64,
    /// When it is sent (Unix milliseconds).
    pub sent_at_ms: i64,
}

/// Everything created on the first start, written in one transaction.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The Management API.
    pub management_api: ResourceServer,
    /// The admin client.
    pub admin: ClientAggregate,
    /// Its grant of every management scope.
    pub admin_grant: ClientGrant,
    /// The first signing keys (current and next).
    pub signing_keys: Vec<SigningKeyRecord>,
}

/// The whole state, for building the read model at start-up.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every client with its credentials.
    pub clients: Vec<ClientAggregate>,
    /// Every resource server.
    pub resource_servers: Vec<ResourceServer>,
    /// Every client grant.
    pub client_grants: Vec<ClientGrant>,
    /// Every signing key.
    pub signing_keys: Vec<SigningKeyRecord>,
    /// Every organization with its associated grants.
    pub organizations: Vec<OrganizationRecord>,
    /// The tenant's settings.
    pub tenant_settings: TenantSettings,
}

/// What [`Store::snapshot_into`] hands over as it reads.
#[derive(Debug)]
pub enum SnapshotItem {
    /// Forget what came before: the read starts over (a retried read transaction).
    Restart,
    /// A client with the credentials its authentication method uses, in stored order
    /// (boxed: the channel moves a pointer, not 500 bytes). The others are left out: they
    /// authenticate nothing, and what is read from here is the read model, which holds
    /// only what the token endpoint decides with.
    Client(Box<ClientAggregate>),
    /// A client grant (after every client).
    Grant(ClientGrant),
}

/// The receiving end of [`Store::snapshot_into`]: a bounded channel of batches, so that a
/// reader faster than its consumer waits instead of holding the whole store in memory.
#[derive(Debug, Clone)]
pub struct SnapshotSink(tokio::sync::mpsc::Sender<Vec<SnapshotItem>>);

/// Items per batch: one hand-over (and one wake-up of the other side) per item was 6 % of
/// the start-up's CPU time at a million clients, in context switches.
pub const SNAPSHOT_BATCH: usize = 256;

/// Batches in flight between a snapshot's reader and its consumer.
const SNAPSHOT_BACKLOG: usize = 8;

impl SnapshotSink {
    /// A sink and the receiver its batches arrive at.
    pub fn channel() -> (Self, tokio::sync::mpsc::Receiver<Vec<SnapshotItem>>) {
        let (tx, rx) = tokio::sync::mpsc::channel(SNAPSHOT_BACKLOG);
        (Self(tx), rx)
    }

    fn gone() -> StoreError {
        StoreError::Internal("the snapshot's consumer stopped".into())
    }

    /// Hands over a batch of items (in order), waiting while the channel is full.
    pub async fn send(&self, items: Vec<SnapshotItem>) -> StoreResult<()> {
        self.0.send(items).await.map_err(|_| Self::gone())
    }

    /// Adds `item` to `batch`; returns the batch to hand over once it is full (batches of
    /// [`SnapshotItem`]s, and of the [`RawItem`]s before them).
    pub(crate) fn fill<T>(batch: &mut Vec<T>, item: T) -> Option<Vec<T>> {
        batch.push(item);
        (batch.len() >= SNAPSHOT_BATCH)
            .then(|| std::mem::replace(batch, Vec::with_capacity(SNAPSHOT_BATCH)))
    }

    /// [`Self::send`] for a reader on a thread of its own (never an async worker).
    pub fn blocking_send(&self, items: Vec<SnapshotItem>) -> StoreResult<()> {
        self.0.blocking_send(items).map_err(|_| Self::gone())
    }
}

/// Rows of a snapshot, read but not yet decoded: what a backend's reader hands to
/// [`decoding_stage`]: the backend's rows (PostgreSQL's) or their owned columns (SQLite's).
pub(crate) enum RawItem<C, G> {
    /// See [`SnapshotItem::Restart`].
    Restart,
    /// A client's row with its credentials' rows (or their JSON array), in stored order.
    Client(C),
    /// A grant's row.
    Grant(G),
}

/// Where a snapshot's reader sends batches of [`RawItem`]s.
pub(crate) type RawSender<C, G> = tokio::sync::mpsc::Sender<Vec<RawItem<C, G>>>;

/// The decoding stage of a snapshot: a thread of the blocking pool that turns the raw items
/// sent to the returned sender into [`SnapshotItem`]s for `sink`, in order, while the reader
/// fetches the next rows. Decoding (JSON, 3 GB at a million clients) was most of a start-up's
/// work; on the reader's thread, reading and decoding took turns. The reader drops the
/// sender when it is done and then awaits the handle: a decoder that failed has closed its
/// channel (the reader's send fails), and its error is the one to report.
pub(crate) fn decoding_stage<C: Send + 'static, G: Send + 'static>(
    sink: &SnapshotSink,
    decode_client: fn(C) -> StoreResult<ClientAggregate>,
    decode_grant: fn(G) -> StoreResult<ClientGrant>,
) -> (RawSender<C, G>, tokio::task::JoinHandle<StoreResult<()>>) {
    let (raw, mut raws) = tokio::sync::mpsc::channel::<Vec<RawItem<C, G>>>(SNAPSHOT_BACKLOG);
    let sink = sink.clone();
    let decoder = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(SNAPSHOT_BATCH);
        while let Some(items) = raws.blocking_recv() {
            for item in items {
                let item = match item {
                    RawItem::Restart => SnapshotItem::Restart,
                    RawItem::Client(row) => SnapshotItem::Client(Box::new(decode_client(row)?)),
                    RawItem::Grant(row) => SnapshotItem::Grant(decode_grant(row)?),
                };
                if let Some(full) = SnapshotSink::fill(&mut batch, item) {
                    sink.blocking_send(full)?;
                }
            }
        }
        sink.blocking_send(batch)
    });
    (raw, decoder)
}

/// Awaits a [`decoding_stage`] after its reader finished with `read`: the decoder's error
/// first (it is why a read's send failed), then the read's.
pub(crate) async fn finish_decoding<T>(
    decoder: tokio::task::JoinHandle<StoreResult<()>>,
    read: StoreResult<T>,
) -> StoreResult<T> {
    decoder
        .await
        .map_err(|e| StoreError::Internal(format!("the snapshot's decoder failed: {e}")))??;
    read
}

/// What a reader reports when its [`decoding_stage`] has stopped.
pub(crate) fn decoder_gone() -> StoreError {
    StoreError::Internal("the snapshot's decoder stopped".into())
}

/// One schema migration, embedded in the binary: `(version, description, SQL)` as sqlx's
/// `migrate!` would read them from `migrations/<backend>/<version>_<description with
/// underscores>.sql`. A test checks each backend's list against its directory.
type MigrationFile = (i64, &'static str, &'static str);

/// A backend's migrator: the same versions, descriptions and checksums (SHA-384 of the SQL)
/// as the `migrate!` macro's, so a database migrated by an earlier build is recognised.
/// Built here instead of by the macro, whose crate compiles a second copy of sqlx, rustls,
/// aws-lc and SQLite for the compiler: a cold build (CI) spent minutes on that alone.
fn migrator(files: &[MigrationFile]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

/// A committed write, as announced to the other nodes sharing the store. It names what
/// changed, not how: a receiver re-reads the entity (a fresh read after the commit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A client or its credentials (created, changed or deleted).
    Client(String),
    /// A resource server (created, changed or deleted).
    ResourceServer {
        /// Its id.
        id: String,
        /// Its identifier (the audience), which the read model is keyed by.
        identifier: String,
    },
    /// A client grant, by id.
    ClientGrant(String),
    /// An organization or its associations, by id.
    Organization(String),
    /// The signing keys (rotation, revocation).
    SigningKeys,
    /// The tenant's settings.
    TenantSettings,
    /// Anything may have changed (e.g. announcements were missed while disconnected): reload
    /// everything.
    Resync,
}

impl Change {
    /// The change as text, as a shared store announces it: `client:<id>`,
    /// `rs:<id> <identifier>`, `grant:<id>`, `org:<id>`, `keys`, `tenant`, `resync`.
    pub fn to_text(&self) -> String {
        match self {
            Change::Client(id) => format!("client:{id}"),
            Change::ResourceServer { id, identifier } => format!("rs:{id} {identifier}"),
            Change::ClientGrant(id) => format!("grant:{id}"),
            Change::Organization(id) => format!("org:{id}"),
            Change::SigningKeys => "keys".into(),
            Change::TenantSettings => "tenant".into(),
            Change::Resync => "resync".into(),
        }
    }

    /// Reads [`Change::to_text`]; `None` for what is not a change (e.g. a heartbeat).
    pub fn from_text(text: &str) -> Option<Change> {
        if let Some(id) = text.strip_prefix("client:") {
            return Some(Change::Client(id.to_string()));
        }
        if let Some(rest) = text.strip_prefix("rs:") {
            let (id, identifier) = rest.split_once(' ')?;
            return Some(Change::ResourceServer {
                id: id.to_string(),
                identifier: identifier.to_string(),
            });
        }
        if let Some(id) = text.strip_prefix("grant:") {
            return Some(Change::ClientGrant(id.to_string()));
        }
        if let Some(id) = text.strip_prefix("org:") {
            return Some(Change::Organization(id.to_string()));
        }
        match text {
            "keys" => Some(Change::SigningKeys),
            "tenant" => Some(Change::TenantSettings),
            "resync" => Some(Change::Resync),
            _ => None,
        }
    }
}

/// A log stream as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStreamRecord {
    /// The stream.
    pub stream: LogStream,
    /// Its authorization header, sealed.
    pub sealed_authorization: Option<Vec<u8>>,
    /// Sequence number of the last event delivered (or skipped by its filters).
    pub cursor: i64,
    /// When the current run of failed deliveries began (Unix milliseconds).
    pub failing_since_ms: Option<i64>,
}

/// The outcome of one delivery attempt of a stream, recorded by the node that holds its
/// lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every event up to this sequence number was delivered (or filtered out).
    Delivered(i64),
    /// Delivery failed at this time (Unix milliseconds).
    Failed(i64),
    /// The holder is done for this round: the lease is free for any node.
    Release,
}

/// The persistence interface. All methods are atomic: a failed call changes nothing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// Closes connections after in-flight work finished (graceful shutdown).
    async fn close(&self);

    /// Returns once every write this store committed before the call is durable (survives
    /// a power loss). Nothing may be acknowledged before this returned for its write. A
    /// backend may commit without waiting for the disk and make a whole batch of commits
    /// durable here at once (group commit); one whose commits are durable by themselves
    /// returns at once.
    async fn durable(&self) -> StoreResult<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.when_durable(Box::new(move |result| {
            let _ = tx.send(result);
        }));
        rx.await
            .map_err(|_| StoreError::Internal("the durability callback was dropped".into()))?
    }

    /// [`Store::durable`] for a caller that must not wait: `then` is called once every write
    /// this store committed before the call is durable, from any thread, possibly before
    /// this returns. The one a backend implements; `durable` waits on it.
    fn when_durable(&self, then: WhenDurable) {
        then(Ok(()));
    }

    /// [`Store::when_durable`] for the assertion ids [`Store::record_jtis`] has just returned:
    /// `then` once they are durable. The default waits for every write committed before the
    /// call; a backend whose `record_jtis` returns only once its records are durable calls
    /// `then` at once, so that a token does not wait for other writes' durability.
    fn when_jtis_durable(&self, then: WhenDurable) {
        self.when_durable(then);
    }

    /// How many writes the service may run at once. Above one, the store commits every write
    /// transaction through [`commit_order::commit`], so that the read model still follows
    /// the commit order. One (the default): writes run one after another, store call and
    /// read-model update together.
    fn concurrent_writes(&self) -> u32 {
        1
    }

    /// The state of the store's connections, for `/metrics` (PostgreSQL; `None` elsewhere).
    fn gauges(&self) -> Option<crate::metrics::StoreGauges> {
        None
    }

    /// A start-up setting (e.g. the master-key check value).
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores a setting unless one exists; returns the value now stored.
    async fn init_setting(&self, key: &str, value: &str) -> StoreResult<String>;
    /// Stores a setting, replacing any value (durable after [`Store::durable`]).
    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;

    /// Writes the first-start state unless the store was already bootstrapped; returns
    /// whether it did.
    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool>;

    /// Loads everything (read-model start-up and resynchronisation).
    async fn snapshot(&self) -> StoreResult<Snapshot>;

    /// Loads everything like [`Store::snapshot`], but hands each client and each grant to
    /// `sink` instead of collecting them (the snapshot returned has neither): at a million
    /// clients, the stored forms of every client held at once took more memory than the
    /// read model built from them. The default collects first and then hands them over one
    /// by one; a backend may read and hand over as it goes, from one read transaction (a
    /// read that starts over sends [`SnapshotItem::Restart`] first).
    async fn snapshot_into(&self, sink: SnapshotSink) -> StoreResult<Snapshot> {
        let mut snapshot = self.snapshot().await?;
        let clients = std::mem::take(&mut snapshot.clients).into_iter();
        let grants = std::mem::take(&mut snapshot.client_grants).into_iter();
        let mut items = std::iter::once(SnapshotItem::Restart)
            .chain(clients.map(|mut c| {
                let client = &c.client;
                c.credentials.retain(|k| client.uses_credential(&k.id));
                SnapshotItem::Client(Box::new(c))
            }))
            .chain(grants.map(SnapshotItem::Grant))
            .peekable();
        while items.peek().is_some() {
            sink.send(items.by_ref().take(SNAPSHOT_BATCH).collect())
                .await?;
        }
        Ok(snapshot)
    }

    /// Inserts a client with its credentials. `Conflict` if the id exists.
    async fn insert_client(&self, aggregate: &ClientAggregate) -> StoreResult<()>;
    /// A client with its credentials.
    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientAggregate>>;
    /// One credential of a client; `Ok(None)` when the client has no such credential,
    /// `NotFound(Client)` when the client does not exist. The default reads the whole client;
    /// a backend may answer with a single lookup.
    async fn credential(
        &self,
        client_id: &str,
        credential_id: &str,
    ) -> StoreResult<Option<crate::domain::credential::Credential>> {
        let aggregate = self
            .client(client_id)
            .await?
            .ok_or(StoreError::NotFound(Entity::Client))?;
        Ok(aggregate.credential(credential_id).cloned())
    }
    /// A page of the clients `filter` selects (without credentials), in creation order;
    /// `total` counts the selected clients.
    async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientRow>>;
    /// Changes a client aggregate atomically; returns the aggregate as committed.
    async fn update_client(
        &self,
        client_id: &str,
        mutation: Mutation<'_, ClientAggregate>,
    ) -> StoreResult<ClientAggregate>;
    /// Deletes a client with its credentials and grants; returns the deleted grant ids.
    async fn delete_client(&self, client_id: &str) -> StoreResult<Vec<String>>;

    /// Inserts a resource server. `Conflict` on a duplicate identifier.
    async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()>;
    /// By id, or by identifier when `key` is not an id.
    async fn resource_server(&self, key: &str) -> StoreResult<Option<ResourceServer>>;
    /// A page of resource servers.
    async fn list_resource_servers(&self, page: PageRequest) -> StoreResult<Page<ResourceServer>>;
    /// Changes a resource server atomically.
    async fn update_resource_server(
        &self,
        key: &str,
        mutation: Mutation<'_, ResourceServer>,
    ) -> StoreResult<ResourceServer>;
    /// Deletes a resource server (after `guard` accepts it) and its client grants; returns
    /// the deleted resource server and grant ids.
    async fn delete_resource_server(
        &self,
        key: &str,
        guard: Mutation<'_, ResourceServer>,
    ) -> StoreResult<(ResourceServer, Vec<String>)>;

    /// Inserts a grant. `NotFound(Client)` / `NotFound(ResourceServer)` when either is
    /// missing; `Conflict` for a second grant of the same client and audience.
    async fn insert_client_grant(&self, grant: &ClientGrant) -> StoreResult<()>;
    /// Many clients (with their credentials) and grants in one transaction, durable when this
    /// returns, for loading large data sets (the bench's scale scenario). The Management
    /// API's rules are the caller's business; the store's constraints still apply. Not for a
    /// serving node: no other node learns of these rows until it reads the store again.
    async fn bulk_insert(
        &self,
        clients: &[ClientAggregate],
        grants: &[ClientGrant],
    ) -> StoreResult<()>;
    /// One grant.
    async fn client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>>;
    /// A page of grants.
    async fn list_client_grants(
        &self,
        filter: &GrantFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>>;
    /// Changes a grant atomically.
    async fn update_client_grant(
        &self,
        id: &str,
        mutation: Mutation<'_, ClientGrant>,
    ) -> StoreResult<ClientGrant>;
    /// Deletes a grant.
    async fn delete_client_grant(&self, id: &str) -> StoreResult<()>;

    /// Inserts an organization. `Conflict` on a duplicate name.
    async fn insert_organization(&self, org: &Organization) -> StoreResult<()>;
    /// An organization with its associated grants, by id.
    async fn organization(&self, id: &str) -> StoreResult<Option<OrganizationRecord>>;
    /// An organization by name.
    async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>>;
    /// A page of the organizations `filter` selects, in creation order.
    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Organization>>;
    /// Changes an organization atomically. `Conflict` when its new name is taken.
    async fn update_organization(
        &self,
        id: &str,
        mutation: Mutation<'_, Organization>,
    ) -> StoreResult<Organization>;
    /// Deletes an organization and its associations.
    async fn delete_organization(&self, id: &str) -> StoreResult<()>;
    /// Associates a client grant with an organization; returns the grant.
    /// `NotFound(Organization)` / `NotFound(ClientGrant)`; `Conflict` when already associated
    /// or when the organization has [`crate::domain::organization::MAX_GRANTS_PER_ORGANIZATION`].
    async fn associate_client_grant(
        &self,
        org_id: &str,
        grant_id: &str,
    ) -> StoreResult<ClientGrant>;
    /// Removes an association (nothing when there is none). `NotFound(Organization)`.
    async fn dissociate_client_grant(&self, org_id: &str, grant_id: &str) -> StoreResult<()>;

    /// Records assertion ids as used, in one transaction. For each record, in order: `true`
    /// if it was new (or only an expired record existed), `false` if it is a replay. A
    /// duplicate within the batch is a replay of the earlier one. How a shared store decides
    /// ids (at commit, so that nodes tell them apart); a store one process uses has them
    /// decided in memory and written behind ([`Store::write_jtis`]) instead.
    async fn record_jtis(&self, records: &[JtiRecord], now: i64) -> StoreResult<Vec<bool>> {
        let _ = (records, now);
        Err(StoreError::Internal(
            "assertion ids are decided in memory on this store".into(),
        ))
    }
    /// Writes assertion ids that this process's replay guard has decided, in one transaction,
    /// after those written before (the order [`Store::live_jtis`] gives them back in). Only
    /// on a store one process uses ([`Store::single_process`]).
    async fn write_jtis(&self, records: &[JtiRecord]) -> StoreResult<()> {
        let _ = records;
        Err(StoreError::Internal(
            "assertion ids are decided at commit on this store".into(),
        ))
    }
    /// Forgets assertion ids whose records expired before `now`; returns how many. A store
    /// that keeps them in the order written ([`Store::write_jtis`]) forgets them from the
    /// front: a record written after one still live waits for it (at most the longest
    /// assertion lifetime and the clock skew).
    async fn purge_jtis(&self, now: i64) -> StoreResult<u64>;
    /// Whether this process is the store's only user (SQLite: the data directory's lock),
    /// so that assertion ids can be decided in memory and written behind
    /// (`crate::service::replay`), and audit events can wait for each other before their
    /// commit without reordering the feed of several nodes (`crate::audit`). A shared store
    /// decides ids at commit and takes events as they come.
    fn single_process(&self) -> bool {
        false
    }
    /// Up to `limit` unexpired assertion-id records (`expires_at > now`) written
    /// ([`Store::write_jtis`]) after position `after` (0: from the first), in the order
    /// written, each with its position: the records a local replay guard loads at start.
    async fn live_jtis(
        &self,
        now: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, JtiRecord)>> {
        let _ = (now, after, limit);
        Err(StoreError::Internal(
            "assertion ids are decided at commit on this store".into(),
        ))
    }

    /// Appends log events in one transaction, each with the next sequence number (its
    /// log_id), in the order given. On a shared store, sequence numbers become visible in
    /// increasing order on every node (a reader never sees a number before a smaller one
    /// that is still to come).
    async fn insert_logs(&self, logs: &[NewLog]) -> StoreResult<()>;
    /// One log event by sequence number.
    async fn log(&self, seq: i64) -> StoreResult<Option<LogRow>>;
    /// Up to `take` log events after sequence number `after`, in sequence order.
    async fn logs_after(&self, after: i64, take: u64) -> StoreResult<Vec<LogRow>>;
    /// A page of a log search, and the number of matches when `totals` is asked for.
    async fn search_logs(&self, search: &LogSearch) -> StoreResult<(Vec<LogRow>, Option<u64>)>;
    /// Deletes up to `chunk` of the oldest log events dated before `before_ms`, in one
    /// transaction; returns how many.
    async fn purge_logs(&self, before_ms: i64, chunk: u64) -> StoreResult<u64>;

    /// Claims an expiry notice: `true` when this call recorded it — no notice of this
    /// credential and threshold existed, or the one that did was sent for an earlier expiry
    /// (the credential was renewed since) — and the caller is to send it; `false` when it was
    /// sent already (by this node or another). Atomic across nodes: of concurrent claims of
    /// one notice, exactly one returns `true`. `false` for a credential that no longer
    /// exists (a credential's notices are deleted with it).
    async fn claim_expiry_notice(&self, notice: &ExpiryNotice) -> StoreResult<bool>;
    /// Creates a log stream whose cursor is the last event dated before `start_ms` (the
    /// last event of all when `None`).
    async fn insert_log_stream(
        &self,
        stream: &LogStream,
        sealed_authorization: Option<&[u8]>,
        start_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// One log stream.
    async fn log_stream(&self, id: &str) -> StoreResult<Option<LogStreamRecord>>;
    /// Every log stream, oldest first.
    async fn log_streams(&self) -> StoreResult<Vec<LogStreamRecord>>;
    /// Changes a log stream (its document, sealed authorization and failure time; not its
    /// cursor).
    async fn update_log_stream(
        &self,
        id: &str,
        mutation: Mutation<'_, LogStreamRecord>,
    ) -> StoreResult<LogStreamRecord>;
    /// Deletes a log stream.
    async fn delete_log_stream(&self, id: &str) -> StoreResult<()>;
    /// Takes or renews the delivery lease of a stream for `owner` until `until_ms`, when it
    /// is free, expired (before `now_ms`) or already `owner`'s; returns the stream when the
    /// lease is held.
    async fn lease_log_stream(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Option<LogStreamRecord>>;
    /// Records a delivery by `owner`, if it still holds the lease: a delivery moves the
    /// cursor forward (never back) and ends a failing run; a failure starts one (or
    /// continues it); a release frees the lease. Returns whether the lease was held.
    async fn record_delivery(&self, id: &str, owner: &str, outcome: Delivery) -> StoreResult<bool>;

    /// All signing keys, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;

    /// The tenant's settings (empty when never set).
    async fn tenant_settings(&self) -> StoreResult<TenantSettings>;

    /// Changes the tenant's settings (one at a time across nodes) and returns them.
    async fn update_tenant_settings(
        &self,
        mutation: Mutation<'_, TenantSettings>,
    ) -> StoreResult<TenantSettings>;

    /// Reserves up to `want` tokens of `bucket`'s quota `limit` for the window starting at
    /// `window_start` (Unix seconds): the count of the window grows by what is granted, and
    /// never beyond `limit`. Returns what was granted and the window's count after it.
    async fn reserve_token_quota(
        &self,
        bucket: &str,
        window_start: i64,
        want: u64,
        limit: u64,
    ) -> StoreResult<(u64, u64)>;

    /// Forgets the counts of windows that started before `before` (Unix seconds).
    async fn purge_token_quota_usage(&self, before: i64) -> StoreResult<u64>;
    /// Changes the set of signing keys atomically (rotation, revocation): the mutation sees
    /// every key and may change states or append new keys; keys are never deleted.
    async fn update_signing_keys(
        &self,
        mutation: Mutation<'_, Vec<SigningKeyRecord>>,
    ) -> StoreResult<Vec<SigningKeyRecord>>;

    /// The changes committed from now on by any node (this one included), for a store that
    /// several nodes share; `None` for a store only this process uses. Announcements lost
    /// while disconnected are followed by [`Change::Resync`]. The stream ends when the store
    /// closes. The listener's connection is served by the runtime that calls this, the
    /// reader's by the runtime that first reads through it.
    async fn subscribe(&self) -> StoreResult<Option<Subscription>> {
        Ok(None)
    }
}

/// What [`Store::subscribe`] gives a node that shares its store.
pub struct Subscription {
    /// The announced changes, in commit order.
    pub changes: tokio::sync::mpsc::Receiver<Change>,
    /// The same store through a connection of its own, for re-reading what was announced:
    /// those reads neither wait for a connection behind the node's requests nor for the
    /// requests' runtime to notice their answers (`crate::service::sync`).
    pub reader: std::sync::Arc<dyn Store>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sqlx::Connection;

    /// A SQLite database with the first `applied` migrations only: its directory, URL and a
    /// connection to it.
    async fn older_sqlite_store(
        applied: usize,
    ) -> (tempfile::TempDir, String, sqlx::SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        migrator(&sqlite::MIGRATIONS[..applied])
            .run(&mut conn)
            .await
            .unwrap();
        (dir, url, conn)
    }

    /// A store created before the Management API took Auth0's name has it renamed when it
    /// opens (`migrations/sqlite/0005_management_api_name.sql`); other resource servers keep
    /// theirs.
    #[tokio::test]
    async fn opening_an_older_sqlite_store_renames_the_management_api() {
        let (_dir, url, mut conn) = older_sqlite_store(2).await;
        let now = crate::domain::time::Timestamp::now();
        let rs = |id: &str, name: &str, identifier: &str, is_system: bool| ResourceServer {
            id: id.into(),
            name: name.into(),
            identifier: identifier.into(),
            scopes: Vec::new(),
            signing_alg: "RS256".into(),
            sealed_signing_secret: None,
            token_lifetime: 86_400,
            allow_offline_access: false,
            skip_consent_for_verifiable_first_party_clients: false,
            is_system,
            extra: Default::default(),
            created_at: now,
            updated_at: now,
        };
        let system = rs(
            "000000000000000000000001",
            "Clavis Management API",
            "https://clavis.example/api/v2/",
            true,
        );
        let other = rs(
            "000000000000000000000002",
            "Clavis Management API",
            "https://other.example/",
            false,
        );
        for r in [&system, &other] {
            sqlx::query("INSERT INTO resource_servers (id, identifier, doc) VALUES (?1, ?2, ?3)")
                .bind(&r.id)
                .bind(&r.identifier)
                .bind(serde_json::to_string(r).unwrap())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
        let store = sqlite::SqliteStore::connect(&url).await.unwrap();
        let renamed = store.resource_server(&system.id).await.unwrap().unwrap();
        assert_eq!(
            renamed,
            ResourceServer {
                name: crate::domain::resource_server::MANAGEMENT_API_NAME.into(),
                ..system
            }
        );
        let kept = store.resource_server(&other.id).await.unwrap().unwrap();
        assert_eq!(kept, other);
    }

    /// A store whose assertion ids were kept by (client id, jti) has them in the acceptance-
    /// ordered log once it opens (`migrations/sqlite/0013_assertion_log.sql`), oldest expiry
    /// first, so that a purge from the front takes the expired ones; nothing is lost.
    #[tokio::test]
    async fn opening_an_older_sqlite_store_keeps_its_assertion_ids() {
        let (_dir, url, mut conn) = older_sqlite_store(12).await;
        for (client, jti, expires_at) in [("b", "1", 300), ("a", "2", 100), ("a", "1", 200)] {
            sqlx::query(
                "INSERT INTO assertion_replay (client_id, jti, expires_at) VALUES (?1, ?2, ?3)",
            )
            .bind(client)
            .bind(jti)
            .bind(expires_at)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
        let store = sqlite::SqliteStore::connect(&url).await.unwrap();
        let live = |now| {
            let store = &store;
            async move {
                store
                    .live_jtis(now, 0, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(_, r)| (r.client_id, r.jti, r.expires_at))
                    .collect::<Vec<_>>()
            }
        };
        let id = |c: &str, j: &str, e| (c.to_owned(), j.to_owned(), e);
        assert_eq!(
            live(0).await,
            [id("a", "2", 100), id("a", "1", 200), id("b", "1", 300)]
        );
        assert_eq!(store.purge_jtis(200).await.unwrap(), 2);
        assert_eq!(live(0).await, [id("b", "1", 300)]);
    }

    /// Every file of `migrations/<backend>/` is in the backend's list, under the version and
    /// description its name gives, with its exact text, and nothing else is; the checksum is
    /// the SHA-384 of the file, as the `migrate!` macro recorded it in existing databases.
    #[test]
    fn the_embedded_migrations_are_the_files_of_the_migrations_directory() {
        for (backend, list) in [
            ("sqlite", sqlite::MIGRATIONS),
            ("postgres", postgres::MIGRATIONS),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend);
            let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                    let stem = name.strip_suffix(".sql").unwrap();
                    let (version, description) = stem.split_once('_').unwrap();
                    (
                        version.parse().unwrap(),
                        description.replace('_', " "),
                        std::fs::read_to_string(&path).unwrap(),
                    )
                })
                .collect();
            files.sort();
            let migrator = migrator(list);
            assert_eq!(migrator.migrations.len(), files.len(), "{backend}");
            for (m, (version, description, sql)) in migrator.migrations.iter().zip(&files) {
                assert_eq!(m.version, *version, "{backend}");
                assert_eq!(m.description, description.as_str(), "{backend}");
                assert_eq!(m.sql.as_str(), sql.as_str(), "{backend} {version}");
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, sql.as_bytes());
                assert_eq!(&*m.checksum, digest.as_ref(), "{backend} {version}");
            }
        }
        // What the build that still used the macro recorded (in a SQLite database it
        // migrated), for the migrations that existed then.
        let recorded = migrator(sqlite::MIGRATIONS)
            .migrations
            .iter()
            .take(2)
            .map(|m| {
                m.checksum
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            })
            .collect::<Vec<_>>();
        assert_eq!(
            recorded,
            [
                "7be73cd6fce3554be336fcf9d6235253e872a8cf5e2b7a59b241bd7d4c49cccd75079b87fbc411e559a9d82524add9cd",
                "109a0aebc55c1799b9d55ac2a60f0278c43cdbe9a31cf4877fd057f7a7db29618fc2a2fd561fbf15515955b188870e46",
            ]
        );
    }
}

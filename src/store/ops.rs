//! Every store operation that is the same on both backends, written once over the [`Tx`]
//! primitives: loading aggregates (locked for update), turning a mutation's difference into
//! rows, the rules checked inside the transaction, cascades, paging and filters. A backend
//! runs them in its own transaction (SQLite: on its write connection; PostgreSQL: retried
//! after a serialization failure) and commits.

use super::sql::{Lock, Row, Tx, Value, clamp, encode, finish_page, limit_offset, query, stmt};
use super::{
    ASSOCIATION_CONFLICT, ASSOCIATION_QUOTA, Bootstrap, Change, ClientDiff, ClientFilter,
    ClientRow, Conditions, Delivery, Entity, ExpiryNotice, GRANT_CONFLICT, GrantFilter,
    LogStreamRecord, Mutation, ORGANIZATION_CONFLICT, OrganizationFilter, OrganizationRecord, Page,
    PageRequest, SigningKeyRecord, Snapshot, SqlDialect, StoreError, StoreResult,
};
use crate::domain::client::ClientAggregate;
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::Credential;
use crate::domain::ids::is_resource_server_id;
use crate::domain::log_stream::LogStream;
use crate::domain::organization::{MAX_GRANTS_PER_ORGANIZATION, Organization};
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::TenantSettings;

/// Key of the lock that serialises first-start bootstrap between nodes.
const BOOTSTRAP_LOCK: i64 = 0x636c_6176_6973; // "clavis"

fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

// ----- settings -----

/// A start-up setting.
pub(crate) async fn setting(tx: &mut impl Tx, key: &str) -> StoreResult<Option<String>> {
    let rows = tx
        .rows(query(
            "SELECT value FROM settings WHERE key = ?1",
            vec![key.into()],
        ))
        .await?;
    first(rows).map(|mut r| r.text(0)).transpose()
}

/// Stores a setting unless one exists; the value now stored.
pub(crate) async fn init_setting(tx: &mut impl Tx, key: &str, value: &str) -> StoreResult<String> {
    // ON CONFLICT waits for a concurrent insert of the same key to commit, and the following
    // query then sees whichever value won.
    tx.exec(stmt(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        vec![key.into(), value.into()],
    ))
    .await?;
    setting(tx, key)
        .await?
        .ok_or_else(|| StoreError::Internal("setting vanished".into()))
}

/// Stores a setting, replacing any value.
pub(crate) async fn put_setting(tx: &mut impl Tx, key: &str, value: &str) -> StoreResult<()> {
    tx.exec(stmt(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        vec![key.into(), value.into()],
    ))
    .await?;
    Ok(())
}

/// Writes the first-start state unless it was written; whether it did.
pub(crate) async fn bootstrap(tx: &mut impl Tx, data: &Bootstrap) -> StoreResult<bool> {
    // Nodes starting together on an empty database: one bootstraps, the others wait and
    // then find it done.
    tx.serialize(BOOTSTRAP_LOCK).await?;
    if setting(tx, "bootstrapped").await?.is_some() {
        return Ok(false);
    }
    insert_resource_server(tx, &data.management_api).await?;
    insert_client(tx, &data.admin).await?;
    insert_grant(tx, &data.admin_grant).await?;
    for key in &data.signing_keys {
        insert_signing_key(tx, key).await?;
    }
    tx.exec(stmt(
        "INSERT INTO settings (key, value) VALUES ('bootstrapped', ?1)",
        vec![crate::domain::time::Timestamp::now().to_string().into()],
    ))
    .await?;
    tx.notify(Change::Resync).await?;
    Ok(true)
}

/// Everything but the clients, for [`Snapshot`] (each backend reads its clients its own
/// fastest way, see [`all_clients`]); the grants too unless the caller read them
/// (`client_grants`).
pub(crate) async fn snapshot(
    tx: &mut impl Tx,
    clients: Vec<ClientAggregate>,
    client_grants: Option<Vec<ClientGrant>>,
) -> StoreResult<Snapshot> {
    let client_grants = match client_grants {
        Some(grants) => grants,
        None => docs(
            tx,
            query(
                "SELECT seq, doc FROM client_grants ORDER BY seq",
                Vec::new(),
            ),
        )
        .await?
        .into_iter()
        .map(|(_, g)| g)
        .collect(),
    };
    Ok(Snapshot {
        clients,
        resource_servers: resource_servers(tx, "ORDER BY seq", Vec::new(), Lock::None)
            .await?
            .into_iter()
            .map(|(_, rs)| rs)
            .collect(),
        client_grants,
        signing_keys: signing_keys(tx).await?,
        organizations: organizations(tx, None).await?,
        tenant_settings: tenant_settings(tx).await?,
    })
}

/// `(seq, doc)` rows, documents decoded.
async fn docs<T: serde::de::DeserializeOwned>(
    tx: &mut impl Tx,
    q: super::sql::Query,
) -> StoreResult<Vec<(i64, T)>> {
    tx.rows(q)
        .await?
        .into_iter()
        .map(|mut r| Ok((r.int(0)?, r.doc(1)?)))
        .collect()
}

/// The ids a query selects.
async fn ids(tx: &mut impl Tx, sql: &'static str, key: &str) -> StoreResult<Vec<String>> {
    tx.rows(query(sql, vec![key.into()]))
        .await?
        .into_iter()
        .map(|mut r| r.text(0))
        .collect()
}

/// Whether the row a query selects exists (locking it as asked).
async fn exists(tx: &mut impl Tx, sql: &'static str, key: &str, lock: Lock) -> StoreResult<bool> {
    Ok(!tx
        .rows(query(sql, vec![key.into()]).lock(lock))
        .await?
        .is_empty())
}

/// A page of `table`'s rows (`columns` after `seq`, read by `read`) that meet `filter`, in
/// `order` (`seq` when `None`), with the total of the filtered set for offset paging.
async fn list<T: Tx, V>(
    tx: &mut T,
    table: &str,
    columns: &str,
    filter: Conditions,
    order: Option<String>,
    page: PageRequest,
    read: impl Fn(&mut Row) -> StoreResult<V>,
) -> StoreResult<Page<V>> {
    let Conditions {
        sql: conditions,
        binds,
    } = filter;
    let binds: Vec<Value> = binds.into_iter().map(Value::from).collect();
    let n = binds.len();
    let (after, limit, offset) = limit_offset(page);
    let kept = <T::Dialect as SqlDialect>::row_count(table).filter(|_| conditions.is_empty());
    let total = match page {
        PageRequest::Offset { .. } => {
            let sql = match kept {
                Some(kept) => kept.to_string(),
                None => format!("SELECT COUNT(*) FROM {table} WHERE 1=1{conditions}"),
            };
            let counted = tx.rows(query(sql, binds.clone())).await?;
            // A count the database could not run (a value it cannot hold) counts nothing.
            let n = match first(counted) {
                Some(mut r) => r.int(0)?,
                None => 0,
            };
            Some(u64::try_from(n).unwrap_or(0))
        }
        PageRequest::Checkpoint { .. } => None,
    };
    // In creation order over the whole table, a page whose schema samples positions starts
    // from the nearest sample at or before its offset: its walk is shorter than the samples'
    // stride wherever it lies. (Like the total, read by its own statement: writes between
    // the two shift the page as they would between two pages.)
    let sample = match <T::Dialect as SqlDialect>::position_sample(table)
        .filter(|_| conditions.is_empty() && order.is_none() && offset > 0)
    {
        Some(sql) => first(tx.rows(query(sql, vec![Value::from(offset)])).await?),
        None => None,
    };
    let (after, offset) = match sample {
        Some(mut r) => {
            let (pos, seq) = (r.int(0)?, r.int(1)?);
            (seq.saturating_sub(1), offset.saturating_sub(pos))
        }
        None => (after, offset),
    };
    let sql = match order {
        // In creation order, the page's positions are found first from `seq` alone (a
        // narrow index: `clients_by_seq` on SQLite, the primary key on PostgreSQL), and
        // only the page's rows are read: an offset of a million skipped a million whole
        // rows (700 ms on SQLite), it skips a million index entries (~15 ms) where the
        // schema keeps no position samples, and fewer than their stride where it does.
        None => {
            let mut all = binds;
            all.extend([after, limit, offset].map(Value::from));
            query(
                format!(
                    "SELECT seq, {columns} FROM {table} WHERE seq IN \
                     (SELECT seq FROM {table} WHERE 1=1{conditions} AND seq > ?{} \
                      ORDER BY seq LIMIT ?{} OFFSET ?{}) ORDER BY seq",
                    n + 1,
                    n + 2,
                    n + 3
                ),
                all,
            )
        }
        Some(order) => {
            let mut all = binds;
            all.extend([after, limit, offset].map(Value::from));
            query(
                format!(
                    "SELECT seq, {columns} FROM {table} WHERE 1=1{conditions} AND seq > ?{} \
                     ORDER BY {order} LIMIT ?{} OFFSET ?{}",
                    n + 1,
                    n + 2,
                    n + 3
                ),
                all,
            )
        }
    };
    let items = tx
        .rows(sql)
        .await?
        .into_iter()
        .map(|mut r| Ok((r.int(0)?, read(&mut r)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(finish_page(page, items, total))
}

// ----- clients -----

/// A client with its credentials.
pub(crate) async fn client(
    tx: &mut impl Tx,
    client_id: &str,
    lock: Lock,
) -> StoreResult<Option<ClientAggregate>> {
    let Some(mut row) = first(
        tx.rows(
            query(
                "SELECT doc, sealed_secret FROM clients WHERE client_id = ?1",
                vec![client_id.into()],
            )
            .lock(lock),
        )
        .await?,
    ) else {
        return Ok(None);
    };
    let credentials = tx
        .rows(query(
            "SELECT doc FROM credentials WHERE client_id = ?1 ORDER BY seq",
            vec![client_id.into()],
        ))
        .await?
        .into_iter()
        .map(|mut r| r.doc(0))
        .collect::<StoreResult<Vec<Credential>>>()?;
    Ok(Some(ClientAggregate {
        client: row.doc(0)?,
        sealed_secret: row.opt_blob(1)?,
        credentials,
    }))
}

/// Which of a client's credentials a snapshot's reader decodes and keeps.
#[derive(Clone, Copy)]
pub(crate) enum Keep {
    /// All of them ([`Store::snapshot`](super::Store::snapshot)).
    Every,
    /// Those its authentication method uses ([`SnapshotItem::Client`](super::SnapshotItem::Client)):
    /// no other one authenticates anything. Decoding every stored credential (its PEM the
    /// largest part) was the largest part of the decoding thread's work at a million
    /// clients, where half of the bench's credentials are attached to nothing.
    Attached,
}

/// A client of a snapshot from its stored columns and its credentials' ids and documents,
/// in stored order; the credentials `keep` names are decoded, the others skipped.
pub(crate) fn snapshot_client<'a>(
    doc: &str,
    sealed_secret: Option<Vec<u8>>,
    credentials: impl IntoIterator<Item = StoreResult<(&'a str, &'a str)>>,
    keep: Keep,
) -> StoreResult<ClientAggregate> {
    let client: crate::domain::client::Client = super::sql::decode(doc, "doc")?;
    let mut kept = Vec::with_capacity(client.attached_credential_ids().len());
    for credential in credentials {
        let (id, doc) = credential?;
        if matches!(keep, Keep::Every) || client.uses_credential(id) {
            kept.push(super::sql::decode::<Credential>(doc, "doc")?);
        }
    }
    Ok(ClientAggregate {
        client,
        sealed_secret,
        credentials: kept,
    })
}

/// Every client with its credentials (two ordered passes).
pub(crate) async fn all_clients(tx: &mut impl Tx) -> StoreResult<Vec<ClientAggregate>> {
    let mut by_client: std::collections::HashMap<String, Vec<Credential>> = Default::default();
    for mut row in tx
        .rows(query(
            "SELECT client_id, doc FROM credentials ORDER BY seq",
            Vec::new(),
        ))
        .await?
    {
        by_client.entry(row.text(0)?).or_default().push(row.doc(1)?);
    }
    tx.rows(query(
        "SELECT doc, sealed_secret FROM clients ORDER BY seq",
        Vec::new(),
    ))
    .await?
    .into_iter()
    .map(|mut row| {
        let client: crate::domain::client::Client = row.doc(0)?;
        Ok(ClientAggregate {
            credentials: by_client.remove(&client.client_id).unwrap_or_default(),
            client,
            sealed_secret: row.opt_blob(1)?,
        })
    })
    .collect()
}

/// One credential of a client (see [`super::Store::credential`]).
pub(crate) async fn credential(
    tx: &mut impl Tx,
    client_id: &str,
    credential_id: &str,
) -> StoreResult<Option<Credential>> {
    let row = first(
        tx.rows(query(
            "SELECT doc FROM credentials WHERE id = ?1 AND client_id = ?2",
            vec![credential_id.into(), client_id.into()],
        ))
        .await?,
    );
    match row {
        Some(mut row) => row.doc(0).map(Some),
        None if exists(
            tx,
            "SELECT 1 FROM clients WHERE client_id = ?1",
            client_id,
            Lock::None,
        )
        .await? =>
        {
            Ok(None)
        }
        None => Err(StoreError::NotFound(Entity::Client)),
    }
}

/// Inserts a client with its credentials.
pub(crate) async fn insert_client(
    tx: &mut impl Tx,
    aggregate: &ClientAggregate,
) -> StoreResult<()> {
    tx.exec(
        stmt(
            "INSERT INTO clients (client_id, doc, sealed_secret) VALUES (?1, ?2, ?3)",
            vec![
                (&aggregate.client.client_id).into(),
                encode(&aggregate.client)?.into(),
                (&aggregate.sealed_secret).into(),
            ],
        )
        .on_conflict(StoreError::Conflict {
            entity: Entity::Client,
            message: "A client with this client_id already exists".into(),
        }),
    )
    .await?;
    for credential in &aggregate.credentials {
        insert_credential(tx, credential).await?;
    }
    tx.notify(Change::Client(aggregate.client.client_id.clone()))
        .await
}

async fn insert_credential(tx: &mut impl Tx, credential: &Credential) -> StoreResult<()> {
    tx.exec(
        stmt(
            "INSERT INTO credentials (id, client_id, doc) VALUES (?1, ?2, ?3)",
            vec![
                (&credential.id).into(),
                (&credential.client_id).into(),
                encode(credential)?.into(),
            ],
        )
        .on_conflict(StoreError::Conflict {
            entity: Entity::Credential,
            message: "A credential with this id already exists".into(),
        }),
    )
    .await?;
    Ok(())
}

/// A page of clients.
pub(crate) async fn list_clients<T: Tx>(
    tx: &mut T,
    filter: &ClientFilter,
    page: PageRequest,
) -> StoreResult<Page<ClientRow>> {
    list(
        tx,
        "clients",
        "doc, sealed_secret",
        filter.conditions::<T::Dialect>(),
        None,
        page,
        |r| {
            Ok(ClientRow {
                client: r.doc(1)?,
                sealed_secret: r.opt_blob(2)?,
            })
        },
    )
    .await
}

/// Changes a client aggregate: loads it locked, runs the mutation, writes the difference.
pub(crate) async fn update_client(
    tx: &mut impl Tx,
    client_id: &str,
    mutation: Mutation<'_, ClientAggregate>,
) -> StoreResult<ClientAggregate> {
    let before = client(tx, client_id, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(Entity::Client))?;
    let mut after = before.clone();
    mutation(&mut after)?;
    let diff = ClientDiff::between(&before, &after)?;
    if diff.client_changed {
        tx.exec(stmt(
            "UPDATE clients SET doc = ?1, sealed_secret = ?2 WHERE client_id = ?3",
            vec![
                encode(&after.client)?.into(),
                (&after.sealed_secret).into(),
                client_id.into(),
            ],
        ))
        .await?;
    }
    for id in &diff.deleted {
        tx.exec(stmt(
            "DELETE FROM credentials WHERE id = ?1",
            vec![(*id).into()],
        ))
        .await?;
    }
    for credential in &diff.updated {
        tx.exec(stmt(
            "UPDATE credentials SET doc = ?1 WHERE id = ?2",
            vec![encode(*credential)?.into(), (&credential.id).into()],
        ))
        .await?;
    }
    for credential in &diff.inserted {
        insert_credential(tx, credential).await?;
    }
    tx.notify(Change::Client(client_id.to_string())).await?;
    Ok(after)
}

/// Deletes a client or an API with `delete`, and so its client grants (the foreign keys
/// cascade), which `grants` selects by `key`: announces `change`, then each grant; the
/// grants' ids.
async fn delete_cascading(
    tx: &mut impl Tx,
    grants: &'static str,
    key: &str,
    delete: super::sql::Stmt,
    change: Change,
) -> StoreResult<Vec<String>> {
    let grants = ids(tx, grants, key).await?;
    tx.exec(delete).await?;
    tx.notify(change).await?;
    for id in &grants {
        tx.notify(Change::ClientGrant(id.clone())).await?;
    }
    Ok(grants)
}

/// Deletes a client with its credentials and grants; the deleted grant ids.
pub(crate) async fn delete_client(tx: &mut impl Tx, client_id: &str) -> StoreResult<Vec<String>> {
    if !exists(
        tx,
        "SELECT 1 FROM clients WHERE client_id = ?1",
        client_id,
        Lock::Update,
    )
    .await?
    {
        return Err(StoreError::NotFound(Entity::Client));
    }
    delete_cascading(
        tx,
        "SELECT id FROM client_grants WHERE client_id = ?1 ORDER BY seq",
        client_id,
        stmt(
            "DELETE FROM clients WHERE client_id = ?1",
            vec![client_id.into()],
        ),
        Change::Client(client_id.to_string()),
    )
    .await
}

// ----- resource servers -----

fn rs_change(rs: &ResourceServer) -> Change {
    Change::ResourceServer {
        id: rs.id.clone(),
        identifier: rs.identifier.clone(),
    }
}

/// `(seq, resource server)` rows of `resource_servers` with `rest` after its `FROM`.
async fn resource_servers(
    tx: &mut impl Tx,
    rest: &'static str,
    binds: Vec<Value>,
    lock: Lock,
) -> StoreResult<Vec<(i64, ResourceServer)>> {
    tx.rows(
        query(
            format!("SELECT seq, doc, sealed_signing_secret FROM resource_servers {rest}"),
            binds,
        )
        .lock(lock),
    )
    .await?
    .into_iter()
    .map(|mut r| {
        let mut rs: ResourceServer = r.doc(1)?;
        rs.sealed_signing_secret = r.opt_blob(2)?;
        Ok((r.int(0)?, rs))
    })
    .collect()
}

/// A resource server by id, or by identifier when `key` is not an id; with its `seq`.
pub(crate) async fn resource_server(
    tx: &mut impl Tx,
    key: &str,
    lock: Lock,
) -> StoreResult<Option<(i64, ResourceServer)>> {
    // An identifier may itself look like an id; an id match wins.
    let rest = if is_resource_server_id(key) {
        "WHERE id = ?1 OR identifier = ?1 ORDER BY id = ?1 DESC LIMIT 1"
    } else {
        "WHERE identifier = ?1"
    };
    Ok(first(
        resource_servers(tx, rest, vec![key.into()], lock).await?,
    ))
}

/// Inserts a resource server.
pub(crate) async fn insert_resource_server(
    tx: &mut impl Tx,
    rs: &ResourceServer,
) -> StoreResult<()> {
    tx.exec(
        stmt(
            "INSERT INTO resource_servers (id, identifier, doc, sealed_signing_secret) \
             VALUES (?1, ?2, ?3, ?4)",
            vec![
                (&rs.id).into(),
                (&rs.identifier).into(),
                encode(rs)?.into(),
                (&rs.sealed_signing_secret).into(),
            ],
        )
        .on_conflict(StoreError::Conflict {
            entity: Entity::ResourceServer,
            message: format!(
                "Resource server with identifier {} already exists.",
                rs.identifier
            ),
        }),
    )
    .await?;
    tx.notify(rs_change(rs)).await
}

/// A page of resource servers.
pub(crate) async fn list_resource_servers(
    tx: &mut impl Tx,
    page: PageRequest,
) -> StoreResult<Page<ResourceServer>> {
    list(
        tx,
        "resource_servers",
        "doc, sealed_signing_secret",
        Conditions::default(),
        None,
        page,
        |r| {
            let mut rs: ResourceServer = r.doc(1)?;
            rs.sealed_signing_secret = r.opt_blob(2)?;
            Ok(rs)
        },
    )
    .await
}

/// Changes a resource server (not its identifier).
pub(crate) async fn update_resource_server(
    tx: &mut impl Tx,
    key: &str,
    mutation: Mutation<'_, ResourceServer>,
) -> StoreResult<ResourceServer> {
    let (seq, mut rs) = resource_server(tx, key, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
    let identifier = rs.identifier.clone();
    mutation(&mut rs)?;
    if rs.identifier != identifier {
        return Err(StoreError::Internal("identifier cannot change".into()));
    }
    tx.exec(stmt(
        "UPDATE resource_servers SET doc = ?1, sealed_signing_secret = ?2 WHERE seq = ?3",
        vec![
            encode(&rs)?.into(),
            (&rs.sealed_signing_secret).into(),
            seq.into(),
        ],
    ))
    .await?;
    tx.notify(rs_change(&rs)).await?;
    Ok(rs)
}

/// Deletes a resource server the guard accepts, and its grants.
pub(crate) async fn delete_resource_server(
    tx: &mut impl Tx,
    key: &str,
    guard: Mutation<'_, ResourceServer>,
) -> StoreResult<(ResourceServer, Vec<String>)> {
    let (seq, mut rs) = resource_server(tx, key, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(Entity::ResourceServer))?;
    guard(&mut rs)?;
    let grants = delete_cascading(
        tx,
        "SELECT id FROM client_grants WHERE audience = ?1 ORDER BY seq",
        &rs.identifier,
        stmt(
            "DELETE FROM resource_servers WHERE seq = ?1",
            vec![seq.into()],
        ),
        rs_change(&rs),
    )
    .await?;
    Ok((rs, grants))
}

// ----- client grants -----

/// Inserts a grant whose client and API exist.
/// Many clients (with their credentials), then many grants, in one transaction: a loader's
/// write ([`Store::bulk_insert`]).
pub(crate) async fn insert_all(
    tx: &mut impl Tx,
    clients: &[ClientAggregate],
    grants: &[ClientGrant],
) -> StoreResult<()> {
    for aggregate in clients {
        insert_client(tx, aggregate).await?;
    }
    for grant in grants {
        insert_grant(tx, grant).await?;
    }
    Ok(())
}

pub(crate) async fn insert_grant(tx: &mut impl Tx, grant: &ClientGrant) -> StoreResult<()> {
    // Reported before the constraints would; the KEY SHARE locks keep the client and the API
    // from being deleted until commit.
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
        if !exists(tx, sql, key, Lock::KeyShare).await? {
            return Err(StoreError::NotFound(entity));
        }
    }
    tx.exec(
        stmt(
            "INSERT INTO client_grants (id, client_id, audience, subject_type, doc) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                (&grant.id).into(),
                (&grant.client_id).into(),
                (&grant.audience).into(),
                grant.subject_type().as_str().into(),
                encode(grant)?.into(),
            ],
        )
        .on_conflict(StoreError::Conflict {
            entity: Entity::ClientGrant,
            message: GRANT_CONFLICT.into(),
        })
        .on_missing(StoreError::NotFound(Entity::Client)),
    )
    .await?;
    tx.notify(Change::ClientGrant(grant.id.clone())).await
}

/// One grant, with its `seq`.
async fn grant(tx: &mut impl Tx, id: &str, lock: Lock) -> StoreResult<Option<ClientGrant>> {
    Ok(first(
        docs(
            tx,
            query(
                "SELECT seq, doc FROM client_grants WHERE id = ?1",
                vec![id.into()],
            )
            .lock(lock),
        )
        .await?,
    )
    .map(|(_, g)| g))
}

/// One grant.
pub(crate) async fn client_grant(tx: &mut impl Tx, id: &str) -> StoreResult<Option<ClientGrant>> {
    grant(tx, id, Lock::None).await
}

/// A page of grants.
pub(crate) async fn list_client_grants<T: Tx>(
    tx: &mut T,
    filter: &GrantFilter,
    page: PageRequest,
) -> StoreResult<Page<ClientGrant>> {
    list(
        tx,
        "client_grants",
        "doc",
        filter.conditions::<T::Dialect>(),
        None,
        page,
        |r| r.doc(1),
    )
    .await
}

/// Changes a grant.
pub(crate) async fn update_client_grant(
    tx: &mut impl Tx,
    id: &str,
    mutation: Mutation<'_, ClientGrant>,
) -> StoreResult<ClientGrant> {
    let mut g = grant(tx, id, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
    mutation(&mut g)?;
    tx.exec(stmt(
        "UPDATE client_grants SET doc = ?1 WHERE id = ?2",
        vec![encode(&g)?.into(), id.into()],
    ))
    .await?;
    tx.notify(Change::ClientGrant(id.to_string())).await?;
    Ok(g)
}

/// Deletes the row of `table` whose `id` is `id`; `NotFound(entity)` when there is none.
async fn delete_by_id(
    tx: &mut impl Tx,
    sql: &'static str,
    id: &str,
    entity: Entity,
) -> StoreResult<()> {
    if tx.exec(stmt(sql, vec![id.into()]).lookup()).await? == 0 {
        return Err(StoreError::NotFound(entity));
    }
    Ok(())
}

/// Deletes a grant.
pub(crate) async fn delete_client_grant(tx: &mut impl Tx, id: &str) -> StoreResult<()> {
    delete_by_id(
        tx,
        "DELETE FROM client_grants WHERE id = ?1",
        id,
        Entity::ClientGrant,
    )
    .await?;
    tx.notify(Change::ClientGrant(id.to_string())).await
}

// ----- organizations -----

fn org_name_conflict() -> StoreError {
    StoreError::Conflict {
        entity: Entity::Organization,
        message: ORGANIZATION_CONFLICT.into(),
    }
}

/// Inserts an organization.
pub(crate) async fn insert_organization(tx: &mut impl Tx, org: &Organization) -> StoreResult<()> {
    tx.storable(&org.name, "name")?;
    tx.exec(
        stmt(
            "INSERT INTO organizations (id, name, doc) VALUES (?1, ?2, ?3)",
            vec![(&org.id).into(), (&org.name).into(), encode(org)?.into()],
        )
        .on_conflict(org_name_conflict()),
    )
    .await?;
    tx.notify(Change::Organization(org.id.clone())).await
}

/// Organizations (one, or all) with their associated grant ids (one ordered pass over each
/// table).
pub(crate) async fn organizations(
    tx: &mut impl Tx,
    id: Option<&str>,
) -> StoreResult<Vec<OrganizationRecord>> {
    let (org_sql, assoc_sql, binds): (&'static str, &'static str, Vec<Value>) = match id {
        Some(id) => (
            "SELECT seq, doc FROM organizations WHERE id = ?1",
            "SELECT organization_id, grant_id FROM organization_client_grants \
             WHERE organization_id = ?1 ORDER BY seq",
            vec![id.into()],
        ),
        None => (
            "SELECT seq, doc FROM organizations ORDER BY seq",
            "SELECT organization_id, grant_id FROM organization_client_grants ORDER BY seq",
            Vec::new(),
        ),
    };
    let orgs: Vec<(i64, Organization)> = docs(tx, query(org_sql, binds.clone())).await?;
    let mut by_org: std::collections::HashMap<String, Vec<String>> = Default::default();
    for mut row in tx.rows(query(assoc_sql, binds)).await? {
        by_org.entry(row.text(0)?).or_default().push(row.text(1)?);
    }
    Ok(orgs
        .into_iter()
        .map(|(_, organization)| OrganizationRecord {
            grant_ids: by_org.remove(&organization.id).unwrap_or_default(),
            organization,
        })
        .collect())
}

/// An organization by name.
pub(crate) async fn organization_by_name(
    tx: &mut impl Tx,
    name: &str,
) -> StoreResult<Option<Organization>> {
    Ok(first(
        docs(
            tx,
            query(
                "SELECT seq, doc FROM organizations WHERE name = ?1",
                vec![name.into()],
            ),
        )
        .await?,
    )
    .map(|(_, org)| org))
}

/// A page of organizations, in the filter's order.
pub(crate) async fn list_organizations<T: Tx>(
    tx: &mut T,
    filter: &OrganizationFilter,
    page: PageRequest,
) -> StoreResult<Page<Organization>> {
    let order = filter
        .sort
        .filter(|s| !s.is_creation_order())
        .map(|s| s.order_by(<T::Dialect as SqlDialect>::doc_text));
    list(
        tx,
        "organizations",
        "doc",
        filter.conditions::<T::Dialect>(),
        order,
        page,
        |r| r.doc(1),
    )
    .await
}

/// Changes an organization (not its id).
pub(crate) async fn update_organization(
    tx: &mut impl Tx,
    id: &str,
    mutation: Mutation<'_, Organization>,
) -> StoreResult<Organization> {
    let (_, mut org) = first(
        docs::<Organization>(
            tx,
            query(
                "SELECT seq, doc FROM organizations WHERE id = ?1",
                vec![id.into()],
            )
            .lock(Lock::Update),
        )
        .await?,
    )
    .ok_or(StoreError::NotFound(Entity::Organization))?;
    mutation(&mut org)?;
    if org.id != id {
        return Err(StoreError::Internal("id cannot change".into()));
    }
    tx.storable(&org.name, "name")?;
    tx.exec(
        stmt(
            "UPDATE organizations SET name = ?1, doc = ?2 WHERE id = ?3",
            vec![(&org.name).into(), encode(&org)?.into(), id.into()],
        )
        .on_conflict(org_name_conflict()),
    )
    .await?;
    tx.notify(Change::Organization(id.to_string())).await?;
    Ok(org)
}

/// Deletes an organization (its associations cascade).
pub(crate) async fn delete_organization(tx: &mut impl Tx, id: &str) -> StoreResult<()> {
    delete_by_id(
        tx,
        "DELETE FROM organizations WHERE id = ?1",
        id,
        Entity::Organization,
    )
    .await?;
    tx.notify(Change::Organization(id.to_string())).await
}

/// Locks an organization for a change of its associations; `NotFound` when there is none.
async fn lock_organization(tx: &mut impl Tx, org_id: &str) -> StoreResult<()> {
    // The organization's row lock makes the cap check serial across nodes.
    if !exists(
        tx,
        "SELECT 1 FROM organizations WHERE id = ?1",
        org_id,
        Lock::Update,
    )
    .await?
    {
        return Err(StoreError::NotFound(Entity::Organization));
    }
    Ok(())
}

/// Associates a grant with an organization, within the cap.
pub(crate) async fn associate_client_grant(
    tx: &mut impl Tx,
    org_id: &str,
    grant_id: &str,
) -> StoreResult<ClientGrant> {
    lock_organization(tx, org_id).await?;
    let g = grant(tx, grant_id, Lock::KeyShare)
        .await?
        .ok_or(StoreError::NotFound(Entity::ClientGrant))?;
    let associated = tx
        .rows(query(
            "SELECT 1 FROM organization_client_grants WHERE organization_id = ?1 AND grant_id = ?2",
            vec![org_id.into(), grant_id.into()],
        ))
        .await?;
    if !associated.is_empty() {
        return Err(StoreError::Conflict {
            entity: Entity::Organization,
            message: ASSOCIATION_CONFLICT.into(),
        });
    }
    let count = match first(
        tx.rows(query(
            "SELECT COUNT(*) FROM organization_client_grants WHERE organization_id = ?1",
            vec![org_id.into()],
        ))
        .await?,
    ) {
        Some(mut r) => r.int(0)?,
        None => 0,
    };
    if usize::try_from(count).unwrap_or(0) >= MAX_GRANTS_PER_ORGANIZATION {
        return Err(StoreError::Conflict {
            entity: Entity::Organization,
            message: ASSOCIATION_QUOTA.into(),
        });
    }
    tx.exec(stmt(
        "INSERT INTO organization_client_grants (organization_id, grant_id) VALUES (?1, ?2)",
        vec![org_id.into(), grant_id.into()],
    ))
    .await?;
    tx.notify(Change::Organization(org_id.to_string())).await?;
    Ok(g)
}

/// Removes an association (nothing when there is none).
pub(crate) async fn dissociate_client_grant(
    tx: &mut impl Tx,
    org_id: &str,
    grant_id: &str,
) -> StoreResult<()> {
    lock_organization(tx, org_id).await?;
    tx.exec(
        stmt(
            "DELETE FROM organization_client_grants WHERE organization_id = ?1 AND grant_id = ?2",
            vec![org_id.into(), grant_id.into()],
        )
        .lookup(),
    )
    .await?;
    tx.notify(Change::Organization(org_id.to_string())).await
}

// ----- signing keys -----

async fn insert_signing_key(tx: &mut impl Tx, key: &SigningKeyRecord) -> StoreResult<()> {
    tx.exec(stmt(
        "INSERT INTO signing_keys (kid, sealed_pkcs8, doc) VALUES (?1, ?2, ?3)",
        vec![
            (&key.kid).into(),
            (&key.sealed_pkcs8).into(),
            encode(key)?.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// All signing keys, oldest first.
pub(crate) async fn signing_keys(tx: &mut impl Tx) -> StoreResult<Vec<SigningKeyRecord>> {
    tx.rows(query(
        "SELECT sealed_pkcs8, doc FROM signing_keys ORDER BY seq",
        Vec::new(),
    ))
    .await?
    .into_iter()
    .map(|mut r| {
        let mut key: SigningKeyRecord = r.doc(1)?;
        key.sealed_pkcs8 = r.blob(0)?;
        Ok(key)
    })
    .collect()
}

/// Changes the set of signing keys (never deleting one).
pub(crate) async fn update_signing_keys(
    tx: &mut impl Tx,
    mutation: Mutation<'_, Vec<SigningKeyRecord>>,
) -> StoreResult<Vec<SigningKeyRecord>> {
    // The keys are one aggregate: a rotation on two nodes at once must not promote the same
    // `next` key twice. Locking the rows is not enough while the table could be empty, so the
    // whole table is locked against other writers.
    tx.lock_table("signing_keys").await?;
    let before = signing_keys(tx).await?;
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
            None => insert_signing_key(tx, key).await?,
            Some(old) if old != key => {
                tx.exec(stmt(
                    "UPDATE signing_keys SET doc = ?1 WHERE kid = ?2",
                    vec![encode(key)?.into(), (&key.kid).into()],
                ))
                .await?;
            }
            Some(_) => {}
        }
    }
    tx.notify(Change::SigningKeys).await?;
    Ok(after)
}

// ----- tenant settings -----

/// The tenant's settings.
pub(crate) async fn tenant_settings(tx: &mut impl Tx) -> StoreResult<TenantSettings> {
    let doc = first(
        tx.rows(query(
            "SELECT doc FROM tenant_settings WHERE id = 1",
            Vec::new(),
        ))
        .await?,
    )
    .map(|mut r| r.text(0))
    .transpose()?;
    Ok(TenantSettings::from_stored(doc.as_deref()))
}

/// Changes the tenant's settings (one change at a time).
pub(crate) async fn update_tenant_settings(
    tx: &mut impl Tx,
    mutation: Mutation<'_, TenantSettings>,
) -> StoreResult<TenantSettings> {
    tx.exec(stmt(
        "INSERT INTO tenant_settings (id, doc) VALUES (1, '{}') ON CONFLICT (id) DO NOTHING",
        Vec::new(),
    ))
    .await?;
    let doc = first(
        tx.rows(
            query("SELECT doc FROM tenant_settings WHERE id = 1", Vec::new()).lock(Lock::Update),
        )
        .await?,
    )
    .map(|mut r| r.text(0))
    .transpose()?;
    let mut settings = TenantSettings::from_stored(doc.as_deref());
    mutation(&mut settings)?;
    let stored = settings.to_stored();
    tx.storable(&stored, "tenant settings")?;
    tx.exec(stmt(
        "UPDATE tenant_settings SET doc = ?1 WHERE id = 1",
        vec![stored.into()],
    ))
    .await?;
    tx.notify(Change::TenantSettings).await?;
    Ok(settings)
}

// ----- expiry notices -----

/// Claims an expiry notice (see [`super::Store::claim_expiry_notice`]).
pub(crate) async fn claim_expiry_notice(
    tx: &mut impl Tx,
    notice: &ExpiryNotice,
) -> StoreResult<bool> {
    // One statement: a concurrent claim of the same notice on another node waits for the
    // first to commit, then sees its row and its expiry (not earlier: no update).
    let claimed = tx
        .exec(
            stmt(
                "INSERT INTO credential_expiry_notices
                     (credential_id, threshold_s, expires_at_ms, sent_at_ms)
                 SELECT ?1, ?2, ?3, ?4
                 WHERE EXISTS (SELECT 1 FROM credentials WHERE id = ?1)
                 ON CONFLICT (credential_id, threshold_s) DO UPDATE
                 SET expires_at_ms = excluded.expires_at_ms, sent_at_ms = excluded.sent_at_ms
                 WHERE credential_expiry_notices.expires_at_ms < excluded.expires_at_ms",
                vec![
                    (&notice.credential_id).into(),
                    notice.threshold_s.into(),
                    notice.expires_at_ms.into(),
                    notice.sent_at_ms.into(),
                ],
            )
            .lookup(),
        )
        .await?;
    Ok(claimed == 1)
}

// ----- log streams -----

const LOG_STREAM: &str =
    "SELECT doc, sealed_authorization, cursor, failing_since_ms FROM log_streams";

/// The log streams of a query of `LOG_STREAM` with `rest`.
async fn log_stream_rows(
    tx: &mut impl Tx,
    rest: &str,
    binds: Vec<Value>,
    lock: Lock,
) -> StoreResult<Vec<LogStreamRecord>> {
    tx.rows(query(format!("{LOG_STREAM} {rest}"), binds).lock(lock))
        .await?
        .into_iter()
        .map(|mut r| {
            Ok(LogStreamRecord {
                stream: r.doc(0)?,
                sealed_authorization: r.opt_blob(1)?,
                cursor: r.int(2)?,
                failing_since_ms: r.opt_int(3)?,
            })
        })
        .collect()
}

/// One log stream.
pub(crate) async fn log_stream(
    tx: &mut impl Tx,
    id: &str,
    lock: Lock,
) -> StoreResult<Option<LogStreamRecord>> {
    Ok(first(
        log_stream_rows(tx, "WHERE id = ?1", vec![id.into()], lock).await?,
    ))
}

/// Every log stream, oldest first.
pub(crate) async fn log_streams(tx: &mut impl Tx) -> StoreResult<Vec<LogStreamRecord>> {
    log_stream_rows(tx, "ORDER BY seq", Vec::new(), Lock::None).await
}

/// Creates a log stream whose cursor is the last event dated before `start_ms` (the last of
/// all when `None`).
pub(crate) async fn insert_log_stream(
    tx: &mut impl Tx,
    stream: &LogStream,
    sealed_authorization: Option<&[u8]>,
    start_ms: Option<i64>,
) -> StoreResult<()> {
    let q = match start_ms {
        None => query("SELECT COALESCE(MAX(seq), 0) FROM logs", Vec::new()),
        Some(start) => query(
            "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE date_ms < ?1",
            vec![start.into()],
        ),
    };
    let cursor = match first(tx.rows(q).await?) {
        Some(mut r) => r.int(0)?,
        None => 0,
    };
    tx.exec(stmt(
        "INSERT INTO log_streams (id, doc, sealed_authorization, cursor) VALUES (?1, ?2, ?3, ?4)",
        vec![
            (&stream.id).into(),
            encode(stream)?.into(),
            sealed_authorization.into(),
            cursor.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Changes a log stream's document, sealed authorization and failure time.
pub(crate) async fn update_log_stream(
    tx: &mut impl Tx,
    id: &str,
    mutation: Mutation<'_, LogStreamRecord>,
) -> StoreResult<LogStreamRecord> {
    let mut record = log_stream(tx, id, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(Entity::LogStream))?;
    mutation(&mut record)?;
    if record.stream.id != id {
        return Err(StoreError::Internal("id cannot change".into()));
    }
    tx.exec(stmt(
        "UPDATE log_streams SET doc = ?1, sealed_authorization = ?2, failing_since_ms = ?3 \
         WHERE id = ?4",
        vec![
            encode(&record.stream)?.into(),
            (&record.sealed_authorization).into(),
            record.failing_since_ms.into(),
            id.into(),
        ],
    ))
    .await?;
    Ok(record)
}

/// Deletes a log stream.
pub(crate) async fn delete_log_stream(tx: &mut impl Tx, id: &str) -> StoreResult<()> {
    delete_by_id(
        tx,
        "DELETE FROM log_streams WHERE id = ?1",
        id,
        Entity::LogStream,
    )
    .await
}

/// Takes or renews a stream's delivery lease (see [`super::Store::lease_log_stream`]).
pub(crate) async fn lease_log_stream(
    tx: &mut impl Tx,
    id: &str,
    owner: &str,
    now_ms: i64,
    until_ms: i64,
) -> StoreResult<Option<LogStreamRecord>> {
    // The row lock of the UPDATE makes two nodes' takes serial, and the second sees the
    // first's lease.
    let taken = tx
        .exec(
            stmt(
                "UPDATE log_streams SET lease_owner = ?1, lease_until_ms = ?2
                 WHERE id = ?3 AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_until_ms < ?4)",
                vec![owner.into(), until_ms.into(), id.into(), now_ms.into()],
            )
            .lookup(),
        )
        .await?;
    if taken == 0 {
        return Ok(None);
    }
    log_stream(tx, id, Lock::None).await
}

/// Records a delivery by the lease holder (see [`super::Store::record_delivery`]).
pub(crate) async fn record_delivery<T: Tx>(
    tx: &mut T,
    id: &str,
    owner: &str,
    outcome: Delivery,
) -> StoreResult<bool> {
    let s = match outcome {
        Delivery::Delivered(cursor) => stmt(
            format!(
                "UPDATE log_streams SET cursor = {}, failing_since_ms = NULL
                 WHERE id = ?2 AND lease_owner = ?3",
                T::Dialect::greatest("cursor", "?1")
            ),
            vec![cursor.into(), id.into(), owner.into()],
        ),
        Delivery::Failed(now) => stmt(
            "UPDATE log_streams SET failing_since_ms = COALESCE(failing_since_ms, ?1)
             WHERE id = ?2 AND lease_owner = ?3",
            vec![now.into(), id.into(), owner.into()],
        ),
        Delivery::Release => stmt(
            "UPDATE log_streams SET lease_owner = NULL, lease_until_ms = 0
             WHERE id = ?1 AND lease_owner = ?2",
            vec![id.into(), owner.into()],
        ),
    };
    Ok(tx.exec(s.lookup()).await? > 0)
}

// ----- logs -----

/// Up to `take` log events after sequence number `after`.
pub(crate) async fn logs(
    tx: &mut impl Tx,
    after: i64,
    take: u64,
) -> StoreResult<Vec<super::LogRow>> {
    log_rows(
        tx,
        query(
            "SELECT seq, doc FROM logs WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            vec![after.into(), clamp(take).into()],
        ),
    )
    .await
}

/// One log event.
pub(crate) async fn log(tx: &mut impl Tx, seq: i64) -> StoreResult<Option<super::LogRow>> {
    Ok(first(
        log_rows(
            tx,
            query("SELECT seq, doc FROM logs WHERE seq = ?1", vec![seq.into()]),
        )
        .await?,
    ))
}

async fn log_rows(tx: &mut impl Tx, q: super::sql::Query) -> StoreResult<Vec<super::LogRow>> {
    tx.rows(q)
        .await?
        .into_iter()
        .map(|mut r| {
            Ok(super::LogRow {
                seq: r.int(0)?,
                doc: r.text(1)?,
            })
        })
        .collect()
}

/// A page of a log search, and the number of matches when asked for.
pub(crate) async fn search_logs<T: Tx>(
    tx: &mut T,
    search: &super::LogSearch,
) -> StoreResult<(Vec<super::LogRow>, Option<u64>)> {
    let mut binds = Vec::new();
    let (filter, order) = super::logs::search_sql::<T::Dialect>(search, &mut binds);
    let binds: Vec<Value> = binds
        .into_iter()
        .map(|v| match v {
            super::logs::SqlValue::Text(t) => Value::from(tx.column_text(t)),
            super::logs::SqlValue::Int(n) => Value::from(n),
        })
        .collect();
    let n = binds.len();
    let mut all = binds.clone();
    all.extend([clamp(search.limit), clamp(search.offset)].map(Value::from));
    let rows = log_rows(
        tx,
        query(
            format!(
                "SELECT seq, doc FROM logs{filter}{order} LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            ),
            all,
        ),
    )
    .await?;
    let total = if search.totals {
        let counted = tx
            .rows(query(format!("SELECT COUNT(*) FROM logs{filter}"), binds))
            .await?;
        let n = match first(counted) {
            Some(mut r) => r.int(0)?,
            None => 0,
        };
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    Ok((rows, total))
}

/// Deletes up to `chunk` of the oldest log events dated before `before_ms`.
pub(crate) async fn purge_logs(tx: &mut impl Tx, before_ms: i64, chunk: u64) -> StoreResult<u64> {
    tx.exec(stmt(
        "DELETE FROM logs WHERE seq IN (
             SELECT seq FROM logs WHERE date_ms < ?1 ORDER BY seq LIMIT ?2)",
        vec![before_ms.into(), clamp(chunk).into()],
    ))
    .await
}

// ----- token quotas -----

/// Forgets the counts of windows that started before `before`.
pub(crate) async fn purge_token_quota_usage(tx: &mut impl Tx, before: i64) -> StoreResult<u64> {
    tx.exec(stmt(
        "DELETE FROM token_quota_usage WHERE window_start < ?1",
        vec![before.into()],
    ))
    .await
}

/// A backend's `impl Store for $ty`: its own methods (`$own`), and every method that only
/// runs a shared operation, each with the backend's `write_tx!` (in a write transaction) or
/// `read_tx!` (on a read connection, after taking the listed arguments as owned values).
macro_rules! impl_store {
    ($ty:ty; $($own:tt)*) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $ty {
            $($own)*

            async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
                read_tx!(self, [key], |tx| $crate::store::ops::setting(tx, key))
            }

            async fn init_setting(&self, key: &str, value: &str) -> StoreResult<String> {
                write_tx!(self, |tx| $crate::store::ops::init_setting(tx, key, value))
            }

            async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::put_setting(tx, key, value))
            }

            async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool> {
                write_tx!(self, |tx| $crate::store::ops::bootstrap(tx, data))
            }

            async fn insert_client(&self, aggregate: &ClientAggregate) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::insert_client(tx, aggregate))
            }

            async fn credential(
                &self,
                client_id: &str,
                credential_id: &str,
            ) -> StoreResult<Option<Credential>> {
                // The Management API's GET of one credential.
                read_tx!(self, [client_id, credential_id], |tx| $crate::store::ops::credential(
                    tx,
                    client_id,
                    credential_id
                ))
            }

            async fn list_clients(
                &self,
                filter: &ClientFilter,
                page: PageRequest,
            ) -> StoreResult<Page<ClientRow>> {
                read_tx!(self, [filter], |tx| $crate::store::ops::list_clients(tx, filter, page))
            }

            async fn update_client(
                &self,
                client_id: &str,
                mutation: Mutation<'_, ClientAggregate>,
            ) -> StoreResult<ClientAggregate> {
                write_tx!(self, |tx| $crate::store::ops::update_client(tx, client_id, &mut *mutation))
            }

            async fn delete_client(&self, client_id: &str) -> StoreResult<Vec<String>> {
                write_tx!(self, |tx| $crate::store::ops::delete_client(tx, client_id))
            }

            async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::insert_resource_server(tx, rs))
            }

            async fn resource_server(&self, key: &str) -> StoreResult<Option<ResourceServer>> {
                read_tx!(self, [key], |tx| async {
                    Ok($crate::store::ops::resource_server(tx, key, $crate::store::sql::Lock::None)
                        .await?
                        .map(|(_, rs)| rs))
                })
            }

            async fn list_resource_servers(&self, page: PageRequest) -> StoreResult<Page<ResourceServer>> {
                read_tx!(self, [], |tx| $crate::store::ops::list_resource_servers(tx, page))
            }

            async fn update_resource_server(
                &self,
                key: &str,
                mutation: Mutation<'_, ResourceServer>,
            ) -> StoreResult<ResourceServer> {
                write_tx!(self, |tx| $crate::store::ops::update_resource_server(tx, key, &mut *mutation))
            }

            async fn delete_resource_server(
                &self,
                key: &str,
                guard: Mutation<'_, ResourceServer>,
            ) -> StoreResult<(ResourceServer, Vec<String>)> {
                write_tx!(self, |tx| $crate::store::ops::delete_resource_server(tx, key, &mut *guard))
            }

            async fn insert_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::insert_grant(tx, grant))
            }

            async fn bulk_insert(
                &self,
                clients: &[ClientAggregate],
                grants: &[ClientGrant],
            ) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::insert_all(tx, clients, grants))?;
                $crate::store::Store::durable(self).await
            }

            async fn client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>> {
                read_tx!(self, [id], |tx| $crate::store::ops::client_grant(tx, id))
            }

            async fn list_client_grants(
                &self,
                filter: &GrantFilter,
                page: PageRequest,
            ) -> StoreResult<Page<ClientGrant>> {
                read_tx!(self, [filter], |tx| $crate::store::ops::list_client_grants(
                    tx, filter, page
                ))
            }

            async fn update_client_grant(
                &self,
                id: &str,
                mutation: Mutation<'_, ClientGrant>,
            ) -> StoreResult<ClientGrant> {
                write_tx!(self, |tx| $crate::store::ops::update_client_grant(tx, id, &mut *mutation))
            }

            async fn delete_client_grant(&self, id: &str) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::delete_client_grant(tx, id))
            }

            async fn insert_organization(&self, org: &Organization) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::insert_organization(tx, org))
            }

            async fn organization(&self, id: &str) -> StoreResult<Option<OrganizationRecord>> {
                read_tx!(self, [id], |tx| async {
                    Ok($crate::store::ops::organizations(tx, Some(id)).await?.pop())
                })
            }

            async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>> {
                read_tx!(self, [name], |tx| $crate::store::ops::organization_by_name(tx, name))
            }

            async fn list_organizations(
                &self,
                filter: &OrganizationFilter,
                page: PageRequest,
            ) -> StoreResult<Page<Organization>> {
                read_tx!(self, [filter], |tx| $crate::store::ops::list_organizations(
                    tx, filter, page
                ))
            }

            async fn update_organization(
                &self,
                id: &str,
                mutation: Mutation<'_, Organization>,
            ) -> StoreResult<Organization> {
                write_tx!(self, |tx| $crate::store::ops::update_organization(tx, id, &mut *mutation))
            }

            async fn delete_organization(&self, id: &str) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::delete_organization(tx, id))
            }

            async fn associate_client_grant(
                &self,
                org_id: &str,
                grant_id: &str,
            ) -> StoreResult<ClientGrant> {
                write_tx!(self, |tx| $crate::store::ops::associate_client_grant(tx, org_id, grant_id))
            }

            async fn dissociate_client_grant(&self, org_id: &str, grant_id: &str) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::dissociate_client_grant(
                    tx, org_id, grant_id
                ))
            }

            async fn claim_expiry_notice(&self, notice: &ExpiryNotice) -> StoreResult<bool> {
                write_tx!(self, |tx| $crate::store::ops::claim_expiry_notice(tx, notice))
            }

            async fn log(&self, seq: i64) -> StoreResult<Option<LogRow>> {
                read_tx!(self, [], |tx| $crate::store::ops::log(tx, seq))
            }

            async fn logs_after(&self, after: i64, take: u64) -> StoreResult<Vec<LogRow>> {
                read_tx!(self, [], |tx| $crate::store::ops::logs(tx, after, take))
            }

            async fn search_logs(&self, search: &LogSearch) -> StoreResult<(Vec<LogRow>, Option<u64>)> {
                read_tx!(self, [search], |tx| $crate::store::ops::search_logs(tx, search))
            }

            async fn purge_logs(&self, before_ms: i64, chunk: u64) -> StoreResult<u64> {
                write_tx!(self, |tx| $crate::store::ops::purge_logs(tx, before_ms, chunk))
            }

            async fn insert_log_stream(
                &self,
                stream: &LogStream,
                sealed_authorization: Option<&[u8]>,
                start_ms: Option<i64>,
            ) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::insert_log_stream(
                    tx,
                    stream,
                    sealed_authorization,
                    start_ms
                ))
            }

            async fn log_stream(&self, id: &str) -> StoreResult<Option<LogStreamRecord>> {
                read_tx!(self, [id], |tx| $crate::store::ops::log_stream(tx, id, $crate::store::sql::Lock::None))
            }

            async fn log_streams(&self) -> StoreResult<Vec<LogStreamRecord>> {
                read_tx!(self, [], |tx| $crate::store::ops::log_streams(tx))
            }

            async fn update_log_stream(
                &self,
                id: &str,
                mutation: Mutation<'_, LogStreamRecord>,
            ) -> StoreResult<LogStreamRecord> {
                write_tx!(self, |tx| $crate::store::ops::update_log_stream(tx, id, &mut *mutation))
            }

            async fn delete_log_stream(&self, id: &str) -> StoreResult<()> {
                write_tx!(self, |tx| $crate::store::ops::delete_log_stream(tx, id))
            }

            async fn lease_log_stream(
                &self,
                id: &str,
                owner: &str,
                now_ms: i64,
                until_ms: i64,
            ) -> StoreResult<Option<LogStreamRecord>> {
                write_tx!(self, |tx| $crate::store::ops::lease_log_stream(
                    tx, id, owner, now_ms, until_ms
                ))
            }

            async fn record_delivery(&self, id: &str, owner: &str, outcome: Delivery) -> StoreResult<bool> {
                write_tx!(self, |tx| $crate::store::ops::record_delivery(tx, id, owner, outcome))
            }

            async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
                read_tx!(self, [], |tx| $crate::store::ops::signing_keys(tx))
            }

            async fn tenant_settings(&self) -> StoreResult<TenantSettings> {
                read_tx!(self, [], |tx| $crate::store::ops::tenant_settings(tx))
            }

            async fn update_tenant_settings(
                &self,
                mutation: Mutation<'_, TenantSettings>,
            ) -> StoreResult<TenantSettings> {
                write_tx!(self, |tx| $crate::store::ops::update_tenant_settings(tx, &mut *mutation))
            }

            async fn purge_token_quota_usage(&self, before: i64) -> StoreResult<u64> {
                write_tx!(self, |tx| $crate::store::ops::purge_token_quota_usage(tx, before))
            }

            async fn update_signing_keys(
                &self,
                mutation: Mutation<'_, Vec<SigningKeyRecord>>,
            ) -> StoreResult<Vec<SigningKeyRecord>> {
                write_tx!(self, |tx| $crate::store::ops::update_signing_keys(tx, &mut *mutation))
            }
        }
    };
}
pub(super) use impl_store;

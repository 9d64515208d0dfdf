//! The store test suite: one set of tests, run against every backend. Each test takes a
//! [`Fixture`] (a fresh, empty store and the means to open a second "node" on the same
//! database); `store_suite!` instantiates every test once for SQLite and once for
//! PostgreSQL. The PostgreSQL instances need the cluster named by `CLAVIS_TEST_POSTGRES_URL`
//! and are `#[ignore]`d otherwise-run them with `scripts/test-postgres`; they fail, never
//! pass, when the variable is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::postgres as pg;

use std::sync::Arc;
use std::time::Duration;

use clavis::config::DatabaseOptions;
use clavis::domain::DomainError;
use clavis::domain::client::{
    AuthMethodKind, AuthMethods, Client, ClientAggregate, CredentialLimits, JwtConfiguration,
};
use clavis::domain::client_grant::{ClientGrant, SubjectType};
use clavis::domain::credential::{Credential, CredentialType};
use clavis::domain::organization::Organization;
use clavis::domain::resource_server::ResourceServer;
use clavis::domain::time::Timestamp;
use clavis::startup::open_store;
use clavis::store::{
    Bootstrap, Change, ClientFilter, Delivery, Entity, ExpiryNotice, GrantFilter, JtiRecord,
    KeyState, LogSearch, NewLog, OrganizationFilter, OrganizationRecord, PageRequest,
    SigningKeyRecord, Snapshot, SnapshotItem, SnapshotSink, Store, StoreError, StoreResult,
};
use serde_json::{Map, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh store, and how to open another connection pool ("node") on the same database.
struct Fixture {
    backend: Backend,
    url: String,
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("clavis.db").display());
                (url, Some(dir))
            }
            Backend::Postgres => (pg::fresh_database(&pg::require_base_url()).await, None),
        };
        let store = open(&url).await;
        Self {
            backend,
            url,
            store,
            _dir: dir,
        }
    }

    /// Another node on the same database.
    async fn node(&self) -> Arc<dyn Store> {
        open(&self.url).await
    }
}

/// Offset paging.
fn offset(page: u64, per_page: u64) -> PageRequest {
    PageRequest::Offset { page, per_page }
}

/// The operation was refused as `NotFound(entity)`.
fn not_found<T: std::fmt::Debug>(result: StoreResult<T>, entity: Entity) {
    match result {
        Err(StoreError::NotFound(e)) if e == entity => {}
        other => panic!("expected NotFound({entity:?}), got {other:?}"),
    }
}

async fn open(url: &str) -> Arc<dyn Store> {
    open_store(url, &DatabaseOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e:#}"))
}

macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Fixture::new(super::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs PostgreSQL: scripts/test-postgres"]
                async fn $test() {
                    super::$test(super::Fixture::new(super::Backend::Postgres).await).await;
                }
            )*
        }
    };
}

store_suite!(
    expiry_notices_are_claimed_once_re_armed_later_and_go_with_their_credential,
    settings_are_written_once,
    bootstrap_happens_once,
    client_round_trips_and_conflicts,
    clients_page_by_offset_and_checkpoint,
    clients_page_by_offset_from_any_position,
    failed_mutation_writes_nothing,
    deleting_a_client_cascades,
    a_streamed_snapshot_hands_over_what_a_snapshot_holds,
    a_streamed_snapshot_is_one_moment_while_writes_land,
    resource_servers_round_trip_and_conflict,
    resource_server_signing_secrets_round_trip,
    deleting_a_resource_server_cascades_and_respects_its_guard,
    client_grants_check_references_and_uniqueness,
    client_grants_filter_and_page,
    jti_records_are_single_use,
    purge_forgets_many_expired_records_and_keeps_the_rest,
    written_jtis_come_back_in_order_until_purged,
    signing_keys_change_as_a_set,
    credential_cap_holds_across_nodes,
    attach_and_delete_race_leaves_no_deleted_credential_attached,
    concurrent_jti_records_across_nodes_accept_once,
    writes_are_announced_to_other_nodes,
    odd_keys_are_simply_not_found,
    organizations_and_their_grants,
    logs_append_search_and_purge,
    log_ids_become_visible_in_order_across_nodes,
    log_stream_leases_let_one_node_deliver,
    token_quota_reservations_never_exceed_the_quota,
    tenant_settings_are_one_document_announced_to_other_nodes,
    a_bulk_insert_writes_everything_or_nothing,
);

// ----- builders -----

const LIMITS: CredentialLimits = CredentialLimits {
    per_client: 4,
    per_method: 2,
};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 12)
    )
}

fn client(name: &str) -> ClientAggregate {
    let now = Timestamp::now();
    let mut metadata = Map::new();
    // Key order must survive the round trip (the API returns documents as stored).
    metadata.insert("zeta".into(), json!("1"));
    metadata.insert("alpha".into(), json!("2"));
    ClientAggregate {
        client: Client {
            client_id: clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 32),
            name: name.into(),
            description: Some("a client".into()),
            app_type: Some("non_interactive".into()),
            is_first_party: true,
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: Some("client_secret_post".into()),
            client_authentication_methods: None,
            jwt_configuration: JwtConfiguration::default(),
            client_metadata: metadata,
            extra: Map::new(),
            created_at: now,
            updated_at: now,
        },
        sealed_secret: Some(vec![1, 2, 3, 0, 255]),
        credentials: Vec::new(),
    }
}

fn credential(client_id: &str) -> Credential {
    let now = Timestamp::now();
    Credential {
        id: unique("cred_"),
        client_id: client_id.into(),
        credential_type: CredentialType::PublicKey,
        name: "key".into(),
        kid: Some(unique("kid")),
        alg: None,
        subject_dn: None,
        thumbprint_sha256: None,
        pem: Some("-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n".into()),
        key_thumbprint: Some(unique("tp")),
        cert_not_after: None,
        created_at: now,
        updated_at: now,
        expires_at: None,
    }
}

fn resource_server(identifier: &str) -> ResourceServer {
    let now = Timestamp::now();
    ResourceServer {
        id: clavis_crypto::random::string(clavis_crypto::random::HEX_LOWER, 24),
        name: "API".into(),
        identifier: identifier.into(),
        scopes: Vec::new(),
        signing_alg: "RS256".into(),
        sealed_signing_secret: None,
        token_lifetime: 86400,
        allow_offline_access: false,
        skip_consent_for_verifiable_first_party_clients: false,
        is_system: false,
        extra: Map::new(),
        created_at: now,
        updated_at: now,
    }
}

fn grant(client_id: &str, audience: &str) -> ClientGrant {
    let now = Timestamp::now();
    ClientGrant {
        id: unique("cgr_"),
        client_id: client_id.into(),
        audience: audience.into(),
        scope: vec!["read:things".into()],
        extra: Map::new(),
        created_at: now,
        updated_at: now,
    }
}

fn signing_key(state: KeyState) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: unique("kid"),
        sealed_pkcs8: vec![9, 8, 7, 6],
        cert_pem: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n".into(),
        state,
        created_at: Timestamp::now(),
        current_since: None,
        current_until: None,
        revoked_at: None,
    }
}

fn rule(message: &str) -> DomainError {
    DomainError::rule("invalid_body", message.to_string())
}

async fn client_with_credentials(store: &dyn Store, n: usize) -> ClientAggregate {
    let mut aggregate = client("with credentials");
    for _ in 0..n {
        let c = credential(&aggregate.client.client_id);
        aggregate.credentials.push(c);
    }
    store.insert_client(&aggregate).await.unwrap();
    aggregate
}

/// Makes `aggregate`'s first `n` credentials the ones its `private_key_jwt` method uses.
fn attach_first(aggregate: &mut ClientAggregate, n: usize) {
    aggregate.client.token_endpoint_auth_method = None;
    aggregate.client.client_authentication_methods = Some(AuthMethods {
        kind: AuthMethodKind::PrivateKeyJwt,
        credential_ids: aggregate
            .credentials
            .iter()
            .take(n)
            .map(|c| c.id.clone())
            .collect(),
    });
}

/// `aggregate` as a streamed snapshot hands it over: with only the credentials its method
/// names (in stored order).
fn with_attached_only(aggregate: &ClientAggregate) -> ClientAggregate {
    let named = aggregate
        .client
        .client_authentication_methods
        .as_ref()
        .map(|m| m.credential_ids.clone())
        .unwrap_or_default();
    ClientAggregate {
        credentials: aggregate
            .credentials
            .iter()
            .filter(|c| named.contains(&c.id))
            .cloned()
            .collect(),
        ..aggregate.clone()
    }
}

fn json_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

// ----- the tests -----

async fn settings_are_written_once(f: Fixture) {
    let store = f.store.as_ref();
    assert_eq!(store.setting("k").await.unwrap(), None);
    assert_eq!(store.init_setting("k", "first").await.unwrap(), "first");
    assert_eq!(store.init_setting("k", "second").await.unwrap(), "first");
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("first"));
    store.ping().await.unwrap();
}

async fn bootstrap_happens_once(f: Fixture) {
    let api = resource_server("https://example.test/api/v2/");
    let admin = client("admin");
    let data = Bootstrap {
        admin_grant: grant(&admin.client.client_id, &api.identifier),
        management_api: api,
        admin,
        signing_keys: vec![signing_key(KeyState::Current), signing_key(KeyState::Next)],
    };
    // Two nodes starting together: exactly one bootstraps.
    let other = f.node().await;
    let (a, b) = tokio::join!(f.store.bootstrap(&data), other.bootstrap(&data));
    let mut done = 0;
    for r in [a, b] {
        match r {
            Ok(true) => done += 1,
            Ok(false) => {}
            // SQLite's one writer: the other "node" may find the database busy.
            Err(e) => assert!(
                acceptable_loss(f.backend, &e) && f.backend == Backend::Sqlite,
                "{e:?}"
            ),
        }
    }
    assert_eq!(done, 1);
    assert!(!f.store.bootstrap(&data).await.unwrap());
    let snapshot = f.store.snapshot().await.unwrap();
    assert_eq!(snapshot.clients.len(), 1);
    assert_eq!(snapshot.clients[0], data.admin);
    assert_eq!(snapshot.resource_servers, vec![data.management_api.clone()]);
    assert_eq!(snapshot.client_grants, vec![data.admin_grant.clone()]);
    assert_eq!(snapshot.signing_keys, data.signing_keys);
    assert_eq!(
        snapshot.signing_keys[0].sealed_pkcs8,
        data.signing_keys[0].sealed_pkcs8
    );
}

async fn client_round_trips_and_conflicts(f: Fixture) {
    let store = f.store.as_ref();
    let aggregate = client_with_credentials(store, 2).await;
    let id = aggregate.client.client_id.clone();
    let read = store.client(&id).await.unwrap().unwrap();
    assert_eq!(read, aggregate);
    assert_eq!(json_of(&read.client), json_of(&aggregate.client));
    // The same document from another node.
    let other = f.node().await;
    let from_other = other.client(&id).await.unwrap().unwrap();
    assert_eq!(json_of(&from_other.client), json_of(&aggregate.client));
    assert_eq!(from_other.credentials, aggregate.credentials);

    let err = store.insert_client(&aggregate).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                entity: Entity::Client,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.client("missing").await.unwrap(), None);

    let updated = store
        .update_client(&id, &mut |a| {
            a.client.name = "renamed".into();
            a.sealed_secret = None;
            a.credentials[0].expires_at = Timestamp::parse("2031-02-03T04:05:06.000Z");
            a.credentials.remove(1);
            a.credentials.push(credential(&a.client.client_id));
            Ok(())
        })
        .await
        .unwrap();
    let read = store.client(&id).await.unwrap().unwrap();
    assert_eq!(read, updated);
    assert_eq!(read.client.name, "renamed");
    assert_eq!(read.sealed_secret, None);
    assert_eq!(read.credentials.len(), 2);
    assert!(read.credentials[0].expires_at.is_some());

    not_found(
        store.update_client("missing", &mut |_| Ok(())).await,
        Entity::Client,
    );
}

async fn clients_page_by_offset_and_checkpoint(f: Fixture) {
    let store = f.store.as_ref();
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = client(&format!("c{i}"));
        store.insert_client(&c).await.unwrap();
        ids.push(c.client.client_id);
    }
    let page = store
        .list_clients(&ClientFilter::default(), offset(0, 2))
        .await
        .unwrap();
    assert_eq!(page.total, Some(5));
    let names: Vec<_> = page.items.iter().map(|r| r.client.name.clone()).collect();
    assert_eq!(names, ["c0", "c1"]);
    assert_eq!(page.items[0].sealed_secret, Some(vec![1, 2, 3, 0, 255]));
    let last = store
        .list_clients(&ClientFilter::default(), offset(2, 2))
        .await
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].client.client_id, ids[4]);
    let beyond = store
        .list_clients(&ClientFilter::default(), offset(u64::MAX / 2, 50))
        .await
        .unwrap();
    assert!(beyond.items.is_empty());

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_clients(
                &ClientFilter::default(),
                PageRequest::Checkpoint { after, take: 2 },
            )
            .await
            .unwrap();
        assert_eq!(page.total, None);
        seen.extend(page.items.iter().map(|r| r.client.client_id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // The total follows deletions and insertions (SQLite keeps it in a counted row).
    store.delete_client(&ids[1]).await.unwrap();
    store.insert_client(&client("c5")).await.unwrap();
    store.delete_client(&ids[3]).await.unwrap();
    let page = store
        .list_clients(
            &ClientFilter::default(),
            PageRequest::Offset {
                page: 1,
                per_page: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(4));
    let names: Vec<_> = page.items.iter().map(|r| r.client.name.clone()).collect();
    assert_eq!(names, ["c4", "c5"]);
    // Pages in the second half, the last one partial.
    for (page, per_page, expected) in [
        (3, 1, &["c5"][..]),
        (1, 3, &["c5"][..]),
        (2, 1, &["c4"][..]),
        (4, 1, &[][..]),
    ] {
        let got = store
            .list_clients(
                &ClientFilter::default(),
                PageRequest::Offset { page, per_page },
            )
            .await
            .unwrap();
        let names: Vec<_> = got.items.iter().map(|r| r.client.name.clone()).collect();
        assert_eq!(names, expected, "page {page} of {per_page}");
        assert_eq!(got.total, Some(4));
    }
    for name in ["c6", "c7", "c8"] {
        store.insert_client(&client(name)).await.unwrap();
    }
    let got = store
        .list_clients(
            &ClientFilter::default(),
            PageRequest::Offset {
                page: 2,
                per_page: 2,
            },
        )
        .await
        .unwrap();
    let names: Vec<_> = got.items.iter().map(|r| r.client.name.clone()).collect();
    assert_eq!(names, ["c6", "c7"]);
    assert_eq!(got.total, Some(7));
}

/// The names of the clients of `per_page`-sized page `page`, with the page's total.
async fn names_of_page(store: &dyn Store, page: u64, per_page: u64) -> (Vec<String>, u64) {
    let got = store
        .list_clients(&ClientFilter::default(), offset(page, per_page))
        .await
        .unwrap();
    let names = got.items.into_iter().map(|r| r.client.name).collect();
    (names, got.total.unwrap())
}

/// Every page of 50 of `names` (the clients in creation order), and pages of one and of 7
/// around every 1,024th position (where SQLite samples positions) and the end.
async fn pages_match(store: &dyn Store, names: &[String]) {
    let len = names.len() as u64;
    let expect = |page: u64, per_page: u64| {
        let from = (page * per_page).min(len) as usize;
        let to = ((page + 1) * per_page).min(len) as usize;
        names[from..to].to_vec()
    };
    for page in 0..=len / 50 {
        assert_eq!(
            names_of_page(store, page, 50).await,
            (expect(page, 50), len),
            "page {page} of 50"
        );
    }
    let near = (0..=len / 1024).flat_map(|k| (k * 1024).saturating_sub(3)..k * 1024 + 3);
    for position in near.chain(len.saturating_sub(2)..len + 2) {
        for per_page in [1, 7] {
            let page = position / per_page;
            assert_eq!(
                names_of_page(store, page, per_page).await,
                (expect(page, per_page), len),
                "page {page} of {per_page}"
            );
        }
    }
}

/// On SQLite, its samples of client positions (migration 0012) against the positions they
/// stand for: each names a client and holds that client's exact position, the first client
/// is sampled, and no gap between samples is longer than 1,024. Nothing on PostgreSQL.
fn sqlite_position_samples_are_exact(f: &Fixture) {
    if f.backend != Backend::Sqlite {
        return;
    }
    let conn = rusqlite::Connection::open(f.url.trim_start_matches("sqlite://")).unwrap();
    let mut read = conn
        .prepare(
            "SELECT p.pos, (SELECT COUNT(*) FROM clients c WHERE c.seq < p.seq),
                    EXISTS (SELECT 1 FROM clients c WHERE c.seq = p.seq)
               FROM client_positions p ORDER BY p.seq",
        )
        .unwrap();
    let samples: Vec<(i64, i64, bool)> = read
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let clients: i64 = conn
        .query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(samples.first().map(|s| s.0), (clients > 0).then_some(0));
    for (pos, actual, exists) in &samples {
        assert!(exists, "a sample of a deleted client at {pos}");
        assert_eq!(pos, actual, "a sample out of place");
    }
    let mut ends: Vec<i64> = samples.iter().map(|s| s.0).collect();
    ends.push(clients);
    let widest = ends.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest <= 1024, "a gap of {widest} between samples");
}

async fn clients_page_by_offset_from_any_position(f: Fixture) {
    let store = f.store.as_ref();
    let batch = |from: usize, to: usize| -> Vec<ClientAggregate> {
        (from..to).map(|i| client(&format!("p{i}"))).collect()
    };
    let first = batch(0, 2600);
    store.bulk_insert(&first, &[]).await.unwrap();
    let mut clients: Vec<(String, String)> = first
        .iter()
        .map(|c| (c.client.client_id.clone(), c.client.name.clone()))
        .collect();
    sqlite_position_samples_are_exact(&f);

    // Sampled clients (the first; the 1,024th, then the one that took its sample; the
    // 2,048th), the one before a sample, one between samples, and the last.
    for i in [0, 1024, 1025, 2048, 2047, 500, 2599] {
        let id = &first[i].client.client_id;
        store.delete_client(id).await.unwrap();
        clients.retain(|(kept, _)| kept != id);
        sqlite_position_samples_are_exact(&f);
    }
    let names: Vec<String> = clients.iter().map(|c| c.1.clone()).collect();
    pages_match(store, &names).await;

    // Appends open new samples; a delete near the start moves every one after it.
    let more = batch(2600, 3900);
    store.bulk_insert(&more, &[]).await.unwrap();
    clients.extend(
        more.iter()
            .map(|c| (c.client.client_id.clone(), c.client.name.clone())),
    );
    for _ in 0..2 {
        let (id, _) = clients.remove(1);
        store.delete_client(&id).await.unwrap();
    }
    store.insert_client(&client("last")).await.unwrap();
    clients.push((String::new(), "last".into()));
    sqlite_position_samples_are_exact(&f);
    let names: Vec<String> = clients.iter().map(|c| c.1.clone()).collect();
    pages_match(store, &names).await;
}

async fn failed_mutation_writes_nothing(f: Fixture) {
    let store = f.store.as_ref();
    let before = client_with_credentials(store, 1).await;
    let id = before.client.client_id.clone();
    let err = store
        .update_client(&id, &mut |a| {
            a.client.name = "half-done".into();
            let c = credential(&a.client.client_id);
            a.credentials.push(c);
            Err(rule("refused"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(store.client(&id).await.unwrap().unwrap(), before);

    // The cap, through the domain rule.
    let full = client_with_credentials(store, LIMITS.per_client).await;
    let err = store
        .update_client(&full.client.client_id, &mut |a| {
            let c = credential(&a.client.client_id);
            a.add_credential(c, LIMITS)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(
        store
            .client(&full.client.client_id)
            .await
            .unwrap()
            .unwrap()
            .credentials
            .len(),
        LIMITS.per_client
    );
}

async fn deleting_a_client_cascades(f: Fixture) {
    let store = f.store.as_ref();
    let api = resource_server("https://cascade.test/");
    store.insert_resource_server(&api).await.unwrap();
    let a = client_with_credentials(store, 2).await;
    let b = client_with_credentials(store, 1).await;
    let ga = grant(&a.client.client_id, &api.identifier);
    let gb = grant(&b.client.client_id, &api.identifier);
    store.insert_client_grant(&ga).await.unwrap();
    store.insert_client_grant(&gb).await.unwrap();

    let grants = store.delete_client(&a.client.client_id).await.unwrap();
    assert_eq!(grants, vec![ga.id.clone()]);
    assert_eq!(store.client(&a.client.client_id).await.unwrap(), None);
    assert_eq!(store.client_grant(&ga.id).await.unwrap(), None);
    assert_eq!(store.client_grant(&gb.id).await.unwrap(), Some(gb.clone()));
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.clients.len(), 1);
    assert_eq!(snapshot.clients[0].credentials.len(), 1);
    not_found(
        store.delete_client(&a.client.client_id).await,
        Entity::Client,
    );
    // A new client may reuse nothing of the old one's credentials.
    let again = ClientAggregate {
        credentials: a.credentials.clone(),
        ..a.clone()
    };
    store.insert_client(&again).await.unwrap();
    assert_eq!(
        store.client(&a.client.client_id).await.unwrap().unwrap(),
        again
    );
}

/// What [`Store::snapshot_into`] hands over: the rest of the snapshot, then the clients and
/// the grants through the sink (after the last `Restart`).
async fn streamed(store: &dyn Store) -> (Snapshot, Vec<ClientAggregate>, Vec<ClientGrant>) {
    let (sink, mut items) = SnapshotSink::channel();
    let collect = async {
        let (mut clients, mut grants) = (Vec::new(), Vec::new());
        while let Some(batch) = items.recv().await {
            for item in batch {
                match item {
                    SnapshotItem::Restart => {
                        clients.clear();
                        grants.clear();
                    }
                    SnapshotItem::Client(c) => clients.push(*c),
                    SnapshotItem::Grant(g) => grants.push(g),
                }
            }
        }
        (clients, grants)
    };
    let (rest, (clients, grants)) = tokio::join!(store.snapshot_into(sink), collect);
    (rest.unwrap(), clients, grants)
}

/// The id of the first client a snapshot lists (the oldest).
async fn whole_first_client(store: &dyn Store) -> String {
    store.snapshot().await.unwrap().clients[0]
        .client
        .client_id
        .clone()
}

async fn a_streamed_snapshot_hands_over_what_a_snapshot_holds(f: Fixture) {
    let store = f.store.as_ref();
    let api = resource_server("https://stream.test/");
    store.insert_resource_server(&api).await.unwrap();
    for n in 0..4 {
        let c = client_with_credentials(store, n % 3).await;
        if n % 2 == 0 {
            let g = grant(&c.client.client_id, &api.identifier);
            store.insert_client_grant(&g).await.unwrap();
        }
    }
    // More than a batch of items (the sink's batches hold 256), so that the passes are
    // merged across batches. Clients with one or two credentials use the first (every
    // other one of them) or none: the others are not handed over.
    let bulk = (0..2_100)
        .map(|n| {
            let mut c = client(&format!("s{n}"));
            for _ in 0..n % 3 {
                c.credentials.push(credential(&c.client.client_id));
            }
            if n % 2 == 0 {
                attach_first(&mut c, 1);
            }
            c
        })
        .collect::<Vec<_>>();
    store.bulk_insert(&bulk, &[]).await.unwrap();
    // Credentials written after later clients' still come back with their own client, in
    // the order they were written.
    let first = whole_first_client(store).await;
    let mut added = Vec::new();
    for id in [&first, &bulk[1].client.client_id] {
        let changed = store
            .update_client(id, &mut |a| {
                a.credentials.push(credential(&a.client.client_id));
                let n = a.credentials.len();
                attach_first(a, n);
                Ok(())
            })
            .await
            .unwrap();
        added.push(changed);
    }
    let whole = store.snapshot().await.unwrap();
    assert_eq!(whole.clients.len(), 4 + bulk.len());
    assert_eq!(whole.client_grants.len(), 2);
    for changed in &added {
        let held = whole
            .clients
            .iter()
            .find(|c| c.client.client_id == changed.client.client_id)
            .unwrap();
        assert_eq!(held, changed);
    }

    let (rest, clients, grants) = streamed(store).await;
    // Everything else comes back as from `snapshot`, the clients and grants only through
    // the sink, in the same order; each client with the credentials its method uses.
    assert!(rest.clients.is_empty() && rest.client_grants.is_empty());
    let expected = whole
        .clients
        .iter()
        .map(with_attached_only)
        .collect::<Vec<_>>();
    assert_eq!(clients, expected);
    let count =
        |clients: &[ClientAggregate]| clients.iter().map(|c| c.credentials.len()).sum::<usize>();
    // Both kinds are there: credentials handed over, and credentials left out.
    assert!(0 < count(&clients) && count(&clients) < count(&whole.clients));
    for changed in &added {
        let held = clients
            .iter()
            .find(|c| c.client.client_id == changed.client.client_id)
            .unwrap();
        assert_eq!(held, changed);
    }
    assert_eq!(grants, whole.client_grants);
    assert_eq!(rest.resource_servers, whole.resource_servers);
    assert_eq!(rest.signing_keys, whole.signing_keys);
    assert_eq!(rest.organizations.len(), whole.organizations.len());

    // A consumer that goes away ends the read with an error, not a hang.
    let (sink, items) = SnapshotSink::channel();
    drop(items);
    assert!(store.snapshot_into(sink).await.is_err());
}

/// The clients and their credentials come from one moment of the store even while other
/// writes commit during the read: PostgreSQL reads them as two passes on two connections,
/// the second importing the first's snapshot. A second pass that saw a later moment would
/// meet credentials of a client the first pass never listed (and the read would fail).
async fn a_streamed_snapshot_is_one_moment_while_writes_land(f: Fixture) {
    let store = f.store.clone();
    // Every credential attached, so that each comes back with its client.
    let before = (0..300)
        .map(|n| {
            let mut c = client(&format!("m{n}"));
            c.credentials.push(credential(&c.client.client_id));
            attach_first(&mut c, 1);
            c
        })
        .collect::<Vec<_>>();
    store.bulk_insert(&before, &[]).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut c = client("w");
                for _ in 0..2 {
                    c.credentials.push(credential(&c.client.client_id));
                }
                attach_first(&mut c, 2);
                store.insert_client(&c).await.unwrap();
                written += 1;
            }
            written
        })
    };
    let mut sizes = Vec::new();
    for _ in 0..30 {
        let (_, clients, _) = streamed(store.as_ref()).await;
        for c in &clients {
            let expected = if c.client.name.starts_with('m') { 1 } else { 2 };
            assert_eq!(c.credentials.len(), expected, "{}", c.client.name);
            assert!(
                c.credentials
                    .iter()
                    .all(|cr| cr.client_id == c.client.client_id)
            );
        }
        sizes.push(clients.len());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    // The writes did land between the reads.
    assert!(written > 0 && sizes.first() < sizes.last(), "{sizes:?}");
}

async fn resource_servers_round_trip_and_conflict(f: Fixture) {
    let store = f.store.as_ref();
    let api = resource_server("https://api.example.test/");
    store.insert_resource_server(&api).await.unwrap();
    assert_eq!(
        store.resource_server(&api.id).await.unwrap(),
        Some(api.clone())
    );
    assert_eq!(
        store.resource_server(&api.identifier).await.unwrap(),
        Some(api.clone())
    );
    assert_eq!(store.resource_server("urn:missing").await.unwrap(), None);

    let duplicate = resource_server(&api.identifier);
    let err = store.insert_resource_server(&duplicate).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                entity: Entity::ResourceServer,
                ..
            }
        ),
        "{err:?}"
    );

    let updated = store
        .update_resource_server(&api.identifier, &mut |rs| {
            rs.name = "renamed".into();
            rs.token_lifetime = 60;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        store.resource_server(&api.id).await.unwrap(),
        Some(updated.clone())
    );
    let err = store
        .update_resource_server(&api.id, &mut |rs| {
            rs.identifier = "https://other/".into();
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    let err = store
        .update_resource_server(&api.id, &mut |rs| {
            rs.name = "not kept".into();
            Err(rule("no"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(store.resource_server(&api.id).await.unwrap(), Some(updated));

    for i in 0..3 {
        store
            .insert_resource_server(&resource_server(&format!("urn:api:{i}")))
            .await
            .unwrap();
    }
    let page = store.list_resource_servers(offset(1, 2)).await.unwrap();
    assert_eq!(page.total, Some(4));
    let identifiers: Vec<_> = page.items.iter().map(|r| r.identifier.as_str()).collect();
    assert_eq!(identifiers, ["urn:api:1", "urn:api:2"]);
    let first = store
        .list_resource_servers(PageRequest::Checkpoint {
            after: None,
            take: 3,
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let rest = store
        .list_resource_servers(PageRequest::Checkpoint {
            after: first.next,
            take: 3,
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next, None);
    assert_eq!(rest.items[0].identifier, "urn:api:2");
}

/// The sealed `signing_secret` lives in its own column, never in the document: written on
/// insert and update, read back by every read (one, a page, the snapshot).
async fn resource_server_signing_secrets_round_trip(f: Fixture) {
    let store = f.store.as_ref();
    let mut api = resource_server("urn:hs256");
    api.signing_alg = "HS256".into();
    api.sealed_signing_secret = Some(b"sealed-1".to_vec());
    assert!(!json_of(&api).contains("sealed"), "{}", json_of(&api));
    store.insert_resource_server(&api).await.unwrap();
    store
        .insert_resource_server(&resource_server("urn:plain"))
        .await
        .unwrap();
    let read = store.resource_server(&api.id).await.unwrap().unwrap();
    assert_eq!(
        read.sealed_signing_secret.as_deref(),
        Some(&b"sealed-1"[..])
    );
    let updated = store
        .update_resource_server(&api.id, &mut |rs| {
            rs.sealed_signing_secret = Some(b"sealed-2".to_vec());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        store.resource_server(&api.identifier).await.unwrap(),
        Some(updated)
    );
    let page = store.list_resource_servers(offset(0, 10)).await.unwrap();
    let secrets: Vec<_> = page
        .items
        .iter()
        .map(|r| r.sealed_signing_secret.as_deref())
        .collect();
    assert_eq!(secrets, [Some(&b"sealed-2"[..]), None]);
    let snapshot = store.snapshot().await.unwrap();
    let secrets: Vec<_> = snapshot
        .resource_servers
        .iter()
        .map(|r| r.sealed_signing_secret.as_deref())
        .collect();
    assert_eq!(secrets, [Some(&b"sealed-2"[..]), None]);
}

async fn deleting_a_resource_server_cascades_and_respects_its_guard(f: Fixture) {
    let store = f.store.as_ref();
    let api = resource_server("urn:cascade");
    store.insert_resource_server(&api).await.unwrap();
    let c = client_with_credentials(store, 0).await;
    let g = grant(&c.client.client_id, &api.identifier);
    store.insert_client_grant(&g).await.unwrap();

    let err = store
        .delete_resource_server(&api.id, &mut |_| Err(rule("system API")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert!(store.resource_server(&api.id).await.unwrap().is_some());
    assert!(store.client_grant(&g.id).await.unwrap().is_some());

    let (deleted, grants) = store
        .delete_resource_server(&api.identifier, &mut |_| Ok(()))
        .await
        .unwrap();
    assert_eq!(deleted, api);
    assert_eq!(grants, vec![g.id.clone()]);
    assert_eq!(store.resource_server(&api.id).await.unwrap(), None);
    assert_eq!(store.client_grant(&g.id).await.unwrap(), None);
    not_found(
        store.delete_resource_server(&api.id, &mut |_| Ok(())).await,
        Entity::ResourceServer,
    );
    // The identifier is free again.
    store
        .insert_resource_server(&resource_server("urn:cascade"))
        .await
        .unwrap();
}

async fn client_grants_check_references_and_uniqueness(f: Fixture) {
    let store = f.store.as_ref();
    let api = resource_server("urn:grants");
    store.insert_resource_server(&api).await.unwrap();
    let c = client_with_credentials(store, 0).await;
    let id = c.client.client_id.clone();

    not_found(
        store
            .insert_client_grant(&grant("missing", &api.identifier))
            .await,
        Entity::Client,
    );
    not_found(
        store.insert_client_grant(&grant(&id, "urn:missing")).await,
        Entity::ResourceServer,
    );
    let g = grant(&id, &api.identifier);
    store.insert_client_grant(&g).await.unwrap();
    let err = store
        .insert_client_grant(&grant(&id, &api.identifier))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                entity: Entity::ClientGrant,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.client_grant(&g.id).await.unwrap(), Some(g.clone()));
    // A `user` grant for the same client and audience is a different grant; a second is not.
    let mut user = grant(&id, &api.identifier);
    user.extra.insert("subject_type".into(), "user".into());
    user.extra
        .insert("allow_any_organization".into(), true.into());
    store.insert_client_grant(&user).await.unwrap();
    let err = store
        .insert_client_grant(&{
            let mut again = grant(&id, &api.identifier);
            again.extra.insert("subject_type".into(), "user".into());
            again
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                entity: Entity::ClientGrant,
                ..
            }
        ),
        "{err:?}"
    );
    let listed = |filter: GrantFilter| async move {
        store
            .list_client_grants(&filter, offset(0, 10))
            .await
            .unwrap()
    };
    let by_type = listed(GrantFilter {
        subject_type: Some(SubjectType::User),
        ..Default::default()
    })
    .await;
    assert_eq!(
        (by_type.items, by_type.total),
        (vec![user.clone()], Some(1))
    );
    let by_type = listed(GrantFilter {
        client_id: Some(id.clone()),
        subject_type: Some(SubjectType::Client),
        ..Default::default()
    })
    .await;
    assert_eq!(by_type.items, vec![g.clone()]);
    let any_org = listed(GrantFilter {
        allow_any_organization: true,
        ..Default::default()
    })
    .await;
    assert_eq!(any_org.items, vec![user.clone()]);
    let defaults = listed(GrantFilter {
        default_grants_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!((defaults.items.len(), defaults.total), (0, Some(0)));
    store.delete_client_grant(&user.id).await.unwrap();

    let updated = store
        .update_client_grant(&g.id, &mut |g| {
            g.scope = vec!["a".into(), "b".into()];
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(store.client_grant(&g.id).await.unwrap(), Some(updated));
    not_found(
        store
            .update_client_grant("cgr_missing", &mut |_| Ok(()))
            .await,
        Entity::ClientGrant,
    );
    store.delete_client_grant(&g.id).await.unwrap();
    assert_eq!(store.client_grant(&g.id).await.unwrap(), None);
    not_found(store.delete_client_grant(&g.id).await, Entity::ClientGrant);
}

async fn a_bulk_insert_writes_everything_or_nothing(f: Fixture) {
    let store = f.store.as_ref();
    let api = resource_server("urn:bulk");
    store.insert_resource_server(&api).await.unwrap();
    let clients: Vec<ClientAggregate> = (0..3)
        .map(|i| {
            let mut aggregate = client(&format!("bulk {i}"));
            let id = aggregate.client.client_id.clone();
            aggregate.credentials = vec![credential(&id), credential(&id)];
            aggregate
        })
        .collect();
    let grants: Vec<ClientGrant> = clients
        .iter()
        .map(|c| grant(&c.client.client_id, &api.identifier))
        .collect();
    store.bulk_insert(&clients, &grants).await.unwrap();
    for (aggregate, g) in clients.iter().zip(&grants) {
        let stored = store
            .client(&aggregate.client.client_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&stored, aggregate);
        assert_eq!(json_of(&stored.client), json_of(&aggregate.client));
        assert_eq!(store.client_grant(&g.id).await.unwrap(), Some(g.clone()));
    }

    // A grant for a client that does not exist: the clients before it are not written either.
    let more = client("bulk, refused");
    let refused = store
        .bulk_insert(
            std::slice::from_ref(&more),
            &[grant("missing", &api.identifier)],
        )
        .await;
    not_found(refused, Entity::Client);
    assert_eq!(store.client(&more.client.client_id).await.unwrap(), None);
}

async fn client_grants_filter_and_page(f: Fixture) {
    let store = f.store.as_ref();
    let apis = [resource_server("urn:a"), resource_server("urn:b")];
    for api in &apis {
        store.insert_resource_server(api).await.unwrap();
    }
    let mut grants = Vec::new();
    for _ in 0..3 {
        let c = client_with_credentials(store, 0).await;
        for api in &apis {
            let g = grant(&c.client.client_id, &api.identifier);
            store.insert_client_grant(&g).await.unwrap();
            grants.push(g);
        }
    }
    let all = store
        .list_client_grants(&GrantFilter::default(), offset(0, 50))
        .await
        .unwrap();
    assert_eq!(all.total, Some(6));
    assert_eq!(all.items, grants);

    let by_audience = store
        .list_client_grants(
            &GrantFilter {
                audience: Some("urn:b".into()),
                ..Default::default()
            },
            offset(0, 2),
        )
        .await
        .unwrap();
    assert_eq!(by_audience.total, Some(3));
    assert_eq!(
        by_audience.items,
        vec![grants[1].clone(), grants[3].clone()]
    );

    let both = store
        .list_client_grants(
            &GrantFilter {
                audience: Some("urn:a".into()),
                client_id: Some(grants[2].client_id.clone()),
                ..Default::default()
            },
            offset(0, 50),
        )
        .await
        .unwrap();
    assert_eq!(both.items, vec![grants[2].clone()]);

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_client_grants(
                &GrantFilter {
                    audience: Some("urn:a".into()),
                    ..Default::default()
                },
                PageRequest::Checkpoint { after, take: 2 },
            )
            .await
            .unwrap();
        seen.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![grants[0].clone(), grants[2].clone(), grants[4].clone()]
    );
}

fn jti(client: &str, jti: &str, expires_at: i64) -> JtiRecord {
    JtiRecord {
        client_id: client.into(),
        jti: jti.into(),
        expires_at,
    }
}

/// Keeps fresh assertion ids the way the store's replay guard does: decided at commit on a
/// shared store, written behind on one that a single process uses.
async fn keep_jtis(store: &dyn Store, records: &[JtiRecord], now: i64) {
    if store.single_process() {
        store.write_jtis(records).await.unwrap();
    } else {
        let fresh = store.record_jtis(records, now).await.unwrap();
        assert!(fresh.iter().all(|&fresh| fresh), "{fresh:?}");
    }
}

/// A shared store decides assertion ids at commit.
async fn jti_records_are_single_use(f: Fixture) {
    let store = f.store.as_ref();
    let now = 1_000_000;
    if store.single_process() {
        // Decided in memory by the one process (`service::replay::local`), never here.
        let refused = store.record_jtis(&[jti("c", "1", now + 60)], now).await;
        assert!(
            matches!(refused, Err(StoreError::Internal(_))),
            "{refused:?}"
        );
        return;
    }
    assert_eq!(
        store
            .record_jtis(&[jti("c", "1", now + 60), jti("c", "2", now + 60)], now)
            .await
            .unwrap(),
        [true, true]
    );
    // Replay; the same jti of another client; a duplicate within the batch.
    assert_eq!(
        store
            .record_jtis(
                &[
                    jti("c", "1", now + 60),
                    jti("d", "1", now + 60),
                    jti("c", "3", now + 60),
                    jti("c", "3", now + 60),
                    jti("d", "1", now + 60),
                ],
                now
            )
            .await
            .unwrap(),
        [false, true, true, false, false]
    );
    // Another node sees them.
    let other = f.node().await;
    assert_eq!(
        other
            .record_jtis(&[jti("c", "2", now + 60)], now)
            .await
            .unwrap(),
        [false]
    );
    // An expired record is taken over, and then guards again.
    let later = now + 61;
    assert_eq!(
        store
            .record_jtis(&[jti("c", "1", later + 60)], later)
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        store
            .record_jtis(&[jti("c", "1", later + 60)], later)
            .await
            .unwrap(),
        [false]
    );
    assert!(store.record_jtis(&[], now).await.unwrap().is_empty());
    // Any string is a jti, NUL and all.
    assert_eq!(
        store
            .record_jtis(
                &[
                    jti("e", "a\0b", now + 60),
                    jti("e", "a", now + 60),
                    jti("e", "a\0b", now + 60)
                ],
                now
            )
            .await
            .unwrap(),
        [true, true, false]
    );
    // Purge forgets the expired ones only: c/2, d/1, c/3, e/* (now + 60 <= later).
    assert_eq!(store.purge_jtis(later).await.unwrap(), 5);
    assert_eq!(
        store
            .record_jtis(
                &[jti("c", "1", later + 60), jti("c", "2", later + 60)],
                later
            )
            .await
            .unwrap(),
        [false, true]
    );
}

async fn purge_forgets_many_expired_records_and_keeps_the_rest(f: Fixture) {
    let store = f.store.as_ref();
    let now = Timestamp::now().unix_seconds();
    let client = unique("purge");
    // More than one purge transaction's worth (the SQLite store deletes in chunks).
    let expired: Vec<JtiRecord> = (0..4_500)
        .map(|i| jti(&client, &format!("old-{i}"), now + 10))
        .collect();
    for chunk in expired.chunks(500) {
        keep_jtis(store, chunk, now).await;
    }
    let live = [jti(&client, "live", now + 1_000)];
    keep_jtis(store, &live, now).await;

    let later = now + 11;
    assert_eq!(store.purge_jtis(later).await.unwrap(), 4_500);
    assert_eq!(store.purge_jtis(later).await.unwrap(), 0);
    if store.single_process() {
        let kept = store.live_jtis(now, 0, 10_000).await.unwrap();
        assert_eq!(kept.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), live);
        return;
    }
    // The unexpired record still guards; a purged id is new again.
    assert_eq!(store.record_jtis(&live, later).await.unwrap(), [false]);
    assert_eq!(
        store
            .record_jtis(&[jti(&client, "old-7", later + 60)], later)
            .await
            .unwrap(),
        [true]
    );
}

/// A store one process uses keeps the ids its replay guard decided in the order written,
/// gives back the live ones in that order, and forgets expired ones from the front.
async fn written_jtis_come_back_in_order_until_purged(f: Fixture) {
    let store = f.store.as_ref();
    let now = 1_000_000;
    if !store.single_process() {
        let refused = store.write_jtis(&[jti("c", "1", now + 60)]).await;
        assert!(
            matches!(refused, Err(StoreError::Internal(_))),
            "{refused:?}"
        );
        let refused = store.live_jtis(now, 0, 10).await;
        assert!(
            matches!(refused, Err(StoreError::Internal(_))),
            "{refused:?}"
        );
        return;
    }
    let live = |now: i64, after: i64, limit: u32| async move {
        store.live_jtis(now, after, limit).await.unwrap()
    };
    let ids = |rows: &[(i64, JtiRecord)]| -> Vec<(String, String)> {
        rows.iter()
            .map(|(_, r)| (r.client_id.clone(), r.jti.clone()))
            .collect()
    };
    let id = |c: &str, j: &str| (c.to_owned(), j.to_owned());
    store.write_jtis(&[]).await.unwrap();
    store
        .write_jtis(&[
            jti("c", "1", now + 60),
            jti("d", "1", now + 60),
            jti("c", "2", now + 1_000),
        ])
        .await
        .unwrap();
    // Any string is a jti, NUL and all; an id used again once expired is written again.
    let odd = ["a\0b", "quote\"d", "back\\slash", "ünï", "a,b", "[1]"];
    let odd: Vec<JtiRecord> = odd.iter().map(|j| jti("e", j, now + 60)).collect();
    store.write_jtis(&odd).await.unwrap();
    store.write_jtis(&[jti("c", "1", now + 120)]).await.unwrap();

    let all = live(now, 0, 100).await;
    let mut expected = vec![id("c", "1"), id("d", "1"), id("c", "2")];
    expected.extend(odd.iter().map(|r| id(&r.client_id, &r.jti)));
    expected.push(id("c", "1"));
    assert_eq!(ids(&all), expected);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "{all:?}");
    assert_eq!(all.last().map(|(_, r)| r.expires_at), Some(now + 120));
    // Paged by position.
    assert_eq!(ids(&live(now, all[1].0, 2).await), expected[2..4]);
    // Expired records are not given back.
    let later = now + 60;
    assert_eq!(
        ids(&live(later, 0, 100).await),
        [id("c", "2"), id("c", "1")]
    );
    // The purge stops at the first live record: the expired ones after it wait for it.
    assert_eq!(store.purge_jtis(later).await.unwrap(), 2);
    assert_eq!(store.purge_jtis(later).await.unwrap(), 0);
    assert_eq!(ids(&live(now, 0, 100).await), expected[2..]);
    assert_eq!(store.purge_jtis(now + 1_000).await.unwrap(), 8);
    assert!(live(0, 0, 100).await.is_empty());
    // Writing goes on after everything was purged.
    store.write_jtis(&[jti("f", "1", now + 60)]).await.unwrap();
    assert_eq!(ids(&live(now, 0, 100).await), [id("f", "1")]);
}

async fn signing_keys_change_as_a_set(f: Fixture) {
    let store = f.store.as_ref();
    assert!(store.signing_keys().await.unwrap().is_empty());
    let current = signing_key(KeyState::Current);
    let next = signing_key(KeyState::Next);
    let keys = store
        .update_signing_keys(&mut |keys| {
            keys.push(current.clone());
            keys.push(next.clone());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(store.signing_keys().await.unwrap(), keys);
    assert_eq!(keys, vec![current.clone(), next.clone()]);

    let third = signing_key(KeyState::Next);
    let now = Timestamp::now();
    let rotated = store
        .update_signing_keys(&mut |keys| {
            keys[0].state = KeyState::Previous;
            keys[0].current_until = Some(now);
            keys[1].state = KeyState::Current;
            keys[1].current_since = Some(now);
            keys.push(third.clone());
            Ok(())
        })
        .await
        .unwrap();
    let read = f.node().await.signing_keys().await.unwrap();
    assert_eq!(read, rotated);
    let states: Vec<_> = read.iter().map(|k| k.state).collect();
    assert_eq!(
        states,
        [KeyState::Previous, KeyState::Current, KeyState::Next]
    );
    assert_eq!(read[2].sealed_pkcs8, third.sealed_pkcs8);

    let err = store
        .update_signing_keys(&mut |keys| {
            keys.remove(0);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    let err = store
        .update_signing_keys(&mut |keys| {
            keys[0].revoked_at = Some(now);
            Err(rule("no"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(store.signing_keys().await.unwrap(), rotated);
}

/// A mutation that takes its time, so that two nodes' transactions overlap.
fn slowly<T>(
    mut f: impl FnMut(&mut T) -> Result<(), DomainError> + Send,
) -> impl FnMut(&mut T) -> Result<(), DomainError> + Send {
    move |value| {
        std::thread::sleep(Duration::from_millis(30));
        f(value)
    }
}

/// What a loser of a race between nodes may see: the rule (PostgreSQL serialises the two
/// transactions), or for SQLite, whose one writer the other "node" is waiting for, a busy
/// database (503): never a lost update.
fn acceptable_loss(backend: Backend, err: &StoreError) -> bool {
    match err {
        StoreError::Rejected(_) => true,
        StoreError::Unavailable(_) => backend == Backend::Sqlite,
        _ => false,
    }
}

async fn credential_cap_holds_across_nodes(f: Fixture) {
    let a = f.store.clone();
    let b = f.node().await;
    for _ in 0..5 {
        let aggregate = client_with_credentials(a.as_ref(), LIMITS.per_client - 1).await;
        let id = aggregate.client.client_id.clone();
        let (ca, cb) = (credential(&id), credential(&id));
        let mut add_a =
            slowly(move |agg: &mut ClientAggregate| agg.add_credential(ca.clone(), LIMITS));
        let mut add_b =
            slowly(move |agg: &mut ClientAggregate| agg.add_credential(cb.clone(), LIMITS));
        let (ra, rb) = tokio::join!(
            a.update_client(&id, &mut add_a),
            b.update_client(&id, &mut add_b)
        );
        let ok = [ra.is_ok(), rb.is_ok()];
        assert_eq!(ok.iter().filter(|o| **o).count(), 1, "{ra:?} / {rb:?}");
        let loser = ra.err().or(rb.err()).unwrap();
        assert!(acceptable_loss(f.backend, &loser), "{loser:?}");
        let stored = a.client(&id).await.unwrap().unwrap();
        assert_eq!(stored.credentials.len(), LIMITS.per_client);
    }
}

async fn attach_and_delete_race_leaves_no_deleted_credential_attached(f: Fixture) {
    let a = f.store.clone();
    let b = f.node().await;
    for round in 0..6 {
        let aggregate = client_with_credentials(a.as_ref(), 1).await;
        let id = aggregate.client.client_id.clone();
        let cred = aggregate.credentials[0].id.clone();
        let attach_id = cred.clone();
        let mut attach = slowly(move |agg: &mut ClientAggregate| {
            agg.client.token_endpoint_auth_method = None;
            agg.client.client_authentication_methods = Some(AuthMethods {
                kind: AuthMethodKind::PrivateKeyJwt,
                credential_ids: vec![attach_id.clone()],
            });
            agg.check_authentication_methods(LIMITS)
        });
        let delete_id = cred.clone();
        let mut delete =
            slowly(move |agg: &mut ClientAggregate| agg.remove_credential(&delete_id).map(|_| ()));
        // Alternate which node starts first.
        let (ra, rb) = if round % 2 == 0 {
            tokio::join!(
                a.update_client(&id, &mut attach),
                b.update_client(&id, &mut delete)
            )
        } else {
            let (rb, ra) = tokio::join!(
                b.update_client(&id, &mut delete),
                a.update_client(&id, &mut attach)
            );
            (ra, rb)
        };
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(acceptable_loss(f.backend, e), "{e:?}");
            }
        }
        let stored = a.client(&id).await.unwrap().unwrap();
        let exists = stored.credential(&cred).is_some();
        let attached = stored
            .client
            .client_authentication_methods
            .as_ref()
            .is_some_and(|m| m.credential_ids.contains(&cred));
        assert!(
            !attached || exists,
            "a deleted credential is attached: {stored:?}"
        );
        assert_eq!(
            exists,
            rb.is_err(),
            "delete succeeded iff the credential is gone"
        );
        assert_eq!(attached, ra.is_ok(), "attach succeeded iff it is attached");
    }
}

async fn expiry_notices_are_claimed_once_re_armed_later_and_go_with_their_credential(f: Fixture) {
    let a = f.store.clone();
    let b = f.node().await;
    let aggregate = client_with_credentials(a.as_ref(), 2).await;
    let (first, second) = (&aggregate.credentials[0].id, &aggregate.credentials[1].id);
    let notice = |id: &str, threshold_s: i64, expires_at_ms: i64| ExpiryNotice {
        credential_id: id.to_string(),
        threshold_s,
        expires_at_ms,
        sent_at_ms: 1,
    };
    // Concurrent claims of one notice on two nodes: exactly one wins.
    for threshold in [86_400, 7 * 86_400, 0] {
        let n = notice(first, threshold, 1_000);
        let (ra, rb) = tokio::join!(a.claim_expiry_notice(&n), b.claim_expiry_notice(&n));
        match (ra, rb) {
            (Ok(ra), Ok(rb)) => assert!(ra ^ rb, "threshold {threshold}: {ra} / {rb}"),
            (ra, rb) => {
                // SQLite's single writer may make the other "node" give up; nothing else.
                assert_eq!(f.backend, Backend::Sqlite, "{ra:?} / {rb:?}");
                assert!(matches!(ra, Ok(true)) || matches!(rb, Ok(true)));
            }
        }
        assert!(!a.claim_expiry_notice(&n).await.unwrap());
    }
    // An earlier expiry does not re-arm a threshold; a later one does, once.
    assert!(
        !a.claim_expiry_notice(&notice(first, 86_400, 500))
            .await
            .unwrap()
    );
    assert!(
        a.claim_expiry_notice(&notice(first, 86_400, 2_000))
            .await
            .unwrap()
    );
    assert!(
        !b.claim_expiry_notice(&notice(first, 86_400, 2_000))
            .await
            .unwrap()
    );
    // Another credential's notices are its own.
    assert!(
        a.claim_expiry_notice(&notice(second, 86_400, 1_000))
            .await
            .unwrap()
    );
    // A credential that does not exist has none; a deleted one's go with it.
    assert!(
        !a.claim_expiry_notice(&notice("cred_nope", 0, 1))
            .await
            .unwrap()
    );
    let client_id = aggregate.client.client_id.clone();
    let gone = second.clone();
    a.update_client(&client_id, &mut |agg| {
        agg.credentials.retain(|c| c.id != gone);
        Ok(())
    })
    .await
    .unwrap();
    assert!(
        !a.claim_expiry_notice(&notice(second, 86_400, 1_000))
            .await
            .unwrap()
    );
    a.delete_client(&client_id).await.unwrap();
    assert!(
        !a.claim_expiry_notice(&notice(first, 0, 5_000))
            .await
            .unwrap()
    );
}

async fn concurrent_jti_records_across_nodes_accept_once(f: Fixture) {
    if f.store.single_process() {
        // No two nodes: the one process decides ids in memory.
        return;
    }
    let a = f.store.clone();
    let b = f.node().await;
    let now = Timestamp::now().unix_seconds();
    for round in 0..10 {
        // Overlapping batches in opposite orders.
        let batch: Vec<JtiRecord> = (0..20)
            .map(|i| jti("c", &format!("{round}-{i}"), now + 60))
            .collect();
        let reversed: Vec<JtiRecord> = batch.iter().rev().cloned().collect();
        let (ra, rb) = tokio::join!(a.record_jtis(&batch, now), b.record_jtis(&reversed, now));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        for i in 0..20 {
            assert!(
                ra[i] ^ rb[19 - i],
                "jti {round}-{i} accepted by both or neither"
            );
        }
    }
}

async fn writes_are_announced_to_other_nodes(f: Fixture) {
    let other = f.node().await;
    let Some(mut changes) = other.subscribe().await.unwrap().map(|s| s.changes) else {
        // A store only one node uses announces nothing.
        assert_eq!(f.backend, Backend::Sqlite);
        return;
    };
    assert_eq!(f.backend, Backend::Postgres);
    let store = f.store.as_ref();
    let api = resource_server("urn:announced");
    store.insert_resource_server(&api).await.unwrap();
    let c = client_with_credentials(store, 1).await;
    let id = c.client.client_id.clone();
    store
        .update_client(&id, &mut |a| {
            a.credentials[0].expires_at = Some(Timestamp::now());
            Ok(())
        })
        .await
        .unwrap();
    // A refused mutation announces nothing.
    let _ = store.update_client(&id, &mut |_| Err(rule("no"))).await;
    let g = grant(&id, &api.identifier);
    store.insert_client_grant(&g).await.unwrap();
    store
        .update_signing_keys(&mut |keys| {
            keys.push(signing_key(KeyState::Current));
            Ok(())
        })
        .await
        .unwrap();
    store.delete_client(&id).await.unwrap();
    // Record of a jti is not a change of the model.
    store
        .record_jtis(&[jti(&id, "x", i64::MAX)], 0)
        .await
        .unwrap();
    store
        .delete_resource_server(&api.id, &mut |_| Ok(()))
        .await
        .unwrap();

    let rs_change = Change::ResourceServer {
        id: api.id.clone(),
        identifier: api.identifier.clone(),
    };
    let expected = vec![
        rs_change.clone(),
        Change::Client(id.clone()),
        Change::Client(id.clone()),
        Change::ClientGrant(g.id.clone()),
        Change::SigningKeys,
        Change::Client(id.clone()),
        Change::ClientGrant(g.id.clone()),
        rs_change,
    ];
    let mut received = Vec::new();
    while received.len() < expected.len() {
        match tokio::time::timeout(Duration::from_secs(1), changes.recv()).await {
            Ok(Some(change)) => received.push(change),
            other => panic!("after {received:?}: {other:?}"),
        }
    }
    assert_eq!(received, expected);
    // Nothing else arrives (e.g. for the refused mutation or the jti).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), changes.recv())
            .await
            .is_err()
    );
    other.close().await;
}

async fn odd_keys_are_simply_not_found(f: Fixture) {
    let store = f.store.as_ref();
    // An identifier shaped like an id is still found by identifier.
    let id_like = resource_server("0123456789abcdef01234567");
    store.insert_resource_server(&id_like).await.unwrap();
    assert_eq!(
        store.resource_server(&id_like.identifier).await.unwrap(),
        Some(id_like.clone())
    );
    assert_eq!(
        store.resource_server(&id_like.id).await.unwrap(),
        Some(id_like.clone())
    );
    for key in ["\0", "a\0b", "' OR 1=1 --", "%00", "\u{FFFD}", ""] {
        assert_eq!(store.client(key).await.unwrap(), None, "{key:?}");
        assert_eq!(store.resource_server(key).await.unwrap(), None, "{key:?}");
        assert_eq!(store.client_grant(key).await.unwrap(), None, "{key:?}");
        assert_eq!(store.setting(key).await.unwrap(), None, "{key:?}");
        not_found(
            store.update_client(key, &mut |_| Ok(())).await,
            Entity::Client,
        );
        not_found(store.delete_client(key).await, Entity::Client);
        not_found(
            store.update_resource_server(key, &mut |_| Ok(())).await,
            Entity::ResourceServer,
        );
        not_found(store.delete_client_grant(key).await, Entity::ClientGrant);
        not_found(
            store
                .insert_client_grant(&grant(key, &id_like.identifier))
                .await,
            Entity::Client,
        );
        let page = store
            .list_client_grants(
                &GrantFilter {
                    audience: Some(key.into()),
                    client_id: Some(key.into()),
                    ..Default::default()
                },
                offset(0, 10),
            )
            .await
            .unwrap();
        assert_eq!((page.items.len(), page.total), (0, Some(0)));
        // The same for every other keyed operation.
        assert_eq!(store.organization(key).await.unwrap(), None, "{key:?}");
        assert_eq!(
            store.organization_by_name(key).await.unwrap(),
            None,
            "{key:?}"
        );
        not_found(
            store.update_organization(key, &mut |_| Ok(())).await,
            Entity::Organization,
        );
        not_found(store.delete_organization(key).await, Entity::Organization);
        not_found(
            store.associate_client_grant(key, key).await,
            Entity::Organization,
        );
        not_found(
            store.dissociate_client_grant(key, key).await,
            Entity::Organization,
        );
        assert_eq!(store.log_stream(key).await.unwrap(), None, "{key:?}");
        not_found(
            store.update_log_stream(key, &mut |_| Ok(())).await,
            Entity::LogStream,
        );
        not_found(store.delete_log_stream(key).await, Entity::LogStream);
        assert_eq!(
            store.lease_log_stream(key, key, 0, 1).await.unwrap(),
            None,
            "{key:?}"
        );
        assert!(
            !store
                .record_delivery(key, key, Delivery::Release)
                .await
                .unwrap()
        );
        let notice = ExpiryNotice {
            credential_id: key.into(),
            threshold_s: 0,
            expires_at_ms: 1,
            sent_at_ms: 1,
        };
        assert!(
            !store.claim_expiry_notice(&notice).await.unwrap(),
            "{key:?}"
        );
        not_found(store.credential(key, key).await, Entity::Client);
    }
    // PostgreSQL text cannot hold NUL: a new name holding one is refused as bad input.
    let inserted = store.insert_organization(&organization("a\0b")).await;
    match f.backend {
        Backend::Postgres => assert!(
            matches!(inserted, Err(StoreError::Rejected(_))),
            "{inserted:?}"
        ),
        Backend::Sqlite => inserted.unwrap(),
    }
}

// ----- logs -----

fn log_event(date_ms: i64, kind: &str, client_id: &str) -> NewLog {
    let mut doc = Map::new();
    doc.insert("type".into(), json!(kind));
    doc.insert("client_id".into(), json!(client_id));
    doc.insert(
        "description".into(),
        json!(format!("{kind} by {client_id}\0")),
    );
    NewLog { date_ms, doc }
}

fn search(filter: &str) -> LogSearch {
    LogSearch {
        filter: clavis::domain::log_query::parse(filter).unwrap(),
        sort: "date_ms",
        descending: false,
        offset: 0,
        limit: 100,
        totals: true,
    }
}

async fn logs_append_search_and_purge(f: Fixture) {
    let store = &f.store;
    let day = 86_400_000;
    let t0 = 1_767_225_600_000; // 2026-01-01
    let batch: Vec<NewLog> = (0..10)
        .map(|i| {
            let kind = if i % 2 == 0 { "seccft" } else { "feccft" };
            log_event(t0 + i * day, kind, &format!("client{}", i % 3))
        })
        .collect();
    store.insert_logs(&batch).await.unwrap();
    store.insert_logs(&[]).await.unwrap();
    let all = store.logs_after(0, 100).await.unwrap();
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let first: serde_json::Value = serde_json::from_str(&all[0].doc).unwrap();
    assert_eq!(first["type"], "seccft");
    assert_eq!(first["description"], "seccft by client0\0");
    assert_eq!(store.log(all[3].seq).await.unwrap().unwrap(), all[3]);
    assert!(store.log(all[9].seq + 1).await.unwrap().is_none());
    assert_eq!(store.logs_after(all[7].seq, 100).await.unwrap(), all[8..]);
    assert_eq!(store.logs_after(all[1].seq, 2).await.unwrap(), all[2..4]);

    let (rows, total) = store.search_logs(&search("type:seccft")).await.unwrap();
    assert_eq!((rows.len(), total), (5, Some(5)));
    let (rows, _) = store
        .search_logs(&search("type:s* AND client_id:client0"))
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [all[0].seq, all[6].seq]
    );
    let (_, total) = store
        .search_logs(&search("date:[2026-01-02 TO 2026-01-04]"))
        .await
        .unwrap();
    assert_eq!(total, Some(3));
    let (_, total) = store
        .search_logs(&search(
            "(client_id:client1 OR client_id:client2) AND NOT type:feccft",
        ))
        .await
        .unwrap();
    assert_eq!(total, Some(3));
    let (_, total) = store
        .search_logs(&search("description:\"seccft by client0\0\""))
        .await
        .unwrap();
    assert_eq!(total, Some(2));
    let mut newest = search("");
    newest.descending = true;
    newest.limit = 3;
    newest.offset = 1;
    newest.totals = false;
    let (rows, total) = store.search_logs(&newest).await.unwrap();
    assert_eq!(total, None);
    assert_eq!(rows, [all[8].clone(), all[7].clone(), all[6].clone()]);
    let mut by_client = search("");
    by_client.sort = "client_id";
    let (rows, _) = store.search_logs(&by_client).await.unwrap();
    assert_eq!(rows[0], all[0]);
    assert_eq!(rows[9], all[8]);

    // Oldest first, a chunk per call.
    assert_eq!(store.purge_logs(t0 + 5 * day, 3).await.unwrap(), 3);
    assert_eq!(store.purge_logs(t0 + 5 * day, 3).await.unwrap(), 2);
    assert_eq!(store.purge_logs(t0 + 5 * day, 3).await.unwrap(), 0);
    assert_eq!(store.logs_after(0, 100).await.unwrap(), all[5..]);
}

async fn log_ids_become_visible_in_order_across_nodes(f: Fixture) {
    let a = f.store.clone();
    let b = f.node().await;
    let reader = f.node().await;
    let now = Timestamp::now().unix_millis();
    let backend = f.backend;
    let write = move |store: Arc<dyn Store>, name: &'static str| async move {
        let mut written = 0;
        for round in 0..30 {
            let batch: Vec<NewLog> = (0..10)
                .map(|i| log_event(now, "sapi", &format!("{name}-{round}-{i}")))
                .collect();
            match store.insert_logs(&batch).await {
                Ok(()) => written += 10,
                // SQLite's single writer may make the other "node" give up; nothing else.
                Err(StoreError::Unavailable(_)) if backend == Backend::Sqlite => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        written
    };
    let writers = tokio::spawn(async move {
        let (x, y) = tokio::join!(write(a, "a"), write(b, "b"));
        x + y
    });
    // A checkpoint reader that follows the feed while it is written never skips an event.
    let mut seen = Vec::new();
    let mut last = 0;
    loop {
        let done = writers.is_finished();
        let rows = reader.logs_after(last, 100).await.unwrap();
        if let Some(row) = rows.last() {
            last = row.seq;
        }
        seen.extend(rows.into_iter().map(|r| r.seq));
        if done && reader.logs_after(last, 100).await.unwrap().is_empty() {
            break;
        }
    }
    let written = writers.await.unwrap();
    let everything: Vec<i64> = f
        .store
        .logs_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(everything.len(), written);
    assert_eq!(seen, everything);
}

fn organization(name: &str) -> Organization {
    let now = Timestamp::now();
    Organization {
        id: clavis::domain::ids::new_organization_id(),
        name: name.into(),
        display_name: Some("Display".into()),
        extra: Map::new(),
        created_at: now,
        updated_at: now,
    }
}

/// Organizations: unique names, paging, associations with grants (conflict, cap of 100,
/// cascades from either side), the snapshot, odd keys, and announcements to other nodes.
async fn organizations_and_their_grants(f: Fixture) {
    let other = f.node().await;
    let changes = other.subscribe().await.unwrap().map(|s| s.changes);
    let store = f.store.as_ref();
    let acme = organization("acme");
    store.insert_organization(&acme).await.unwrap();
    let err = store
        .insert_organization(&organization("acme"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                entity: Entity::Organization,
                ..
            }
        ),
        "{err:?}"
    );
    let globex = organization("globex");
    store.insert_organization(&globex).await.unwrap();
    assert_eq!(
        store.organization_by_name("acme").await.unwrap(),
        Some(acme.clone())
    );
    // Renaming onto a taken name conflicts and changes nothing.
    let err = store
        .update_organization(&acme.id, &mut |o| {
            o.name = "globex".into();
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let renamed = store
        .update_organization(&acme.id, &mut |o| {
            o.name = "acme-corp".into();
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(store.organization_by_name("acme").await.unwrap(), None);
    assert_eq!(
        store.organization_by_name("acme-corp").await.unwrap(),
        Some(renamed.clone())
    );
    let page = store
        .list_organizations(&OrganizationFilter::default(), offset(0, 1))
        .await
        .unwrap();
    assert_eq!((page.items, page.total), (vec![renamed.clone()], Some(2)));

    let api = resource_server(&unique("urn:orgs:"));
    store.insert_resource_server(&api).await.unwrap();
    let c = client_with_credentials(store, 0).await;
    let g = grant(&c.client.client_id, &api.identifier);
    store.insert_client_grant(&g).await.unwrap();
    assert_eq!(
        store.associate_client_grant(&acme.id, &g.id).await.unwrap(),
        g
    );
    let err = store
        .associate_client_grant(&acme.id, &g.id)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    for (org, grant_id, entity) in [
        ("org_0000000000000000", g.id.as_str(), Entity::Organization),
        (
            acme.id.as_str(),
            "cgr_0000000000000000",
            Entity::ClientGrant,
        ),
    ] {
        not_found(store.associate_client_grant(org, grant_id).await, entity);
    }
    store
        .associate_client_grant(&globex.id, &g.id)
        .await
        .unwrap();
    let of_grant = store
        .list_organizations(
            &OrganizationFilter {
                grant_id: Some(g.id.clone()),
                ..Default::default()
            },
            offset(0, 50),
        )
        .await
        .unwrap();
    assert_eq!(of_grant.items, vec![renamed.clone(), globex.clone()]);
    let of_org = store
        .list_client_grants(
            &GrantFilter {
                organization_id: Some(acme.id.clone()),
                ..Default::default()
            },
            offset(0, 50),
        )
        .await
        .unwrap();
    assert_eq!((of_org.items, of_org.total), (vec![g.clone()], Some(1)));
    assert_eq!(
        store.organization(&acme.id).await.unwrap(),
        Some(OrganizationRecord {
            organization: renamed.clone(),
            grant_ids: vec![g.id.clone()],
        })
    );
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.organizations.len(), 2);
    assert_eq!(snapshot.organizations[1].grant_ids, vec![g.id.clone()]);

    // Removing: idempotent; an unknown organization is NotFound.
    store
        .dissociate_client_grant(&globex.id, &g.id)
        .await
        .unwrap();
    store
        .dissociate_client_grant(&globex.id, &g.id)
        .await
        .unwrap();
    assert!(matches!(
        store
            .dissociate_client_grant("org_0000000000000000", &g.id)
            .await,
        Err(StoreError::NotFound(Entity::Organization))
    ));
    // Deleting the grant removes its associations; deleting an organization its own.
    store.delete_client_grant(&g.id).await.unwrap();
    assert_eq!(
        store
            .organization(&acme.id)
            .await
            .unwrap()
            .unwrap()
            .grant_ids,
        Vec::<String>::new()
    );
    store.delete_organization(&globex.id).await.unwrap();
    assert!(matches!(
        store.delete_organization(&globex.id).await,
        Err(StoreError::NotFound(Entity::Organization))
    ));

    // The cap: 100 grants per organization.
    let many: Vec<ClientGrant> = {
        let mut v = Vec::new();
        for i in 0..101 {
            let api = resource_server(&format!("urn:cap:{i}:{}", unique("")));
            store.insert_resource_server(&api).await.unwrap();
            let g = grant(&c.client.client_id, &api.identifier);
            store.insert_client_grant(&g).await.unwrap();
            v.push(g);
        }
        v
    };
    for g in &many[..100] {
        store.associate_client_grant(&acme.id, &g.id).await.unwrap();
    }
    let err = store
        .associate_client_grant(&acme.id, &many[100].id)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { message, .. } if message.contains("100")),
        "{err:?}"
    );

    for key in ["\0", "a\0b", "' OR 1=1 --", ""] {
        assert_eq!(store.organization(key).await.unwrap(), None, "{key:?}");
        assert_eq!(store.organization_by_name(key).await.unwrap(), None);
        assert!(matches!(
            store.delete_organization(key).await,
            Err(StoreError::NotFound(Entity::Organization))
        ));
    }

    // Every organization write is announced by the organization's id.
    if let Some(mut changes) = changes {
        let mut orgs = Vec::new();
        while let Ok(Some(change)) =
            tokio::time::timeout(Duration::from_millis(500), changes.recv()).await
        {
            if let Change::Organization(id) = change {
                orgs.push(id);
            }
        }
        // inserts (2), the rename, associations (2), a removal (2), the delete, the cap (100).
        assert_eq!(orgs.len(), 2 + 1 + 2 + 2 + 1 + 100, "{orgs:?}");
        assert!(orgs.iter().all(|id| *id == acme.id || *id == globex.id));
    }
    other.close().await;
}

fn log_at(date_ms: i64) -> NewLog {
    let mut doc = Map::new();
    doc.insert("type".into(), json!("sapi"));
    NewLog { date_ms, doc }
}

/// A stream starts after the events stored before it (or `startFrom`); its lease is held
/// by one owner at a time across nodes (taken again only once expired); only the holder
/// moves the cursor, which never goes back; failures start a failing run that a delivery
/// ends; updates keep the cursor.
async fn log_stream_leases_let_one_node_deliver(f: Fixture) {
    use clavis::domain::log_stream::NewLogStream;
    use clavis::domain::validate::Body;
    let store = f.store.clone();
    store
        .insert_logs(&[log_at(1_000), log_at(2_000), log_at(3_000)])
        .await
        .unwrap();
    let last = store.logs_after(0, 10).await.unwrap().last().unwrap().seq;
    let body = json!({"type": "http", "sink": {"httpEndpoint": "https://logs.example/"}});
    let new = NewLogStream::parse(Body::new(&body).unwrap()).unwrap();
    let stream = new.stream().clone();
    store
        .insert_log_stream(&stream, Some(b"sealed".as_slice()), None)
        .await
        .unwrap();
    let record = store.log_stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(record.cursor, last);
    assert_eq!(
        record.sealed_authorization.as_deref(),
        Some(b"sealed".as_slice())
    );
    // startFrom: after the last event dated before it.
    let other = NewLogStream::parse(Body::new(&body).unwrap()).unwrap();
    store
        .insert_log_stream(other.stream(), None, Some(2_500))
        .await
        .unwrap();
    let started = store.log_stream(&other.stream().id).await.unwrap().unwrap();
    assert_eq!(started.cursor, last - 1);
    assert_eq!(store.log_streams().await.unwrap().len(), 2);

    let node = f.node().await;
    let id = stream.id.as_str();
    let (a, b) = (store.as_ref(), node.as_ref());
    assert!(
        a.lease_log_stream(id, "A", 10, 100)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.lease_log_stream(id, "B", 50, 150)
            .await
            .unwrap()
            .is_none()
    );
    // A renews; B may not move the cursor.
    assert!(
        a.lease_log_stream(id, "A", 60, 200)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        !b.record_delivery(id, "B", Delivery::Delivered(last + 5))
            .await
            .unwrap()
    );
    assert!(
        a.record_delivery(id, "A", Delivery::Failed(70))
            .await
            .unwrap()
    );
    assert!(
        a.record_delivery(id, "A", Delivery::Failed(80))
            .await
            .unwrap()
    );
    let r = b.log_stream(id).await.unwrap().unwrap();
    assert_eq!((r.cursor, r.failing_since_ms), (last, Some(70)));
    assert!(
        a.record_delivery(id, "A", Delivery::Delivered(last + 2))
            .await
            .unwrap()
    );
    assert!(
        a.record_delivery(id, "A", Delivery::Delivered(last + 1))
            .await
            .unwrap()
    );
    let r = b.log_stream(id).await.unwrap().unwrap();
    assert_eq!((r.cursor, r.failing_since_ms), (last + 2, None));
    // Expired: B takes it, and A no longer moves the cursor.
    assert!(
        b.lease_log_stream(id, "B", 201, 300)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        !a.record_delivery(id, "A", Delivery::Delivered(last + 9))
            .await
            .unwrap()
    );
    // Concurrent takes: exactly one wins.
    let (x, y) = tokio::join!(
        a.lease_log_stream(id, "C", 400, 500),
        b.lease_log_stream(id, "D", 400, 500)
    );
    assert_eq!(
        [x.unwrap().is_some(), y.unwrap().is_some()]
            .iter()
            .filter(|held| **held)
            .count(),
        1
    );
    // An update changes the document, not the cursor.
    let updated = a
        .update_log_stream(id, &mut |r| {
            r.stream.status = "paused".into();
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(updated.cursor, last + 2);
    assert_eq!(
        b.log_stream(id).await.unwrap().unwrap().stream.status,
        "paused"
    );
    a.delete_log_stream(id).await.unwrap();
    assert!(matches!(
        b.delete_log_stream(id).await,
        Err(StoreError::NotFound(Entity::LogStream))
    ));
    assert!(b.log_stream(id).await.unwrap().is_none());
}

/// Concurrent reservations from two nodes: granted in full while the quota lasts, never
/// beyond it; each answer is what it added and the count after it; windows are counted
/// apart and purged by their start.
async fn token_quota_reservations_never_exceed_the_quota(f: Fixture) {
    let store = f.store.clone();
    let other = f.node().await;
    assert_eq!(
        store
            .reserve_token_quota("client:a:per_day", 86_400, 3, 10)
            .await
            .unwrap(),
        (3, 3)
    );
    assert_eq!(
        other
            .reserve_token_quota("client:a:per_day", 86_400, 3, 10)
            .await
            .unwrap(),
        (3, 6)
    );
    // 40 concurrent reservations of 3 from both nodes share the remaining 4.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            s.reserve_token_quota("client:a:per_day", 86_400, 3, 10)
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        let (g, used) = t.await.unwrap();
        assert!(g <= 3 && used <= 10, "({g}, {used})");
        granted += g;
    }
    assert_eq!(granted, 4);
    // Spent: nothing more; a lowered quota grants nothing either.
    assert_eq!(
        store
            .reserve_token_quota("client:a:per_day", 86_400, 3, 10)
            .await
            .unwrap(),
        (0, 10)
    );
    assert_eq!(
        store
            .reserve_token_quota("client:a:per_day", 86_400, 3, 5)
            .await
            .unwrap(),
        (0, 10)
    );
    // Another window and another bucket start afresh.
    assert_eq!(
        store
            .reserve_token_quota("client:a:per_day", 2 * 86_400, 5, 10)
            .await
            .unwrap(),
        (5, 5)
    );
    assert_eq!(
        store
            .reserve_token_quota("organization:a:per_day", 86_400, 1, 1)
            .await
            .unwrap(),
        (1, 1)
    );
    // Purging the windows that started before the second day forgets the first.
    assert_eq!(store.purge_token_quota_usage(2 * 86_400).await.unwrap(), 2);
    assert_eq!(
        store
            .reserve_token_quota("client:a:per_day", 86_400, 3, 10)
            .await
            .unwrap(),
        (3, 3)
    );
}

async fn tenant_settings_are_one_document_announced_to_other_nodes(f: Fixture) {
    use clavis::domain::tenant_settings::TenantSettings;
    let other = f.node().await;
    let mut changes = other.subscribe().await.unwrap().map(|s| s.changes);
    let store = f.store.as_ref();
    assert_eq!(
        store.tenant_settings().await.unwrap(),
        TenantSettings::default()
    );
    let set = |key: &'static str, value: serde_json::Value| {
        move |s: &mut TenantSettings| {
            s.values.insert(key.into(), value.clone());
            Ok(())
        }
    };
    let mut first = set("friendly_name", json!("Acme"));
    store.update_tenant_settings(&mut first).await.unwrap();
    let mut second = set("support_url", json!("https://acme.example/"));
    let written = other.update_tenant_settings(&mut second).await.unwrap();
    assert_eq!(
        written.values,
        json!({"friendly_name": "Acme", "support_url": "https://acme.example/"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(store.tenant_settings().await.unwrap(), written);
    // A refused mutation writes nothing.
    let mut refuse = |_: &mut TenantSettings| Err(DomainError::InvalidBody("no".into()));
    assert!(store.update_tenant_settings(&mut refuse).await.is_err());
    assert_eq!(other.tenant_settings().await.unwrap(), written);
    if let Some(changes) = changes.as_mut() {
        let change = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(Change::TenantSettings) = changes.recv().await {
                    return;
                }
            }
        })
        .await;
        assert!(change.is_ok(), "no announcement of the tenant settings");
    } else {
        assert_eq!(f.backend, Backend::Sqlite);
    }
}

/// PostgreSQL's migration 0010 on a database written before it: every stored credential
/// gets its client's position, so a node's start-up still hands each client its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
async fn postgres_migration_0010_places_existing_credentials_with_their_client() {
    use sqlx::Connection as _;
    let f = Fixture::new(Backend::Postgres).await;
    let store = f.store.as_ref();
    // Every credential attached: a streamed snapshot hands over only those.
    let with_attached = |n| {
        let mut c = client("attached");
        for _ in 0..n {
            c.credentials.push(credential(&c.client.client_id));
        }
        attach_first(&mut c, n);
        c
    };
    let (a, b, empty) = (with_attached(2), with_attached(1), client("none"));
    for c in [&a, &b, &empty] {
        store.insert_client(c).await.unwrap();
    }
    let attach_one_more = |c: &mut ClientAggregate| {
        c.credentials.push(credential(&c.client.client_id));
        attach_first(c, c.credentials.len());
        Ok(())
    };
    let a = store
        .update_client(&a.client.client_id, &mut attach_one_more.clone())
        .await
        .unwrap();
    // Back to the schema before 0010, the rows as they were written.
    let mut conn = sqlx::PgConnection::connect(&f.url).await.unwrap();
    for sql in [
        "DROP TRIGGER credentials_client_seq ON credentials",
        "DROP FUNCTION credentials_client_seq()",
        "ALTER TABLE credentials DROP COLUMN client_seq",
        "DELETE FROM _sqlx_migrations WHERE version = 10",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let upgraded = f.node().await;
    let (_, clients, _) = streamed(upgraded.as_ref()).await;
    assert_eq!(clients, vec![a, b, empty]);
    assert_eq!(clients, upgraded.snapshot().await.unwrap().clients);
    // And a credential written after the upgrade joins its client too.
    let b = upgraded
        .update_client(&clients[1].client.client_id, &mut attach_one_more.clone())
        .await
        .unwrap();
    let (_, clients, _) = streamed(upgraded.as_ref()).await;
    assert_eq!(clients[1], b);
}

/// PostgreSQL: a write the service runs (inside `commit_order::run`) commits without waiting
/// for the disk, and `durable` then flushes the WAL past it; a write outside one is durable
/// when its commit returns. Also: the service may run several writes at once there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
async fn postgres_service_writes_are_flushed_before_they_are_acknowledged() {
    use clavis::store::commit_order;
    use sqlx::Connection as _;
    let f = Fixture::new(Backend::Postgres).await;
    let store = f.store.as_ref();
    assert_eq!(
        store.concurrent_writes(),
        5,
        "half of the default pool of 10"
    );
    let mut conn = sqlx::PgConnection::connect(&f.url).await.unwrap();
    // The WAL position after the last commit, and how far it is flushed.
    async fn wal(conn: &mut sqlx::PgConnection) -> (i64, i64) {
        sqlx::query_as(
            "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint, \
             (pg_current_wal_flush_lsn() - '0/0')::bigint",
        )
        .fetch_one(conn)
        .await
        .unwrap()
    }
    async fn flushes(conn: &mut sqlx::PgConnection) -> bool {
        sqlx::query_scalar("SELECT is_called FROM durability_mark")
            .fetch_one(conn)
            .await
            .unwrap()
    }
    // Outside a service write: durable at commit, no flush of ours needed.
    store.put_setting("outside", "1").await.unwrap();
    store.durable().await.unwrap();
    assert!(!flushes(&mut conn).await, "nothing needed a flush");

    for round in 0..5 {
        let c = client(&format!("durable{round}"));
        commit_order::run(Default::default(), store.insert_client(&c))
            .await
            .unwrap();
        // Assertion ids are durable at their commit: they wait for no flush of this write.
        let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
        store.when_jtis_durable(Box::new({
            let called = called.clone();
            move |result| {
                result.unwrap();
                called.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }));
        assert!(called.load(std::sync::atomic::Ordering::SeqCst));
        if round == 0 {
            assert!(!flushes(&mut conn).await, "no flush for the ids");
        }
        // At least the end of its commit record (other databases on the cluster write too).
        let (committed, _) = wal(&mut conn).await;
        store.durable().await.unwrap();
        assert!(flushes(&mut conn).await, "durable flushed");
        let (_, flushed) = wal(&mut conn).await;
        assert!(
            flushed >= committed,
            "round {round}: {flushed} < {committed}"
        );
        assert!(store.client(&c.client.client_id).await.unwrap().is_some());
    }
    conn.close().await.unwrap();
}

/// PostgreSQL: two service writes of one client, the second blocked on the first's row lock.
/// The second commits as soon as the first has, but must not reach the read model before the
/// first has finished applying itself: the first holds the commit turn from its commit to the
/// end of its write (`commit_order`), so the model applies them in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
async fn postgres_writes_of_one_row_reach_the_model_in_commit_order() {
    use clavis::store::commit_order;
    let f = Fixture::new(Backend::Postgres).await;
    let store = f.store.clone();
    let c = client("ordered");
    store.insert_client(&c).await.unwrap();
    let id = c.client.client_id.clone();
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    let applied = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (locked, first_locked) = tokio::sync::oneshot::channel();
    let first = tokio::spawn({
        let (store, turn, applied, id) = (store.clone(), turn.clone(), applied.clone(), id.clone());
        let mut locked = Some(locked);
        commit_order::run(turn, async move {
            store
                .update_client(&id, &mut |a| {
                    a.client.name = "first".into();
                    // The row is locked (SELECT ... FOR UPDATE) until this transaction ends.
                    if let Some(locked) = locked.take() {
                        let _ = locked.send(());
                    }
                    Ok(())
                })
                .await
                .unwrap();
            // A slow read-model update.
            tokio::time::sleep(Duration::from_millis(300)).await;
            applied.lock().unwrap().push("first");
        })
    });
    first_locked.await.unwrap();
    let second = tokio::spawn({
        let (store, turn, applied, id) = (store.clone(), turn.clone(), applied.clone(), id.clone());
        commit_order::run(turn, async move {
            store
                .update_client(&id, &mut |a| {
                    a.client.name = "second".into();
                    Ok(())
                })
                .await
                .unwrap();
            applied.lock().unwrap().push("second");
        })
    });
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(*applied.lock().unwrap(), vec!["first", "second"]);
    let kept = store.client(&id).await.unwrap().unwrap();
    assert_eq!(kept.client.name, "second");
}

/// SQLite's migration 0012 on a database written before it: the samples it takes of the
/// existing clients' positions are exact, and pages read from them are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0012_samples_existing_clients() {
    let f = Fixture::new(Backend::Sqlite).await;
    let store = f.store.as_ref();
    let clients: Vec<ClientAggregate> = (0..2100).map(|i| client(&format!("p{i}"))).collect();
    store.bulk_insert(&clients, &[]).await.unwrap();
    store
        .delete_client(&clients[7].client.client_id)
        .await
        .unwrap();
    // Back to the schema before 0012: 0011's counting triggers, no samples.
    let before = include_str!("../migrations/sqlite/0011_client_lists.sql");
    let triggers = &before[before.find("CREATE TRIGGER").unwrap()..];
    let conn = rusqlite::Connection::open(f.url.trim_start_matches("sqlite://")).unwrap();
    conn.execute_batch(&format!(
        "DROP TRIGGER clients_counted_in; DROP TRIGGER clients_counted_out;
         DROP TABLE client_positions; {triggers}
         DELETE FROM _sqlx_migrations WHERE version = 12;"
    ))
    .unwrap();
    drop(conn);

    let upgraded = f.node().await;
    sqlite_position_samples_are_exact(&f);
    let names: Vec<String> = clients
        .iter()
        .filter(|c| c.client.name != "p7")
        .map(|c| c.client.name.clone())
        .collect();
    pages_match(upgraded.as_ref(), &names).await;
}

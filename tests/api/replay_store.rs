//! `Store::record_jtis` batch semantics on SQLite: what the replay writer relies on when it
//! commits many assertion ids in one statement.

use std::sync::Arc;

use clavis::store::sqlite::SqliteStore;
use clavis::store::{JtiRecord, Store};

fn record(client: &str, jti: &str, expires_at: i64) -> JtiRecord {
    JtiRecord {
        client_id: client.into(),
        jti: jti.into(),
        expires_at,
    }
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/clavis.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn record_jtis_batch_marks_replays_and_duplicates() {
    let (_dir, store) = store().await;
    let now = 1_000;
    let first = store
        .record_jtis(
            &[
                record("a", "1", 2_000),
                record("a", "2", 2_000),
                record("b", "1", 2_000),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!(first, vec![true, true, true]);

    // Seen before (unexpired), new, duplicate within the batch, same jti of another client.
    let second = store
        .record_jtis(
            &[
                record("a", "1", 2_000),
                record("a", "3", 2_000),
                record("a", "3", 2_000),
                record("c", "1", 2_000),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!(second, vec![false, true, false, true]);
    assert!(store.record_jtis(&[], now).await.unwrap().is_empty());
}

#[tokio::test]
async fn record_jtis_takes_over_expired_records_once() {
    let (_dir, store) = store().await;
    assert_eq!(
        store
            .record_jtis(&[record("a", "x", 1_500)], 1_000)
            .await
            .unwrap(),
        vec![true]
    );
    // Later than its expiry: the id may be used again, but only once in the batch.
    assert_eq!(
        store
            .record_jtis(&[record("a", "x", 3_000), record("a", "x", 3_000)], 2_000)
            .await
            .unwrap(),
        vec![true, false]
    );
    assert_eq!(
        store
            .record_jtis(&[record("a", "x", 3_000)], 2_500)
            .await
            .unwrap(),
        vec![false]
    );
}

#[tokio::test]
async fn record_jtis_keeps_odd_ids_apart() {
    let (_dir, store) = store().await;
    let odd = ["quote\"d", "back\\slash", "ünï", "a,b", "[1]"];
    let records: Vec<_> = odd.iter().map(|j| record("c", j, 9_000)).collect();
    assert_eq!(
        store.record_jtis(&records, 1_000).await.unwrap(),
        vec![true; odd.len()]
    );
    assert_eq!(
        store.record_jtis(&records, 1_000).await.unwrap(),
        vec![false; odd.len()]
    );
}

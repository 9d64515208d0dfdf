//! The replay guard of a store this process alone uses (SQLite): assertion ids are decided in
//! memory and written to the store behind, without making a token wait for a disk.
//!
//! What keeps a replay out after a crash, when the ids of the last moments were never
//! written: the **horizon**. The guard accepts an assertion only before a time that it has
//! first made durable (`accept until`, renewed every second a few seconds ahead). After an
//! unclean stop the stored horizon bounds every assertion that may have been lost: it was
//! accepted before the horizon, so its `iat` is at most the horizon plus the clock skew (a
//! later `iat` is refused as in the future), and without `iat` its `exp` is at most the
//! horizon plus the longest assertion lifetime. The next start makes that bound the **iat
//! floor** (stored too, so that a second restart keeps it) and refuses every assertion issued
//! at or before it, or without `iat` while one so old could still be valid. Honest clients
//! sign a new assertion for each request, so they are refused only until the clock passes the
//! floor: the clock skew after the crash's horizon, about ten seconds. A clean stop writes
//! every id and clears the horizon: nothing is refused after it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::time::Timestamp;
use crate::metrics::AtomicHistogram;
use crate::service::token::{CLOCK_SKEW_SECONDS, MAX_ASSERTION_LIFETIME_SECONDS};
use crate::store::{JtiRecord, Store, StoreError};

use super::Recorded;

/// The setting holding `<accept until, Unix ms> <iat floor, Unix s>`; an accept-until of 0
/// means the last stop was clean.
pub(super) const HORIZON_SETTING: &str = "replay_horizon";
/// How far ahead of the clock each renewal sets the horizon.
const HORIZON_AHEAD: Duration = Duration::from_secs(3);
/// How often the horizon is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// The longest a request waits for the horizon (at start, or while the store is slow)
/// before it is answered 503.
const HORIZON_WAIT: Duration = Duration::from_secs(5);
/// Most records written in one transaction.
const MAX_BATCH: usize = 4096;
/// The longest a record waits for others to share its transaction.
const LINGER: Duration = Duration::from_millis(100);
/// Records queued for the writer before requests wait for room.
const QUEUE: usize = 65_536;
/// Records loaded per read at start.
const LOAD_PAGE: u32 = 50_000;
/// Shards of the in-memory set (each behind its own lock).
const SHARDS: usize = 16;
/// How often expired ids are forgotten from memory.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// No floor: nothing was lost.
const NO_FLOOR: i64 = i64::MIN;

enum Message {
    Record(JtiRecord),
    /// Answered once every record queued before it is durable (`true`) or could not be.
    Flush(oneshot::Sender<bool>),
}

/// The in-memory guard; see the module documentation.
pub(super) struct LocalGuard {
    /// Unexpired ids: a digest of (client id, jti) → the record's `expires_at`.
    shards: Vec<Mutex<HashMap<u128, i64>>>,
    /// Accepting is allowed while the clock (Unix ms) is before this: a durable horizon.
    accept_until: AtomicI64,
    /// Tells waiting requests that `accept_until` moved.
    horizon_moved: watch::Sender<()>,
    /// Assertions with `iat` at or before this (Unix s) are refused.
    iat_floor: AtomicI64,
    tx: mpsc::Sender<Message>,
    store: Arc<dyn Store>,
    /// Held while the horizon is written, so that closing never races a renewal.
    horizon_lock: tokio::sync::Mutex<bool>,
}

impl std::fmt::Debug for LocalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGuard")
            .field("accept_until", &self.accept_until)
            .field("iat_floor", &self.iat_floor)
            .finish_non_exhaustive()
    }
}

/// The digest an id is remembered by: 128 bits of SHA-256 over the length-prefixed client id
/// and the jti (a collision would only refuse an honest assertion, and needs 2^64 work).
fn key(client_id: &str, jti: &str) -> u128 {
    let mut input = Vec::with_capacity(8 + client_id.len() + jti.len());
    input.extend_from_slice(&(client_id.len() as u64).to_le_bytes());
    input.extend_from_slice(client_id.as_bytes());
    input.extend_from_slice(jti.as_bytes());
    let digest = clavis_crypto::encoding::sha256(&input);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

fn parse_horizon(value: &str) -> Option<(i64, i64)> {
    let (until, floor) = value.split_once(' ')?;
    Some((until.parse().ok()?, floor.parse().ok()?))
}

/// The floor after an unclean stop whose durable horizon was `until_ms`: the latest `iat`
/// an assertion accepted before it can carry.
fn floor_after(until_ms: i64) -> i64 {
    until_ms.div_euclid(1000) + 1 + CLOCK_SKEW_SECONDS
}

/// Whether the floor refuses an assertion with `iat` (or none) at `now_s`.
fn below_floor(floor: i64, iat: Option<i64>, now_s: i64) -> bool {
    if floor == NO_FLOOR {
        return false;
    }
    match iat {
        Some(iat) => iat <= floor,
        // Without iat an assertion accepted before the horizon expires at most the longest
        // lifetime after it, and is taken until the skew after that.
        None => !floor_passed(floor, now_s),
    }
}

/// Whether every assertion the floor refuses has expired at `now_s` (`iat` at or before the
/// floor, so `exp` at most the longest lifetime after it, taken until the skew after that).
fn floor_passed(floor: i64, now_s: i64) -> bool {
    floor == NO_FLOOR
        || now_s
            >= floor
                .saturating_add(MAX_ASSERTION_LIFETIME_SECONDS)
                .saturating_add(CLOCK_SKEW_SECONDS)
}

impl LocalGuard {
    /// Starts the guard: it accepts nothing until its first horizon is durable, after the
    /// stored ids are loaded and an unclean stop's floor is set.
    pub(super) fn start(store: Arc<dyn Store>, latency: AtomicHistogram) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let guard = Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            accept_until: AtomicI64::new(0),
            horizon_moved: watch::Sender::new(()),
            iat_floor: AtomicI64::new(NO_FLOOR),
            tx,
            store: store.clone(),
            horizon_lock: tokio::sync::Mutex::new(false),
        });
        tokio::spawn(writer(store, rx, latency));
        tokio::spawn(keep_horizon(Arc::downgrade(&guard)));
        guard
    }

    fn shard(&self, key: u128) -> &Mutex<HashMap<u128, i64>> {
        &self.shards[(key as usize) % SHARDS]
    }

    /// Decides an assertion id: fresh ones are remembered and queued for the store.
    pub(super) async fn record(
        &self,
        record: JtiRecord,
        iat: Option<i64>,
    ) -> Result<Recorded, StoreError> {
        self.wait_for_horizon().await?;
        let now_s = Timestamp::now().unix_seconds();
        if below_floor(self.iat_floor.load(Ordering::Acquire), iat, now_s) {
            return Ok(Recorded::IssuedBeforeCrash);
        }
        let key = key(&record.client_id, &record.jti);
        {
            let mut shard = self
                .shard(key)
                .lock()
                .map_err(|_| StoreError::Internal("replay set poisoned".into()))?;
            match shard.entry(key) {
                Entry::Occupied(mut seen) => {
                    if *seen.get() > now_s {
                        return Ok(Recorded::Replay);
                    }
                    seen.insert(record.expires_at);
                }
                Entry::Vacant(slot) => {
                    slot.insert(record.expires_at);
                }
            }
        }
        let queued = match self.tx.try_send(Message::Record(record)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(message)) => {
                self.tx.send(message).await.map_err(|_| ())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        };
        // Remembered but not queued: the id stays used, and no token is issued.
        queued.map_err(|()| StoreError::Unavailable("replay writer stopped".into()))?;
        Ok(Recorded::Fresh(super::Durable::now()))
    }

    async fn wait_for_horizon(&self) -> Result<(), StoreError> {
        let open = || Timestamp::now().unix_millis() < self.accept_until.load(Ordering::Acquire);
        if open() {
            return Ok(());
        }
        let mut moved = self.horizon_moved.subscribe();
        let waited = tokio::time::timeout(HORIZON_WAIT, async {
            while !open() {
                if moved.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await;
        match waited {
            Ok(true) => Ok(()),
            _ => Err(StoreError::Unavailable(
                "the replay guard's horizon could not be made durable".into(),
            )),
        }
    }

    /// Loads the stored ids and the floor, then publishes the first horizon.
    async fn open(&self) -> Result<(), StoreError> {
        let now = Timestamp::now().unix_seconds();
        let stored = self.store.setting(HORIZON_SETTING).await?;
        let (until, mut floor) = stored
            .as_deref()
            .and_then(parse_horizon)
            .unwrap_or((0, NO_FLOOR));
        if until > 0 {
            floor = floor.max(floor_after(until));
            tracing::warn!(
                iat_floor = floor,
                "the last stop was unclean: assertions issued at or before the floor are refused (replay protection)"
            );
        }
        // A floor whose assertions have all expired is dropped.
        if floor_passed(floor, now) {
            floor = NO_FLOOR;
        }
        self.iat_floor.store(floor, Ordering::Release);
        let mut after = 0;
        loop {
            let page = self.store.live_jtis(now, after, LOAD_PAGE).await?;
            for (_, r) in &page {
                let key = key(&r.client_id, &r.jti);
                if let Ok(mut shard) = self.shard(key).lock() {
                    // An id used again once its record expired is in the log twice.
                    let expires_at = shard.entry(key).or_insert(r.expires_at);
                    *expires_at = (*expires_at).max(r.expires_at);
                }
            }
            match page.last() {
                Some((position, _)) if page.len() == LOAD_PAGE as usize => after = *position,
                _ => break,
            }
        }
        Ok(())
    }

    /// Writes `accept until` (0 once closed) with the floor, and returns once durable.
    async fn write_horizon(&self, until_ms: i64) -> Result<(), StoreError> {
        let floor = self.iat_floor.load(Ordering::Acquire);
        self.store
            .put_setting(HORIZON_SETTING, &format!("{until_ms} {floor}"))
            .await?;
        self.store.durable().await
    }

    /// Renews the horizon unless closed; returns false once closed.
    async fn renew(&self) -> bool {
        let closed = self.horizon_lock.lock().await;
        if *closed {
            return false;
        }
        let until = Timestamp::now().unix_millis()
            + i64::try_from(HORIZON_AHEAD.as_millis()).unwrap_or(i64::MAX);
        match self.write_horizon(until).await {
            Ok(()) => {
                self.accept_until.fetch_max(until, Ordering::AcqRel);
                self.horizon_moved.send_replace(());
            }
            Err(e) => tracing::warn!(error = %e, "renewing the replay guard's horizon failed"),
        }
        true
    }

    /// Forgets expired ids from memory, a shard at a time.
    fn forget_expired(&self) {
        let now = Timestamp::now().unix_seconds();
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.retain(|_, expires_at| *expires_at > now);
            }
        }
    }

    /// Graceful stop: accepts nothing more, writes every id, and clears the horizon so that
    /// the next start refuses nothing. If the ids cannot all be written, the horizon stays
    /// and the next start sets a floor as after a crash.
    pub(super) async fn close(&self) {
        let mut closed = self.horizon_lock.lock().await;
        if *closed {
            return;
        }
        *closed = true;
        self.accept_until.store(0, Ordering::Release);
        let (done, wait) = oneshot::channel();
        let written =
            self.tx.send(Message::Flush(done)).await.is_ok() && wait.await.unwrap_or(false);
        if !written {
            tracing::warn!(
                "assertion ids not all written at shutdown: the next start refuses older assertions"
            );
            return;
        }
        if let Err(e) = self.write_horizon(0).await {
            tracing::warn!(error = %e, "clearing the replay guard's horizon failed: the next start refuses older assertions");
        }
    }
}

/// Opens the guard, then renews its horizon every second and forgets expired ids every
/// minute, until it is dropped or closed.
async fn keep_horizon(guard: std::sync::Weak<LocalGuard>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let Some(g) = guard.upgrade() else {
            return;
        };
        match g.open().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "loading assertion ids failed; retrying");
                drop(g);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forget = tokio::time::Instant::now() + FORGET_EVERY;
    loop {
        renew.tick().await;
        let Some(g) = guard.upgrade() else {
            return;
        };
        if !g.renew().await {
            return;
        }
        if tokio::time::Instant::now() >= forget {
            g.forget_expired();
            forget += FORGET_EVERY;
        }
    }
}

/// Writes queued ids in batches (up to [`MAX_BATCH`], lingering [`LINGER`]); a batch that
/// fails is kept and tried again. The commits are made durable with the store's next
/// fsync (the horizon's every second): the horizon covers what a crash loses.
async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Message>, latency: AtomicHistogram) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut pending: Vec<JtiRecord> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut pause = Duration::from_millis(100);
    loop {
        if pending.is_empty() {
            let is_flush = |m: &Message| matches!(m, Message::Flush(_));
            if !crate::batch::gather(&mut rx, &mut messages, MAX_BATCH, LINGER, is_flush).await {
                return;
            }
        } else {
            // A failed batch is retried with what queued meanwhile.
            while let Ok(message) = rx.try_recv() {
                messages.push(message);
                if messages.len() >= MAX_BATCH {
                    break;
                }
            }
        }
        for message in messages.drain(..) {
            match message {
                Message::Record(r) => pending.push(r),
                Message::Flush(done) => flushes.push(done),
            }
        }
        let started = std::time::Instant::now();
        let written = match store.write_jtis(&pending).await {
            Ok(()) => {
                latency.observe(started.elapsed());
                pending.clear();
                pause = Duration::from_millis(100);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, kept = pending.len(), "writing assertion ids failed; retrying");
                false
            }
        };
        if !flushes.is_empty() {
            let durable = written && store.durable().await.is_ok();
            for done in flushes.drain(..) {
                let _ = done.send(durable);
            }
        }
        if !written {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_covers_every_assertion_accepted_before_the_horizon() {
        // Accepted at 999.999 s with a horizon of 1000.000 s: iat up to 999 + skew.
        let until_ms = 1_000_000;
        let floor = floor_after(until_ms);
        let accepted_s = (until_ms - 1) / 1000;
        assert!(below_floor(
            floor,
            Some(accepted_s + CLOCK_SKEW_SECONDS),
            2000
        ));
        // Any later iat is honest.
        assert!(!below_floor(floor, Some(floor + 1), 2000));
        // Without iat: refused while one accepted before the horizon could be valid.
        let last_valid = accepted_s + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS - 1;
        assert!(below_floor(floor, None, last_valid));
        assert!(!below_floor(NO_FLOOR, None, last_valid));
        assert!(!below_floor(NO_FLOOR, Some(i64::MIN), 0));
        // The floor is dropped only once the last assertion it refuses has expired.
        let (iat, exp) = (floor, floor + MAX_ASSERTION_LIFETIME_SECONDS);
        assert!(!floor_passed(floor, exp + CLOCK_SKEW_SECONDS - 1));
        assert!(floor_passed(floor, exp + CLOCK_SKEW_SECONDS));
        assert!(below_floor(floor, Some(iat), exp + CLOCK_SKEW_SECONDS - 1));
    }

    #[test]
    fn the_horizon_setting_round_trips() {
        assert_eq!(
            parse_horizon("1733370000000 -5"),
            Some((1_733_370_000_000, -5))
        );
        assert_eq!(parse_horizon(&format!("0 {NO_FLOOR}")), Some((0, NO_FLOOR)));
        assert_eq!(parse_horizon("junk"), None);
    }

    #[test]
    fn keys_separate_client_and_jti() {
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_eq!(key("a", "b"), key("a", "b"));
    }
}

//! Token quotas (Auth0's fine-grained machine-to-machine token quotas): how many
//! client-credentials tokens a client, and an organization, may obtain per UTC hour and per
//! UTC day.
//!
//! Counting is shared through the store: the count of each bucket's window (`client:<id>`
//! or `organization:<id>`, `per_hour` or `per_day`, the window's start) lives in one row,
//! and a node *reserves* a block of the remaining quota from it in one statement (the count
//! grows by what is granted and never beyond the quota), then spends the block from memory.
//! A token is issued only from a reservation, so across every node sharing the store:
//! - no overshoot: an enforced quota's tokens in a window never exceed it (while the quota
//!   is not lowered within the window);
//! - bounded undershoot: a request is refused only when its node holds no reservation and
//!   the shared count has reached the quota; at that moment the other nodes hold at most
//!   [`block`] unspent tokens each, which they still issue.
//!
//! One store round trip per block, not per token; a block is 1 % of the quota (at least 1,
//! at most 1,000). With no quota configured anywhere, nothing here runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::token_quota::QuotaLimits;
use crate::store::{Store, StoreError};

/// Seconds in a bucket's window.
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Tokens a node reserves at once for a quota of `limit`.
pub fn block(limit: u64) -> u64 {
    (limit / 100).clamp(1, 1000)
}

/// What a quota is counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A client (`Auth0-Client-Quota-Limit`).
    Client,
    /// An organization (`Auth0-Organization-Quota-Limit`).
    Organization,
}

impl Entity {
    /// `client` or `organization` (Auth0's `entity_type`; the prefix of its buckets).
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Organization => "organization",
        }
    }
}

/// One bucket's state after a request, for the quota headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketReport {
    /// `per_hour` (true) or `per_day`.
    pub hourly: bool,
    /// The quota.
    pub quota: u64,
    /// Tokens left in the window.
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_after: i64,
    /// The consumption threshold (60, 80 or 100 %) this request took the bucket to, when
    /// this node had not reported it yet in this window (Auth0's
    /// `token_quota_consumption_warning`).
    pub warning: Option<u8>,
}

impl BucketReport {
    /// `per_hour` or `per_day`.
    pub fn name(&self) -> &'static str {
        if self.hourly { "per_hour" } else { "per_day" }
    }

    /// Tokens counted in the window (as this node knows it).
    pub fn consumed(&self) -> u64 {
        self.quota.saturating_sub(self.remaining)
    }
}

/// The consumption thresholds reported (Auth0's: 60, 80 and 100 %).
const THRESHOLDS: [u8; 3] = [60, 80, 100];

/// A quota's state after a request: its buckets, whether it refused the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaReport {
    /// Whose quota.
    pub entity: Entity,
    /// The client's or organization's id.
    pub id: String,
    /// Its buckets (hourly first).
    pub buckets: Vec<BucketReport>,
    /// The bucket that refused the request (enforced and exhausted), if any.
    pub refused_by: Option<BucketReport>,
}

impl QuotaReport {
    /// The header's name.
    pub fn header_name(&self) -> &'static str {
        match self.entity {
            Entity::Client => "auth0-client-quota-limit",
            Entity::Organization => "auth0-organization-quota-limit",
        }
    }

    /// Auth0's header value: `b=per_hour;q=10;r=7;t=3540,b=per_day;q=50;r=47;t=43200`.
    pub fn header_value(&self) -> String {
        self.buckets
            .iter()
            .map(|b| {
                format!(
                    "b={};q={};r={};t={}",
                    b.name(),
                    b.quota,
                    b.remaining,
                    b.reset_after
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Default)]
struct BucketState {
    window_start: i64,
    /// The quota the state was counted under.
    limit: u64,
    /// Reserved from the shared count and not yet spent.
    reserve: u64,
    /// The shared count after this node's last reservation.
    shared_used: u64,
    /// The shared count reached the quota in this window.
    exhausted: bool,
    /// The highest consumption threshold this node reported in this window.
    warned: u8,
}

impl BucketState {
    fn roll(&mut self, window_start: i64, limit: u64) {
        if self.window_start != window_start || self.limit != limit {
            *self = Self {
                window_start,
                limit,
                ..Self::default()
            };
        }
    }

    /// The highest threshold the consumption reached, if this node has not reported it yet
    /// (and now counts it as reported).
    fn warn(&mut self) -> Option<u8> {
        let consumed = u128::from(self.limit.saturating_sub(self.remaining()));
        let reached = THRESHOLDS
            .into_iter()
            .filter(|t| consumed * 100 >= u128::from(*t) * u128::from(self.limit))
            .max()?;
        (reached > self.warned).then(|| {
            self.warned = reached;
            reached
        })
    }

    fn remaining(&self) -> u64 {
        if self.exhausted {
            self.reserve
        } else {
            self.limit.saturating_sub(self.shared_used) + self.reserve
        }
    }
}

#[derive(Debug, Default)]
struct EntityState {
    hour: BucketState,
    day: BucketState,
}

impl EntityState {
    fn bucket(&mut self, hourly: bool) -> &mut BucketState {
        if hourly {
            &mut self.hour
        } else {
            &mut self.day
        }
    }
}

/// One client's or organization's counts on this node. A token is counted under `state`'s
/// lock alone, held for no await; only a request that finds a bucket without reserve takes
/// `refill` (one reservation from the store at a time per entity) and waits for the store.
#[derive(Debug, Default)]
struct Entry {
    state: Mutex<EntityState>,
    refill: tokio::sync::Mutex<()>,
}

impl Entry {
    fn lock(&self) -> std::sync::MutexGuard<'_, EntityState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The quota counter of one node.
pub struct QuotaCounter {
    store: Arc<dyn Store>,
    entities: Mutex<HashMap<String, Arc<Entry>>>,
    /// Added to the clock (tests move time forward instead of waiting for an hour).
    clock_shift: AtomicI64,
    /// The start of the oldest day window still kept in the store.
    purged_before: AtomicI64,
}

impl std::fmt::Debug for QuotaCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaCounter").finish_non_exhaustive()
    }
}

/// The quota applied to one request, for one entity.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// Whose.
    pub entity: Entity,
    /// Its id.
    pub id: &'a str,
    /// The quota.
    pub limits: QuotaLimits,
}

impl QuotaCounter {
    /// A counter sharing its counts through `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            entities: Mutex::default(),
            clock_shift: AtomicI64::new(0),
            purged_before: AtomicI64::new(0),
        }
    }

    /// Moves this node's quota clock forward by `seconds` (tests: a bucket's reset without
    /// waiting for it).
    pub fn shift_clock(&self, seconds: i64) {
        self.clock_shift.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Now, in Unix seconds, on the quota clock.
    pub fn now(&self) -> i64 {
        crate::domain::time::Timestamp::now().unix_seconds()
            + self.clock_shift.load(Ordering::Relaxed)
    }

    fn entry(&self, key: String) -> Arc<Entry> {
        let mut entities = self.entities.lock().unwrap_or_else(|e| e.into_inner());
        entities.entry(key).or_default().clone()
    }

    /// Counts one token against every quota in `applied` (at most one client and one
    /// organization quota), or refuses it: a request is refused when an enforced bucket of
    /// any of them is exhausted, and then nothing is counted. Returns each quota's report
    /// (in `applied`'s order) and whether the token may be issued.
    pub async fn take(
        &self,
        applied: &[Applied<'_>],
    ) -> Result<(Vec<QuotaReport>, bool), StoreError> {
        let now = self.now();
        self.purge_old(now);
        let hour_start = now - now.rem_euclid(HOUR);
        let day_start = now - now.rem_euclid(DAY);
        let entries: Vec<(&Applied<'_>, Arc<Entry>)> = applied
            .iter()
            .map(|a| (a, self.entry(format!("{}:{}", a.entity.name(), a.id))))
            .collect();
        loop {
            // Every bucket must hold a token or be known to be exhausted; the first that does
            // not is refilled from the store below, with no state lock held.
            let missing = {
                // Locked in `applied`'s order (client, then organization).
                let mut guards: Vec<_> = entries.iter().map(|(a, e)| (*a, e.lock())).collect();
                let mut missing = None;
                for (i, (a, state)) in guards.iter_mut().enumerate() {
                    for (hourly, limit, start) in [
                        (true, a.limits.per_hour, hour_start),
                        (false, a.limits.per_day, day_start),
                    ] {
                        let Some(limit) = limit.map(u64::from) else {
                            continue;
                        };
                        let bucket = state.bucket(hourly);
                        bucket.roll(start, limit);
                        if missing.is_none() && bucket.reserve == 0 && !bucket.exhausted {
                            missing = Some((i, hourly, start, limit));
                        }
                    }
                }
                match missing {
                    None => return Ok(self.decide(guards, now, hour_start, day_start)),
                    Some(m) => m,
                }
            };
            let (i, hourly, start, limit) = missing;
            let (a, entry) = &entries[i];
            let _refilling = entry.refill.lock().await;
            // Another request may have refilled it while this one waited.
            let still = {
                let mut state = entry.lock();
                let bucket = state.bucket(hourly);
                bucket.roll(start, limit);
                bucket.reserve == 0 && !bucket.exhausted
            };
            if still {
                let name = if hourly { "per_hour" } else { "per_day" };
                let (granted, used) = self
                    .store
                    .reserve_token_quota(
                        &format!("{}:{}:{name}", a.entity.name(), a.id),
                        start,
                        block(limit),
                        limit,
                    )
                    .await?;
                let mut state = entry.lock();
                let bucket = state.bucket(hourly);
                // A window that rolled over meanwhile starts afresh: the grant was for the old.
                if bucket.window_start == start && bucket.limit == limit {
                    bucket.reserve += granted;
                    bucket.shared_used = used;
                    bucket.exhausted = granted == 0 || used >= limit;
                }
            }
        }
    }

    /// With every bucket holding a token or known to be exhausted (the locks held):
    /// refuses the request when an enforced bucket is exhausted, else spends one token from
    /// every bucket.
    fn decide(
        &self,
        mut guards: Vec<(&Applied<'_>, std::sync::MutexGuard<'_, EntityState>)>,
        now: i64,
        hour_start: i64,
        day_start: i64,
    ) -> (Vec<QuotaReport>, bool) {
        // Refused when an enforced bucket has nothing left.
        let mut refused = false;
        let mut reports = Vec::with_capacity(guards.len());
        for (a, state) in &guards {
            let buckets = report(state, a, now, hour_start, day_start);
            let refused_by = if a.limits.enforce {
                buckets
                    .iter()
                    .filter(|b| b.remaining == 0)
                    // The bucket whose reset is furthest: the wait before a token.
                    .max_by_key(|b| b.reset_after)
                    .copied()
            } else {
                None
            };
            refused |= refused_by.is_some();
            reports.push(QuotaReport {
                entity: a.entity,
                id: a.id.to_string(),
                buckets,
                refused_by,
            });
        }
        if refused {
            return (reports, false);
        }
        // Spend one token from every bucket (one beyond a quota that is not enforced is
        // issued without one).
        for ((a, guard), entry) in guards.iter_mut().zip(reports.iter_mut()) {
            let state: &mut EntityState = guard;
            for bucket in [&mut state.hour, &mut state.day] {
                bucket.reserve = bucket.reserve.saturating_sub(1);
            }
            let warnings = [
                a.limits.per_hour.and_then(|_| state.hour.warn()),
                a.limits.per_day.and_then(|_| state.day.warn()),
            ];
            entry.buckets = report(state, a, now, hour_start, day_start);
            for b in &mut entry.buckets {
                b.warning = warnings[usize::from(!b.hourly)];
            }
        }
        (reports, true)
    }

    /// Forgets the store's counts of windows that ended, once per hour and node, in the
    /// background.
    fn purge_old(&self, now: i64) {
        let before = now - now.rem_euclid(HOUR) - DAY;
        let previous = self.purged_before.load(Ordering::Relaxed);
        if previous >= before
            || self
                .purged_before
                .compare_exchange(previous, before, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.purge_token_quota_usage(before).await {
                    tracing::debug!(error = %e, "old token quota counts not purged");
                }
            });
        }
    }
}

fn report(
    state: &EntityState,
    a: &Applied<'_>,
    now: i64,
    hour_start: i64,
    day_start: i64,
) -> Vec<BucketReport> {
    let mut buckets = Vec::with_capacity(2);
    if a.limits.per_hour.is_some() {
        buckets.push(BucketReport {
            hourly: true,
            quota: state.hour.limit,
            remaining: state.hour.remaining(),
            reset_after: hour_start + HOUR - now,
            warning: None,
        });
    }
    if a.limits.per_day.is_some() {
        buckets.push(BucketReport {
            hourly: false,
            quota: state.day.limit,
            remaining: state.day.remaining(),
            reset_after: day_start + DAY - now,
            warning: None,
        });
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_auth0_format() {
        let r = QuotaReport {
            entity: Entity::Client,
            id: "c".into(),
            buckets: vec![
                BucketReport {
                    hourly: true,
                    quota: 10,
                    remaining: 7,
                    reset_after: 3540,
                    warning: None,
                },
                BucketReport {
                    hourly: false,
                    quota: 50,
                    remaining: 47,
                    reset_after: 43200,
                    warning: None,
                },
            ],
            refused_by: None,
        };
        assert_eq!(r.header_name(), "auth0-client-quota-limit");
        assert_eq!(
            r.header_value(),
            "b=per_hour;q=10;r=7;t=3540,b=per_day;q=50;r=47;t=43200"
        );
    }

    #[test]
    fn each_threshold_is_reported_once_per_window() {
        let mut b = BucketState::default();
        b.roll(0, 5);
        b.reserve = 5;
        b.shared_used = 5;
        let mut seen = Vec::new();
        for _ in 0..5 {
            b.reserve -= 1;
            seen.push(b.warn());
        }
        assert_eq!(seen, [None, None, Some(60), Some(80), Some(100)]);
        assert_eq!(b.warn(), None);
        b.roll(3600, 5);
        assert_eq!(b.warned, 0);
    }

    #[test]
    fn blocks_are_one_percent_within_bounds() {
        assert_eq!(block(1), 1);
        assert_eq!(block(150), 1);
        assert_eq!(block(1000), 10);
        assert_eq!(block(2_147_483_647), 1000);
    }
}

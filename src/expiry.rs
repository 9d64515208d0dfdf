//! Credential expiry, before it bites: a task on every node looks, every minute, for the
//! credentials clients authenticate with (public keys, certificate subject DNs, pinned
//! certificates; effective expiry = the earlier of `expires_at` and a pinned certificate's
//! notAfter) that have come within a warning threshold of their expiry (default 30, 7 and 1
//! days), or past it, and records an audit event for each: `clavis_credential_expiring`
//! once per threshold, `clavis_credential_expired` once.
//!
//! Once, on any number of nodes: before recording an event, a node claims the notice in the
//! store ([`Store::claim_expiry_notice`]: a row per credential and threshold, unique), and
//! only the node whose claim recorded the row records the event. A notice sent for an
//! expiry is sent again when the credential's expiry moves later (renewed) and the threshold
//! comes near again. The scan reads the read model, not the store; it asks the store only
//! about notices this node has not seen sent, so a quiet tick costs no store round trip.
//!
//! [`Store::claim_expiry_notice`]: crate::store::Store::claim_expiry_notice

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::Event;
use crate::domain::time::Timestamp;
use crate::model::ExpiringCredential;
use crate::service::Clavis;
use crate::store::ExpiryNotice;

/// The event type of a credential within a warning threshold of its expiry.
pub const EXPIRING: &str = "clavis_credential_expiring";
/// The event type of a credential that expired.
pub const EXPIRED: &str = "clavis_credential_expired";
/// Warning thresholds in days unless configured.
pub const DEFAULT_WARNING_DAYS: [u32; 3] = [30, 7, 1];
/// How often the scan runs unless configured.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(60);
/// Longest threshold accepted, in days.
pub const MAX_WARNING_DAYS: u32 = 3650;

const DAY_MS: i64 = 86_400_000;

/// Reads `30d,7d,1d` (a bare number is days too): distinct thresholds of 1 to
/// [`MAX_WARNING_DAYS`] days, returned longest first; an empty list turns warnings off (the
/// expired event stays).
pub fn parse_warning_days(text: &str) -> Result<Vec<u32>, String> {
    let mut days = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = part.strip_suffix('d').unwrap_or(part);
        let n: u32 = number
            .parse()
            .ok()
            .filter(|n| (1..=MAX_WARNING_DAYS).contains(n))
            .ok_or_else(|| {
                format!(
                    "credential expiry warning {part:?}: expected days such as 30d, from 1d to {MAX_WARNING_DAYS}d"
                )
            })?;
        if !days.contains(&n) {
            days.push(n);
        }
    }
    days.sort_unstable_by(|a, b| b.cmp(a));
    Ok(days)
}

/// The thresholds and what this node knows was sent.
#[derive(Debug)]
pub struct ExpiryWatch {
    warning_days: Vec<u32>,
    /// Notices known sent (by this node or another): (credential, threshold, expiry). Held
    /// for the whole scan, so two scans of one node never overlap.
    sent: tokio::sync::Mutex<HashSet<(String, i64, i64)>>,
}

impl Default for ExpiryWatch {
    fn default() -> Self {
        Self::new(DEFAULT_WARNING_DAYS.to_vec())
    }
}

impl ExpiryWatch {
    /// A watch with these thresholds (days, any order).
    pub fn new(mut warning_days: Vec<u32>) -> Self {
        warning_days.sort_unstable_by(|a, b| b.cmp(a));
        warning_days.dedup();
        Self {
            warning_days,
            sent: tokio::sync::Mutex::default(),
        }
    }

    /// The thresholds, longest first.
    pub fn warning_days(&self) -> &[u32] {
        &self.warning_days
    }
}

/// The notices due for a credential at `now`: the expiry (threshold 0) once it passed, else
/// each threshold it is within.
fn due(c: &ExpiringCredential, warning_days: &[u32], now: Timestamp) -> Vec<u32> {
    let left = c.expires_at.unix_millis() - now.unix_millis();
    if left <= 0 {
        return vec![0];
    }
    warning_days
        .iter()
        .copied()
        .filter(|d| left <= i64::from(*d) * DAY_MS)
        .collect()
}

/// The event of a notice (`days` 0: expired).
fn event(c: &ExpiringCredential, days: u32, now: Timestamp) -> Event {
    let expires_at = c.expires_at.to_string();
    let mut details = json!({
        "credential_id": c.credential_id,
        "credential_type": c.credential_type.as_str(),
        "client_id": c.client_id,
        "expires_at": expires_at,
    });
    let (kind, description) = if days == 0 {
        (EXPIRED, format!("Credential expired at {expires_at}"))
    } else {
        let days_left = (c.expires_at.unix_millis() - now.unix_millis()) / DAY_MS;
        if let Value::Object(map) = &mut details {
            map.insert("threshold_days".into(), json!(days));
            map.insert("days_left".into(), json!(days_left));
        }
        (
            EXPIRING,
            format!("Credential expires within {days} days, at {expires_at}"),
        )
    };
    Event::new(kind, &description)
        .text("client_id", Some(&c.client_id))
        .text("client_name", Some(&c.client_name))
        .value("details", details)
}

impl Clavis {
    /// Runs the expiry scan now (the background task calls it every minute; tests call it);
    /// returns how many events this call recorded.
    pub async fn scan_credential_expiry(&self) -> usize {
        self.scan_credential_expiry_at(Timestamp::now()).await
    }

    /// [`Self::scan_credential_expiry`] as of `now`.
    pub async fn scan_credential_expiry_at(&self, now: Timestamp) -> usize {
        let watch = &self.expiry;
        let mut sent = watch.sent.lock().await;
        let longest = watch.warning_days.first().copied().unwrap_or(0);
        let horizon = now
            .unix_millis()
            .saturating_add(i64::from(longest) * DAY_MS)
            .saturating_add(1);
        let credentials = self
            .model
            .expiring_credentials(Timestamp::from_unix_millis(horizon));
        let mut current = HashSet::new();
        let mut recorded = 0;
        for c in &credentials {
            for days in due(c, &watch.warning_days, now) {
                let key = (
                    c.credential_id.clone(),
                    i64::from(days) * 86_400,
                    c.expires_at.unix_millis(),
                );
                current.insert(key.clone());
                if sent.contains(&key) {
                    continue;
                }
                let notice = ExpiryNotice {
                    credential_id: key.0.clone(),
                    threshold_s: key.1,
                    expires_at_ms: key.2,
                    sent_at_ms: now.unix_millis(),
                };
                match self.store.claim_expiry_notice(&notice).await {
                    Ok(claimed) => {
                        if claimed {
                            self.audit.record(event(c, days, now));
                            recorded += 1;
                        }
                        sent.insert(key);
                    }
                    Err(e) => {
                        // The next tick tries again.
                        tracing::warn!(error = %e, credential_id = %c.credential_id, "recording a credential expiry notice failed");
                        return recorded;
                    }
                }
            }
        }
        // Forgets what no longer applies (renewed, detached, deleted).
        sent.retain(|key| current.contains(key));
        recorded
    }
}

/// Runs the scan every `every` until the service is dropped.
pub fn start(clavis: &Arc<Clavis>, every: Duration) {
    let clavis = Arc::downgrade(clavis);
    let every = every.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(clavis) = clavis.upgrade() else {
                return;
            };
            let recorded = clavis.scan_credential_expiry().await;
            if recorded > 0 {
                tracing::info!(recorded, "credential expiry notices recorded");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::credential::CredentialType;

    #[test]
    fn warning_days_parse_sorted_and_distinct() {
        assert_eq!(parse_warning_days("1d,30d,7").unwrap(), [30, 7, 1]);
        assert_eq!(parse_warning_days("7d, 7d").unwrap(), [7]);
        assert_eq!(parse_warning_days("").unwrap(), Vec::<u32>::new());
        assert!(parse_warning_days("0d").is_err());
        assert!(parse_warning_days("3h").is_err());
        assert!(parse_warning_days("3651d").is_err());
    }

    #[test]
    fn due_notices_are_the_thresholds_crossed_or_the_expiry() {
        let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let at = |s: &str| ExpiringCredential {
            credential_id: "cred_x".into(),
            credential_type: CredentialType::PublicKey,
            client_id: "c".into(),
            client_name: "n".into(),
            expires_at: Timestamp::parse(s).unwrap(),
        };
        let days = [30, 7, 1];
        assert_eq!(due(&at("2030-01-03T00:00:00Z"), &days, now), [30, 7]);
        assert_eq!(due(&at("2030-01-08T00:00:00Z"), &days, now), [30, 7]);
        assert_eq!(due(&at("2030-01-08T00:00:00.001Z"), &days, now), [30]);
        assert_eq!(due(&at("2030-01-01T12:00:00Z"), &days, now), [30, 7, 1]);
        assert_eq!(due(&at("2030-01-01T00:00:00Z"), &days, now), [0]);
        assert!(due(&at("2030-03-01T00:00:00Z"), &days, now).is_empty());
    }
}

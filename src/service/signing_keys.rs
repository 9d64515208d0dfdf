//! Token-signing key lifecycle: `next` → `current` → `previous` → revoked.
//!
//! JWKS publishes current, next and every previous key that is not revoked, so a resource
//! server that caches JWKS can verify every unexpired token; revoking a previous key stops
//! its tokens at once (JWKS and Clavis's own Management API).

use super::{ServiceError, ServiceResult};
use crate::bootstrap::new_signing_key;
use crate::domain::DomainError;
use crate::domain::time::Timestamp;
use crate::model::KeyRing;
use crate::store::{KeyState, SigningKeyRecord};

use super::Clavis;

pub(crate) fn key_not_found() -> DomainError {
    DomainError::NotFound {
        code: "inexistent_key",
        message: "The signing key does not exist".into(),
    }
}

impl Clavis {
    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> ServiceResult<Vec<SigningKeyRecord>> {
        Ok(self.store.signing_keys().await?)
    }

    /// One signing key.
    pub async fn signing_key(&self, kid: &str) -> ServiceResult<SigningKeyRecord> {
        self.store
            .signing_keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or(ServiceError::Refused(key_not_found()))
    }

    /// Rotates: current → previous, next → current, a new key → next. Returns the new
    /// current key.
    pub async fn rotate_signing_keys(&self) -> ServiceResult<SigningKeyRecord> {
        let now = Timestamp::now();
        // Key generation takes a while; do it outside the transaction.
        let fresh = new_signing_key(&self.master_key, &self.issuer, KeyState::Next, now)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let keys = self
            .write(async || {
                let keys = self
                    .store
                    .update_signing_keys(&mut |keys| {
                        rotate(keys, fresh.clone(), now);
                        Ok(())
                    })
                    .await?;
                self.reload_keys(&keys)?;
                Ok(keys)
            })
            .await?;
        keys.into_iter()
            .rev()
            .find(|k| k.state == KeyState::Current && k.revoked_at.is_none())
            .ok_or_else(|| ServiceError::Internal("no current key after rotation".into()))
    }

    /// Revokes a previous key: it leaves JWKS and its tokens stop verifying.
    pub async fn revoke_signing_key(&self, kid: &str) -> ServiceResult<SigningKeyRecord> {
        let now = Timestamp::now();
        let keys = self
            .write(async || {
                let keys = self
                    .store
                    .update_signing_keys(&mut |keys| revoke(keys, kid, now))
                    .await?;
                self.reload_keys(&keys)?;
                Ok(keys)
            })
            .await?;
        keys.into_iter()
            .find(|k| k.kid == kid)
            .ok_or(ServiceError::Refused(key_not_found()))
    }

    fn reload_keys(&self, keys: &[SigningKeyRecord]) -> ServiceResult<()> {
        let ring = KeyRing::build(keys, &self.master_key).map_err(ServiceError::Internal)?;
        self.model.put_keys(ring);
        Ok(())
    }
}

/// Previous keys that stay published (and verify tokens) after a rotation; a rotation
/// beyond that revokes the oldest. Without a bound, every rotation would republish, and
/// re-parse, every key ever rotated out: API fuzzing rotated 1,400 times and the server
/// stopped answering.
pub const MAX_PREVIOUS_KEYS: usize = 8;

/// The rotation rule, pure.
fn rotate(keys: &mut Vec<SigningKeyRecord>, fresh: SigningKeyRecord, now: Timestamp) {
    let had_next = keys
        .iter()
        .any(|k| k.state == KeyState::Next && k.revoked_at.is_none());
    for key in keys.iter_mut() {
        match key.state {
            KeyState::Current => {
                key.state = KeyState::Previous;
                key.current_until = Some(now);
            }
            KeyState::Next if key.revoked_at.is_none() => {
                key.state = KeyState::Current;
                key.current_since = Some(now);
            }
            KeyState::Next | KeyState::Previous => {}
        }
    }
    let mut fresh = fresh;
    if !had_next {
        // No next key was waiting: the new key signs from now on.
        fresh.state = KeyState::Current;
        fresh.current_since = Some(now);
    }
    keys.push(fresh);
    // Oldest first: revoke the previous keys beyond the bound.
    let previous: Vec<usize> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.state == KeyState::Previous && k.revoked_at.is_none())
        .map(|(i, _)| i)
        .collect();
    let excess = previous.len().saturating_sub(MAX_PREVIOUS_KEYS);
    for &i in &previous[..excess] {
        keys[i].revoked_at = Some(now);
    }
}

/// The revocation rule, pure: only a previous key can be revoked.
fn revoke(keys: &mut [SigningKeyRecord], kid: &str, now: Timestamp) -> Result<(), DomainError> {
    let key = keys
        .iter_mut()
        .find(|k| k.kid == kid)
        .ok_or_else(key_not_found)?;
    if key.state != KeyState::Previous {
        return Err(DomainError::rule(
            "invalid_body",
            "Only a previous signing key can be revoked; rotate first",
        ));
    }
    if key.revoked_at.is_none() {
        key.revoked_at = Some(now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(kid: &str, state: KeyState) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            sealed_pkcs8: Vec::new(),
            cert_pem: String::new(),
            state,
            created_at: Timestamp::now(),
            current_since: None,
            current_until: None,
            revoked_at: None,
        }
    }

    #[test]
    fn rotation_promotes_next_and_keeps_previous() {
        let now = Timestamp::now();
        let mut keys = vec![key("a", KeyState::Current), key("b", KeyState::Next)];
        rotate(&mut keys, key("c", KeyState::Next), now);
        let states: Vec<_> = keys.iter().map(|k| (k.kid.as_str(), k.state)).collect();
        assert_eq!(
            states,
            [
                ("a", KeyState::Previous),
                ("b", KeyState::Current),
                ("c", KeyState::Next)
            ]
        );
        rotate(&mut keys, key("d", KeyState::Next), now);
        assert_eq!(keys[0].state, KeyState::Previous);
        assert_eq!(keys[1].state, KeyState::Previous);
        assert_eq!(keys[2].state, KeyState::Current);
    }

    #[test]
    fn rotation_keeps_a_bounded_number_of_previous_keys() {
        let now = Timestamp::now();
        let mut keys = vec![key("k0", KeyState::Current)];
        for i in 1..=20 {
            rotate(&mut keys, key(&format!("k{i}"), KeyState::Next), now);
        }
        let live_previous: Vec<&str> = keys
            .iter()
            .filter(|k| k.state == KeyState::Previous && k.revoked_at.is_none())
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(live_previous.len(), MAX_PREVIOUS_KEYS);
        // The newest previous keys stay; the oldest were revoked.
        assert_eq!(live_previous.last(), Some(&"k19"));
        assert!(keys[0].revoked_at.is_some());
        assert!(
            keys.iter()
                .any(|k| k.state == KeyState::Current && k.revoked_at.is_none())
        );
    }

    #[test]
    fn only_previous_keys_can_be_revoked() {
        let now = Timestamp::now();
        let mut keys = vec![key("a", KeyState::Previous), key("b", KeyState::Current)];
        assert!(revoke(&mut keys, "b", now).is_err());
        assert!(revoke(&mut keys, "zz", now).is_err());
        revoke(&mut keys, "a", now).unwrap();
        assert!(keys[0].revoked_at.is_some());
    }
}

//! Client secrets: generation and SHA-256 digests compared in constant time.

use std::fmt;

use crate::encoding::{b64url, sha256};

/// A new client secret: 48 random bytes as base64url without padding (64 characters).
#[must_use]
pub fn generate_client_secret() -> String {
    b64url(&crate::random::bytes::<48>())
}

/// The SHA-256 digest of a client secret, as stored.
///
/// Client secrets are 384-bit random values, so a plain (unsalted, fast) hash
/// is sufficient: there is nothing to brute-force.
#[derive(Clone, Copy)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        Self(sha256(secret.as_bytes()))
    }

    /// Whether `presented` hashes to this digest (constant-time comparison).
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        let candidate = sha256(presented.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &candidate).is_ok()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_64_url_safe_chars() {
        let a = generate_client_secret();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, generate_client_secret());
    }

    #[test]
    fn digest_matches() {
        let secret = generate_client_secret();
        let digest = SecretDigest::of(&secret);
        assert!(digest.matches(&secret));
        assert!(!digest.matches(&generate_client_secret()));
        assert!(!digest.matches(""));
        assert!(!digest.matches(&secret[..63]));
        assert_eq!(digest.0, sha256(secret.as_bytes()));
        assert_eq!(format!("{digest:?}"), "SecretDigest(..)");
    }
}

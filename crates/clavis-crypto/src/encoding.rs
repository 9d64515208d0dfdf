//! Base64url and SHA-256 helpers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::CryptoError;

/// Encodes `bytes` as base64url without padding (RFC 7515 section 2).
#[must_use]
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict base64url: URL-safe alphabet only, no padding, no
/// whitespace, no non-canonical trailing bits.
///
/// # Errors
/// [`CryptoError::MalformedJws`] with a short description when `s` is not strict base64url.
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| CryptoError::MalformedJws("invalid base64url".to_owned()))
}

/// SHA-256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// SHA-1, for certificate fingerprints only (Auth0's signing-keys API reports them).
pub fn sha1_legacy_fingerprint(bytes: &[u8]) -> [u8; 20] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    let mut out = [0u8; 20];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn b64url_round_trip_without_padding() {
        assert_eq!(b64url(b"\xfb\xff"), "-_8");
        assert_eq!(b64url_decode("-_8").unwrap(), b"\xfb\xff");
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url_decode("").unwrap(), b"");
    }

    #[test]
    fn b64url_decode_is_strict() {
        assert!(b64url_decode("-_8=").is_err(), "padding");
        assert!(b64url_decode("+/8").is_err(), "standard alphabet");
        assert!(b64url_decode("-_ 8").is_err(), "whitespace");
        assert!(b64url_decode("-_9").is_err(), "non-canonical trailing bits");
        assert!(b64url_decode("A").is_err(), "impossible length");
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            b64url(&sha256(b"abc")),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}

//! Encryption at rest: AES-256-GCM under a master key.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::CryptoError;

/// The format version written as the first byte of sealed data.
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// A 256-bit master key for sealing secrets at rest (AES-256-GCM).
pub struct MasterKey {
    bytes: [u8; 32],
    key: LessSafeKey,
}

impl MasterKey {
    /// A new random key.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_array(crate::random::bytes::<32>())
    }

    fn from_array(bytes: [u8; 32]) -> Self {
        match UnboundKey::new(&AES_256_GCM, &bytes) {
            Ok(unbound) => Self {
                bytes,
                key: LessSafeKey::new(unbound),
            },
            // A 32-byte key is always accepted for AES-256-GCM.
            Err(_) => std::process::abort(),
        }
    }

    /// A key from exactly 32 raw bytes.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Key("master key must be exactly 32 bytes".to_owned()))?;
        Ok(Self::from_array(array))
    }

    /// A key from standard or URL-safe base64 (padding optional) of 32 bytes;
    /// surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the text is not base64 of exactly 32 bytes.
    pub fn from_b64(s: &str) -> Result<Self, CryptoError> {
        let s = s.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(s).ok())
            .ok_or_else(|| CryptoError::Key("master key is not valid base64".to_owned()))?;
        Self::from_bytes(&decoded)
    }

    /// Standard base64 with padding (44 characters).
    #[must_use]
    pub fn to_b64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// Encrypts `plaintext` with AES-256-GCM.
    ///
    /// Output: version byte `1` || 12-byte random nonce || ciphertext || 16-byte
    /// tag. `aad` is authenticated but not stored: it binds the ciphertext to
    /// its context (e.g. the client_id of the row it is stored in), and the
    /// same `aad` must be given to [`MasterKey::open`].
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes = crate::random::bytes::<NONCE_LEN>();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        body.reserve_exact(TAG_LEN);
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        if self
            .key
            .seal_in_place_append_tag(nonce, Aad::from(aad), &mut body)
            .is_err()
        {
            // Only possible for inputs beyond AES-GCM's ~64 GiB limit.
            std::process::abort();
        }
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts data produced by [`MasterKey::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::Unseal`] when the data is truncated, of an unknown
    /// version, was sealed under another key or `aad`, or was modified.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = sealed.split_first().ok_or(CryptoError::Unseal)?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Unseal)?;
        let mut buf = ciphertext.to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Unseal)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let key = MasterKey::generate();
        for plaintext in [&b""[..], b"x", &[7u8; 1000]] {
            let sealed = key.seal(plaintext, b"client-1");
            assert_eq!(sealed.len(), 1 + 12 + plaintext.len() + 16);
            assert_eq!(sealed[0], 1);
            assert_eq!(key.open(&sealed, b"client-1").unwrap(), plaintext);
        }
        assert_ne!(
            key.seal(b"same", b""),
            key.seal(b"same", b""),
            "random nonce"
        );
    }

    #[test]
    fn open_fails_on_wrong_aad_key_or_tampering() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"secret", b"client-1");
        assert!(matches!(
            key.open(&sealed, b"client-2"),
            Err(CryptoError::Unseal)
        ));
        assert!(matches!(
            MasterKey::generate().open(&sealed, b"client-1"),
            Err(CryptoError::Unseal)
        ));
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x01;
            assert!(key.open(&flipped, b"client-1").is_err(), "byte {i}");
        }
        for len in 0..sealed.len() {
            assert!(key.open(&sealed[..len], b"client-1").is_err(), "len {len}");
        }
    }

    #[test]
    fn key_encodings() {
        let key = MasterKey::generate();
        let b64 = key.to_b64();
        assert_eq!(b64.len(), 44);
        let sealed = key.seal(b"data", b"");
        let url_safe = URL_SAFE_NO_PAD.encode(key.bytes);
        for text in [
            b64.clone(),
            format!("  {b64}\n"),
            url_safe,
            b64.trim_end_matches('=').to_owned(),
        ] {
            let again = MasterKey::from_b64(&text).unwrap();
            assert_eq!(again.open(&sealed, b"").unwrap(), b"data");
        }
        assert_eq!(MasterKey::from_bytes(&key.bytes).unwrap().to_b64(), b64);
        assert!(MasterKey::from_bytes(&[0u8; 31]).is_err());
        assert!(MasterKey::from_b64("not base64!").is_err());
        assert!(MasterKey::from_b64(&STANDARD.encode([0u8; 16])).is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}

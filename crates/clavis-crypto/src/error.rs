//! The crate's single error type.

/// Errors returned by this crate.
///
/// The messages are meant to be shown to API users (for example in a
/// `400 Bad Request` body): they are short, precise and never contain secret
/// material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The input is not a PEM document of an accepted kind, or its content does not parse.
    #[error("{0}")]
    InvalidPem(String),
    /// The key is well formed but of a kind that is not supported (EC, Ed25519, ...).
    #[error("{0}")]
    UnsupportedKey(String),
    /// The RSA modulus is outside the accepted range.
    #[error("RSA key size must be between 2048 and 4096 bits, got {bits}")]
    KeySize {
        /// The size of the offending modulus in bits.
        bits: usize,
    },
    /// The certificate does not parse or is otherwise unusable.
    #[error("{0}")]
    InvalidCertificate(String),
    /// A distinguished name string does not parse.
    #[error("{0}")]
    InvalidDn(String),
    /// A compact JWS is malformed.
    #[error("{0}")]
    MalformedJws(String),
    /// A signature did not verify.
    #[error("invalid signature")]
    BadSignature,
    /// Sealed data could not be decrypted (wrong key, wrong associated data or tampering).
    #[error("unable to decrypt sealed data")]
    Unseal,
    /// Key generation or serialization failed.
    #[error("{0}")]
    Key(String),
}

//! Pure cryptography for Clavis.
//!
//! Everything here is side-effect free apart from reading the system CSPRNG and
//! the wall clock: no files, no network, no environment. Keys are parsed once
//! and the parsed forms are reused for every signature or verification.
//!
//! Modules:
//! - [`encoding`]: base64url and SHA-256 helpers.
//! - [`random`]: CSPRNG bytes and uniformly distributed random strings.
//! - [`rsa`]: RSA public keys (JWK fields, RFC 7638 thumbprints, verification)
//!   and credential PEM parsing.
//! - [`x509`]: certificate parsing and distinguished names.
//! - [`jws`]: compact JWS signing (RS256) and parsing/verification.
//! - [`sealed`]: AES-256-GCM encryption at rest.
//! - [`secret`]: client secret generation and digests.
//! - [`local_ca`]: the local CA used to serve HTTPS out of the box.

mod error;
mod pem;

pub mod encoding;
pub mod jws;
pub mod local_ca;
pub mod random;
pub mod rsa;
pub mod sealed;
pub mod secret;
pub mod x509;

pub use error::CryptoError;

#[cfg(test)]
mod tests {
    /// The long-lived key types are shared across request handlers.
    #[test]
    fn key_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::rsa::RsaPublicKey>();
        assert_send_sync::<crate::rsa::PublicKeyMaterial>();
        assert_send_sync::<crate::x509::Certificate>();
        assert_send_sync::<crate::jws::SigningKey>();
        assert_send_sync::<crate::jws::CompactJws>();
        assert_send_sync::<crate::sealed::MasterKey>();
        assert_send_sync::<crate::secret::SecretDigest>();
        assert_send_sync::<crate::local_ca::LocalCa>();
        assert_send_sync::<crate::CryptoError>();
    }
}

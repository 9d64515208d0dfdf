//! RSA public keys: JWK fields, RFC 7638 thumbprints, signature verification
//! and parsing of credential PEMs.

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::signature::{
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PSS_2048_8192_SHA256,
};
use der::Decode as _;
use der::asn1::ObjectIdentifier;

use crate::CryptoError;
use crate::encoding::{b64url, sha256};
use crate::jws::JwsAlg;
use crate::x509::Certificate;

/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits.
pub const MAX_RSA_BITS: usize = 4096;

pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const OID_DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");

/// An RSA public key accepted for client credentials or token signing:
/// 2048 to 4096 bits, parsed once.
///
/// Cloning is cheap (reference counted). Verification uses aws-lc-rs
/// [`ParsedPublicKey`]s built at construction, one per supported algorithm.
#[derive(Clone)]
pub struct RsaPublicKey(Arc<Inner>);

struct Inner {
    /// Modulus, big-endian, no leading zero bytes.
    n: Vec<u8>,
    /// Public exponent, big-endian, no leading zero bytes.
    e: Vec<u8>,
    bits: usize,
    /// PKCS#1 `RSAPublicKey` DER.
    pkcs1_der: Vec<u8>,
    /// Parsed at construction (which also validates the key).
    rs256: ParsedPublicKey,
    /// Parsed on first use: a credential is bound to one algorithm, and a parsed key costs
    /// memory and start-up time (hundreds of MB and seconds at 100,000 credentials).
    rs384: OnceLock<ParsedPublicKey>,
    ps256: OnceLock<ParsedPublicKey>,
}

fn invalid_key() -> CryptoError {
    CryptoError::InvalidPem("invalid RSA public key".to_owned())
}

impl RsaPublicKey {
    /// Parses a PKCS#1 `RSAPublicKey` (DER) and prepares it for verification.
    ///
    /// # Errors
    /// [`CryptoError::KeySize`] when the modulus is not 2048 to 4096 bits long;
    /// [`CryptoError::InvalidPem`] when the DER is not a valid RSA public key.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, CryptoError> {
        let key = pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(der)
            .map_err(|_| invalid_key())?;
        let n = key.modulus.as_bytes();
        let e = key.public_exponent.as_bytes();
        let bits = match n.first() {
            Some(&first) => n.len() * 8 - first.leading_zeros() as usize,
            None => 0,
        };
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(CryptoError::KeySize { bits });
        }
        if e.is_empty() || e.last().is_some_and(|b| b & 1 == 0) {
            return Err(invalid_key());
        }
        let parse = |alg| ParsedPublicKey::new(alg, der).map_err(|_| invalid_key());
        let rs256 = parse(&RSA_PKCS1_2048_8192_SHA256)?;
        Ok(Self(Arc::new(Inner {
            n: n.to_vec(),
            e: e.to_vec(),
            bits,
            pkcs1_der: der.to_vec(),
            rs256,
            rs384: OnceLock::new(),
            ps256: OnceLock::new(),
        })))
    }

    /// The modulus size in bits.
    #[must_use]
    pub fn modulus_bits(&self) -> usize {
        self.0.bits
    }

    /// The JWK `n` member: base64url of the modulus without leading zero bytes.
    #[must_use]
    pub fn jwk_n(&self) -> String {
        b64url(&self.0.n)
    }

    /// The JWK `e` member: base64url of the public exponent (`AQAB` for 65537).
    #[must_use]
    pub fn jwk_e(&self) -> String {
        b64url(&self.0.e)
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url, 43 characters). Computed on each
    /// call: only credential creation needs it, and a key loaded at start-up never does.
    #[must_use]
    pub fn jwk_thumbprint(&self) -> String {
        let (e, n) = (self.jwk_e(), self.jwk_n());
        b64url(&sha256(
            format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#).as_bytes(),
        ))
    }

    /// The PKCS#1 `RSAPublicKey` DER this key was built from.
    #[must_use]
    pub fn pkcs1_der(&self) -> &[u8] {
        &self.0.pkcs1_der
    }

    /// Verifies `signature` over `message` with algorithm `alg`.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] when the signature does not verify.
    pub fn verify(&self, alg: JwsAlg, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let key = match alg {
            JwsAlg::RS256 => &self.0.rs256,
            JwsAlg::RS384 => parsed_once(
                &self.0.rs384,
                &RSA_PKCS1_2048_8192_SHA384,
                &self.0.pkcs1_der,
            )?,
            JwsAlg::PS256 => {
                parsed_once(&self.0.ps256, &RSA_PSS_2048_8192_SHA256, &self.0.pkcs1_der)?
            }
        };
        key.verify_sig(message, signature)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// The key parsed for `algorithm`, parsing it on first use.
fn parsed_once<'a>(
    cell: &'a OnceLock<ParsedPublicKey>,
    algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    pkcs1_der: &[u8],
) -> Result<&'a ParsedPublicKey, CryptoError> {
    if let Some(key) = cell.get() {
        return Ok(key);
    }
    // Cannot fail for a DER that parsed at construction; a failure refuses the signature.
    let parsed =
        ParsedPublicKey::new(algorithm, pkcs1_der).map_err(|_| CryptoError::BadSignature)?;
    Ok(cell.get_or_init(|| parsed))
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.n == other.0.n && self.0.e == other.0.e
    }
}

impl Eq for RsaPublicKey {}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("bits", &self.0.bits)
            .field("thumbprint", &self.jwk_thumbprint())
            .finish()
    }
}

/// What a credential PEM contained.
#[derive(Clone, Debug)]
pub struct PublicKeyMaterial {
    /// The RSA public key.
    pub key: RsaPublicKey,
    /// The certificate, when the PEM was a `CERTIFICATE`.
    pub certificate: Option<Certificate>,
}

/// Converts a DER `SubjectPublicKeyInfo` into an [`RsaPublicKey`].
pub(crate) fn rsa_key_from_spki(spki_der: &[u8]) -> Result<RsaPublicKey, CryptoError> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|_| CryptoError::InvalidPem("unable to parse public key".to_owned()))?;
    let oid = spki.algorithm.oid;
    if oid != OID_RSA_ENCRYPTION {
        let kind = if oid == OID_EC_PUBLIC_KEY {
            "an EC key".to_owned()
        } else if oid == OID_ED25519 {
            "an Ed25519 key".to_owned()
        } else if oid == OID_ED448 {
            "an Ed448 key".to_owned()
        } else if oid == OID_DSA {
            "a DSA key".to_owned()
        } else if oid == OID_RSASSA_PSS {
            "an RSASSA-PSS restricted key".to_owned()
        } else {
            format!("key type {oid}")
        };
        return Err(CryptoError::UnsupportedKey(format!(
            "only RSA keys are supported, got {kind}"
        )));
    }
    let bits = spki.subject_public_key.as_bytes().ok_or_else(invalid_key)?;
    RsaPublicKey::from_pkcs1_der(bits)
}

/// Parses a credential PEM.
///
/// Accepts exactly one PEM block: `PUBLIC KEY` (SubjectPublicKeyInfo, RSA
/// only), `RSA PUBLIC KEY` (PKCS#1) or `CERTIFICATE` (X.509 with an RSA key).
/// Tolerates CRLF line endings, surrounding whitespace and explanatory text
/// outside the block.
///
/// # Errors
/// - [`CryptoError::UnsupportedKey`] for EC, Ed25519 and other non-RSA keys;
/// - [`CryptoError::KeySize`] for RSA keys outside 2048 to 4096 bits;
/// - [`CryptoError::InvalidCertificate`] for a certificate that does not parse;
/// - [`CryptoError::InvalidPem`] for private keys, other PEM types and garbage.
pub fn parse_public_key_pem(pem: &str) -> Result<PublicKeyMaterial, CryptoError> {
    let block = crate::pem::parse_one(pem)?;
    match block.label.as_str() {
        "PUBLIC KEY" => Ok(PublicKeyMaterial {
            key: rsa_key_from_spki(&block.der)?,
            certificate: None,
        }),
        "RSA PUBLIC KEY" => Ok(PublicKeyMaterial {
            key: RsaPublicKey::from_pkcs1_der(&block.der)?,
            certificate: None,
        }),
        "CERTIFICATE" => {
            let certificate = Certificate::from_der(&block.der)?;
            Ok(PublicKeyMaterial {
                key: certificate.rsa_public_key()?,
                certificate: Some(certificate),
            })
        }
        label if label.ends_with("PRIVATE KEY") => Err(CryptoError::InvalidPem(
            "expected a public key or certificate, got a private key".to_owned(),
        )),
        _ => Err(CryptoError::InvalidPem(
            "expected a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block".to_owned(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use crate::encoding::b64url_decode;
    use crate::pem::encode;
    use der::Encode as _;
    use rcgen::PublicKeyData as _;
    use std::sync::OnceLock;

    /// The RFC 7638 section 3.1 example key.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_E: &str = "AQAB";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    pub(crate) fn pkcs1_der_from_components(n: &[u8], e: &[u8]) -> Vec<u8> {
        pkcs1::RsaPublicKey {
            modulus: der::asn1::UintRef::new(n).unwrap(),
            public_exponent: der::asn1::UintRef::new(e).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    fn spki_der_from_pkcs1(pkcs1_der: &[u8], oid: ObjectIdentifier) -> Vec<u8> {
        spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifier {
                oid,
                parameters: Some(der::asn1::AnyRef::NULL),
            },
            subject_public_key: der::asn1::BitStringRef::from_bytes(pkcs1_der).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    /// A shared RSA 2048 test key pair (rcgen form) and a self-signed certificate.
    pub(crate) fn test_rsa_key() -> &'static (rcgen::KeyPair, rcgen::Certificate) {
        static KEY: OnceLock<(rcgen::KeyPair, rcgen::Certificate)> = OnceLock::new();
        KEY.get_or_init(|| {
            let key =
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                    .unwrap();
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            for (ty, value) in [
                (rcgen::DnType::CountryName, "es"),
                (rcgen::DnType::StateOrProvinceName, "Madrid"),
                (rcgen::DnType::LocalityName, "Madrid"),
                (rcgen::DnType::OrganizationName, "Okta"),
                (rcgen::DnType::OrganizationalUnitName, "DX-CDT"),
                (rcgen::DnType::CommonName, "Developer Experience"),
            ] {
                params.distinguished_name.push(ty, value);
            }
            let cert = params.self_signed(&key).unwrap();
            (key, cert)
        })
    }

    #[test]
    fn rfc7638_thumbprint() {
        let n = b64url_decode(RFC7638_N).unwrap();
        let e = b64url_decode(RFC7638_E).unwrap();
        let key = RsaPublicKey::from_pkcs1_der(&pkcs1_der_from_components(&n, &e)).unwrap();
        assert_eq!(key.jwk_thumbprint(), RFC7638_THUMBPRINT);
        assert_eq!(key.jwk_n(), RFC7638_N);
        assert_eq!(key.jwk_e(), RFC7638_E);
        assert_eq!(key.modulus_bits(), 2048);
        let debug = format!("{key:?}");
        assert!(
            debug.contains(RFC7638_THUMBPRINT) && debug.contains("2048"),
            "{debug}"
        );
    }

    #[test]
    fn spki_pkcs1_and_certificate_pems_agree() {
        let (key, cert) = test_rsa_key();
        let spki_pem = key.public_key_pem();
        let spki = parse_public_key_pem(&spki_pem).unwrap();
        assert!(spki.certificate.is_none());

        let pkcs1_der = rsa_key_from_spki(&key.subject_public_key_info())
            .unwrap()
            .pkcs1_der()
            .to_vec();
        let pkcs1 = parse_public_key_pem(&encode("RSA PUBLIC KEY", &pkcs1_der)).unwrap();
        assert!(pkcs1.certificate.is_none());

        let from_cert = parse_public_key_pem(&cert.pem()).unwrap();
        assert_eq!(
            from_cert.certificate.as_ref().unwrap().der(),
            cert.der().as_ref()
        );

        let thumbprint = spki.key.jwk_thumbprint();
        assert_eq!(thumbprint.len(), 43);
        assert_eq!(pkcs1.key.jwk_thumbprint(), thumbprint);
        assert_eq!(from_cert.key.jwk_thumbprint(), thumbprint);
        assert_eq!(spki.key, from_cert.key);
        assert_eq!(spki.key.modulus_bits(), 2048);
        assert_eq!(spki.key.jwk_e(), "AQAB");
    }

    #[test]
    fn crlf_and_whitespace_tolerated() {
        let (key, cert) = test_rsa_key();
        for pem in [key.public_key_pem(), cert.pem()] {
            let crlf = format!("\r\n   {}   \r\n", pem.replace('\n', "\r\n"));
            assert!(parse_public_key_pem(&crlf).is_ok());
        }
    }

    #[test]
    fn non_rsa_keys_are_unsupported() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let err = parse_public_key_pem(&key.public_key_pem()).unwrap_err();
            assert!(matches!(err, CryptoError::UnsupportedKey(_)), "{err:?}");
            let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let err = parse_public_key_pem(&cert.pem()).unwrap_err();
            assert!(matches!(err, CryptoError::UnsupportedKey(_)), "{err:?}");
        }
        let pss = spki_der_from_pkcs1(test_rsa_key_pkcs1(), OID_RSASSA_PSS);
        let err = parse_public_key_pem(&encode("PUBLIC KEY", &pss)).unwrap_err();
        assert!(matches!(err, CryptoError::UnsupportedKey(_)), "{err:?}");
    }

    fn test_rsa_key_pkcs1() -> &'static [u8] {
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        DER.get_or_init(|| {
            rsa_key_from_spki(&test_rsa_key().0.subject_public_key_info())
                .unwrap()
                .pkcs1_der()
                .to_vec()
        })
    }

    #[test]
    fn key_size_is_enforced() {
        let e = [1, 0, 1];
        for bytes in [128usize, 255, 513, 1024] {
            let mut n = vec![0xc5; bytes];
            n[bytes - 1] = 0x01;
            let pkcs1 = pkcs1_der_from_components(&n, &e);
            let expected = bytes * 8;
            for pem in [
                encode("RSA PUBLIC KEY", &pkcs1),
                encode(
                    "PUBLIC KEY",
                    &spki_der_from_pkcs1(&pkcs1, OID_RSA_ENCRYPTION),
                ),
            ] {
                let err = parse_public_key_pem(&pem).unwrap_err();
                assert!(
                    matches!(err, CryptoError::KeySize { bits } if bits == expected),
                    "{err:?}"
                );
            }
        }
        let err = CryptoError::KeySize { bits: 1024 };
        assert_eq!(
            err.to_string(),
            "RSA key size must be between 2048 and 4096 bits, got 1024"
        );
    }

    #[test]
    fn garbage_and_private_keys_are_invalid_pem() {
        let (key, _) = test_rsa_key();
        let inputs = [
            String::new(),
            "not a pem".to_owned(),
            "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n".to_owned(),
            encode("PUBLIC KEY", b"\x30\x03\x02\x01\x01"),
            encode("RSA PUBLIC KEY", b"garbage"),
            key.serialize_pem(),
            encode("RSA PRIVATE KEY", b"\x30\x00"),
            encode("SOMETHING ELSE", b"\x30\x00"),
            format!("{}{}", key.public_key_pem(), key.public_key_pem()),
        ];
        for input in inputs {
            let err = parse_public_key_pem(&input).unwrap_err();
            assert!(
                matches!(err, CryptoError::InvalidPem(_)),
                "{input}: {err:?}"
            );
        }
        let err = parse_public_key_pem(&encode("CERTIFICATE", b"\x30\x00")).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidCertificate(_)), "{err:?}");
    }

    #[test]
    fn even_exponent_rejected() {
        let n = b64url_decode(RFC7638_N).unwrap();
        assert!(RsaPublicKey::from_pkcs1_der(&pkcs1_der_from_components(&n, &[2])).is_err());
    }
}

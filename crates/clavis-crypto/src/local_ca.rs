//! The local certificate authority generated on first start to serve HTTPS
//! (ECDSA P-256 keys for fast handshakes).

use std::fmt;
use std::net::IpAddr;

use der::{Decode as _, Tag, Tagged as _};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::{BasicConstraints as X509BasicConstraints, SubjectKeyIdentifier};

use crate::CryptoError;
use crate::x509::Certificate;

/// Validity of a generated CA certificate.
const CA_VALIDITY: Duration = Duration::days(3650);
/// Validity of an issued server certificate (the CA/Browser Forum's former
/// maximum, still accepted by Apple platforms).
const SERVER_VALIDITY: Duration = Duration::days(825);
/// Backdating of `notBefore` to tolerate clock skew between machines.
const BACKDATE: Duration = Duration::hours(1);

/// A certificate and its private key, both PEM (the key as PKCS#8 `PRIVATE KEY`).
#[derive(Clone)]
pub struct PemPair {
    /// The certificate PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key PEM.
    pub key_pem: String,
}

impl fmt::Debug for PemPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"..")
            .finish()
    }
}

/// A local CA able to issue server certificates.
pub struct LocalCa {
    issuer: rcgen::Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn cert_error(msg: &str) -> CryptoError {
    CryptoError::InvalidCertificate(msg.to_owned())
}

fn key_error(msg: &str) -> CryptoError {
    CryptoError::Key(msg.to_owned())
}

/// A random positive 128-bit certificate serial number.
pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut serial = crate::random::bytes::<16>();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    rcgen::SerialNumber::from_slice(&serial)
}

impl LocalCa {
    /// Generates a CA: ECDSA P-256 key, subject `CN=<common_name>`, valid for
    /// 10 years, basicConstraints CA (path length 0), key usages keyCertSign,
    /// cRLSign and digitalSignature.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when key or certificate generation fails.
    pub fn generate(common_name: &str) -> Result<(Self, PemPair), CryptoError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|_| key_error("CA key generation failed"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|_| key_error("CA certificate generation failed"))?;
        let pems = PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let ca = Self {
            issuer: rcgen::Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
        };
        Ok((ca, pems))
    }

    /// Loads a CA from its certificate and private key PEMs (as returned by
    /// [`LocalCa::generate`]).
    ///
    /// The certificate must be a CA (basicConstraints cA true) whose subject
    /// consists of single-valued RDNs with distinct attribute types, and the
    /// key must match its public key.
    ///
    /// # Errors
    /// [`CryptoError::InvalidPem`] when a PEM does not parse;
    /// [`CryptoError::InvalidCertificate`] when the certificate is unusable as a
    /// CA or does not match the key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CryptoError> {
        let cert = Certificate::from_pem(cert_pem)?;
        let x509 = x509_cert::Certificate::from_der(cert.der())
            .map_err(|_| cert_error("unable to parse CA certificate"))?;
        let tbs = x509.tbs_certificate();
        let key = KeyPair::from_pem(key_pem)
            .map_err(|_| CryptoError::InvalidPem("unable to parse CA private key".to_owned()))?;
        let spki_bits = tbs.subject_public_key_info().subject_public_key.raw_bytes();
        if key.public_key_raw() != spki_bits {
            return Err(cert_error(
                "CA private key does not match the CA certificate",
            ));
        }
        match tbs.get_extension::<X509BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {}
            _ => return Err(cert_error("not a CA certificate")),
        }
        let key_identifier_method = match tbs.get_extension::<SubjectKeyIdentifier>() {
            Ok(Some((_, ski))) => KeyIdMethod::PreSpecified(ski.0.as_bytes().to_vec()),
            Ok(None) => KeyIdMethod::Sha256,
            Err(_) => return Err(cert_error("invalid subjectKeyIdentifier extension")),
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen_dn(tbs.subject())?;
        params.key_identifier_method = key_identifier_method;
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(Self {
            issuer: rcgen::Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
        })
    }

    /// The CA certificate PEM.
    #[must_use]
    pub fn certificate_pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.cert_der)
    }

    /// Issues a server certificate with a fresh ECDSA P-256 key.
    ///
    /// Each name is a DNS name (`localhost`, `auth.example.com`,
    /// `*.example.com`) or an IP address literal (IPv4 or IPv6, brackets
    /// allowed: `[::1]`), and becomes a subjectAltName of the matching kind.
    /// The subject is `CN=<first name>`. Valid for 825 days (backdated one
    /// hour), extendedKeyUsage serverAuth, basicConstraints cA false.
    ///
    /// # Errors
    /// [`CryptoError::InvalidCertificate`] when `names` is empty or a name is
    /// neither an IP address nor a DNS name; [`CryptoError::Key`] when
    /// generation fails.
    pub fn issue_server_certificate(&self, names: &[String]) -> Result<PemPair, CryptoError> {
        let mut sans: Vec<SanType> = Vec::with_capacity(names.len());
        for name in names {
            let san = san_for(name)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        let first = names
            .first()
            .map(|n| n.trim())
            .ok_or_else(|| cert_error("a server certificate needs at least one name"))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|_| key_error("server key generation failed"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, first);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVER_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|_| key_error("server certificate generation failed"))?;
        Ok(PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The subjectAltName for one server name.
fn san_for(name: &str) -> Result<SanType, CryptoError> {
    let name = name.trim();
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid_dns = !name.is_empty()
        && name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        });
    if !valid_dns {
        return Err(CryptoError::InvalidCertificate(format!(
            "\"{name}\" is neither a DNS name nor an IP address"
        )));
    }
    let ia5 =
        rcgen::string::Ia5String::try_from(name).map_err(|_| cert_error("invalid DNS name"))?;
    Ok(SanType::DnsName(ia5))
}

/// Rebuilds an rcgen name that encodes byte-for-byte like `name`, so that the
/// issuer of issued certificates equals the CA's subject.
fn rcgen_dn(name: &x509_cert::name::Name) -> Result<rcgen::DistinguishedName, CryptoError> {
    let unsupported = || cert_error("unsupported CA subject name");
    let mut dn = rcgen::DistinguishedName::new();
    for rdn in name.iter_rdn() {
        let mut attrs = rdn.iter();
        let (Some(atv), None) = (attrs.next(), attrs.next()) else {
            return Err(unsupported());
        };
        let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
        let ty = DnType::from_oid(&arcs);
        if dn.get(&ty).is_some() {
            return Err(unsupported());
        }
        let bytes = atv.value.value();
        let text = || std::str::from_utf8(bytes).map_err(|_| unsupported());
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                rcgen::string::PrintableString::try_from(text()?).map_err(|_| unsupported())?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                rcgen::string::Ia5String::try_from(text()?).map_err(|_| unsupported())?,
            ),
            Tag::BmpString => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(bytes.to_vec())
                    .map_err(|_| unsupported())?,
            ),
            _ => return Err(unsupported()),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// The subjectAltName DNS names and IP addresses (as text) of a certificate
/// PEM, in order; used to decide whether an existing server certificate still
/// covers the listen address.
///
/// # Errors
/// As [`Certificate::from_pem`].
pub fn certificate_san_names(cert_pem: &str) -> Result<Vec<String>, CryptoError> {
    Ok(Certificate::from_pem(cert_pem)?.san_names().to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use der::Encode as _;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn raw_issuer_and_subject(pem: &str) -> (Vec<u8>, Vec<u8>) {
        let cert =
            x509_cert::Certificate::from_der(Certificate::from_pem(pem).unwrap().der()).unwrap();
        let tbs = cert.tbs_certificate();
        (
            tbs.issuer().to_der().unwrap(),
            tbs.subject().to_der().unwrap(),
        )
    }

    /// Checks `leaf` chains to `ca`: names match and the CA key verifies the signature.
    fn assert_chains(leaf_pem: &str, ca_pem: &str) {
        let (leaf_issuer, _) = raw_issuer_and_subject(leaf_pem);
        let (_, ca_subject) = raw_issuer_and_subject(ca_pem);
        assert_eq!(leaf_issuer, ca_subject);
        let leaf = Certificate::from_pem(leaf_pem).unwrap();
        let ca = Certificate::from_pem(ca_pem).unwrap();
        assert_eq!(leaf.issuer(), ca.subject());

        let leaf_x509 = x509_cert::Certificate::from_der(leaf.der()).unwrap();
        let tbs_der = leaf_x509.tbs_certificate().to_der().unwrap();
        let signature = leaf_x509.signature().raw_bytes();
        let ca_x509 = x509_cert::Certificate::from_der(ca.der()).unwrap();
        let ca_key = ca_x509
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            ca_key,
        )
        .verify(&tbs_der, signature)
        .unwrap();
    }

    #[test]
    fn generate_issue_and_reload() {
        let (ca, ca_pems) = LocalCa::generate("Clavis Local CA").unwrap();
        assert_eq!(ca.certificate_pem(), ca_pems.cert_pem);
        let ca_cert = Certificate::from_pem(&ca_pems.cert_pem).unwrap();
        assert_eq!(ca_cert.subject().to_auth0_string(), "CN=Clavis Local CA");
        assert_eq!(ca_cert.subject(), ca_cert.issuer());
        let lifetime = ca_cert.not_after() - ca_cert.not_before();
        assert!(lifetime >= Duration::days(3650), "{lifetime}");
        assert!(ca_pems.key_pem.contains("BEGIN PRIVATE KEY"));
        assert!(!format!("{ca_pems:?}").contains("PRIVATE KEY"));

        let server = ca
            .issue_server_certificate(&names(&[
                "localhost",
                "127.0.0.1",
                "[::1]",
                "auth.example.com",
                "localhost",
            ]))
            .unwrap();
        assert_eq!(
            certificate_san_names(&server.cert_pem).unwrap(),
            names(&["localhost", "127.0.0.1", "::1", "auth.example.com"])
        );
        let leaf = Certificate::from_pem(&server.cert_pem).unwrap();
        assert_eq!(leaf.subject().to_auth0_string(), "CN=localhost");
        assert!(leaf.is_valid_at(OffsetDateTime::now_utc()));
        let lifetime = leaf.not_after() - leaf.not_before();
        assert!(
            lifetime >= Duration::days(825) && lifetime <= Duration::days(826),
            "{lifetime}"
        );
        assert_chains(&server.cert_pem, &ca_pems.cert_pem);
        assert!(KeyPair::from_pem(&server.key_pem).is_ok());

        // Reloaded from PEM, the CA issues certificates that chain the same way.
        let reloaded = LocalCa::from_pem(&ca_pems.cert_pem, &ca_pems.key_pem).unwrap();
        let again = reloaded
            .issue_server_certificate(&names(&["10.0.0.1"]))
            .unwrap();
        assert_eq!(
            certificate_san_names(&again.cert_pem).unwrap(),
            names(&["10.0.0.1"])
        );
        assert_chains(&again.cert_pem, &ca_pems.cert_pem);
    }

    #[test]
    fn from_pem_rejects_mismatches() {
        let (_, a) = LocalCa::generate("A").unwrap();
        let (_, b) = LocalCa::generate("B").unwrap();
        assert!(matches!(
            LocalCa::from_pem(&a.cert_pem, &b.key_pem),
            Err(CryptoError::InvalidCertificate(_))
        ));
        assert!(matches!(
            LocalCa::from_pem(&a.cert_pem, "garbage"),
            Err(CryptoError::InvalidPem(_))
        ));
        assert!(LocalCa::from_pem("garbage", &a.key_pem).is_err());
        // A server certificate is not a CA.
        let (ca, _) = LocalCa::generate("C").unwrap();
        let leaf = ca.issue_server_certificate(&names(&["localhost"])).unwrap();
        assert!(matches!(
            LocalCa::from_pem(&leaf.cert_pem, &leaf.key_pem),
            Err(CryptoError::InvalidCertificate(_))
        ));
    }

    #[test]
    fn server_names_are_validated() {
        let (ca, _) = LocalCa::generate("CA").unwrap();
        for bad in [
            &[][..],
            &["".to_owned()],
            &["a b".to_owned()],
            &["-x.example".to_owned()],
            &["ä.example".to_owned()],
        ] {
            assert!(ca.issue_server_certificate(bad).is_err(), "{bad:?}");
        }
        let wildcard = ca
            .issue_server_certificate(&names(&["*.example.com"]))
            .unwrap();
        assert_eq!(
            certificate_san_names(&wildcard.cert_pem).unwrap(),
            names(&["*.example.com"])
        );
    }

    #[test]
    fn signing_key_self_signed_certificate() {
        let key = crate::jws::SigningKey::generate().unwrap();
        let pem = key
            .self_signed_certificate_pem("tenant.clavis.local", 365)
            .unwrap();
        let material = crate::rsa::parse_public_key_pem(&pem).unwrap();
        assert_eq!(&material.key, key.public_key());
        let cert = material.certificate.unwrap();
        assert_eq!(cert.subject().to_auth0_string(), "CN=tenant.clavis.local");
        assert_eq!(cert.subject(), cert.issuer());
        assert_eq!(cert.not_after() - cert.not_before(), Duration::days(365));
    }
}

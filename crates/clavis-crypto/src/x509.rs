//! X.509 certificates and distinguished names.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use der::asn1::ObjectIdentifier;
use der::{Decode as _, Encode as _, Tag, Tagged as _};
use time::OffsetDateTime;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::CryptoError;
use crate::encoding::{b64url, sha256};
use crate::rsa::RsaPublicKey;

/// A parsed X.509 certificate.
///
/// Only what Clavis needs is kept: the DER, subject and issuer names, the
/// validity period, the SubjectPublicKeyInfo and the SAN DNS/IP names.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: DistinguishedName,
    issuer: DistinguishedName,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    spki_der: Vec<u8>,
    san_names: Vec<String>,
}

fn invalid_cert(msg: &str) -> CryptoError {
    CryptoError::InvalidCertificate(msg.to_owned())
}

fn to_offset_date_time(t: x509_cert::time::Time) -> Result<OffsetDateTime, CryptoError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| invalid_cert("certificate validity out of range"))?;
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| invalid_cert("certificate validity out of range"))
}

impl Certificate {
    /// Parses a PEM document holding exactly one `CERTIFICATE` block.
    ///
    /// # Errors
    /// [`CryptoError::InvalidPem`] when the PEM is malformed, holds more than one
    /// block or a block of another type; [`CryptoError::InvalidCertificate`]
    /// when the certificate does not parse.
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let block = crate::pem::parse_one(pem)?;
        if block.label != "CERTIFICATE" {
            return Err(CryptoError::InvalidPem(
                "expected a CERTIFICATE PEM block".to_owned(),
            ));
        }
        Self::from_der(&block.der)
    }

    /// Parses a DER-encoded certificate.
    ///
    /// # Errors
    /// [`CryptoError::InvalidCertificate`] when the certificate does not parse.
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|_| invalid_cert("unable to parse certificate"))?;
        let tbs = cert.tbs_certificate();
        let subject = DistinguishedName::from_x509_name(tbs.subject())?;
        let issuer = DistinguishedName::from_x509_name(tbs.issuer())?;
        let validity = tbs.validity();
        let not_before = to_offset_date_time(validity.not_before)?;
        let not_after = to_offset_date_time(validity.not_after)?;
        let spki_der = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|_| invalid_cert("unable to parse certificate public key"))?;
        let mut san_names = Vec::new();
        let san = tbs
            .get_extension::<SubjectAltName>()
            .map_err(|_| invalid_cert("invalid subjectAltName extension"))?;
        if let Some((_, SubjectAltName(names))) = san {
            for name in names {
                match name {
                    GeneralName::DnsName(dns) => san_names.push(dns.as_str().to_owned()),
                    GeneralName::IpAddress(octets) => {
                        let bytes = octets.as_bytes();
                        if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                            san_names.push(Ipv4Addr::from(v4).to_string());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
                            san_names.push(Ipv6Addr::from(v6).to_string());
                        } else {
                            return Err(invalid_cert("invalid IP address in subjectAltName"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Self {
            der: der.to_vec(),
            subject,
            issuer,
            not_before,
            not_after,
            spki_der,
            san_names,
        })
    }

    /// The certificate's DER encoding.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate PEM (LF line endings).
    #[must_use]
    pub fn to_pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der)
    }

    /// base64url (no padding) of the SHA-256 of the DER: the `x5t#S256` value.
    #[must_use]
    pub fn thumbprint_sha256(&self) -> String {
        b64url(&sha256(&self.der))
    }

    /// The subject name.
    #[must_use]
    pub fn subject(&self) -> &DistinguishedName {
        &self.subject
    }

    /// The issuer name.
    #[must_use]
    pub fn issuer(&self) -> &DistinguishedName {
        &self.issuer
    }

    /// Start of the validity period.
    #[must_use]
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the validity period.
    #[must_use]
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Whether `at` lies within the validity period (both ends inclusive).
    #[must_use]
    pub fn is_valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// The DER SubjectPublicKeyInfo.
    #[must_use]
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The DNS names and IP addresses of the subjectAltName extension, in
    /// order (IP addresses in their canonical text form).
    #[must_use]
    pub fn san_names(&self) -> &[String] {
        &self.san_names
    }

    /// The certificate's RSA public key.
    ///
    /// # Errors
    /// [`CryptoError::UnsupportedKey`] when the key is not RSA;
    /// [`CryptoError::KeySize`] when it is outside 2048 to 4096 bits.
    pub fn rsa_public_key(&self) -> Result<RsaPublicKey, CryptoError> {
        crate::rsa::rsa_key_from_spki(&self.spki_der)
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject.to_auth0_string())
            .field("issuer", &self.issuer.to_auth0_string())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("thumbprint_sha256", &self.thumbprint_sha256())
            .finish()
    }
}

/// Attribute types with their short names. The first name listed for an OID
/// is the one used when formatting; the others are accepted when parsing.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("STREET", "2.5.4.9"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("title", "2.5.4.12"),
    ("GN", "2.5.4.42"),
    ("SN", "2.5.4.4"),
    ("initials", "2.5.4.43"),
    ("pseudonym", "2.5.4.65"),
    ("generationQualifier", "2.5.4.44"),
    ("dnQualifier", "2.5.4.46"),
    ("postalCode", "2.5.4.17"),
    // Aliases accepted when parsing.
    ("S", "2.5.4.8"),
    ("E", "1.2.840.113549.1.9.1"),
    ("EMAIL", "1.2.840.113549.1.9.1"),
    ("givenName", "2.5.4.42"),
    ("surname", "2.5.4.4"),
    ("userId", "0.9.2342.19200300.100.1.1"),
    ("domainComponent", "0.9.2342.19200300.100.1.25"),
];

fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    let dotted = oid.to_string();
    ATTRIBUTE_NAMES
        .iter()
        .find(|(_, o)| *o == dotted)
        .map(|(name, _)| *name)
}

fn attribute_type(name: &str) -> Result<ObjectIdentifier, CryptoError> {
    if name.is_empty() {
        return Err(CryptoError::InvalidDn(
            "missing attribute type in distinguished name".to_owned(),
        ));
    }
    if let Some((_, oid)) = ATTRIBUTE_NAMES
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name))
    {
        return ObjectIdentifier::new(oid)
            .map_err(|_| CryptoError::InvalidDn("invalid attribute type".to_owned()));
    }
    let dotted = match name.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("oid.") => &name[4..],
        _ => name,
    };
    if dotted.starts_with(|c: char| c.is_ascii_digit())
        && let Ok(oid) = ObjectIdentifier::new(dotted)
    {
        return Ok(oid);
    }
    Err(CryptoError::InvalidDn(format!(
        "unknown attribute type \"{name}\" in distinguished name"
    )))
}

/// Decodes a DirectoryString-like attribute value to text. Values of other
/// types are rendered as `#` followed by the hex of their DER (RFC 4514).
fn attribute_value_text(value: &der::Any) -> String {
    let bytes = value.value();
    let text = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::NumericString => std::str::from_utf8(bytes).ok().map(str::to_owned),
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString if bytes.len().is_multiple_of(2) => char::decode_utf16(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        _ => None,
    };
    text.unwrap_or_else(|| {
        let der = value.to_der().unwrap_or_default();
        let mut hex = String::with_capacity(1 + 2 * der.len());
        hex.push('#');
        for b in der {
            hex.push(char::from(crate::random::HEX_LOWER[usize::from(b >> 4)]));
            hex.push(char::from(crate::random::HEX_LOWER[usize::from(b & 0xf)]));
        }
        hex
    })
}

/// A distinguished name: an ordered sequence of RDNs, each an ordered list of
/// (attribute type, value) pairs, kept in encoded (certificate) order.
///
/// Equality: same number of RDNs, and RDN by RDN the same attributes with
/// exactly the same (case-sensitive) values, in the same order. Within one
/// multi-valued RDN (a SET) the order of attributes does not matter. String
/// encodings (PrintableString, UTF8String, ...) are not compared.
#[derive(Clone, Debug)]
pub struct DistinguishedName {
    rdns: Vec<Vec<(ObjectIdentifier, String)>>,
}

impl PartialEq for DistinguishedName {
    fn eq(&self, other: &Self) -> bool {
        self.rdns.len() == other.rdns.len()
            && self.rdns.iter().zip(&other.rdns).all(|(a, b)| {
                if a.len() != b.len() {
                    return false;
                }
                if a.len() == 1 {
                    return a == b;
                }
                let mut a = a.iter().collect::<Vec<_>>();
                let mut b = b.iter().collect::<Vec<_>>();
                a.sort_by(|x, y| (x.0.as_bytes(), &x.1).cmp(&(y.0.as_bytes(), &y.1)));
                b.sort_by(|x, y| (x.0.as_bytes(), &x.1).cmp(&(y.0.as_bytes(), &y.1)));
                a == b
            })
    }
}

impl Eq for DistinguishedName {}

impl DistinguishedName {
    pub(crate) fn from_x509_name(name: &x509_cert::name::Name) -> Result<Self, CryptoError> {
        let rdns = name
            .iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|atv| (atv.oid, attribute_value_text(&atv.value)))
                    .collect()
            })
            .collect();
        Ok(Self { rdns })
    }

    /// The RDNs in encoded order, each a list of (attribute type, value).
    #[must_use]
    pub fn rdns(&self) -> &[Vec<(ObjectIdentifier, String)>] {
        &self.rdns
    }

    /// The value of the first attribute of type `oid`, in encoded order.
    #[must_use]
    pub fn get(&self, oid: &ObjectIdentifier) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.as_str())
    }

    /// Auth0's form: every attribute as `SHORT=value`, in encoded order,
    /// joined with `"\n"`, e.g.
    /// `"C=es\nST=Madrid\nL=Madrid\nO=Okta\nOU=DX-CDT\nCN=Developer Experience"`.
    ///
    /// Short names: C, ST, L, O, OU, CN, SERIALNUMBER, STREET, DC, UID,
    /// emailAddress, title, GN, SN, initials, pseudonym, generationQualifier,
    /// dnQualifier, postalCode; other types are written as a dotted OID.
    /// Attributes of a multi-valued RDN each get their own line (so that form
    /// cannot tell them apart from single-valued RDNs).
    #[must_use]
    pub fn to_auth0_string(&self) -> String {
        let mut out = String::new();
        for (oid, value) in self.rdns.iter().flatten() {
            if !out.is_empty() {
                out.push('\n');
            }
            match short_name(oid) {
                Some(name) => out.push_str(name),
                None => out.push_str(&oid.to_string()),
            }
            out.push('=');
            out.push_str(value);
        }
        out
    }

    /// RFC 4514 form: most specific RDN first, RDNs separated by `,`,
    /// attributes of a multi-valued RDN by `+`, special characters escaped.
    /// [`DistinguishedName::parse`] reads it back to an equal name.
    #[must_use]
    pub fn to_rfc4514_string(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, (oid, value)) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                match short_name(oid) {
                    Some(name) => out.push_str(name),
                    None => out.push_str(&oid.to_string()),
                }
                out.push('=');
                let last = value.chars().count().saturating_sub(1);
                for (k, c) in value.chars().enumerate() {
                    let escape = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=')
                        || (k == 0 && matches!(c, '#' | ' '))
                        || (k == last && c == ' ');
                    if c == '\0' {
                        out.push_str("\\00");
                        continue;
                    }
                    if escape {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
        out
    }

    /// Parses a distinguished name written by a person.
    ///
    /// Two forms are accepted:
    ///
    /// - **Auth0's newline form** (the input contains a line break): one
    ///   `TYPE=value` attribute per line, **first line = first RDN in encoded
    ///   order** (the order of [`DistinguishedName::to_auth0_string`]). Each
    ///   line is one single-valued RDN; the value is everything after the first
    ///   `=`, taken literally (no escapes, commas allowed). Blank lines and
    ///   `\r` are ignored.
    /// - **RFC 4514 comma form** (no line break): RDNs separated by `,`,
    ///   written **most specific first** as in RFC 4514, so
    ///   `"CN=a,O=b,C=c"` means encoded order C, O, CN (the order is
    ///   reversed). `+` joins the attributes of a multi-valued RDN. A
    ///   backslash escapes the next character (`\,`, `\+`, `\\`, `\=`, ...)
    ///   or introduces two hex digits for one byte of UTF-8 (`\2C`).
    ///   Hex-encoded values (`CN=#04...`) are not supported.
    ///
    /// A single attribute means the same in both forms. In both, spaces around
    /// `=` and the separators are trimmed (an escaped space is kept), type
    /// names are case-insensitive (short names as in `to_auth0_string`, plus
    /// the aliases S, E, EMAIL, givenName, surname, userId, domainComponent,
    /// and dotted OIDs, optionally prefixed `OID.`), values are kept exactly
    /// (case-sensitive) and must not be empty.
    ///
    /// # Errors
    /// [`CryptoError::InvalidDn`] when the input is empty or malformed.
    pub fn parse(s: &str) -> Result<Self, CryptoError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(CryptoError::InvalidDn(
                "distinguished name is empty".to_owned(),
            ));
        }
        let rdns = if trimmed.contains('\n') {
            parse_newline_form(trimmed)?
        } else {
            // Untrimmed: the parser keeps escaped leading/trailing spaces.
            let mut rdns = parse_rfc4514(s)?;
            rdns.reverse();
            rdns
        };
        Ok(Self { rdns })
    }
}

fn empty_value(ty: &str) -> CryptoError {
    CryptoError::InvalidDn(format!("empty value for \"{ty}\" in distinguished name"))
}

fn parse_newline_form(s: &str) -> Result<Vec<Vec<(ObjectIdentifier, String)>>, CryptoError> {
    let mut rdns = Vec::new();
    for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (ty, value) = line.split_once('=').ok_or_else(|| {
            CryptoError::InvalidDn(format!(
                "expected TYPE=value in distinguished name, got \"{line}\""
            ))
        })?;
        let ty = ty.trim();
        let oid = attribute_type(ty)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(empty_value(ty));
        }
        rdns.push(vec![(oid, value.to_owned())]);
    }
    Ok(rdns)
}

/// Parses an RFC 4514 string into RDNs in written order.
fn parse_rfc4514(s: &str) -> Result<Vec<Vec<(ObjectIdentifier, String)>>, CryptoError> {
    fn malformed(msg: &str) -> CryptoError {
        CryptoError::InvalidDn(format!("malformed distinguished name: {msg}"))
    }

    let mut rdns: Vec<Vec<(ObjectIdentifier, String)>> = Vec::new();
    let mut rdn: Vec<(ObjectIdentifier, String)> = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        // Attribute type, up to the first '='.
        let mut ty = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c @ (',' | '+')) => {
                    return Err(malformed(&format!("expected TYPE=value before '{c}'")));
                }
                Some('\\') => return Err(malformed("escape in attribute type")),
                Some(c) => ty.push(c),
                None => return Err(malformed("expected TYPE=value")),
            }
        }
        let ty = ty.trim();
        let oid = attribute_type(ty)?;

        // Value bytes, each flagged as escaped or not, up to ',' '+' or the end.
        let mut value: Vec<(u8, bool)> = Vec::new();
        let mut separator = None;
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    separator = Some(c);
                    break;
                }
                '\\' => {
                    let next = chars
                        .next()
                        .ok_or_else(|| malformed("trailing backslash"))?;
                    match (next.to_digit(16), chars.peek().and_then(|c| c.to_digit(16))) {
                        (Some(hi), Some(lo)) => {
                            chars.next();
                            // Both digits are < 16, so the byte fits.
                            value.push((u8::try_from(hi * 16 + lo).unwrap_or(0), true));
                        }
                        _ => {
                            let mut buf = [0u8; 4];
                            for &b in next.encode_utf8(&mut buf).as_bytes() {
                                value.push((b, true));
                            }
                        }
                    }
                }
                _ => {
                    let mut buf = [0u8; 4];
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        value.push((b, false));
                    }
                }
            }
        }
        let start = value
            .iter()
            .position(|&(b, escaped)| escaped || !b.is_ascii_whitespace())
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|&(b, escaped)| escaped || !b.is_ascii_whitespace())
            .map_or(start, |i| i + 1);
        let trimmed = &value[start..end];
        if trimmed.first() == Some(&(b'#', false)) {
            return Err(CryptoError::InvalidDn(
                "hex-encoded values are not supported in distinguished names".to_owned(),
            ));
        }
        let text = String::from_utf8(trimmed.iter().map(|&(b, _)| b).collect())
            .map_err(|_| malformed("escaped bytes are not valid UTF-8"))?;
        if text.is_empty() {
            return Err(empty_value(ty));
        }
        rdn.push((oid, text));

        match separator {
            Some('+') => {}
            Some(_) => rdns.push(std::mem::take(&mut rdn)),
            None => {
                rdns.push(rdn);
                return Ok(rdns);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::rsa::tests::test_rsa_key;

    const AUTH0_DN: &str = "C=es\nST=Madrid\nL=Madrid\nO=Okta\nOU=DX-CDT\nCN=Developer Experience";

    fn oid(s: &str) -> ObjectIdentifier {
        ObjectIdentifier::new(s).unwrap()
    }

    #[test]
    fn certificate_fields() {
        let (_, cert) = test_rsa_key();
        let parsed = Certificate::from_pem(&cert.pem()).unwrap();
        assert_eq!(parsed.der(), cert.der().as_ref());
        assert_eq!(parsed, Certificate::from_der(cert.der()).unwrap());
        assert_eq!(parsed.thumbprint_sha256().len(), 43);
        assert_eq!(parsed.thumbprint_sha256(), b64url(&sha256(cert.der())));
        assert_eq!(parsed.subject(), parsed.issuer());
        assert!(parsed.not_before() < parsed.not_after());
        assert!(parsed.is_valid_at(OffsetDateTime::now_utc()));
        assert!(!parsed.is_valid_at(parsed.not_before() - time::Duration::seconds(1)));
        assert!(!parsed.is_valid_at(parsed.not_after() + time::Duration::seconds(1)));
        assert_eq!(parsed.rsa_public_key().unwrap().modulus_bits(), 2048);
        assert!(format!("{parsed:?}").contains("CN=Developer Experience"));
        assert_eq!(Certificate::from_pem(&parsed.to_pem()).unwrap(), parsed);
    }

    impl PartialEq for Certificate {
        fn eq(&self, other: &Self) -> bool {
            self.der == other.der
        }
    }

    #[test]
    fn certificate_errors() {
        let (key, cert) = test_rsa_key();
        assert!(matches!(
            Certificate::from_pem(&key.public_key_pem()),
            Err(CryptoError::InvalidPem(_))
        ));
        assert!(matches!(
            Certificate::from_pem(&format!("{}{}", cert.pem(), cert.pem())),
            Err(CryptoError::InvalidPem(_))
        ));
        assert!(matches!(
            Certificate::from_der(b"\x30\x03\x02\x01\x01"),
            Err(CryptoError::InvalidCertificate(_))
        ));
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_cert = rcgen::CertificateParams::new(vec!["x.example".to_owned()])
            .unwrap()
            .self_signed(&ec)
            .unwrap();
        let parsed = Certificate::from_pem(&ec_cert.pem()).unwrap();
        assert_eq!(parsed.san_names(), ["x.example"]);
        assert!(matches!(
            parsed.rsa_public_key(),
            Err(CryptoError::UnsupportedKey(_))
        ));
    }

    #[test]
    fn auth0_dn_of_certificate_and_parsing() {
        let (_, cert) = test_rsa_key();
        let parsed = Certificate::from_pem(&cert.pem()).unwrap();
        let subject = parsed.subject();
        assert_eq!(subject.to_auth0_string(), AUTH0_DN);
        assert_eq!(subject.rdns().len(), 6);
        assert_eq!(subject.get(&oid("2.5.4.3")), Some("Developer Experience"));

        assert_eq!(&DistinguishedName::parse(AUTH0_DN).unwrap(), subject);
        assert_eq!(
            &DistinguishedName::parse(
                "CN=Developer Experience,OU=DX-CDT,O=Okta,L=Madrid,ST=Madrid,C=es"
            )
            .unwrap(),
            subject
        );
        // Spacing, CRLF and case-insensitive types.
        assert_eq!(
            &DistinguishedName::parse(
                " cn = Developer Experience , ou=DX-CDT,  o=Okta ,l=Madrid, st=Madrid,c=es "
            )
            .unwrap(),
            subject
        );
        assert_eq!(
            &DistinguishedName::parse(&format!("{}\r\n", AUTH0_DN.replace('\n', "\r\n"))).unwrap(),
            subject
        );
        assert_eq!(
            &DistinguishedName::parse(&subject.to_rfc4514_string()).unwrap(),
            subject
        );

        // One different value (case matters), a swapped order, a missing or extra RDN.
        for other in [
            "C=es\nST=Madrid\nL=Madrid\nO=Okta\nOU=DX-CDT\nCN=Developer experience",
            "C=es\nST=Madrid\nL=Madrid\nO=Okta\nOU=DX-CDT\nCN=Someone Else",
            "C=es\nST=Madrid\nL=Madrid\nOU=DX-CDT\nO=Okta\nCN=Developer Experience",
            "C=es\nST=Madrid\nL=Madrid\nO=Okta\nCN=Developer Experience",
            "C=es\nST=Madrid\nL=Madrid\nO=Okta\nOU=DX-CDT\nCN=Developer Experience\nCN=x",
            "C=es,ST=Madrid,L=Madrid,O=Okta,OU=DX-CDT,CN=Developer Experience",
            "CN=Developer Experience+OU=DX-CDT,O=Okta,L=Madrid,ST=Madrid,C=es",
        ] {
            assert_ne!(
                &DistinguishedName::parse(other).unwrap(),
                subject,
                "{other}"
            );
        }
    }

    #[test]
    fn rfc4514_details() {
        let dn = DistinguishedName::parse(r"CN=Smith\, John+UID=jsmith, O=A\2C B\\C ,DC=example")
            .unwrap();
        assert_eq!(dn.rdns().len(), 3);
        assert_eq!(
            dn.to_auth0_string(),
            "DC=example\nO=A, B\\C\nCN=Smith, John\nUID=jsmith"
        );
        // Multi-valued RDN attribute order does not matter.
        let swapped =
            DistinguishedName::parse(r"UID=jsmith+CN=Smith\, John,O=A\, B\\C,DC=example").unwrap();
        assert_eq!(dn, swapped);
        assert_eq!(
            DistinguishedName::parse(&dn.to_rfc4514_string()).unwrap(),
            dn
        );

        // Escaped spaces survive trimming.
        let spaced = DistinguishedName::parse(r"CN=\ padded\ ").unwrap();
        assert_eq!(spaced.to_auth0_string(), "CN= padded ");
        assert_eq!(
            DistinguishedName::parse(&spaced.to_rfc4514_string()).unwrap(),
            spaced
        );

        // Dotted OIDs and aliases.
        let a = DistinguishedName::parse("2.5.4.3=x,OID.2.5.4.10=y,1.2.3.4=z").unwrap();
        let b = DistinguishedName::parse("1.2.3.4=z\no=y\nCN=x").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_auth0_string(), "1.2.3.4=z\nO=y\nCN=x");
        assert_eq!(
            DistinguishedName::parse("E=a@b.c").unwrap(),
            DistinguishedName::parse("emailAddress=a@b.c").unwrap()
        );

        // Newline form takes values literally.
        let literal = DistinguishedName::parse("O=Foo, Inc.\nCN=a\\,b").unwrap();
        assert_eq!(literal.to_auth0_string(), "O=Foo, Inc.\nCN=a\\,b");

        // Single attribute: same in both forms.
        assert_eq!(
            DistinguishedName::parse("CN=x").unwrap(),
            DistinguishedName::parse("CN=x\n").unwrap()
        );
    }

    #[test]
    fn dn_errors() {
        for bad in [
            "",
            "   ",
            "CN",
            "CN=",
            "CN=a,",
            ",CN=a",
            "CN=a,,O=b",
            "CN=a+",
            "XX=a",
            "=a",
            "CN=a\\",
            "CN=#0403616263",
            "CN=\\ff",
            "CN=a\nbogus",
            "CN=a\nO=",
        ] {
            assert!(
                matches!(
                    DistinguishedName::parse(bad),
                    Err(CryptoError::InvalidDn(_))
                ),
                "{bad:?}"
            );
        }
    }
}

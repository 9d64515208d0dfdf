//! Client credentials: public keys (`private_key_jwt`), certificate subject DNs
//! (`tls_client_auth`) and pinned certificates (`self_signed_tls_client_auth`).

use clavis_crypto::jws::JwsAlg;
use clavis_crypto::rsa::parse_public_key_pem;
use clavis_crypto::x509::{Certificate, DistinguishedName};
use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use super::validate::{Body, Patch, Str};
use super::{DomainError, ids};

/// The three kinds of credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    /// An RSA public key, used by `private_key_jwt`.
    PublicKey,
    /// A certificate subject DN, used by `tls_client_auth`.
    CertSubjectDn,
    /// A pinned (usually self-signed) certificate, used by `self_signed_tls_client_auth`.
    X509Cert,
}

impl CredentialType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicKey => "public_key",
            Self::CertSubjectDn => "cert_subject_dn",
            Self::X509Cert => "x509_cert",
        }
    }

    /// Every type: Auth0's enum for `credential_type`, which `tests/openapi.rs` keeps equal
    /// to this.
    pub const ALL: [Self; 3] = [Self::PublicKey, Self::CertSubjectDn, Self::X509Cert];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A stored credential. `pem` holds the key or certificate material the token endpoint
/// verifies against; it is never returned by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// `cred_` + 22 base58.
    pub id: String,
    /// The owning client.
    pub client_id: String,
    /// Kind of credential.
    pub credential_type: CredentialType,
    /// Free-form name, may be empty.
    pub name: String,
    /// Key id (`public_key` only).
    pub kid: Option<String>,
    /// Signature algorithm (`public_key` only).
    #[serde(with = "alg_serde")]
    pub alg: Option<JwsAlg>,
    /// Subject DN as shown to users (`cert_subject_dn` only).
    pub subject_dn: Option<String>,
    /// SHA-256 of the certificate DER, base64url (`x509_cert` only).
    pub thumbprint_sha256: Option<String>,
    /// Key or certificate PEM (`public_key`, `x509_cert`, and `cert_subject_dn` made from one).
    pub pem: Option<String>,
    /// RFC 7638 thumbprint of the RSA key, to refuse the same key twice on a client.
    pub key_thumbprint: Option<String>,
    /// The pinned certificate's notAfter (`x509_cert` only).
    pub cert_not_after: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Expiry set by the caller (or parsed from a certificate on create).
    pub expires_at: Option<Timestamp>,
}

/// The credential as the Management API shows it: keys in Auth0's order, unset ones omitted.
#[derive(Serialize)]
pub struct CredentialView<'a> {
    id: &'a str,
    credential_type: CredentialType,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alg: Option<&'static str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_dn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbprint_sha256: Option<&'a str>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
}

impl Credential {
    /// The JSON shape the API returns.
    pub fn view(&self) -> CredentialView<'_> {
        CredentialView {
            id: &self.id,
            credential_type: self.credential_type,
            kid: self.kid.as_deref(),
            alg: self.alg.map(JwsAlg::as_str),
            name: &self.name,
            subject_dn: self.subject_dn.as_deref(),
            thumbprint_sha256: self.thumbprint_sha256.as_deref(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.effective_expiry(),
        }
    }

    /// When the credential stops authenticating: the earlier of `expires_at` and, for a
    /// pinned certificate, its notAfter.
    pub fn effective_expiry(&self) -> Option<Timestamp> {
        match (self.expires_at, self.cert_not_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the credential has expired at `now`.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.effective_expiry().is_some_and(|exp| exp <= now)
    }

    /// Applies the seed's PATCH: `expires_at` set, moved or removed. A past instant is
    /// accepted and means "expired now".
    pub fn set_expiry(&mut self, expires_at: Option<Timestamp>, now: Timestamp) {
        self.expires_at = expires_at;
        self.updated_at = now;
    }
}

/// Reads the PATCH body `{"expires_at": <date-time> | null}`; anything else, and `{}`, is
/// refused.
pub fn parse_patch(mut body: Body<'_>) -> Result<Option<Timestamp>, DomainError> {
    if body.is_empty() {
        return Err(super::validate::body_error(
            "Too few properties defined (0), minimum 1",
        ));
    }
    let expires_at = body.nullable_string("expires_at", Str::max(64), EXPIRES_AT_DESC)?;
    body.finish()?;
    match expires_at {
        Patch::Value(s) => parse_date(&s).map(Some),
        Patch::Null => Ok(None),
        Patch::Absent => Err(super::validate::body_error(
            "Missing required property: expires_at",
        )),
    }
}

const EXPIRES_AT_DESC: &str =
    "The ISO 8601 formatted date representing the expiration of the credential.";

fn parse_date(s: &str) -> Result<Timestamp, DomainError> {
    Timestamp::parse(s).ok_or_else(|| {
        super::validate::payload_error(
            &format!("Object didn't pass validation for format date-time: {s}"),
            "expires_at",
            EXPIRES_AT_DESC,
        )
    })
}

/// A credential create request, validated for shape but not yet for key material.
#[derive(Debug, Clone)]
pub struct NewCredential {
    credential_type: CredentialType,
    name: String,
    subject_dn: Option<String>,
    pem: Option<String>,
    alg: Option<JwsAlg>,
    parse_expiry_from_cert: bool,
    expires_at: Option<Timestamp>,
    kid: Option<String>,
}

/// The algorithms a `public_key` credential's assertions may be signed with: Auth0's enum for
/// `alg`, which `tests/openapi.rs` keeps equal to this (the token endpoint pins each
/// credential's assertions to its `alg`).
pub const CREDENTIAL_ALGS: &[&str] = &["RS256", "RS384", "PS256"];

const PEM_MAX: usize = 4096;
const PUBLIC_KEY_PEM_MAX: usize = 16 * 1024;

impl NewCredential {
    /// Reads a create body (the standalone endpoint, or one entry of inline credentials on
    /// `POST /clients`). `path` prefixes property names in errors.
    pub fn parse(mut body: Body<'_>) -> Result<Self, DomainError> {
        let credential_type = body.required_string(
            "credential_type",
            Str::SCHEMA,
            "Credential type. Supported types: public_key, cert_subject_dn, x509_cert",
        )?;
        let credential_type = CredentialType::parse(&credential_type)
            .ok_or_else(|| super::validate::body_error("credential_type"))?;
        let name = body
            .string(
                "name",
                Str::SCHEMA,
                "The name given to the credential by the user",
            )?
            .unwrap_or_default();
        let subject_dn = body.string(
            "subject_dn",
            Str::SCHEMA,
            "Subject Distinguished Name. Mutually exclusive with `pem` property.",
        )?;
        let pem_limit = if credential_type == CredentialType::PublicKey {
            PUBLIC_KEY_PEM_MAX
        } else {
            PEM_MAX
        };
        let pem = body.string(
            "pem",
            Str::len(1, pem_limit),
            "PEM-formatted public key (SPKI and PKCS1) or X509 certificate.",
        )?;
        let alg = body
            .string(
                "alg",
                Str::one_of(CREDENTIAL_ALGS),
                "Algorithm which will be used with the credential. Supported algorithms: RS256,RS384,PS256",
            )?
            .and_then(|a| JwsAlg::parse(&a));
        let parse_expiry_from_cert = body.bool(
            "parse_expiry_from_cert",
            "Parse expiry from x509 certificate. If true, attempts to parse the expiry date from the provided PEM.",
        )?;
        let expires_at = body
            .string("expires_at", Str::max(64), EXPIRES_AT_DESC)?
            .map(|s| parse_date(&s))
            .transpose()?;
        let kid = body.string("kid", Str::SCHEMA, "Optional kid for this credential")?;
        body.finish()?;

        let only_public_key = |field: &str, present: bool| {
            if present && credential_type != CredentialType::PublicKey {
                Err(DomainError::invalid_body(format!(
                    "Payload validation error: '{field}' is only allowed for credential_type public_key."
                )))
            } else {
                Ok(())
            }
        };
        only_public_key("alg", alg.is_some())?;
        only_public_key("kid", kid.is_some())?;
        only_public_key("parse_expiry_from_cert", parse_expiry_from_cert.is_some())?;
        // Certificates' expiry is derived (x509_cert: notAfter; cert_subject_dn: none); it
        // can still be set afterwards with PATCH.
        only_public_key("expires_at", expires_at.is_some())?;

        match credential_type {
            CredentialType::CertSubjectDn => {
                if subject_dn.is_some() == pem.is_some() {
                    return Err(DomainError::invalid_body(
                        "Payload validation error: exactly one of 'subject_dn' and 'pem' is required for credential_type cert_subject_dn.",
                    ));
                }
            }
            CredentialType::PublicKey | CredentialType::X509Cert => {
                if subject_dn.is_some() {
                    return Err(DomainError::invalid_body(format!(
                        "Payload validation error: 'subject_dn' is not allowed for credential_type {}.",
                        credential_type.as_str()
                    )));
                }
                if pem.is_none() {
                    return Err(super::validate::body_error(
                        "Missing required property: pem",
                    ));
                }
            }
        }
        let parse_expiry_from_cert = parse_expiry_from_cert.unwrap_or(false);
        if parse_expiry_from_cert && expires_at.is_some() {
            return Err(DomainError::invalid_body(
                "Payload validation error: 'expires_at' cannot be combined with 'parse_expiry_from_cert'.",
            ));
        }
        Ok(Self {
            credential_type,
            name,
            subject_dn,
            pem,
            alg,
            parse_expiry_from_cert,
            expires_at,
            kid,
        })
    }

    /// Parses the key material and derives `kid`, thumbprints, DN and expiry. Pure: `now`
    /// decides whether a given `expires_at` is in the past.
    pub fn build(self, client_id: &str, now: Timestamp) -> Result<Credential, DomainError> {
        if let Some(exp) = self.expires_at
            && exp <= now
        {
            return Err(super::validate::payload_error(
                "expires_at must be in the future",
                "expires_at",
                EXPIRES_AT_DESC,
            ));
        }
        let pem_error = |e: clavis_crypto::CryptoError| {
            super::validate::payload_error(
                &e.to_string(),
                "pem",
                "PEM-formatted public key or X509 certificate",
            )
        };
        let mut credential = Credential {
            id: ids::new_credential_id(),
            client_id: client_id.to_string(),
            credential_type: self.credential_type,
            name: self.name,
            kid: None,
            alg: None,
            subject_dn: None,
            thumbprint_sha256: None,
            pem: None,
            key_thumbprint: None,
            cert_not_after: None,
            created_at: now,
            updated_at: now,
            expires_at: self.expires_at,
        };
        match self.credential_type {
            CredentialType::PublicKey => {
                let pem = self.pem.unwrap_or_default();
                let material = parse_public_key_pem(&pem).map_err(pem_error)?;
                let thumbprint = material.key.jwk_thumbprint();
                if self.parse_expiry_from_cert {
                    let Some(cert) = &material.certificate else {
                        return Err(super::validate::payload_error(
                            "parse_expiry_from_cert requires a certificate PEM",
                            "parse_expiry_from_cert",
                            "",
                        ));
                    };
                    let not_after = Timestamp::from_datetime(cert.not_after());
                    if not_after <= now {
                        return Err(pem_error(clavis_crypto::CryptoError::InvalidCertificate(
                            "the certificate has expired".into(),
                        )));
                    }
                    credential.expires_at = Some(not_after);
                }
                credential.kid = Some(self.kid.unwrap_or_else(|| thumbprint.clone()));
                credential.alg = Some(self.alg.unwrap_or(JwsAlg::RS256));
                credential.key_thumbprint = Some(thumbprint);
                credential.pem = Some(pem);
            }
            CredentialType::CertSubjectDn => match (self.subject_dn, self.pem) {
                (Some(dn), _) => {
                    DistinguishedName::parse(&dn).map_err(|e| {
                        super::validate::payload_error(
                            &e.to_string(),
                            "subject_dn",
                            "Subject Distinguished Name",
                        )
                    })?;
                    credential.subject_dn = Some(dn);
                }
                (None, Some(pem)) => {
                    let cert = Certificate::from_pem(&pem).map_err(pem_error)?;
                    credential.subject_dn = Some(cert.subject().to_auth0_string());
                    credential.pem = Some(pem);
                }
                (None, None) => {
                    return Err(DomainError::invalid_body(
                        "Payload validation error: 'subject_dn' or 'pem' is required.",
                    ));
                }
            },
            CredentialType::X509Cert => {
                let pem = self.pem.unwrap_or_default();
                let cert = Certificate::from_pem(&pem).map_err(pem_error)?;
                let not_after = Timestamp::from_datetime(cert.not_after());
                if not_after <= now {
                    return Err(pem_error(clavis_crypto::CryptoError::InvalidCertificate(
                        "the certificate has expired".into(),
                    )));
                }
                let thumbprint = cert.thumbprint_sha256();
                credential.thumbprint_sha256 = Some(thumbprint.clone());
                credential.key_thumbprint = Some(thumbprint);
                credential.cert_not_after = Some(not_after);
                credential.pem = Some(pem);
            }
        }
        Ok(credential)
    }
}

/// Stores `JwsAlg` by its wire name.
mod alg_serde {
    use clavis_crypto::jws::JwsAlg;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(alg: &Option<JwsAlg>, s: S) -> Result<S::Ok, S::Error> {
        match alg {
            Some(a) => s.serialize_some(a.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<JwsAlg>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => JwsAlg::parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("unknown alg")),
        }
    }
}

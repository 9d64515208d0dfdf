//! Client authentication with a certificate (RFC 8705): `tls_client_auth` and
//! `self_signed_tls_client_auth` at the token endpoint.
//!
//! The client still names itself with `client_id`; its registered method decides what the
//! certificate must satisfy. A certificate never authenticates a client registered for
//! another method. Every refusal is a 401 `invalid_client`; the reason goes to the log only.
//!
//! - `tls_client_auth`: a CA bundle is configured (`--mtls-ca`); the certificate chains to
//!   one of its CAs, is within its validity and, if it lists extended key usages, allows
//!   clientAuth; its subject DN equals the DN of one of the client's attached, unexpired
//!   `cert_subject_dn` credentials (parsed attribute sequences, in order). A certificate
//!   forwarded by a proxy must in addition carry the proxy's `SUCCESS` verdict: both the
//!   proxy and Clavis must accept the chain.
//! - `self_signed_tls_client_auth`: the SHA-256 of the certificate's DER equals the
//!   `thumbprint_sha256` of an attached, unexpired `x509_cert` credential and the
//!   certificate is within its validity. The pin is the trust: a proxy's verdict (which
//!   is `FAILED` for a self-signed certificate) does not matter.
//!
//! A token issued this way is bound to the certificate (`cnf.x5t#S256`).

use std::sync::Arc;

use clavis_crypto::x509::Certificate;
use rustls::pki_types::UnixTime;

use super::Clavis;
use super::token::OAuthError;
use crate::domain::time::Timestamp;
use crate::model::{AttachedCert, AttachedDn, ClientAuth, ClientEntry};
use crate::mtls::{PresentedCertificate, ProxyVerdict};

/// A client authenticated by certificate, with the thumbprint its tokens are bound to.
pub struct CertificateClient {
    /// The client.
    pub client: Arc<ClientEntry>,
    /// base64url SHA-256 of the certificate DER (`x5t#S256`).
    pub thumbprint: String,
    /// When what authenticated it stops doing so: the earlier of the certificate's notAfter
    /// and the matching credential's expiry.
    pub expires_at: Timestamp,
}

/// Why a certificate was refused (for the log), and which credential was involved.
struct Refusal {
    reason: String,
    credential_id: Option<String>,
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self {
            reason,
            credential_id: None,
        }
    }
}

impl Clavis {
    /// Authenticates `client_id` by the certificate the request presents. `Ok(None)` when
    /// the client is not a certificate client and no certificate was presented: the caller
    /// then treats the request as carrying no client authentication at all.
    pub fn authenticate_certificate(
        &self,
        client_id: &str,
        presented: Option<&PresentedCertificate>,
    ) -> Result<Option<CertificateClient>, OAuthError> {
        let client = self.model.client(client_id);
        let via = presented.map_or("none", PresentedCertificate::via);
        let refuse = |client_id: &str, refusal: Refusal| {
            tracing::info!(
                client_id = %client_id,
                credential_id = refusal.credential_id.as_deref(),
                via,
                reason = %refusal.reason,
                "client certificate refused"
            );
            OAuthError::invalid_client()
                .because(refusal.reason)
                .concerning(Some(client_id), refusal.credential_id.as_deref())
        };
        let Some(client) = client else {
            return match presented {
                Some(_) => Err(refuse(
                    &truncate(client_id),
                    "unknown client".to_string().into(),
                )),
                None => Ok(None),
            };
        };
        let checked = match (&client.auth, presented) {
            (ClientAuth::TlsClientAuth(dns), Some(cert)) => self.check_ca_issued(dns, cert),
            (ClientAuth::SelfSignedTlsClientAuth(pins), Some(cert)) => check_pinned(pins, cert),
            (ClientAuth::TlsClientAuth(_) | ClientAuth::SelfSignedTlsClientAuth(_), None) => {
                Err("no client certificate was presented".to_string().into())
            }
            (_, Some(_)) => Err(
                "a certificate was presented but the client is not configured \
                 for tls_client_auth or self_signed_tls_client_auth"
                    .to_string()
                    .into(),
            ),
            (_, None) => return Ok(None),
        };
        match checked {
            Ok((thumbprint, expires_at)) => Ok(Some(CertificateClient {
                client,
                thumbprint,
                expires_at,
            })),
            Err(refusal) => Err(refuse(&client.client_id, refusal)),
        }
    }

    /// `tls_client_auth`. Returns the certificate's thumbprint and when it stops
    /// authenticating.
    fn check_ca_issued(
        &self,
        attached: &[AttachedDn],
        presented: &PresentedCertificate,
    ) -> Result<(String, Timestamp), Refusal> {
        if !self.mtls.tls_client_auth_enabled() {
            return Err("tls_client_auth is off: no --mtls-ca is configured"
                .to_string()
                .into());
        }
        if let Some(ProxyVerdict::NotVerified(verdict)) = presented.proxy_verdict() {
            return Err(
                format!("the proxy did not verify the certificate chain: {verdict}").into(),
            );
        }
        let cert = parse(presented)?;
        let now = Timestamp::now();
        check_validity(&cert, now)?;
        self.mtls
            .verify_chain(cert.der(), &presented.intermediates(), UnixTime::now())?;
        let subject = cert.subject();
        let mut expired = None;
        for dn in attached.iter().filter(|a| a.dn == *subject) {
            match dn.expires_at {
                Some(exp) if exp <= now => expired = Some((dn, exp)),
                _ => return Ok((cert.thumbprint_sha256(), until(&cert, dn.expires_at))),
            }
        }
        Err(match expired {
            Some((dn, exp)) => Refusal {
                reason: format!("the matching credential expired at {exp}"),
                credential_id: Some(dn.credential_id.clone()),
            },
            None => format!(
                "subject DN {:?} matches no attached cert_subject_dn credential",
                subject.to_rfc4514_string()
            )
            .into(),
        })
    }
}

/// `self_signed_tls_client_auth`. Returns the certificate's thumbprint and when it stops
/// authenticating.
fn check_pinned(
    attached: &[AttachedCert],
    presented: &PresentedCertificate,
) -> Result<(String, Timestamp), Refusal> {
    let cert = parse(presented)?;
    let now = Timestamp::now();
    check_validity(&cert, now)?;
    let thumbprint = cert.thumbprint_sha256();
    let Some(pin) = attached.iter().find(|a| a.thumbprint_sha256 == thumbprint) else {
        return Err(
            format!("thumbprint {thumbprint} matches no attached x509_cert credential").into(),
        );
    };
    match pin.expires_at {
        Some(exp) if exp <= now => Err(Refusal {
            reason: format!("the matching credential expired at {exp}"),
            credential_id: Some(pin.credential_id.clone()),
        }),
        _ => {
            let expires_at = until(&cert, pin.expires_at);
            Ok((thumbprint, expires_at))
        }
    }
}

/// The earlier of the certificate's notAfter and the credential's expiry.
fn until(cert: &Certificate, credential_expiry: Option<Timestamp>) -> Timestamp {
    let not_after = Timestamp::from_datetime(cert.not_after());
    credential_expiry.map_or(not_after, |exp| exp.min(not_after))
}

/// The thumbprint a token is bound to when the client presented `presented` but
/// authenticated otherwise (a secret or an assertion): the TLS handshake (or the trusted
/// proxy's) proved possession of its key. `None` when it does not parse.
pub fn binding_thumbprint(presented: &PresentedCertificate) -> Option<String> {
    presented.leaf().ok().map(|cert| cert.thumbprint_sha256())
}

fn parse(presented: &PresentedCertificate) -> Result<Certificate, Refusal> {
    presented
        .leaf()
        .map_err(|e| format!("the certificate does not parse: {e}").into())
}

fn check_validity(cert: &Certificate, now: Timestamp) -> Result<(), Refusal> {
    if cert.is_valid_at(now.datetime()) {
        Ok(())
    } else {
        Err(format!(
            "the certificate is outside its validity ({} to {})",
            Timestamp::from_datetime(cert.not_before()),
            Timestamp::from_datetime(cert.not_after())
        )
        .into())
    }
}

/// Caps a client-supplied id in the log.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

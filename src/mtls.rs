//! Mutual TLS (RFC 8705) plumbing: how a client certificate reaches the token endpoint.
//!
//! - **Own listener.** The TLS listener *requests* a client certificate and does not require
//!   one, so mTLS and non-mTLS clients share one port. At the TLS layer any certificate is
//!   accepted as long as the client proves it holds the private key (the handshake signature
//!   is verified); whether the certificate is any good is decided per request by the token
//!   endpoint, which knows the client and its method. A chain check at the TLS layer would
//!   refuse the self-signed certificates `self_signed_tls_client_auth` exists for, and would
//!   give a client a TLS alert instead of an OAuth error. No CA names are sent as hints: Go
//!   and Java clients only send a certificate issued by a hinted CA, which would stop them
//!   from sending a self-signed one; an empty list means "any certificate" (RFC 5246 §7.4.4,
//!   RFC 8446 §4.2.4).
//! - **Behind a TLS-terminating proxy** (as Auth0 deploys it): the proxy forwards the
//!   certificate in `client-certificate` (URL-encoded PEM, at most 4096 bytes) with its own
//!   verdict in `client-certificate-ca-verified` (`SUCCESS` / `FAILED: <reason>`). These
//!   headers are believed only from a peer address in `--trusted-proxy` that also sends the
//!   `CLAVIS_PROXY_SECRET` in `cname-api-key`; otherwise they are ignored and logged. On such a
//!   proxied request the certificate of the TLS connection (the proxy's own) is never used.
//!
//! [`MtlsSettings`] holds the resolved configuration; [`PresentedCertificate`] is what one
//! request presents. The checks against a client's credentials live in `service::mtls`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use axum_server::tls::TlsInfo;
use clavis_crypto::CryptoError;
use clavis_crypto::secret::SecretDigest;
use clavis_crypto::x509::Certificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::config::Secret;

/// Header carrying the forwarded client certificate (URL-encoded PEM).
pub const CLIENT_CERTIFICATE: &str = "client-certificate";
/// Header carrying the proxy's verdict on the certificate chain.
pub const CLIENT_CERTIFICATE_CA_VERIFIED: &str = "client-certificate-ca-verified";
/// Header carrying the shared secret that authenticates the proxy.
pub const CNAME_API_KEY: &str = "cname-api-key";
/// Largest accepted `client-certificate` header value, in bytes as received.
pub const MAX_FORWARDED_CERTIFICATE_BYTES: usize = 4096;
/// Shortest accepted proxy secret (`CLAVIS_PROXY_SECRET`).
pub const MIN_PROXY_SECRET_LEN: usize = 16;

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or
/// /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS[/PREFIX]`. Host bits must be zero, so a typo such as `10.0.0.1/8`
    /// is refused rather than silently widened.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("\"{s}\" is not an IP address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("\"{s}\": prefix length must be 0 to {max}"))?,
        };
        let cidr = Self { network, prefix };
        if cidr.masked(network) != Some(bits(network)) {
            return Err(format!("\"{s}\": address has bits set beyond the prefix"));
        }
        Ok(cidr)
    }

    /// The address bits under the mask, if `ip` is of the same family.
    fn masked(&self, ip: IpAddr) -> Option<u128> {
        let width: u32 = if self.network.is_ipv4() { 32 } else { 128 };
        if ip.is_ipv4() != self.network.is_ipv4() {
            return None;
        }
        let host_bits = width - u32::from(self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        Some(bits(ip) & mask)
    }

    /// Whether `ip` lies in the network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
    /// dual-stack listener reports IPv4 peers) is compared as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.masked(ip) == self.masked(self.network)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The mTLS part of the configuration, as given (see `config`).
#[derive(Debug, Clone, Default)]
pub struct MtlsOptions {
    /// PEM bundle of the CAs trusted for `tls_client_auth`; without it `tls_client_auth` is off.
    pub ca_bundle: Option<PathBuf>,
    /// Peers allowed to forward client certificates in headers.
    pub trusted_proxies: Vec<Cidr>,
    /// What those peers send in `cname-api-key`.
    pub proxy_secret: Option<Secret>,
}

impl MtlsOptions {
    /// Validates the raw options: the proxy settings go together, and the secret is long
    /// enough not to be guessed.
    pub fn new(
        ca_bundle: Option<PathBuf>,
        trusted_proxies: &[String],
        proxy_secret: Option<String>,
    ) -> Result<Self, String> {
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|s| Cidr::parse(s).map_err(|e| format!("--trusted-proxy {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        match (trusted_proxies.is_empty(), &proxy_secret) {
            (false, None) | (true, Some(_)) => {
                return Err("--trusted-proxy and CLAVIS_PROXY_SECRET go together".into());
            }
            (false, Some(s)) if s.len() < MIN_PROXY_SECRET_LEN => {
                return Err(format!(
                    "CLAVIS_PROXY_SECRET must be at least {MIN_PROXY_SECRET_LEN} characters"
                ));
            }
            _ => {}
        }
        Ok(Self {
            ca_bundle,
            trusted_proxies,
            proxy_secret: proxy_secret.map(Secret),
        })
    }
}

/// The resolved mTLS configuration.
pub struct MtlsSettings {
    /// Chain checker for `tls_client_auth` (built from `--mtls-ca`).
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Trusted proxies and the digest of their secret.
    proxy: Option<ProxyTrust>,
    /// Whether Clavis terminates TLS itself (so certificates arrive in handshakes).
    tls_listener: bool,
}

struct ProxyTrust {
    networks: Vec<Cidr>,
    secret: SecretDigest,
}

impl fmt::Debug for MtlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsSettings")
            .field("tls_client_auth", &self.client_ca.is_some())
            .field(
                "trusted_proxies",
                &self.proxy.as_ref().map(|p| p.networks.clone()),
            )
            .field("tls_listener", &self.tls_listener)
            .finish()
    }
}

impl Default for MtlsSettings {
    /// No certificate can arrive: every mTLS method is off.
    fn default() -> Self {
        Self {
            client_ca: None,
            proxy: None,
            tls_listener: false,
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl MtlsSettings {
    /// Resolves the options: reads and checks the CA bundle. `tls_listener` says whether
    /// Clavis serves TLS itself (false with `--insecure-http`).
    pub fn load(options: &MtlsOptions, tls_listener: bool) -> Result<Self> {
        let client_ca = match &options.ca_bundle {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read --mtls-ca {}", path.display()))?;
                Some(
                    client_ca_verifier(&pem)
                        .with_context(|| format!("--mtls-ca {}", path.display()))?,
                )
            }
        };
        let proxy = match (&options.proxy_secret, options.trusted_proxies.is_empty()) {
            (Some(secret), false) => Some(ProxyTrust {
                networks: options.trusted_proxies.clone(),
                secret: SecretDigest::of(&secret.0),
            }),
            _ => None,
        };
        let settings = Self {
            client_ca,
            proxy,
            tls_listener,
        };
        tracing::info!(
            methods = settings.auth_methods().join(" "),
            trusted_proxies = (!options.trusted_proxies.is_empty()).then(|| {
                options
                    .trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            "mTLS client authentication"
        );
        Ok(settings)
    }

    /// The same, from in-memory values (tests and embedding).
    pub fn from_parts(
        ca_bundle_pem: Option<&[u8]>,
        proxy: Option<(Vec<Cidr>, &str)>,
        tls_listener: bool,
    ) -> Result<Self> {
        Ok(Self {
            client_ca: ca_bundle_pem.map(client_ca_verifier).transpose()?,
            proxy: proxy.map(|(networks, secret)| ProxyTrust {
                networks,
                secret: SecretDigest::of(secret),
            }),
            tls_listener,
        })
    }

    /// Whether a client certificate can reach the token endpoint at all.
    pub fn certificates_arrive(&self) -> bool {
        self.tls_listener || self.proxy.is_some()
    }

    /// Whether `tls_client_auth` can succeed (a CA bundle is configured).
    pub fn tls_client_auth_enabled(&self) -> bool {
        self.client_ca.is_some() && self.certificates_arrive()
    }

    /// The mTLS methods that can succeed with this configuration, for discovery:
    /// `self_signed_tls_client_auth` whenever a certificate can arrive (own TLS listener or
    /// a trusted proxy), `tls_client_auth` when a CA bundle is configured as well.
    pub fn auth_methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.tls_client_auth_enabled() {
            methods.push("tls_client_auth");
        }
        if self.certificates_arrive() {
            methods.push("self_signed_tls_client_auth");
        }
        methods
    }

    /// Checks that `leaf` (with the intermediates sent along) chains to a configured CA,
    /// is valid at `now`, and allows client authentication (extended key usage clientAuth,
    /// when the certificate restricts its usage).
    pub fn verify_chain(
        &self,
        leaf: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), String> {
        let Some(verifier) = &self.client_ca else {
            return Err("tls_client_auth is off: no --mtls-ca is configured".into());
        };
        verifier
            .verify_client_cert(&CertificateDer::from(leaf), intermediates, now)
            .map(|_| ())
            .map_err(|e| format!("certificate chain not accepted: {e}"))
    }

    /// The client certificate a request presents, if any: from a trusted, authenticated
    /// proxy's headers, else from the TLS handshake. Headers that are not trusted are
    /// ignored (and logged). `Err` (a 400) only for a trusted proxy's unusable header.
    pub fn presented_certificate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Option<PresentedCertificate>, String> {
        let forwarded = headers.get(CLIENT_CERTIFICATE);
        if let Some(proxy) = &self.proxy {
            let peer = extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            match peer {
                Some(ip) if proxy.networks.iter().any(|n| n.contains(ip)) => {
                    match headers.get(CNAME_API_KEY) {
                        Some(key) if proxy.secret.matches(key.to_str().unwrap_or("")) => {
                            return match forwarded {
                                None => Ok(None),
                                Some(value) => parse_forwarded(value.as_bytes(), headers)
                                    .map(Some)
                                    .inspect_err(|e| {
                                        tracing::warn!(peer = %ip, reason = %e, "trusted proxy forwarded an unusable client certificate");
                                    }),
                            };
                        }
                        Some(_) => {
                            tracing::warn!(peer = %ip, forwarded = forwarded.is_some(), "request from a trusted proxy address with a wrong cname-api-key: forwarded certificate headers ignored");
                        }
                        None if forwarded.is_some() => {
                            tracing::warn!(peer = %ip, "request from a trusted proxy address without cname-api-key: forwarded certificate ignored");
                        }
                        None => {}
                    }
                }
                _ if forwarded.is_some() => {
                    tracing::warn!(peer = ?peer, "client-certificate header from an untrusted address ignored");
                }
                _ => {}
            }
        } else if forwarded.is_some() {
            tracing::info!(
                "client-certificate header ignored: no trusted proxy is configured (--trusted-proxy)"
            );
        }
        Ok(extensions
            .get::<Arc<TlsInfo>>()
            .filter(|info| !info.peer_certificates.is_empty())
            .map(|info| PresentedCertificate::Tls(info.clone())))
    }
}

/// A verifier over the CA bundle, used per request (not in the handshake).
fn client_ca_verifier(pem: &[u8]) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.context("bad PEM")?;
        roots
            .add(cert)
            .context("a certificate in the bundle cannot be a trust anchor")?;
    }
    anyhow::ensure!(!roots.is_empty(), "the bundle holds no CERTIFICATE");
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .context("cannot build the client certificate verifier")
}

/// What the proxy says about the chain it verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyVerdict {
    /// `SUCCESS`.
    Verified,
    /// `FAILED: ...`, absent or anything else (the text, for the log).
    NotVerified(String),
}

/// The client certificate one request presents.
#[derive(Clone)]
pub enum PresentedCertificate {
    /// From Clavis's own TLS handshake (leaf first, then what the client sent along).
    Tls(Arc<TlsInfo>),
    /// Forwarded by a trusted proxy.
    Proxy {
        /// The parsed leaf.
        leaf: Box<Certificate>,
        /// Further certificates of the header, if the proxy sent a chain.
        intermediates: Vec<CertificateDer<'static>>,
        /// `client-certificate-ca-verified`.
        verdict: ProxyVerdict,
    },
}

impl fmt::Debug for PresentedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(info) => write!(
                f,
                "PresentedCertificate::Tls({} certificates)",
                info.peer_certificates.len()
            ),
            Self::Proxy { leaf, verdict, .. } => f
                .debug_struct("PresentedCertificate::Proxy")
                .field("leaf", leaf)
                .field("verdict", verdict)
                .finish(),
        }
    }
}

impl PresentedCertificate {
    /// `tls` or `proxy`, for the log.
    pub fn via(&self) -> &'static str {
        match self {
            Self::Tls(_) => "tls",
            Self::Proxy { .. } => "proxy",
        }
    }

    /// The parsed end-entity certificate.
    pub fn leaf(&self) -> Result<Certificate, CryptoError> {
        match self {
            Self::Tls(info) => {
                Certificate::from_der(info.peer_certificates.first().map_or(&[][..], |c| c))
            }
            Self::Proxy { leaf, .. } => Ok((**leaf).clone()),
        }
    }

    /// The certificates sent after the leaf.
    pub fn intermediates(&self) -> Vec<CertificateDer<'_>> {
        match self {
            Self::Tls(info) => info
                .peer_certificates
                .iter()
                .skip(1)
                .map(|c| CertificateDer::from(c.as_slice()))
                .collect(),
            Self::Proxy { intermediates, .. } => intermediates.clone(),
        }
    }

    /// The proxy's verdict; `None` for a handshake certificate.
    pub fn proxy_verdict(&self) -> Option<&ProxyVerdict> {
        match self {
            Self::Tls(_) => None,
            Self::Proxy { verdict, .. } => Some(verdict),
        }
    }
}

/// Decodes a trusted proxy's `client-certificate` (and its verdict).
fn parse_forwarded(value: &[u8], headers: &HeaderMap) -> Result<PresentedCertificate, String> {
    if value.len() > MAX_FORWARDED_CERTIFICATE_BYTES {
        return Err(format!(
            "client-certificate header exceeds {MAX_FORWARDED_CERTIFICATE_BYTES} bytes"
        ));
    }
    let malformed = || "client-certificate header is not a URL-encoded PEM certificate".to_string();
    // Percent-decoding only: a `+` is a base64 character here, not a space.
    let pem: Vec<u8> = percent_encoding::percent_decode(value).collect();
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        certs.push(cert.map_err(|_| malformed())?);
    }
    let mut certs = certs.into_iter();
    let leaf = certs.next().ok_or_else(malformed)?;
    let leaf =
        Certificate::from_der(&leaf).map_err(|e| format!("client-certificate header: {e}"))?;
    let verdict = match headers
        .get(CLIENT_CERTIFICATE_CA_VERIFIED)
        .map(|v| v.to_str())
    {
        Some(Ok("SUCCESS")) => ProxyVerdict::Verified,
        Some(Ok("")) => ProxyVerdict::NotVerified("(empty)".into()),
        Some(Ok(other)) => ProxyVerdict::NotVerified(other.chars().take(200).collect()),
        Some(Err(_)) => ProxyVerdict::NotVerified("(not text)".into()),
        None => ProxyVerdict::NotVerified("(header absent)".into()),
    };
    Ok(PresentedCertificate::Proxy {
        leaf: Box::new(leaf),
        intermediates: certs.collect(),
        verdict,
    })
}

/// The TLS listener's client-certificate policy: request one, require none, accept any
/// certificate whose private key the client proves to hold (see the module documentation).
#[derive(Debug)]
pub struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCertificate {
    /// The policy for a provider's signature algorithms.
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately no chain check here: the token endpoint checks the certificate
        // against the client's method (chain for tls_client_auth, pin for self-signed).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cidr_parsing_and_matching() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.9.9".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.7".parse().unwrap()));
        assert!(
            Cidr::parse("::/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "example.com",
            "",
            "::1/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn proxy_options_go_together() {
        let nets = vec!["127.0.0.1/32".to_string()];
        let secret = || Some("0123456789abcdef".to_string());
        assert!(MtlsOptions::new(None, &nets, secret()).is_ok());
        assert!(MtlsOptions::new(None, &nets, None).is_err());
        assert!(MtlsOptions::new(None, &[], secret()).is_err());
        assert!(MtlsOptions::new(None, &nets, Some("short".into())).is_err());
        assert!(MtlsOptions::new(None, &["nope".into()], secret()).is_err());
        let debug = format!("{:?}", MtlsOptions::new(None, &nets, secret()).unwrap());
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn options_come_from_flags_environment_and_file() {
        use crate::config::ServeArgs;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "mtls_ca = \"/etc/clavis/clients.pem\"\ntrusted_proxy = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
        )
        .unwrap();
        // The secret comes from the environment (CLAVIS_PROXY_SECRET).
        let config = |trusted_proxy: Vec<String>, secret: Option<&str>| {
            let secret = secret.map(str::to_string);
            ServeArgs {
                config: Some(path.clone()),
                trusted_proxy,
                ..Default::default()
            }
            .into_config_with_env(&|name| secret.clone().filter(|_| name == "CLAVIS_PROXY_SECRET"))
        };
        let c = config(vec![], Some("0123456789abcdef")).unwrap();
        assert_eq!(
            c.mtls.ca_bundle.as_deref(),
            Some(std::path::Path::new("/etc/clavis/clients.pem"))
        );
        assert_eq!(
            c.mtls.trusted_proxies,
            [
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("fd00::/8").unwrap()
            ]
        );
        // Flags replace the file's list.
        let c = config(vec!["192.168.1.0/24".into()], Some("0123456789abcdef")).unwrap();
        assert_eq!(
            c.mtls.trusted_proxies,
            [Cidr::parse("192.168.1.0/24").unwrap()]
        );
        // A proxy list without its secret is a configuration error.
        assert!(config(vec![], None).is_err());
        // The secret cannot come from the file.
        std::fs::write(&path, "proxy_secret = \"0123456789abcdef\"\n").unwrap();
        assert!(config(vec![], None).is_err());
    }

    #[test]
    fn advertised_methods_follow_the_configuration() {
        let (_, ca) = clavis_crypto::local_ca::LocalCa::generate("Test CA").unwrap();
        let ca = ca.cert_pem.as_bytes();
        let proxy = || Some((vec![Cidr::parse("10.0.0.0/8").unwrap()], "0123456789abcdef"));
        let methods = |ca: Option<&[u8]>, proxy, tls| {
            MtlsSettings::from_parts(ca, proxy, tls)
                .unwrap()
                .auth_methods()
        };
        assert!(methods(None, None, false).is_empty());
        assert!(methods(Some(ca), None, false).is_empty());
        assert_eq!(methods(None, None, true), ["self_signed_tls_client_auth"]);
        assert_eq!(
            methods(None, proxy(), false),
            ["self_signed_tls_client_auth"]
        );
        assert_eq!(
            methods(Some(ca), None, true),
            ["tls_client_auth", "self_signed_tls_client_auth"]
        );
        assert_eq!(
            methods(Some(ca), proxy(), false),
            ["tls_client_auth", "self_signed_tls_client_auth"]
        );
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        assert!(MtlsSettings::from_parts(Some(b"nothing here"), None, true).is_err());
        assert!(MtlsSettings::from_parts(Some(b""), None, true).is_err());
    }
}

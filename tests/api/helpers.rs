//! The test harness: every test gets its own Clavis — fresh data directory, real HTTPS
//! listener on a free port, generated CA — and a reqwest client that trusts that CA.
//! With `CLAVIS_TEST_POSTGRES_URL` set (`scripts/test-postgres`), each test also gets its
//! own PostgreSQL database on that cluster instead of a SQLite file.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use clavis::config::Config;
use clavis::service::Clavis;
use clavis::startup::Application;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

pub use crate::common::keys::{AssertionKey, jti, now, rsa_key};
pub use crate::common::postgres as pg;
pub use crate::common::request::{Api, Auth};
pub use crate::common::{ADMIN_ID, ADMIN_SECRET, decode_jwt, jwt_header};

/// A running server. It derefs to its [`Api`] (`http`, `base`, `url`, token requests, `call`).
pub struct TestApp {
    pub address: SocketAddr,
    api: Api,
    pub data_dir: Arc<tempfile::TempDir>,
    pub clavis: Arc<Clavis>,
    /// The separate `/metrics` listener, when configured.
    pub metrics_address: Option<SocketAddr>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    admin_token: OnceCell<String>,
}

/// Builds a configuration for a data directory; `port` 0 picks a free one.
pub fn config(dir: &std::path::Path, port: u16) -> Config {
    let mut config = Config::for_data_dir(dir);
    config.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config.bootstrap_client_id = Some(ADMIN_ID.into());
    config.bootstrap_client_secret = Some(clavis::config::Secret(ADMIN_SECRET.into()));
    config.log = "warn".into();
    if let Some(url) = postgres_database(dir) {
        config.database_url = url;
    }
    config
}

/// The test's own PostgreSQL database when the tests run against PostgreSQL: created on
/// first use and remembered in the data directory (a restart finds the same one).
fn postgres_database(dir: &std::path::Path) -> Option<String> {
    let base = pg::base_url()?;
    let remembered = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return Some(url);
    }
    // A thread of its own: the caller may already be inside a runtime.
    let url = std::thread::spawn(move || pg::fresh_database_blocking(&base))
        .join()
        .unwrap();
    std::fs::write(&remembered, &url).unwrap();
    Some(url)
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    /// A fresh server.
    pub async fn spawn() -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::start(config(dir.path(), 0), dir).await
    }

    /// A fresh server with a tweaked configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut c = config(dir.path(), 0);
        tweak(&mut c);
        Self::start(c, dir).await
    }

    async fn start(config: Config, dir: Arc<tempfile::TempDir>) -> Self {
        let app = Application::build(config).await.expect("server builds");
        let address = app.address();
        let handle = app.handle();
        let clavis = app.clavis();
        let metrics_address = app.metrics_address();
        let ca = app.ca_cert.clone().expect("generated CA");
        let task = tokio::spawn(async move {
            app.serve().await.expect("server runs");
        });
        let ca_pem = std::fs::read(&ca).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
            .build()
            .unwrap();
        Self {
            address,
            api: Api::new(http, format!("https://{address}")),
            data_dir: dir,
            clavis,
            metrics_address,
            handle,
            task,
            admin_token: OnceCell::new(),
        }
    }

    /// Stops the server gracefully and starts it again on the same port and data directory.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Stops the server and starts it again on the same data and port, with a tweaked
    /// configuration.
    pub async fn restart_with(self, tweak: impl FnOnce(&mut Config)) -> Self {
        let port = self.address.port();
        let dir = self.data_dir.clone();
        self.stop().await;
        let mut c = config(dir.path(), port);
        tweak(&mut c);
        Self::start(c, dir).await
    }

    /// Stops the server gracefully.
    pub async fn stop(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        self.task.await.unwrap();
    }

    pub fn issuer(&self) -> String {
        format!("{}/", self.base)
    }

    /// A `client_credentials` request authenticated by `client_secret_post`.
    pub async fn secret_post(&self, client_id: &str, secret: &str, audience: &str) -> Response {
        self.api
            .client_credentials(client_id, Auth::SecretPost(secret), audience)
            .await
    }

    /// The bootstrap admin's management token (every scope).
    pub async fn admin_token(&self) -> String {
        self.admin_token
            .get_or_init(|| async {
                self.token_for(ADMIN_ID, ADMIN_SECRET, &self.management_audience())
                    .await
            })
            .await
            .clone()
    }

    /// A management token holding exactly `scopes` (a new client with a grant).
    pub async fn token_with_scopes(&self, scopes: &[&str]) -> String {
        let client = self.create_m2m_client("scoped").await;
        let id = client["client_id"].as_str().unwrap();
        let secret = client["client_secret"].as_str().unwrap();
        let r = self
            .admin(
                Method::POST,
                "/api/v2/client-grants",
                Some(json!({
                    "client_id": id,
                    "audience": self.management_audience(),
                    "scope": scopes,
                })),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        self.token_for(id, secret, &self.management_audience())
            .await
    }

    /// A request as the admin.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let token = self.admin_token().await;
        self.call(&token, method, path, body).await
    }

    /// Creates a `non_interactive` client with `client_credentials`; returns its JSON.
    pub async fn create_m2m_client(&self, name: &str) -> Value {
        let r = self
            .admin(
                Method::POST,
                "/api/v2/clients",
                Some(json!({
                    "name": name,
                    "app_type": "non_interactive",
                    "grant_types": ["client_credentials"],
                })),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// Creates a credential; returns the response.
    pub async fn create_credential(&self, client_id: &str, body: Value) -> Response {
        self.admin(
            Method::POST,
            &format!("/api/v2/clients/{client_id}/credentials"),
            Some(body),
        )
        .await
    }

    /// Creates a resource server; returns its JSON.
    pub async fn create_api(&self, identifier: &str, scopes: &[&str]) -> Value {
        let scopes: Vec<Value> = scopes.iter().map(|s| json!({"value": s})).collect();
        let r = self
            .admin(
                Method::POST,
                "/api/v2/resource-servers",
                Some(json!({
                    "name": "Test API",
                    "identifier": identifier,
                    "scopes": scopes,
                })),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// Grants `client_id` the `scopes` of `audience`; returns the grant JSON.
    pub async fn grant(&self, client_id: &str, audience: &str, scopes: &[&str]) -> Value {
        let r = self
            .admin(
                Method::POST,
                "/api/v2/client-grants",
                Some(json!({
                    "client_id": client_id,
                    "audience": audience,
                    "scope": scopes,
                })),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }
}

/// Asserts an Auth0 error body and returns it.
pub async fn assert_error(r: Response, status: u16, code: Option<&str>) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(ct.as_deref(), Some("application/json; charset=utf-8"));
    let body: Value = r.json().await.unwrap();
    let order: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: &[&str] = if body.get("errorCode").is_some() {
        &["statusCode", "error", "message", "errorCode"]
    } else {
        &["statusCode", "error", "message"]
    };
    assert_eq!(order, expected, "error body keys: {body}");
    assert_eq!(body["statusCode"], json!(status));
    assert!(body["error"].is_string());
    assert!(body["message"].is_string());
    if let Some(c) = code {
        assert_eq!(body["errorCode"], json!(c), "body: {body}");
    }
    body
}

/// A self-signed certificate with an RSA key and the given subject; returns
/// (certificate PEM, private key PEM).
pub fn self_signed_cert(subject: &[(rcgen::DnType, &str)], days_valid: i64) -> (String, String) {
    let cert = test_cert(subject, days_valid);
    (cert.pem, cert.key_pem)
}

// ----- additions for the contract tests -----

use base64::Engine as _;
use der::{Decode as _, Encode as _};

/// Responses as (status, JSON body); `Value::Null` when the body is empty.
pub async fn status_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "status {status}: body is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

/// The keys of a JSON object, in order.
pub fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn is_millis_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// Formats an instant the way the Management API must (`.mmmZ`).
pub fn millis_string(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// The single PEM block of `pem`: (label, DER).
pub fn pem_der(pem: &str) -> (String, Vec<u8>) {
    let (label, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
    (label.to_string(), der)
}

/// The PKCS#1 `RSAPublicKey` DER inside an SPKI PEM.
pub fn pkcs1_der_of_spki(spki_pem: &str) -> Vec<u8> {
    let (label, der) = pem_der(spki_pem);
    assert_eq!(label, "PUBLIC KEY");
    let spki = spki::SubjectPublicKeyInfoRef::from_der(&der).unwrap();
    spki.subject_public_key.as_bytes().unwrap().to_vec()
}

/// Re-encodes an SPKI public key PEM as PKCS#1 (`BEGIN RSA PUBLIC KEY`).
pub fn spki_to_pkcs1_pem(spki_pem: &str) -> String {
    let pkcs1 = pkcs1_der_of_spki(spki_pem);
    der::pem::encode_string("RSA PUBLIC KEY", der::pem::LineEnding::LF, &pkcs1).unwrap()
}

/// RFC 7638 thumbprint computed here from the key's `n` and `e`.
pub fn thumbprint_of_pkcs1(pkcs1_der: &[u8]) -> String {
    let key = pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(pkcs1_der).unwrap();
    let n = b64url(key.modulus.as_bytes());
    let e = b64url(key.public_exponent.as_bytes());
    let jwk = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    b64url(&sha256(jwk.as_bytes()))
}

/// RFC 7638 thumbprint of an SPKI PEM.
pub fn thumbprint_of_spki(spki_pem: &str) -> String {
    thumbprint_of_pkcs1(&pkcs1_der_of_spki(spki_pem))
}

/// An SPKI PEM of an RSA public key with the given modulus and exponent.
pub fn spki_pem_from_components(n: &[u8], e: &[u8]) -> String {
    let pkcs1 = pkcs1::RsaPublicKey {
        modulus: der::asn1::UintRef::new(n).unwrap(),
        public_exponent: der::asn1::UintRef::new(e).unwrap(),
    }
    .to_der()
    .unwrap();
    let spki = spki::SubjectPublicKeyInfoRef {
        algorithm: spki::AlgorithmIdentifier {
            oid: der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(der::asn1::AnyRef::NULL),
        },
        subject_public_key: der::asn1::BitStringRef::from_bytes(&pkcs1).unwrap(),
    }
    .to_der()
    .unwrap();
    der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &spki).unwrap()
}

/// A syntactically valid RSA public key of exactly `bits` bits (not a real key pair: for
/// size checks only).
pub fn rsa_public_key_of_bits(bits: usize) -> String {
    assert!(bits.is_multiple_of(8));
    let mut n = vec![0xA5u8; bits / 8];
    n[0] = 0xC3;
    let last = n.len() - 1;
    n[last] |= 1;
    spki_pem_from_components(&n, &[1, 0, 1])
}

/// A P-256 public key PEM.
pub fn ec_public_key_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .public_key_pem()
}

/// A certificate made in the test, with what the test knows about it independently.
pub struct TestCert {
    pub pem: String,
    pub key_pem: String,
    pub public_key_pem: String,
    pub der: Vec<u8>,
    /// notAfter as written into the certificate (whole seconds).
    pub not_after: time::OffsetDateTime,
}

/// A self-signed RSA certificate valid for `days_valid` days from now.
pub fn test_cert(subject: &[(rcgen::DnType, &str)], days_valid: i64) -> TestCert {
    let kp = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    for (t, v) in subject {
        dn.push(t.clone(), *v);
    }
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days_valid);
    let cert = params.self_signed(&kp).unwrap();
    TestCert {
        pem: cert.pem(),
        key_pem: kp.serialize_pem(),
        public_key_pem: kp.public_key_pem(),
        der: cert.der().to_vec(),
        not_after: params.not_after,
    }
}

/// Percent-encodes a path segment.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl TestApp {
    /// A request with a Bearer token and a raw body of the given content type.
    pub async fn call_raw(
        &self,
        token: &str,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A request as the admin with a form body.
    pub async fn admin_form(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Response {
        let token = self.admin_token().await;
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A request as the admin; (status, JSON body).
    pub async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        status_json(self.admin(method, path, body).await).await
    }

    /// A request as the admin that must answer `status`; the JSON body.
    pub async fn admin_expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (got, value) = self.admin_json(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }

    /// A request as the admin that must be refused with `status` in Auth0's error body
    /// (`code` its `errorCode`); the body.
    pub async fn admin_error(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        code: Option<&str>,
    ) -> Value {
        assert_error(self.admin(method, path, body).await, status, code).await
    }

    /// GET as the admin, expecting 200; the body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.admin_json(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Creates a credential, expecting 201; the credential JSON.
    pub async fn credential_ok(&self, client_id: &str, body: Value) -> Value {
        let (status, v) = status_json(self.create_credential(client_id, body).await).await;
        assert_eq!(status, 201, "credential create: {v}");
        v
    }

    /// Everything the Management API shows, as one JSON value: clients (with their
    /// credentials), resource servers and client grants, all in list order.
    pub async fn everything(&self) -> Value {
        let clients = self.get_ok("/api/v2/clients?per_page=100").await;
        let mut with_credentials = Vec::new();
        for c in clients.as_array().unwrap() {
            let id = c["client_id"].as_str().unwrap();
            let creds = self
                .get_ok(&format!("/api/v2/clients/{id}/credentials"))
                .await;
            with_credentials.push(json!({"client": c, "credentials": creds}));
        }
        json!({
            "clients": with_credentials,
            "resource_servers": self.get_ok("/api/v2/resource-servers?per_page=100").await,
            "client_grants": self.get_ok("/api/v2/client-grants?per_page=100").await,
        })
    }

    /// The path of a client's credential collection or of one credential.
    pub fn cred_path(client_id: &str, credential_id: Option<&str>) -> String {
        match credential_id {
            Some(c) => format!("/api/v2/clients/{client_id}/credentials/{c}"),
            None => format!("/api/v2/clients/{client_id}/credentials"),
        }
    }
}

/// A credential id: `cred_` + 22 base58.
pub fn is_credential_id(s: &str) -> bool {
    const B58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    s.len() == 27 && s.starts_with("cred_") && s[5..].chars().all(|c| B58.contains(c))
}

/// A client id: 32 alphanumerics.
pub fn is_client_id(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A grant id: `cgr_` + 16 alphanumerics.
pub fn is_grant_id(s: &str) -> bool {
    s.len() == 20 && s.starts_with("cgr_") && s[4..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// A resource server id: 24 hex.
pub fn is_resource_server_id(s: &str) -> bool {
    s.len() == 24 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Claims the official SDKs send.
pub fn assertion_claims(app: &TestApp, client_id: &str) -> Value {
    let iat = now();
    json!({"iat": iat, "iss": client_id, "sub": client_id, "aud": app.issuer(), "exp": iat + 180, "jti": jti()})
}

/// The decoded payload of a JWT.
pub fn jwt_payload(token: &str) -> Value {
    crate::common::jwt_claims(token)
}

/// A route template of the served document with every path parameter naming nothing.
pub fn naming_nothing(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                "nothing_here"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

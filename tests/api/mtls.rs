//! mTLS client authentication (RFC 8705) at `/oauth/token`: `tls_client_auth` against
//! `cert_subject_dn` credentials and `self_signed_tls_client_auth` against `x509_cert`
//! credentials, with certificates made here (rcgen) and presented either in a real TLS
//! handshake (reqwest with an identity) or in the headers of a trusted proxy. Every
//! refusal the issue lists is checked on both paths, plus the proxy's own trust rules.

use std::net::IpAddr;
use std::time::Duration;

use clavis::mtls::MtlsOptions;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

const API: &str = "https://api.mtls.test/";
const PROXY_SECRET: &str = "cname-api-key-for-tests-0123456789";

/// The subject every "right" certificate carries, in encoded order.
const SUBJECT: &[(DnType, &str)] = &[
    (DnType::CountryName, "es"),
    (DnType::OrganizationName, "Okta"),
    (DnType::OrganizationalUnitName, "DX-CDT"),
    (DnType::CommonName, "billing"),
];
/// The same DN as Auth0 stores it (newline-joined, encoded order)...
const SUBJECT_AUTH0: &str = "C=es\nO=Okta\nOU=DX-CDT\nCN=billing";
/// ...and as RFC 4514 writes it (most specific first).
const SUBJECT_RFC4514: &str = "CN=billing,OU=DX-CDT,O=Okta,C=es";

#[derive(Clone, Copy, Debug)]
enum Validity {
    Current,
    Expired,
    NotYetValid,
    /// Valid from yesterday until this many seconds from now.
    EndsIn(i64),
}

fn apply(params: &mut CertificateParams, validity: Validity) {
    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let (from, to) = match validity {
        Validity::Current => (now - day, now + day * 30),
        Validity::Expired => (now - day * 30, now - day),
        Validity::NotYetValid => (now + day, now + day * 30),
        Validity::EndsIn(s) => (now - day, now + time::Duration::seconds(s)),
    };
    params.not_before = from;
    params.not_after = to;
}

fn dn(subject: &[(DnType, &str)]) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    for (t, v) in subject {
        dn.push(t.clone(), *v);
    }
    dn
}

/// A client certificate and its private key.
#[derive(Clone)]
struct ClientCert {
    pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl ClientCert {
    /// base64url SHA-256 of the DER, computed here.
    fn thumbprint(&self) -> String {
        b64url(&sha256(&self.der))
    }

    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.pem, self.key_pem).as_bytes()).unwrap()
    }
}

/// A CA made in the test (ECDSA P-256: fast to generate).
struct TestCa {
    issuer: rcgen::Issuer<'static, KeyPair>,
    pem: String,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&[(DnType::CommonName, name)]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    apply(&mut params, Validity::Current);
    params
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// An intermediate CA under this one.
    fn intermediate(&self, name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A client certificate (EKU clientAuth) for `subject`.
    fn issue(&self, subject: &[(DnType, &str)], validity: Validity) -> ClientCert {
        self.issue_for(subject, validity, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue_for(
        &self,
        subject: &[(DnType, &str)],
        validity: Validity,
        usage: ExtendedKeyUsagePurpose,
    ) -> ClientCert {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(subject);
        params.extended_key_usages = vec![usage];
        apply(&mut params, validity);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A self-signed certificate for `subject`.
fn self_signed(subject: &[(DnType, &str)], validity: Validity) -> ClientCert {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn(subject);
    apply(&mut params, validity);
    let cert = params.self_signed(&key).unwrap();
    ClientCert {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// A self-signed RSA certificate (the key type most clients use).
fn self_signed_rsa(subject: &[(DnType, &str)]) -> ClientCert {
    let c = test_cert(subject, 30);
    ClientCert {
        pem: c.pem,
        key_pem: c.key_pem,
        der: c.der,
    }
}

/// A server trusting `ca` for `tls_client_auth` and 127.0.0.1 as a proxy.
async fn spawn(ca: &TestCa) -> TestApp {
    spawn_capping(ca, false).await
}

/// [`spawn`], with `--cap-token-expiry-at-credential` as given.
async fn spawn_capping(ca: &TestCa, cap: bool) -> TestApp {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &ca.pem).unwrap();
    let path = file.path().to_path_buf();
    let app = TestApp::spawn_with(|c| {
        // The refusal reasons are logged, not sent: show them when a test fails.
        c.log = "clavis=info".into();
        clavis::startup::init_tracing(c);
        // The matrices refuse one client many times from one address, past the brute-force
        // bound (tests/rate_limit.rs covers it).
        c.http.per_ip.per_second = 0;
        c.cap_token_expiry_at_credential = cap;
        c.mtls = MtlsOptions::new(
            Some(path),
            &["127.0.0.1/32".to_string()],
            Some(PROXY_SECRET.to_string()),
        )
        .unwrap();
    })
    .await;
    app.create_api(API, &["read:things"]).await;
    app
}

/// How a certificate reaches Clavis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// In the TLS handshake with Clavis.
    Tls,
    /// In a trusted proxy's headers, with this `client-certificate-ca-verified`.
    Proxy(&'static str),
}

fn token_form(client_id: &str) -> [(&'static str, String); 3] {
    [
        ("grant_type", "client_credentials".to_string()),
        ("client_id", client_id.to_string()),
        ("audience", API.to_string()),
    ]
}

fn url_encode(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A reqwest client that trusts the server's CA, with an optional identity and source
/// address.
fn client(app: &TestApp, cert: Option<&ClientCert>, from: Option<IpAddr>) -> reqwest::Client {
    let ca = std::fs::read(app.data_dir.path().join("tls").join("ca.pem")).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .local_address(from);
    if let Some(c) = cert {
        b = b.identity(c.identity());
    }
    b.build().unwrap()
}

/// `POST /oauth/token` for `client_id`, presenting `cert` the way `via` says.
async fn present(app: &TestApp, via: Via, cert: Option<&ClientCert>, client_id: &str) -> Response {
    match via {
        Via::Tls => client(app, cert, None)
            .post(app.url("/oauth/token"))
            .form(&token_form(client_id))
            .send()
            .await
            .unwrap(),
        Via::Proxy(verdict) => {
            let mut req = app
                .http
                .post(app.url("/oauth/token"))
                .form(&token_form(client_id))
                .header("cname-api-key", PROXY_SECRET);
            if let Some(c) = cert {
                req = req
                    .header("client-certificate", url_encode(&c.pem))
                    .header("client-certificate-ca-verified", verdict);
            }
            req.send().await.unwrap()
        }
    }
}

/// Asserts 200 and returns the token's claims.
async fn assert_issued(r: Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    jwt_payload(body["access_token"].as_str().unwrap())
}

async fn assert_refused(r: Response, case: &str) {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], "invalid_client", "{case}: {body}");
}

/// A client with a grant on the test API.
async fn new_client(app: &TestApp, name: &str) -> String {
    let c = app.create_m2m_client(name).await;
    let id = c["client_id"].as_str().unwrap().to_string();
    app.grant(&id, API, &["read:things"]).await;
    id
}

async fn attach(app: &TestApp, client_id: &str, method: &str, credential_ids: &[&str]) {
    let creds: Vec<Value> = credential_ids.iter().map(|id| json!({"id": id})).collect();
    let (status, body) = app
        .admin_json(
            Method::PATCH,
            &format!("/api/v2/clients/{client_id}"),
            Some(json!({
                "client_authentication_methods": {method: {"credentials": creds}},
                "token_endpoint_auth_method": null,
            })),
        )
        .await;
    assert_eq!(status, 200, "attach: {body}");
}

/// A `tls_client_auth` client whose credential is `credential` (a `cert_subject_dn` body).
async fn dn_client(app: &TestApp, credential: Value) -> (String, String) {
    let id = new_client(app, "mtls-dn").await;
    let mut body = json!({"credential_type": "cert_subject_dn", "name": "dn"});
    body.as_object_mut()
        .unwrap()
        .extend(credential.as_object().unwrap().clone());
    let cred = app.credential_ok(&id, body).await;
    let cred_id = cred["id"].as_str().unwrap().to_string();
    attach(app, &id, "tls_client_auth", &[&cred_id]).await;
    (id, cred_id)
}

/// A `self_signed_tls_client_auth` client pinning `cert`.
async fn pinned_client(app: &TestApp, cert: &ClientCert) -> (String, String) {
    let id = new_client(app, "mtls-pinned").await;
    let cred = app
        .credential_ok(
            &id,
            json!({"credential_type": "x509_cert", "name": "pin", "pem": cert.pem}),
        )
        .await;
    assert_eq!(cred["thumbprint_sha256"], cert.thumbprint());
    let cred_id = cred["id"].as_str().unwrap().to_string();
    attach(app, &id, "self_signed_tls_client_auth", &[&cred_id]).await;
    (id, cred_id)
}

/// A `private_key_jwt` client.
async fn key_client(app: &TestApp) -> String {
    let id = new_client(app, "mtls-pkjwt").await;
    let key = AssertionKey::new(2048);
    let cred = app
        .credential_ok(
            &id,
            json!({"credential_type": "public_key", "pem": key.public_pem}),
        )
        .await;
    attach(app, &id, "private_key_jwt", &[cred["id"].as_str().unwrap()]).await;
    id
}

async fn patch_expiry(app: &TestApp, client_id: &str, cred_id: &str, expires_at: Value) {
    let (status, body) = app
        .admin_json(
            Method::PATCH,
            &TestApp::cred_path(client_id, Some(cred_id)),
            Some(json!({"expires_at": expires_at})),
        )
        .await;
    assert_eq!(status, 200, "PATCH expires_at: {body}");
}

fn past() -> Value {
    json!(millis_string(
        OffsetDateTime::now_utc() - time::Duration::minutes(1)
    ))
}

/// Success for `tls_client_auth` (the DN written in each accepted form), then every refusal.
async fn tls_client_auth_matrix(via: Via) {
    let ca = TestCa::new("Clavis Test Client CA");
    let app = spawn(&ca).await;
    let cert = ca.issue(SUBJECT, Validity::Current);

    // Success, whichever way the credential's DN was written; the token is bound.
    let (client_id, cred_id) = dn_client(&app, json!({"subject_dn": SUBJECT_AUTH0})).await;
    let claims = assert_issued(present(&app, via, Some(&cert), &client_id).await).await;
    assert_eq!(claims["cnf"], json!({"x5t#S256": cert.thumbprint()}));
    assert_eq!(claims["sub"], format!("{client_id}@clients"));
    assert_eq!(claims["scope"], "read:things");
    for credential in [
        json!({"subject_dn": SUBJECT_RFC4514}),
        json!({"pem": cert.pem}),
    ] {
        let (other, _) = dn_client(&app, credential.clone()).await;
        let claims = assert_issued(present(&app, via, Some(&cert), &other).await).await;
        assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint(), "{credential}");
    }
    // Another certificate with the same subject from the same CA is the same client.
    let renewed = ca.issue(SUBJECT, Validity::Current);
    let claims = assert_issued(present(&app, via, Some(&renewed), &client_id).await).await;
    assert_eq!(claims["cnf"]["x5t#S256"], renewed.thumbprint());

    assert_refused(present(&app, via, None, &client_id).await, "no certificate").await;
    let untrusted = TestCa::new("Some Other CA").issue(SUBJECT, Validity::Current);
    assert_refused(
        present(&app, via, Some(&untrusted), &client_id).await,
        "untrusted CA",
    )
    .await;
    let mut one_differs = SUBJECT.to_vec();
    one_differs[3] = (DnType::CommonName, "billing2");
    assert_refused(
        present(
            &app,
            via,
            Some(&ca.issue(&one_differs, Validity::Current)),
            &client_id,
        )
        .await,
        "DN differs in one attribute",
    )
    .await;
    let reordered = [
        SUBJECT[1].clone(),
        SUBJECT[0].clone(),
        SUBJECT[2].clone(),
        SUBJECT[3].clone(),
    ];
    assert_refused(
        present(
            &app,
            via,
            Some(&ca.issue(&reordered, Validity::Current)),
            &client_id,
        )
        .await,
        "attributes in another order",
    )
    .await;
    assert_refused(
        present(
            &app,
            via,
            Some(&ca.issue(SUBJECT, Validity::Expired)),
            &client_id,
        )
        .await,
        "expired certificate",
    )
    .await;
    assert_refused(
        present(
            &app,
            via,
            Some(&ca.issue(SUBJECT, Validity::NotYetValid)),
            &client_id,
        )
        .await,
        "not yet valid certificate",
    )
    .await;
    let server_only = ca.issue_for(
        SUBJECT,
        Validity::Current,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    assert_refused(
        present(&app, via, Some(&server_only), &client_id).await,
        "certificate not for client authentication",
    )
    .await;
    if via != Via::Tls {
        for verdict in ["FAILED: unable to verify the first certificate", ""] {
            let r = app
                .http
                .post(app.url("/oauth/token"))
                .form(&token_form(&client_id))
                .header("cname-api-key", PROXY_SECRET)
                .header("client-certificate", url_encode(&cert.pem))
                .header("client-certificate-ca-verified", verdict)
                .send()
                .await
                .unwrap();
            assert_refused(r, &format!("proxy verdict {verdict:?}")).await;
        }
        let r = app
            .http
            .post(app.url("/oauth/token"))
            .form(&token_form(&client_id))
            .header("cname-api-key", PROXY_SECRET)
            .header("client-certificate", url_encode(&cert.pem))
            .send()
            .await
            .unwrap();
        assert_refused(r, "no proxy verdict").await;
    }

    // The seed's PATCH: expiry takes effect at once, and lifting it restores access.
    patch_expiry(&app, &client_id, &cred_id, past()).await;
    assert_refused(
        present(&app, via, Some(&cert), &client_id).await,
        "expired credential",
    )
    .await;
    patch_expiry(&app, &client_id, &cred_id, Value::Null).await;
    assert_issued(present(&app, via, Some(&cert), &client_id).await).await;

    // Detached: the client now authenticates with another DN only.
    let other = app
        .credential_ok(
            &client_id,
            json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=someone else"}),
        )
        .await;
    attach(
        &app,
        &client_id,
        "tls_client_auth",
        &[other["id"].as_str().unwrap()],
    )
    .await;
    assert_refused(
        present(&app, via, Some(&cert), &client_id).await,
        "detached credential",
    )
    .await;

    let pkjwt = key_client(&app).await;
    assert_refused(
        present(&app, via, Some(&cert), &pkjwt).await,
        "certificate for a private_key_jwt client",
    )
    .await;
    assert_refused(
        present(&app, via, Some(&cert), "noSuchClient0000000000000000000").await,
        "unknown client",
    )
    .await;
}

/// Success for `self_signed_tls_client_auth`, then every refusal.
async fn self_signed_matrix(via: Via) {
    let ca = TestCa::new("Clavis Test Client CA");
    let app = spawn(&ca).await;
    // Valid now, expired before the end of the test.
    let started = std::time::Instant::now();
    let short_lived = self_signed(SUBJECT, Validity::EndsIn(5));
    let (short_lived_client, _) = pinned_client(&app, &short_lived).await;
    assert_issued(present(&app, via, Some(&short_lived), &short_lived_client).await).await;

    let cert = self_signed_rsa(SUBJECT);
    let (client_id, cred_id) = pinned_client(&app, &cert).await;
    let claims = assert_issued(present(&app, via, Some(&cert), &client_id).await).await;
    assert_eq!(claims["cnf"], json!({"x5t#S256": cert.thumbprint()}));
    assert_eq!(claims["azp"], client_id);

    assert_refused(present(&app, via, None, &client_id).await, "no certificate").await;
    assert_refused(
        present(
            &app,
            via,
            Some(&self_signed(SUBJECT, Validity::Current)),
            &client_id,
        )
        .await,
        "thumbprint of another certificate",
    )
    .await;
    assert_refused(
        present(
            &app,
            via,
            Some(&ca.issue(SUBJECT, Validity::Current)),
            &client_id,
        )
        .await,
        "CA-issued certificate with the same subject",
    )
    .await;
    let early = self_signed(SUBJECT, Validity::NotYetValid);
    let (early_client, _) = pinned_client(&app, &early).await;
    assert_refused(
        present(&app, via, Some(&early), &early_client).await,
        "not yet valid certificate",
    )
    .await;

    patch_expiry(&app, &client_id, &cred_id, past()).await;
    assert_refused(
        present(&app, via, Some(&cert), &client_id).await,
        "expired credential",
    )
    .await;
    patch_expiry(&app, &client_id, &cred_id, Value::Null).await;
    assert_issued(present(&app, via, Some(&cert), &client_id).await).await;

    let replacement = self_signed(SUBJECT, Validity::Current);
    let other = app
        .credential_ok(
            &client_id,
            json!({"credential_type": "x509_cert", "pem": replacement.pem}),
        )
        .await;
    attach(
        &app,
        &client_id,
        "self_signed_tls_client_auth",
        &[other["id"].as_str().unwrap()],
    )
    .await;
    assert_refused(
        present(&app, via, Some(&cert), &client_id).await,
        "detached credential",
    )
    .await;
    assert_issued(present(&app, via, Some(&replacement), &client_id).await).await;

    let pkjwt = key_client(&app).await;
    assert_refused(
        present(&app, via, Some(&cert), &pkjwt).await,
        "certificate for a private_key_jwt client",
    )
    .await;
    // A secret client cannot authenticate with a certificate either.
    let secret_client = new_client(&app, "secret").await;
    assert_refused(
        present(&app, via, Some(&cert), &secret_client).await,
        "certificate for a secret client",
    )
    .await;

    // The short-lived certificate has expired by now.
    if let Some(rest) = Duration::from_secs(6).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    assert_refused(
        present(&app, via, Some(&short_lived), &short_lived_client).await,
        "expired certificate",
    )
    .await;
}

#[tokio::test]
async fn tls_client_auth_over_tls() {
    tls_client_auth_matrix(Via::Tls).await;
}

#[tokio::test]
async fn tls_client_auth_through_a_trusted_proxy() {
    tls_client_auth_matrix(Via::Proxy("SUCCESS")).await;
}

#[tokio::test]
async fn self_signed_tls_client_auth_over_tls() {
    self_signed_matrix(Via::Tls).await;
}

#[tokio::test]
async fn self_signed_tls_client_auth_through_a_trusted_proxy() {
    // A proxy that accepts any certificate reports FAILED for a self-signed one; the pin
    // is what Clavis trusts.
    self_signed_matrix(Via::Proxy("FAILED: self signed certificate")).await;
}

#[tokio::test]
async fn tls_client_auth_through_an_intermediate_ca_the_client_sends() {
    let root = TestCa::new("Clavis Test Root CA");
    let app = spawn(&root).await;
    let intermediate = root.intermediate("Clavis Test Issuing CA");
    let leaf = intermediate.issue(SUBJECT, Validity::Current);
    let (client_id, _) = dn_client(&app, json!({"subject_dn": SUBJECT_RFC4514})).await;
    let chain = ClientCert {
        pem: format!("{}{}", leaf.pem, intermediate.pem),
        ..leaf.clone()
    };
    for via in [Via::Tls, Via::Proxy("SUCCESS")] {
        let claims = assert_issued(present(&app, via, Some(&chain), &client_id).await).await;
        // Bound to the leaf, not to the chain.
        assert_eq!(claims["cnf"]["x5t#S256"], leaf.thumbprint(), "{via:?}");
        assert_refused(
            present(&app, via, Some(&leaf), &client_id).await,
            &format!("{via:?}: leaf without its intermediate"),
        )
        .await;
    }
}

#[tokio::test]
async fn forwarded_certificates_are_trusted_only_from_an_authenticated_proxy() {
    let ca = TestCa::new("Clavis Test Client CA");
    let app = spawn(&ca).await;
    let cert = self_signed(SUBJECT, Validity::Current);
    let (client_id, _) = pinned_client(&app, &cert).await;
    let forwarded = url_encode(&cert.pem);
    let send = |http: reqwest::Client, key: Option<&'static str>, value: String| {
        let mut req = http
            .post(app.url("/oauth/token"))
            .form(&token_form(&client_id))
            .header("client-certificate", value)
            .header("client-certificate-ca-verified", "SUCCESS");
        if let Some(k) = key {
            req = req.header("cname-api-key", k);
        }
        async move { req.send().await.unwrap() }
    };
    // The trusted proxy (127.0.0.1) with the secret: accepted.
    assert_issued(send(app.http.clone(), Some(PROXY_SECRET), forwarded.clone()).await).await;

    // The same headers from an untrusted address are ignored.
    let elsewhere = client(&app, None, Some("127.0.0.2".parse().unwrap()));
    assert_refused(
        send(elsewhere.clone(), Some(PROXY_SECRET), forwarded.clone()).await,
        "untrusted address",
    )
    .await;
    // ...and what counts there is the handshake's certificate.
    let with_identity = client(&app, Some(&cert), Some("127.0.0.2".parse().unwrap()));
    let other = self_signed(SUBJECT, Validity::Current);
    assert_issued(send(with_identity, Some(PROXY_SECRET), url_encode(&other.pem)).await).await;

    // A wrong or missing secret: the headers are not believed.
    assert_refused(
        send(
            app.http.clone(),
            Some("wrong-secret-0123456789abcdef"),
            forwarded.clone(),
        )
        .await,
        "wrong cname-api-key",
    )
    .await;
    assert_refused(
        send(app.http.clone(), None, forwarded.clone()).await,
        "missing cname-api-key",
    )
    .await;

    // Unusable headers from the trusted proxy: 400, never a 500.
    let der_garbage = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"not a certificate"
        )
    );
    let oversize = format!("{forwarded}{}", "A".repeat(4097 - forwarded.len()));
    for (case, value) in [
        ("oversize", oversize),
        ("not PEM", "garbage".to_string()),
        ("PEM of garbage", url_encode(&der_garbage)),
        ("bad percent-encoding", "%ZZ%%".to_string()),
        ("truncated PEM", url_encode(&cert.pem[..cert.pem.len() / 2])),
        ("empty", String::new()),
    ] {
        let r = send(app.http.clone(), Some(PROXY_SECRET), value).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"], "invalid_request", "{case}: {body}");
    }
    // Exactly 4096 bytes is allowed (the PEM padded with newlines and text outside it).
    let pad = 4096 - forwarded.len();
    let at_limit = format!(
        "{forwarded}{}{}",
        "%0A".repeat(pad / 3),
        "x".repeat(pad % 3)
    );
    assert_eq!(at_limit.len(), 4096);
    assert_issued(send(app.http.clone(), Some(PROXY_SECRET), at_limit).await).await;
    // Bytes that are not text in the header.
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&token_form(&client_id))
        .header("cname-api-key", PROXY_SECRET)
        .header(
            "client-certificate",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe-----BEGIN").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn discovery_lists_the_mtls_methods_and_bound_tokens() {
    let ca = TestCa::new("Clavis Test Client CA");
    let app = spawn(&ca).await;
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        doc["mtls_endpoint_aliases"],
        json!({"token_endpoint": app.url("/oauth/token")})
    );
    // A token issued with a secret over a connection with a certificate is bound to that
    // certificate too (RFC 8705 §3: the handshake proved possession of its key).
    let c = app.create_m2m_client("secret").await;
    let id = c["client_id"].as_str().unwrap();
    app.grant(id, API, &["read:things"]).await;
    let presented = self_signed(SUBJECT, Validity::Current);
    let r = client(&app, Some(&presented), None)
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", c["client_secret"].as_str().unwrap()),
            ("audience", API),
        ])
        .send()
        .await
        .unwrap();
    let claims = assert_issued(r).await;
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        presented.thumbprint(),
        "{claims}"
    );
}

/// `proof_of_possession` (`mtls`, `required`) on an API and `require_proof_of_possession` on a
/// client: a token only when a certificate binds it, whatever authenticates the client; DPoP
/// is refused until Clavis speaks it; `required_for: public_clients` does not concern
/// machine-to-machine clients.
#[tokio::test]
async fn proof_of_possession_requires_a_bound_token() {
    let ca = TestCa::new("Clavis Test CA");
    let app = spawn(&ca).await;
    let api = app
        .get_ok(&format!("/api/v2/resource-servers/{}", enc(API)))
        .await;
    let api_path = format!("/api/v2/resource-servers/{}", api["id"].as_str().unwrap());
    let c = app.create_m2m_client("secret").await;
    let id = c["client_id"].as_str().unwrap().to_string();
    let secret = c["client_secret"].as_str().unwrap().to_string();
    app.grant(&id, API, &["read:things"]).await;
    let presented = self_signed(SUBJECT, Validity::Current);
    let request = |cert: Option<&ClientCert>| {
        client(&app, cert, None)
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("audience", API),
            ])
            .send()
    };
    let refused = |r: Response| async move {
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
        body["error_description"].as_str().unwrap().to_string()
    };
    let set = |path: String, body: Value| {
        let app = &app;
        async move {
            app.admin_expect(Method::PATCH, &path, Some(body), 200)
                .await;
        }
    };
    // The API requires it.
    set(
        api_path.clone(),
        json!({"proof_of_possession": {"mechanism": "mtls", "required": true}}),
    )
    .await;
    let why = refused(request(None).await.unwrap()).await;
    assert!(why.contains("this API"), "{why}");
    let claims = assert_issued(request(Some(&presented)).await.unwrap()).await;
    assert_eq!(claims["cnf"]["x5t#S256"], presented.thumbprint());
    // Only for public clients: not this one.
    set(api_path.clone(), json!({"proof_of_possession": {"mechanism": "mtls", "required": true, "required_for": "public_clients"}})).await;
    assert_issued(request(None).await.unwrap()).await;
    set(api_path.clone(), json!({"proof_of_possession": null})).await;
    assert_issued(request(None).await.unwrap()).await;
    // The client requires it.
    set(
        format!("/api/v2/clients/{id}"),
        json!({"require_proof_of_possession": true}),
    )
    .await;
    let why = refused(request(None).await.unwrap()).await;
    assert!(why.contains("this client"), "{why}");
    assert_issued(request(Some(&presented)).await.unwrap()).await;
    set(
        format!("/api/v2/clients/{id}"),
        json!({"require_proof_of_possession": false}),
    )
    .await;
    assert_issued(request(None).await.unwrap()).await;
    // DPoP, and shapes outside Auth0's schema, are refused.
    for bad in [
        json!({"proof_of_possession": {"mechanism": "dpop", "required": true}}),
        json!({"proof_of_possession": {"mechanism": "mtls"}}),
        json!({"proof_of_possession": {"mechanism": "mtls", "required": "yes"}}),
        json!({"proof_of_possession": {"mechanism": "mtls", "required": true, "extra": 1}}),
    ] {
        let (status, body) = app
            .admin_json(Method::PATCH, &api_path, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn without_a_ca_bundle_tls_client_auth_is_off_and_self_signed_still_works() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read:things"]).await;
    let doc: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(!methods.contains(&json!("tls_client_auth")), "{doc}");
    assert!(
        methods.contains(&json!("self_signed_tls_client_auth")),
        "{doc}"
    );

    let ca = TestCa::new("Clavis Test Client CA");
    let cert = ca.issue(SUBJECT, Validity::Current);
    let (dn_client_id, _) = dn_client(&app, json!({"subject_dn": SUBJECT_AUTH0})).await;
    assert_refused(
        present(&app, Via::Tls, Some(&cert), &dn_client_id).await,
        "tls_client_auth without --mtls-ca",
    )
    .await;
    let pinned = self_signed(SUBJECT, Validity::Current);
    let (pinned_id, _) = pinned_client(&app, &pinned).await;
    assert_issued(present(&app, Via::Tls, Some(&pinned), &pinned_id).await).await;
    // No proxy is configured: forwarded headers are ignored.
    assert_refused(
        present(&app, Via::Proxy("SUCCESS"), Some(&pinned), &pinned_id).await,
        "forwarded certificate without a trusted proxy",
    )
    .await;
}

/// `--cap-token-expiry-at-credential`: a certificate-authenticated token expires no later than
/// the certificate (notAfter) nor its credential (`expires_at`), whichever comes first; both
/// for a CA-issued certificate and a pinned one.
#[tokio::test]
async fn token_expiry_is_capped_at_the_certificate_and_its_credential() {
    let ca = TestCa::new("Clavis Test Client CA");
    let app = spawn_capping(&ca, true).await;
    let exp_of = |claims: &Value| claims["exp"].as_i64().unwrap();
    let now = || OffsetDateTime::now_utc().unix_timestamp();
    // Pinned, the certificate ends in two hours: the token too.
    let pinned = self_signed(SUBJECT, Validity::EndsIn(7_200));
    let (id, cred) = pinned_client(&app, &pinned).await;
    let claims =
        assert_issued(present(&app, Via::Proxy("SUCCESS"), Some(&pinned), &id).await).await;
    assert!((exp_of(&claims) - (now() + 7_200)).abs() <= 5, "{claims}");
    // Its credential expires in one hour: that comes first.
    patch_expiry(
        &app,
        &id,
        &cred,
        json!(millis_string(
            OffsetDateTime::now_utc() + time::Duration::hours(1)
        )),
    )
    .await;
    let claims =
        assert_issued(present(&app, Via::Proxy("SUCCESS"), Some(&pinned), &id).await).await;
    assert!((exp_of(&claims) - (now() + 3_600)).abs() <= 5, "{claims}");
    // CA-issued, valid for 30 days, a credential without expiry: the API's lifetime.
    let issued = ca.issue(SUBJECT, Validity::Current);
    let (id, _) = dn_client(&app, json!({"subject_dn": SUBJECT_RFC4514})).await;
    let claims =
        assert_issued(present(&app, Via::Proxy("SUCCESS"), Some(&issued), &id).await).await;
    assert_eq!(exp_of(&claims) - claims["iat"].as_i64().unwrap(), 86_400);
    // CA-issued, ending in ten minutes.
    let short = ca.issue(SUBJECT, Validity::EndsIn(600));
    let claims = assert_issued(present(&app, Via::Proxy("SUCCESS"), Some(&short), &id).await).await;
    assert!((exp_of(&claims) - (now() + 600)).abs() <= 5, "{claims}");
}

#[tokio::test]
async fn a_certificate_bound_token_logs_its_thumbprint() {
    let ca = TestCa::new("Clavis Test Client CA");
    let app = spawn(&ca).await;
    let cert = self_signed_rsa(SUBJECT);
    let (client_id, _) = pinned_client(&app, &cert).await;
    assert_issued(present(&app, Via::Tls, Some(&cert), &client_id).await).await;
    let events = app
        .get_ok(&format!(
            "/api/v2/logs?q=type:seccft%20AND%20client_id:{client_id}"
        ))
        .await;
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["mtls_thumbprint_sha256"], cert.thumbprint());
    // A refused certificate: feccft naming the pinned credential's refusal.
    let other = self_signed(SUBJECT, Validity::Current);
    assert_refused(
        present(&app, Via::Tls, Some(&other), &client_id).await,
        "another certificate",
    )
    .await;
    let events = app
        .get_ok(&format!(
            "/api/v2/logs?q=type:feccft%20AND%20client_id:{client_id}"
        ))
        .await;
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["details"]["error"], "invalid_client");
    assert!(events[0].get("mtls_thumbprint_sha256").is_none());
}

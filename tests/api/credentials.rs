//! Client credentials — `/api/v2/clients/{client_id}/credentials` (contract sections 2 and 9).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rcgen::DnType;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const PUBLIC_KEY_KEYS: [&str; 7] = [
    "id",
    "credential_type",
    "kid",
    "alg",
    "name",
    "created_at",
    "updated_at",
];
const SUBJECT_DN_KEYS: [&str; 6] = [
    "id",
    "credential_type",
    "name",
    "subject_dn",
    "created_at",
    "updated_at",
];
const X509_KEYS: [&str; 7] = [
    "id",
    "credential_type",
    "name",
    "thumbprint_sha256",
    "created_at",
    "updated_at",
    "expires_at",
];

/// The subject of the contract's example (section 2.3).
const OKTA_SUBJECT: [(DnType, &str); 6] = [
    (DnType::CountryName, "es"),
    (DnType::StateOrProvinceName, "Madrid"),
    (DnType::LocalityName, "Madrid"),
    (DnType::OrganizationName, "Okta"),
    (DnType::OrganizationalUnitName, "DX-CDT"),
    (DnType::CommonName, "Developer Experience"),
];

async fn new_client(app: &TestApp) -> String {
    let c = app.create_m2m_client("svc").await;
    c["client_id"].as_str().unwrap().to_string()
}

/// A fresh server with one client.
async fn app_with_client() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let client = new_client(&app).await;
    (app, client)
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn assert_keys(v: &Value, expected: &[&str]) {
    assert_eq!(keys(v), expected, "key order of {v}");
}

async fn patch(app: &TestApp, client: &str, cred: &str, body: Value) -> (u16, Value) {
    app.admin_json(
        Method::PATCH,
        &TestApp::cred_path(client, Some(cred)),
        Some(body),
    )
    .await
}

/// A PATCH that must succeed: its body.
async fn patch_ok(app: &TestApp, client: &str, cred: &str, body: Value) -> Value {
    let (status, patched) = patch(app, client, cred, body).await;
    assert_eq!(status, 200, "{patched}");
    patched
}

async fn list(app: &TestApp, client: &str) -> Value {
    app.get_ok(&TestApp::cred_path(client, None)).await
}

// ----- create -----

#[tokio::test]
async fn public_key_from_spki_has_auth0_shape_and_rfc7638_kid() {
    let (app, client) = app_with_client().await;
    let (_, public) = rsa_key(2048);
    let cred = app
        .credential_ok(
            &client,
            json!({"credential_type": "public_key", "name": "Testing Credentials 1", "pem": public}),
        )
        .await;
    assert_keys(&cred, &PUBLIC_KEY_KEYS);
    assert!(is_credential_id(cred["id"].as_str().unwrap()), "{cred}");
    assert_eq!(cred["credential_type"], "public_key");
    assert_eq!(cred["kid"], thumbprint_of_spki(&public));
    assert_eq!(cred["kid"].as_str().unwrap().len(), 43);
    assert_eq!(cred["alg"], "RS256");
    assert_eq!(cred["name"], "Testing Credentials 1");
    assert!(is_millis_timestamp(cred["created_at"].as_str().unwrap()));
    assert_eq!(cred["created_at"], cred["updated_at"]);
}

#[tokio::test]
async fn public_key_from_pkcs1_gets_the_same_kid_as_from_spki() {
    let app = TestApp::spawn().await;
    let a = new_client(&app).await;
    let b = new_client(&app).await;
    let (_, public) = rsa_key(2048);
    let pkcs1 = spki_to_pkcs1_pem(&public);
    assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let from_spki = app
        .credential_ok(&a, json!({"credential_type": "public_key", "pem": public}))
        .await;
    let from_pkcs1 = app
        .credential_ok(&b, json!({"credential_type": "public_key", "pem": pkcs1}))
        .await;
    assert_keys(&from_pkcs1, &PUBLIC_KEY_KEYS);
    assert_eq!(from_pkcs1["kid"], thumbprint_of_spki(&public));
    assert_eq!(from_pkcs1["kid"], from_spki["kid"]);
    assert_ne!(from_pkcs1["id"], from_spki["id"]);
}

#[tokio::test]
async fn same_key_always_gets_the_same_kid() {
    let app = TestApp::spawn().await;
    let (_, public) = rsa_key(2048);
    let (_, other) = rsa_key(2048);
    let mut kids = Vec::new();
    for pem in [&public, &public, &other] {
        let client = new_client(&app).await;
        let cred = app
            .credential_ok(
                &client,
                json!({"credential_type": "public_key", "pem": pem}),
            )
            .await;
        kids.push(cred["kid"].as_str().unwrap().to_string());
    }
    assert_eq!(kids[0], kids[1]);
    assert_ne!(kids[0], kids[2]);
    assert_eq!(kids[2], thumbprint_of_spki(&other));
}

/// What a created credential must show (and `GET` show again): its properties in order
/// and the given values.
struct Created {
    case: &'static str,
    body: Value,
    keys: Vec<&'static str>,
    values: Vec<(&'static str, Value)>,
}

fn created(
    case: &'static str,
    body: Value,
    keys: &[&'static str],
    values: &[(&'static str, Value)],
) -> Created {
    Created {
        case,
        body,
        keys: keys.to_vec(),
        values: values.to_vec(),
    }
}

/// Every accepted create, one row a former case, each on a fresh client: the answer's
/// properties and values, and the same values read back.
#[tokio::test]
async fn accepted_creates_show_what_was_sent() {
    let app = TestApp::spawn().await;
    let (_, public) = rsa_key(2048);
    let public_with_expiry = [&PUBLIC_KEY_KEYS[..], &["expires_at"]].concat();
    // RFC 7638 section 3.1.
    const N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let rfc7638 = spki_pem_from_components(&b64url_decode(N), &b64url_decode("AQAB"));
    let (_, rsa3072) = rsa_key(3072);
    let (_, rsa4096) = rsa_key(4096);
    let synthetic = rsa_public_key_of_bits(2048);
    let cert = test_cert(&[(DnType::CommonName, "svc")], 30);
    let cert_kid = json!(thumbprint_of_spki(&cert.public_key_pem));
    let okta = test_cert(&OKTA_SUBJECT, 30);
    let pinned = test_cert(&[(DnType::CommonName, "pinned")], 90);
    let dn = "CN=svc.example.com, O=Example Corp, C=US";
    #[rustfmt::skip]
    let rows = [
        created("the name defaults to an empty string", json!({"credential_type": "public_key", "pem": public}), &PUBLIC_KEY_KEYS, &[("name", json!(""))]),
        created("expires_at is listed last, in milliseconds", json!({"credential_type": "public_key", "pem": public, "expires_at": "2033-05-13T09:33:13Z"}), &public_with_expiry, &[("expires_at", json!("2033-05-13T09:33:13.000Z"))]),
        created("RFC 7638's example key gets the published thumbprint", json!({"credential_type": "public_key", "pem": rfc7638}), &PUBLIC_KEY_KEYS, &[("kid", json!("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"))]),
        created("CRLF line endings", json!({"credential_type": "public_key", "pem": public.replace('\n', "\r\n")}), &PUBLIC_KEY_KEYS, &[("kid", json!(thumbprint_of_spki(&public)))]),
        created("a caller-given kid is honoured", json!({"credential_type": "public_key", "pem": public, "kid": "my-key_2024-01"}), &PUBLIC_KEY_KEYS, &[("kid", json!("my-key_2024-01"))]),
        created("alg RS256", json!({"credential_type": "public_key", "pem": public, "alg": "RS256"}), &PUBLIC_KEY_KEYS, &[("alg", json!("RS256"))]),
        created("alg RS384", json!({"credential_type": "public_key", "pem": public, "alg": "RS384"}), &PUBLIC_KEY_KEYS, &[("alg", json!("RS384"))]),
        created("alg PS256", json!({"credential_type": "public_key", "pem": public, "alg": "PS256"}), &PUBLIC_KEY_KEYS, &[("alg", json!("PS256"))]),
        created("a 3072-bit key", json!({"credential_type": "public_key", "pem": rsa3072}), &PUBLIC_KEY_KEYS, &[("kid", json!(thumbprint_of_spki(&rsa3072)))]),
        created("a 4096-bit key", json!({"credential_type": "public_key", "pem": rsa4096}), &PUBLIC_KEY_KEYS, &[("kid", json!(thumbprint_of_spki(&rsa4096)))]),
        // The size check of the refusals must not refuse every synthetic key.
        created("a synthetic 2048-bit key", json!({"credential_type": "public_key", "pem": synthetic}), &PUBLIC_KEY_KEYS, &[("kid", json!(thumbprint_of_spki(&synthetic)))],),
        created("a certificate without parse_expiry_from_cert has no expiry", json!({"credential_type": "public_key", "pem": cert.pem}), &PUBLIC_KEY_KEYS, &[("kid", cert_kid.clone())]),
        created("parse_expiry_from_cert uses notAfter", json!({"credential_type": "public_key", "pem": cert.pem, "parse_expiry_from_cert": true}), &public_with_expiry, &[ ("expires_at", json!(millis_string(cert.not_after))), ("kid", cert_kid.clone()), ]),
        created("parse_expiry_from_cert false keeps the given expiry", json!({"credential_type": "public_key", "pem": cert.pem, "parse_expiry_from_cert": false, "expires_at": "2040-01-02T03:04:05.678Z"}), &public_with_expiry, &[("expires_at", json!("2040-01-02T03:04:05.678Z"))]),
        created("a subject_dn is echoed verbatim", json!({"credential_type": "cert_subject_dn", "name": "mtls", "subject_dn": dn}), &SUBJECT_DN_KEYS, &[ ("credential_type", json!("cert_subject_dn")), ("name", json!("mtls")), ("subject_dn", json!(dn)), ]),
        created("a subject DN from a PEM takes Auth0's newline form", json!({"credential_type": "cert_subject_dn", "pem": okta.pem}), &SUBJECT_DN_KEYS, &[("subject_dn", json!("C=es\nST=Madrid\nL=Madrid\nO=Okta\nOU=DX-CDT\nCN=Developer Experience"))]),
        created("a name of 128 characters", json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=a", "name": "n".repeat(128)}), &SUBJECT_DN_KEYS, &[("name", json!("n".repeat(128)))]),
        created("x509_cert: the DER thumbprint and notAfter", json!({"credential_type": "x509_cert", "name": "pinned", "pem": pinned.pem}), &X509_KEYS, &[ ("credential_type", json!("x509_cert")), ("thumbprint_sha256", json!(b64url(&sha256(&pinned.der)))), ("expires_at", json!(millis_string(pinned.not_after))), ]),
    ];
    for row in rows {
        let client = new_client(&app).await;
        let cred = app.credential_ok(&client, row.body).await;
        assert_eq!(keys(&cred), row.keys, "{}: key order of {cred}", row.case);
        assert!(
            is_credential_id(cred["id"].as_str().unwrap()),
            "{}: {cred}",
            row.case
        );
        let got = app
            .get_ok(&TestApp::cred_path(&client, Some(&id_of(&cred))))
            .await;
        for (key, value) in &row.values {
            assert_eq!(&cred[key], value, "{}: {key} of {cred}", row.case);
            assert_eq!(&got[key], value, "{}: {key} read back: {got}", row.case);
        }
    }
}

/// How a refusal's message must read.
enum Message {
    Any,
    Contains(&'static str),
    StartsWith(&'static str),
}

/// Every refused create, one row a former case, all on one client: 400 `invalid_body` in
/// Auth0's error body, and nothing stored.
#[tokio::test]
async fn refused_creates_are_invalid_body_and_store_nothing() {
    use Message::*;
    let (app, client) = app_with_client().await;
    let (private, public) = rsa_key(2048);
    let cert = test_cert(&[(DnType::CommonName, "svc")], 30);
    // notAfter was yesterday.
    let expired = test_cert(&[(DnType::CommonName, "old")], -1);
    let pk = |extra: Value| {
        let mut body = json!({"credential_type": "public_key", "pem": public});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    #[rustfmt::skip]
    let rows = [
        ("kid too short", pk(json!({"kid": "short"})), Contains("kid")),
        ("kid with spaces", pk(json!({"kid": "has space in it"})), Contains("kid")),
        ("kid with dots", pk(json!({"kid": "dots.are.not.allowed"})), Contains("kid")),
        ("kid too long", pk(json!({"kid": "k".repeat(65)})), Contains("kid")),
        ("alg HS256", pk(json!({"alg": "HS256"})), Any),
        ("alg ES256", pk(json!({"alg": "ES256"})), Any),
        ("alg RS512", pk(json!({"alg": "RS512"})), Any),
        ("alg rs256", pk(json!({"alg": "rs256"})), Any),
        ("alg none", pk(json!({"alg": "none"})), Any),
        ("parse_expiry_from_cert with a bare key", pk(json!({"parse_expiry_from_cert": true})), Any),
        ("expires_at in the past", pk(json!({"expires_at": "2020-01-01T00:00:00Z"})), Any),
        ("cert_subject_dn with neither subject_dn nor pem", json!({"credential_type": "cert_subject_dn"}), Any),
        ("cert_subject_dn with both subject_dn and pem", json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc", "pem": cert.pem}), Any),
        ("an empty subject_dn", json!({"credential_type": "cert_subject_dn", "subject_dn": ""}), Any),
        ("a subject_dn too long", json!({"credential_type": "cert_subject_dn", "subject_dn": format!("CN={}", "a".repeat(260))}), Any),
        ("alg on cert_subject_dn", json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc", "alg": "RS256"}), Any),
        ("kid on cert_subject_dn", json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc", "kid": "abcdefghijkl"}), Any),
        ("alg on x509_cert", json!({"credential_type": "x509_cert", "pem": cert.pem, "alg": "RS256"}), Any),
        ("subject_dn on x509_cert", json!({"credential_type": "x509_cert", "pem": cert.pem, "subject_dn": "CN=svc"}), Any),
        ("x509_cert without pem", json!({"credential_type": "x509_cert"}), Any),
        ("x509_cert with a bare key", json!({"credential_type": "x509_cert", "pem": public}), Any),
        ("x509_cert with a broken certificate", json!({"credential_type": "x509_cert", "pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}), Any),
        ("an expired x509_cert", json!({"credential_type": "x509_cert", "pem": expired.pem}), Any),
        ("an EC key", pk(json!({"pem": ec_public_key_pem()})), Any),
        ("a 1024-bit RSA key", pk(json!({"pem": rsa_public_key_of_bits(1024)})), Any),
        ("a 2040-bit RSA key", pk(json!({"pem": rsa_public_key_of_bits(2040)})), Any),
        ("a 4104-bit RSA key", pk(json!({"pem": rsa_public_key_of_bits(4104)})), Any),
        ("an 8192-bit RSA key", pk(json!({"pem": rsa_public_key_of_bits(8192)})), Any),
        ("garbage", pk(json!({"pem": "not a pem at all"})), Any),
        ("bad base64", pk(json!({"pem": "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"})), Any),
        ("a private key", pk(json!({"pem": private})), Any),
        ("an empty pem", pk(json!({"pem": ""})), Any),
        ("an empty body", json!({}), StartsWith("Payload validation error")),
        ("no credential_type", json!({"pem": public}), StartsWith("Payload validation error")),
        ("an unknown credential_type", json!({"credential_type": "password", "pem": public}), StartsWith("Payload validation error")),
        ("public_key without pem", json!({"credential_type": "public_key"}), StartsWith("Payload validation error")),
        ("an unknown property", pk(json!({"colour": "red"})), StartsWith("Payload validation error")),
        ("a name too long", pk(json!({"name": "n".repeat(129)})), StartsWith("Payload validation error")),
        ("a number for a name", pk(json!({"name": 5})), StartsWith("Payload validation error")),
        ("expires_at not a date", pk(json!({"expires_at": "tomorrow"})), StartsWith("Payload validation error")),
        ("parse_expiry_from_cert not a boolean", pk(json!({"parse_expiry_from_cert": "yes"})), StartsWith("Payload validation error")),
        ("a number for credential_type", json!({"credential_type": 1, "pem": public}), StartsWith("Payload validation error")),
    ];
    for (case, body, message) in rows {
        let r = app.create_credential(&client, body.clone()).await;
        assert_eq!(r.status().as_u16(), 400, "{case}: {body}");
        let err = assert_error(r, 400, Some("invalid_body")).await;
        let text = err["message"].as_str().unwrap();
        match message {
            Any => {}
            Contains(part) => assert!(text.contains(part), "{case}: {err}"),
            StartsWith(start) => assert!(text.starts_with(start), "{case}: {body} → {err}"),
        }
    }
    assert_eq!(list(&app, &client).await, json!([]));
}

// ----- list and get -----

#[tokio::test]
async fn list_is_in_creation_order_and_matches_get() {
    let (app, client) = app_with_client().await;
    let (_, k1) = rsa_key(2048);
    let cert = test_cert(&[(DnType::CommonName, "x")], 30);
    let mut created = Vec::new();
    for body in [
        json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=z"}),
        json!({"credential_type": "public_key", "pem": k1}),
        json!({"credential_type": "x509_cert", "pem": cert.pem}),
        json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=a"}),
    ] {
        created.push(app.credential_ok(&client, body).await);
    }
    let listed = list(&app, &client).await;
    assert_eq!(listed, Value::Array(created.clone()));
    for c in &created {
        let got = app
            .get_ok(&TestApp::cred_path(&client, Some(&id_of(c))))
            .await;
        assert_eq!(&got, c);
        assert_eq!(keys(&got), keys(c));
    }
}

#[tokio::test]
async fn list_ignores_paging_parameters() {
    let (app, client) = app_with_client().await;
    for dn in ["CN=a", "CN=b", "CN=c"] {
        app.credential_ok(
            &client,
            json!({"credential_type": "cert_subject_dn", "subject_dn": dn}),
        )
        .await;
    }
    let all = list(&app, &client).await;
    let paged = app
        .get_ok(&format!(
            "{}?page=1&per_page=1&include_totals=true",
            TestApp::cred_path(&client, None)
        ))
        .await;
    assert_eq!(paged, all);
    assert_eq!(all.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn new_client_has_no_credentials() {
    let (app, client) = app_with_client().await;
    assert_eq!(list(&app, &client).await, json!([]));
}

// ----- PATCH (the seed) -----

async fn public_key_credential(app: &TestApp, expires_at: Option<&str>) -> (String, Value) {
    let client = new_client(app).await;
    let (_, public) = rsa_key(2048);
    let mut body = json!({"credential_type": "public_key", "pem": public});
    if let Some(e) = expires_at {
        body["expires_at"] = json!(e);
    }
    let cred = app.credential_ok(&client, body).await;
    (client, cred)
}

#[tokio::test]
async fn patch_expires_at_sets_it() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    let patched = patch_ok(
        &app,
        &client,
        &id_of(&cred),
        json!({"expires_at": "2031-02-03T04:05:06.000Z"}),
    )
    .await;
    let mut expected = PUBLIC_KEY_KEYS.to_vec();
    expected.push("expires_at");
    assert_keys(&patched, &expected);
    assert_eq!(patched["expires_at"], "2031-02-03T04:05:06.000Z");
    for k in ["id", "credential_type", "kid", "alg", "name", "created_at"] {
        assert_eq!(patched[k], cred[k], "{k}");
    }
    let got = app
        .get_ok(&TestApp::cred_path(&client, Some(&id_of(&cred))))
        .await;
    assert_eq!(got, patched);
}

#[tokio::test]
async fn patch_expires_at_changes_it() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, Some("2031-01-01T00:00:00Z")).await;
    let patched = patch_ok(
        &app,
        &client,
        &id_of(&cred),
        json!({"expires_at": "2032-06-07T08:09:10.111Z"}),
    )
    .await;
    assert_eq!(patched["expires_at"], "2032-06-07T08:09:10.111Z");
    assert_eq!(list(&app, &client).await, json!([patched]));
}

#[tokio::test]
async fn patch_expires_at_null_removes_the_key() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, Some("2031-01-01T00:00:00Z")).await;
    assert_eq!(cred["expires_at"], "2031-01-01T00:00:00.000Z");
    let patched = patch_ok(&app, &client, &id_of(&cred), json!({"expires_at": null})).await;
    assert_keys(&patched, &PUBLIC_KEY_KEYS);
    let got = app
        .get_ok(&TestApp::cred_path(&client, Some(&id_of(&cred))))
        .await;
    assert_keys(&got, &PUBLIC_KEY_KEYS);
}

#[tokio::test]
async fn patch_with_empty_object_is_refused() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, Some("2031-01-01T00:00:00Z")).await;
    app.admin_error(
        Method::PATCH,
        &TestApp::cred_path(&client, Some(&id_of(&cred))),
        Some(json!({})),
        400,
        Some("invalid_body"),
    )
    .await;
    // No body at all is the SDKs' `{}` too.
    let token = app.admin_token().await;
    let r = app
        .call(
            &token,
            Method::PATCH,
            &TestApp::cred_path(&client, Some(&id_of(&cred))),
            None,
        )
        .await;
    assert_error(r, 400, Some("invalid_body")).await;
    assert_eq!(list(&app, &client).await, json!([cred]));
}

#[tokio::test]
async fn patch_with_another_field_is_refused() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    for body in [
        json!({"name": "renamed"}),
        json!({"expires_at": "2031-01-01T00:00:00Z", "name": "renamed"}),
        json!({"kid": "abcdefghijkl"}),
        json!({"alg": "RS384"}),
    ] {
        let (status, err) = patch(&app, &client, &id_of(&cred), body).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["errorCode"], "invalid_body");
    }
    assert_eq!(list(&app, &client).await, json!([cred]));
}

#[tokio::test]
async fn patch_with_a_bad_date_is_refused() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, Some("2031-01-01T00:00:00Z")).await;
    for value in [
        json!("tomorrow"),
        json!("2031-02-30T00:00:00Z"),
        json!("2031-02-03"),
        json!("2031-02-03 04:05:06"),
        json!(""),
        json!(1_900_000_000),
        json!(true),
        json!({"date": "2031-01-01T00:00:00Z"}),
    ] {
        let (status, err) = patch(&app, &client, &id_of(&cred), json!({"expires_at": value})).await;
        assert_eq!(status, 400, "{value} → {err}");
        assert_eq!(err["errorCode"], "invalid_body");
        assert_eq!(err["error"], "Bad Request");
    }
    assert_eq!(list(&app, &client).await, json!([cred]));
}

#[tokio::test]
async fn patch_normalises_inputs_to_utc_milliseconds_and_accepts_past_dates() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    for (input, stored) in [
        ("2031-02-03T06:05:06+02:00", "2031-02-03T04:05:06.000Z"),
        ("2031-02-03T04:05:06Z", "2031-02-03T04:05:06.000Z"),
        ("2031-02-03T04:05:06.123456Z", "2031-02-03T04:05:06.123Z"),
        ("2031-02-03T04:05:06.5Z", "2031-02-03T04:05:06.500Z"),
        ("2031-02-02T23:35:06.789-04:30", "2031-02-03T04:05:06.789Z"),
        // A date in the past is accepted.
        ("2001-09-09T01:46:40Z", "2001-09-09T01:46:40.000Z"),
    ] {
        let (status, patched) =
            patch(&app, &client, &id_of(&cred), json!({"expires_at": input})).await;
        assert_eq!(status, 200, "{input}: {patched}");
        assert_eq!(patched["expires_at"], stored, "{input}");
    }
}

#[tokio::test]
async fn patch_moves_updated_at_and_keeps_created_at() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, patched) = patch(
        &app,
        &client,
        &id_of(&cred),
        json!({"expires_at": "2031-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(patched["created_at"], cred["created_at"]);
    let before = cred["updated_at"].as_str().unwrap();
    let after = patched["updated_at"].as_str().unwrap();
    assert!(is_millis_timestamp(after));
    assert!(after > before, "{before} → {after}");
}

#[tokio::test]
async fn patch_works_on_every_credential_type() {
    let (app, client) = app_with_client().await;
    let dn = app
        .credential_ok(
            &client,
            json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc"}),
        )
        .await;
    let patched = patch_ok(
        &app,
        &client,
        &id_of(&dn),
        json!({"expires_at": "2031-01-01T00:00:00Z"}),
    )
    .await;
    let mut expected = SUBJECT_DN_KEYS.to_vec();
    expected.push("expires_at");
    assert_keys(&patched, &expected);
    let (_, cleared) = patch(&app, &client, &id_of(&dn), json!({"expires_at": null})).await;
    assert_keys(&cleared, &SUBJECT_DN_KEYS);
}

#[tokio::test]
async fn patch_of_x509_cert_takes_the_earlier_of_expires_at_and_not_after() {
    let (app, client) = app_with_client().await;
    let cert = test_cert(&[(DnType::CommonName, "pinned")], 90);
    let not_after = millis_string(cert.not_after);
    let cred = app
        .credential_ok(
            &client,
            json!({"credential_type": "x509_cert", "pem": cert.pem}),
        )
        .await;
    let earlier = millis_string(cert.not_after - time::Duration::days(10));
    let (status, patched) =
        patch(&app, &client, &id_of(&cred), json!({"expires_at": earlier})).await;
    assert_eq!(status, 200);
    assert_keys(&patched, &X509_KEYS);
    assert_eq!(patched["expires_at"], earlier);
    let later = millis_string(cert.not_after + time::Duration::days(10));
    let (_, patched) = patch(&app, &client, &id_of(&cred), json!({"expires_at": later})).await;
    assert_eq!(patched["expires_at"], not_after);
    let (_, patched) = patch(&app, &client, &id_of(&cred), json!({"expires_at": null})).await;
    assert_eq!(patched["expires_at"], not_after);
}

// ----- delete -----

#[tokio::test]
async fn delete_returns_204_then_404_inexistent_credential() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    let path = TestApp::cred_path(&client, Some(&id_of(&cred)));
    let r = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    for method in [Method::GET, Method::DELETE] {
        let r = app.admin(method, &path, None).await;
        let err = assert_error(r, 404, Some("inexistent_credential")).await;
        assert_eq!(err["message"], "The credential does not exist");
        assert_eq!(err["error"], "Not Found");
    }
    app.admin_error(
        Method::PATCH,
        &path,
        Some(json!({"expires_at": "2031-01-01T00:00:00Z"})),
        404,
        Some("inexistent_credential"),
    )
    .await;
    assert_eq!(list(&app, &client).await, json!([]));
}

#[tokio::test]
async fn deleting_one_credential_keeps_the_others_in_order() {
    let (app, client) = app_with_client().await;
    let mut ids = Vec::new();
    for dn in ["CN=a", "CN=b", "CN=c"] {
        let c = app
            .credential_ok(
                &client,
                json!({"credential_type": "cert_subject_dn", "subject_dn": dn}),
            )
            .await;
        ids.push(id_of(&c));
    }
    let r = app
        .admin(
            Method::DELETE,
            &TestApp::cred_path(&client, Some(&ids[1])),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    let listed: Vec<String> = list(&app, &client)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, [ids[0].clone(), ids[2].clone()]);
}

#[tokio::test]
async fn unknown_credential_id_is_404_inexistent_credential() {
    let (app, client) = app_with_client().await;
    let path = TestApp::cred_path(&client, Some("cred_1111111111111111111111"));
    for (method, body) in [
        (Method::GET, None),
        (Method::DELETE, None),
        (
            Method::PATCH,
            Some(json!({"expires_at": "2031-01-01T00:00:00Z"})),
        ),
    ] {
        let r = app.admin(method, &path, body).await;
        let err = assert_error(r, 404, Some("inexistent_credential")).await;
        assert_eq!(err["message"], "The credential does not exist");
    }
}

// ----- unknown client, credential of another client -----

#[tokio::test]
async fn unknown_client_is_404_inexistent_client() {
    let app = TestApp::spawn().await;
    let (_, public) = rsa_key(2048);
    let missing = "NoSuchClient00000000000000000000";
    let cred_path = TestApp::cred_path(missing, Some("cred_1111111111111111111111"));
    let list_path = TestApp::cred_path(missing, None);
    let calls = [
        (Method::GET, list_path.clone(), None),
        (
            Method::POST,
            list_path,
            Some(json!({"credential_type": "public_key", "pem": public})),
        ),
        (Method::GET, cred_path.clone(), None),
        (
            Method::PATCH,
            cred_path.clone(),
            Some(json!({"expires_at": "2031-01-01T00:00:00Z"})),
        ),
        (Method::DELETE, cred_path, None),
    ];
    for (method, path, body) in calls {
        let r = app.admin(method.clone(), &path, body).await;
        let err = assert_error(r, 404, Some("inexistent_client")).await;
        assert_eq!(
            err["message"], "The client does not exist",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn credential_of_another_client_is_404() {
    let app = TestApp::spawn().await;
    let (owner, cred) = public_key_credential(&app, None).await;
    let other = new_client(&app).await;
    let path = TestApp::cred_path(&other, Some(&id_of(&cred)));
    for (method, body) in [
        (Method::GET, None),
        (
            Method::PATCH,
            Some(json!({"expires_at": "2031-01-01T00:00:00Z"})),
        ),
        (Method::DELETE, None),
    ] {
        let r = app.admin(method, &path, body).await;
        let err = assert_error(r, 404, Some("inexistent_credential")).await;
        assert_eq!(err["message"], "The credential does not exist");
    }
    assert_eq!(list(&app, &owner).await, json!([cred]));
    assert_eq!(list(&app, &other).await, json!([]));
}

// ----- caps and rules -----

#[tokio::test]
async fn fifth_credential_is_refused() {
    let (app, client) = app_with_client().await;
    for i in 0..4 {
        app.credential_ok(
            &client,
            json!({"credential_type": "cert_subject_dn", "subject_dn": format!("CN=svc{i}")}),
        )
        .await;
    }
    let before = list(&app, &client).await;
    let (_, public) = rsa_key(2048);
    let r = app
        .create_credential(
            &client,
            json!({"credential_type": "public_key", "pem": public}),
        )
        .await;
    let err = assert_error(r, 400, None).await;
    assert_eq!(
        err["message"],
        "A client can have a maximum of 4 credentials."
    );
    assert_eq!(list(&app, &client).await, before);
    // Deleting one makes room again.
    let first = id_of(&before[0]);
    let r = app
        .admin(
            Method::DELETE,
            &TestApp::cred_path(&client, Some(&first)),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 204);
    app.credential_ok(
        &client,
        json!({"credential_type": "public_key", "pem": public}),
    )
    .await;
}

#[tokio::test]
async fn the_credential_cap_is_configurable() {
    let app = TestApp::spawn_with(|c| c.limits.per_client = 2).await;
    let client = new_client(&app).await;
    for dn in ["CN=a", "CN=b"] {
        app.credential_ok(
            &client,
            json!({"credential_type": "cert_subject_dn", "subject_dn": dn}),
        )
        .await;
    }
    let r = app
        .create_credential(
            &client,
            json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=c"}),
        )
        .await;
    let err = assert_error(r, 400, None).await;
    assert_eq!(
        err["message"],
        "A client can have a maximum of 2 credentials."
    );
}

#[tokio::test]
async fn same_public_key_twice_on_a_client_is_refused() {
    let (app, client) = app_with_client().await;
    let (_, public) = rsa_key(2048);
    let first = app
        .credential_ok(
            &client,
            json!({"credential_type": "public_key", "pem": public}),
        )
        .await;
    // Same key again: verbatim, as PKCS#1, and with a different kid.
    for body in [
        json!({"credential_type": "public_key", "pem": public}),
        json!({"credential_type": "public_key", "pem": spki_to_pkcs1_pem(&public)}),
        json!({"credential_type": "public_key", "pem": public, "kid": "another-kid-1", "alg": "PS256"}),
    ] {
        let r = app.create_credential(&client, body).await;
        let err = assert_error(r, 400, None).await;
        assert_eq!(
            err["message"],
            "credentials contains public keys that already exist in client"
        );
    }
    assert_eq!(list(&app, &client).await, json!([first]));
}

#[tokio::test]
async fn same_key_inside_a_certificate_counts_as_the_same_key() {
    let (app, client) = app_with_client().await;
    let cert = test_cert(&[(DnType::CommonName, "svc")], 30);
    app.credential_ok(
        &client,
        json!({"credential_type": "public_key", "pem": cert.public_key_pem}),
    )
    .await;
    let r = app
        .create_credential(
            &client,
            json!({"credential_type": "public_key", "pem": cert.pem}),
        )
        .await;
    let err = assert_error(r, 400, None).await;
    assert_eq!(
        err["message"],
        "credentials contains public keys that already exist in client"
    );
}

async fn attach(app: &TestApp, client: &str, method: &str, ids: &[String]) -> (u16, Value) {
    let creds: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    app.admin_json(
        Method::PATCH,
        &format!("/api/v2/clients/{client}"),
        Some(json!({
            "client_authentication_methods": {method: {"credentials": creds}},
            "token_endpoint_auth_method": null,
        })),
    )
    .await
}

#[tokio::test]
async fn three_attached_credentials_are_refused() {
    let (app, client) = app_with_client().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, public) = rsa_key(2048);
        let c = app
            .credential_ok(
                &client,
                json!({"credential_type": "public_key", "pem": public}),
            )
            .await;
        ids.push(id_of(&c));
    }
    let before = app.get_ok(&format!("/api/v2/clients/{client}")).await;
    let (status, err) = attach(&app, &client, "private_key_jwt", &ids).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["errorCode"], "invalid_body");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Array is too long (3), maximum 2"),
        "{err}"
    );
    assert_eq!(
        app.get_ok(&format!("/api/v2/clients/{client}")).await,
        before
    );
    let (status, body) = attach(&app, &client, "private_key_jwt", &ids[..2]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn deleting_attached_credential_is_refused() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    let (status, body) = attach(&app, &client, "private_key_jwt", &[id_of(&cred)]).await;
    assert_eq!(status, 200, "{body}");
    let path = TestApp::cred_path(&client, Some(&id_of(&cred)));
    let err = app
        .admin_error(Method::DELETE, &path, None, 400, None)
        .await;
    assert_eq!(
        err["message"],
        "Cannot delete credential still associated with a client"
    );
    assert_eq!(list(&app, &client).await, json!([cred]));
    // Detached, it can go.
    app
        .admin_expect(
            Method::PATCH,
            &format!("/api/v2/clients/{client}"),
            Some(json!({"client_authentication_methods": null, "token_endpoint_auth_method": "client_secret_post"})),
            200,
        )
        .await;
    let r = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(r.status().as_u16(), 204);
}

#[tokio::test]
async fn patching_an_attached_credential_is_allowed() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    attach(&app, &client, "private_key_jwt", &[id_of(&cred)]).await;
    let patched = patch_ok(
        &app,
        &client,
        &id_of(&cred),
        json!({"expires_at": "2000-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(patched["expires_at"], "2000-01-01T00:00:00.000Z");
}

// ----- form bodies -----

#[tokio::test]
async fn form_encoded_create_and_patch() {
    let (app, client) = app_with_client().await;
    let (_, public) = rsa_key(2048);
    let r = app
        .admin_form(
            Method::POST,
            &TestApp::cred_path(&client, None),
            &[
                ("credential_type", "public_key"),
                ("name", "from a form"),
                ("pem", &public),
                ("alg", "RS384"),
                ("expires_at", "2031-01-01T00:00:00Z"),
            ],
        )
        .await;
    let (status, cred) = status_json(r).await;
    assert_eq!(status, 201, "{cred}");
    assert_eq!(cred["kid"], thumbprint_of_spki(&public));
    assert_eq!(cred["alg"], "RS384");
    assert_eq!(cred["name"], "from a form");
    assert_eq!(cred["expires_at"], "2031-01-01T00:00:00.000Z");

    let cert = test_cert(&[(DnType::CommonName, "form")], 30);
    let r = app
        .admin_form(
            Method::POST,
            &TestApp::cred_path(&client, None),
            &[
                ("credential_type", "public_key"),
                ("pem", &cert.pem),
                ("parse_expiry_from_cert", "true"),
            ],
        )
        .await;
    let (status, from_cert) = status_json(r).await;
    assert_eq!(status, 201, "{from_cert}");
    assert_eq!(from_cert["expires_at"], millis_string(cert.not_after));

    let r = app
        .admin_form(
            Method::PATCH,
            &TestApp::cred_path(&client, Some(&id_of(&cred))),
            &[("expires_at", "2032-02-02T02:02:02+01:00")],
        )
        .await;
    let (status, patched) = status_json(r).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["expires_at"], "2032-02-02T01:02:02.000Z");

    let r = app
        .admin_form(
            Method::PATCH,
            &TestApp::cred_path(&client, Some(&id_of(&cred))),
            &[("name", "x")],
        )
        .await;
    assert_error(r, 400, Some("invalid_body")).await;
}

#[tokio::test]
async fn the_cap_holds_under_concurrent_creates() {
    let (app, client) = app_with_client().await;
    let token = app.admin_token().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        let req = app
            .http
            .post(app.url(&TestApp::cred_path(&client, None)))
            .bearer_auth(&token)
            .json(&json!({"credential_type": "cert_subject_dn", "subject_dn": format!("CN=c{i}")}));
        set.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(list(&app, &client).await.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn expires_at_on_create_is_refused_for_certificate_types_and_patch_still_sets_it() {
    let app = TestApp::spawn().await;
    let client = app.create_m2m_client("certs").await;
    let cid = client["client_id"].as_str().unwrap();
    let (cert, _) = self_signed_cert(&[(DnType::CommonName, "svc")], 30);
    for body in [
        json!({"credential_type": "x509_cert", "pem": cert, "expires_at": "2030-01-01T00:00:00Z"}),
        json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc", "expires_at": "2030-01-01T00:00:00Z"}),
    ] {
        let r = app.create_credential(cid, body).await;
        assert_error(r, 400, Some("invalid_body")).await;
    }
    let r = app
        .create_credential(
            cid,
            json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=svc"}),
        )
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert!(created.get("expires_at").is_none());
    let path = format!(
        "/api/v2/clients/{cid}/credentials/{}",
        created["id"].as_str().unwrap()
    );
    let r = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"expires_at": "2030-01-01T00:00:00Z"})),
        )
        .await;
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["expires_at"], "2030-01-01T00:00:00.000Z");
}

// ----- reads after writes (a read may be answered from the node's memory) -----

#[tokio::test]
async fn a_credential_read_before_each_change_is_read_fresh_after_it() {
    let app = TestApp::spawn().await;
    let (client, cred) = public_key_credential(&app, None).await;
    let other = new_client(&app).await;
    let path = TestApp::cred_path(&client, Some(&id_of(&cred)));
    assert_eq!(app.get_ok(&path).await, cred);
    assert_eq!(app.get_ok(&path).await, cred);

    let patched = patch_ok(
        &app,
        &client,
        &id_of(&cred),
        json!({"expires_at": "2031-02-03T04:05:06.000Z"}),
    )
    .await;
    assert_eq!(app.get_ok(&path).await, patched);

    // A write to another part of the client (its name) does not lose the credential.
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/clients/{client}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(app.get_ok(&path).await, patched);

    // The same credential id under another client is still not found.
    app.admin_error(
        Method::GET,
        &TestApp::cred_path(&other, Some(&id_of(&cred))),
        None,
        404,
        Some("inexistent_credential"),
    )
    .await;

    let r = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(r.status().as_u16(), 204);
    app.admin_error(Method::GET, &path, None, 404, Some("inexistent_credential"))
        .await;

    let (client, cred) = public_key_credential(&app, None).await;
    let path = TestApp::cred_path(&client, Some(&id_of(&cred)));
    assert_eq!(app.get_ok(&path).await, cred);
    let r = app
        .admin(Method::DELETE, &format!("/api/v2/clients/{client}"), None)
        .await;
    assert_eq!(r.status().as_u16(), 204);
    app.admin_error(Method::GET, &path, None, 404, Some("inexistent_client"))
        .await;
}

#[tokio::test]
async fn reads_racing_a_patch_never_show_the_old_expiry_after_it_returns() {
    // About 600 calls in a few seconds: past the default per-client rate.
    let app = Arc::new(TestApp::spawn_with(|c| c.http.per_client.per_second = 0).await);
    let (client, cred) = public_key_credential(&app, None).await;
    let path = TestApp::cred_path(&client, Some(&id_of(&cred)));
    for round in 0..25 {
        let readers: Vec<_> = (0..6)
            .map(|_| {
                let (app, path) = (app.clone(), path.clone());
                tokio::spawn(async move {
                    for _ in 0..3 {
                        app.get_ok(&path).await;
                    }
                })
            })
            .collect();
        let expires_at = format!("20{}-01-01T00:00:00.000Z", 40 + round);
        let patched = patch_ok(
            &app,
            &client,
            &id_of(&cred),
            json!({ "expires_at": expires_at }),
        )
        .await;
        assert_eq!(patched["expires_at"], expires_at.as_str());
        // Every read that starts after the PATCH answered sees it, however the
        // concurrent reads interleaved with its commit.
        for _ in 0..3 {
            assert_eq!(app.get_ok(&path).await["expires_at"], expires_at.as_str());
        }
        for reader in readers {
            reader.await.unwrap();
        }
        assert_eq!(app.get_ok(&path).await["expires_at"], expires_at.as_str());
    }
}

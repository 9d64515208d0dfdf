//! Resource servers — `/api/v2/resource-servers` (contract section 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";

fn rs_path(key: &str) -> String {
    format!("/api/v2/resource-servers/{key}")
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn create_returns_201_with_defaults() {
    let app = TestApp::spawn().await;
    let rs = app
        .admin_expect(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"name": "Orders", "identifier": API, "scopes": [
                {"value": "read:orders", "description": "Read orders"},
                {"value": "write:orders"},
            ]})),
            201,
        )
        .await;
    assert!(is_resource_server_id(&id(&rs)), "{rs}");
    assert_eq!(rs["name"], "Orders");
    assert_eq!(rs["identifier"], API);
    assert_eq!(rs["token_lifetime"], 86400);
    assert_eq!(rs["signing_alg"], "RS256");
    assert_eq!(rs["allow_offline_access"], false);
    assert_eq!(rs["skip_consent_for_verifiable_first_party_clients"], false);
    assert_eq!(
        rs["scopes"],
        json!([
            {"value": "read:orders", "description": "Read orders"},
            {"value": "write:orders"},
        ])
    );
    assert!(rs.get("is_system").is_none(), "{rs}");
    assert_eq!(keys(&rs)[..3], ["id", "name", "identifier"]);
}

#[tokio::test]
async fn name_defaults_to_the_identifier_and_scopes_to_empty() {
    let app = TestApp::spawn().await;
    let rs = app
        .admin_expect(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:orders"})),
            201,
        )
        .await;
    assert_eq!(rs["name"], "urn:orders");
    assert_eq!(rs["scopes"], json!([]));
}

#[tokio::test]
async fn duplicate_identifier_is_409() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let before = app.get_ok("/api/v2/resource-servers").await;
    let err = app
        .admin_error(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"name": "Again", "identifier": API})),
            409,
            None,
        )
        .await;
    assert_eq!(err["error"], "Conflict");
    assert!(err["message"].as_str().unwrap().contains(API), "{err}");
    assert_eq!(app.get_ok("/api/v2/resource-servers").await, before);
    // The Management API's identifier is taken too.
    app.admin_error(
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({"identifier": app.management_audience()})),
        409,
        None,
    )
    .await;
}

#[tokio::test]
async fn create_refuses_invalid_bodies() {
    let app = TestApp::spawn().await;
    let before = app.get_ok("/api/v2/resource-servers").await;
    for body in [
        json!({}),
        json!({"name": "no identifier"}),
        json!({"identifier": ""}),
        json!({"identifier": "x".repeat(601)}),
        json!({"identifier": "urn:a", "token_lifetime": 2_592_001}),
        json!({"identifier": "urn:a", "token_lifetime": -1}),
        json!({"identifier": "urn:a", "token_lifetime": "3600"}),
        json!({"identifier": "urn:a", "scopes": "read"}),
        json!({"identifier": "urn:a", "scopes": [{"value": "has space"}]}),
        json!({"identifier": "urn:a", "scopes": [{"value": "a"}, {"value": "a"}]}),
        json!({"identifier": "urn:a", "scopes": [{"description": "no value"}]}),
        json!({"identifier": "urn:a", "signing_alg": "none"}),
        json!({"identifier": "urn:a", "name": "<b>"}),
        json!({"identifier": "urn:a", "is_system": true}),
        json!({"identifier": "urn:a", "id": "0123456789abcdef01234567"}),
        json!({"identifier": "urn:a", "colour": "red"}),
    ] {
        let r = app
            .admin(Method::POST, "/api/v2/resource-servers", Some(body.clone()))
            .await;
        assert_eq!(r.status().as_u16(), 400, "{body}");
        assert_error(r, 400, Some("invalid_body")).await;
    }
    assert_eq!(app.get_ok("/api/v2/resource-servers").await, before);
}

#[tokio::test]
async fn token_lifetime_up_to_thirty_days_is_accepted() {
    let app = TestApp::spawn().await;
    let rs = app
        .admin_expect(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:long", "token_lifetime": 2_592_000})),
            201,
        )
        .await;
    assert_eq!(rs["token_lifetime"], 2_592_000);
    app.admin_error(
        Method::PATCH,
        &rs_path(&id(&rs)),
        Some(json!({"token_lifetime": 2_592_001})),
        400,
        Some("invalid_body"),
    )
    .await;
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, rs);
}

#[tokio::test]
async fn get_by_id_and_by_encoded_identifier() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, rs);
    assert_eq!(app.get_ok(&rs_path(&enc(API))).await, rs);
    let urn = app.create_api("urn:clavis:orders", &[]).await;
    assert_eq!(app.get_ok(&rs_path(&enc("urn:clavis:orders"))).await, urn);
}

#[tokio::test]
async fn unknown_resource_server_is_404() {
    let app = TestApp::spawn().await;
    for key in [
        "0123456789abcdef01234567".to_string(),
        enc("https://nowhere.example.com/"),
    ] {
        let path = rs_path(&key);
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "x"}))),
            (Method::DELETE, None),
        ] {
            let r = app.admin(method, &path, body).await;
            let err = assert_error(r, 404, Some("inexistent_resource_server")).await;
            assert_eq!(err["message"], "The resource server does not exist");
        }
    }
}

#[tokio::test]
async fn patch_by_id_and_by_encoded_identifier() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let by_id = app
        .admin_expect(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(json!({"name": "Renamed", "token_lifetime": 3600})),
            200,
        )
        .await;
    assert_eq!(by_id["name"], "Renamed");
    assert_eq!(by_id["token_lifetime"], 3600);
    assert_eq!(by_id["identifier"], API);
    assert_eq!(by_id["id"], rs["id"]);

    let by_identifier = app
        .admin_expect(
            Method::PATCH,
            &rs_path(&enc(API)),
            Some(
                json!({"scopes": [{"value": "read"}, {"value": "write", "description": "Write"}]}),
            ),
            200,
        )
        .await;
    assert_eq!(by_identifier["name"], "Renamed");
    assert_eq!(
        by_identifier["scopes"],
        json!([{"value": "read"}, {"value": "write", "description": "Write"}])
    );
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, by_identifier);
}

#[tokio::test]
async fn identifier_is_immutable() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    for body in [
        json!({"identifier": "https://other.example.com/"}),
        json!({"identifier": API}),
        json!({"name": "x", "identifier": "urn:x"}),
    ] {
        app.admin_error(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(body),
            400,
            Some("invalid_body"),
        )
        .await;
    }
    assert_eq!(app.get_ok(&rs_path(&id(&rs))).await, rs);
}

#[tokio::test]
async fn delete_by_encoded_identifier_then_404() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let r = app.admin(Method::DELETE, &rs_path(&enc(API)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    for path in [rs_path(&id(&rs)), rs_path(&enc(API))] {
        app.admin_error(
            Method::GET,
            &path,
            None,
            404,
            Some("inexistent_resource_server"),
        )
        .await;
    }
    // The identifier is free again.
    app.create_api(API, &[]).await;
}

#[tokio::test]
async fn delete_by_id() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let r = app.admin(Method::DELETE, &rs_path(&id(&rs)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    app.admin_error(
        Method::DELETE,
        &rs_path(&id(&rs)),
        None,
        404,
        Some("inexistent_resource_server"),
    )
    .await;
}

#[tokio::test]
async fn delete_removes_its_grants() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &["read"]).await;
    let other = app.create_api("urn:other", &["x"]).await;
    let c = app.create_m2m_client("svc").await;
    let client = c["client_id"].as_str().unwrap();
    let grant = app.grant(client, API, &["read"]).await;
    let kept = app.grant(client, "urn:other", &["x"]).await;
    let r = app.admin(Method::DELETE, &rs_path(&id(&rs)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    app.admin_error(
        Method::GET,
        &format!("/api/v2/client-grants/{}", id(&grant)),
        None,
        404,
        None,
    )
    .await;
    assert_eq!(
        app.get_ok(&format!("/api/v2/client-grants?audience={}", enc(API)))
            .await,
        json!([])
    );
    assert_eq!(
        app.get_ok(&format!("/api/v2/client-grants?client_id={client}"))
            .await,
        json!([kept])
    );
    let (status, err) = status_json(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", c["client_secret"].as_str().unwrap()),
            ("audience", API),
        ])
        .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        err["error_description"],
        format!("Service not enabled within domain: {API}")
    );
    assert_eq!(app.get_ok(&rs_path(&id(&other))).await, other);
}

#[tokio::test]
async fn system_api_is_listed_and_cannot_be_changed_or_deleted() {
    let app = TestApp::spawn().await;
    let listed = app.get_ok("/api/v2/resource-servers").await;
    let system: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| rs["is_system"] == true)
        .collect();
    assert_eq!(system.len(), 1, "{listed}");
    let system = system[0].clone();
    assert_eq!(system["identifier"], app.management_audience());
    assert!(is_resource_server_id(&id(&system)));
    let scopes: Vec<&str> = system["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    for s in [
        "read:clients",
        "create:client_credentials",
        "update:client_credentials",
        "read:resource_servers",
        "create:client_grants",
    ] {
        assert!(scopes.contains(&s), "{s} missing from {scopes:?}");
    }
    for key in [id(&system), enc(&app.management_audience())] {
        let path = rs_path(&key);
        assert_eq!(app.get_ok(&path).await, system);
        app.admin_error(
            Method::PATCH,
            &path,
            Some(json!({"name": "Mine now"})),
            403,
            None,
        )
        .await;
        app.admin_error(Method::DELETE, &path, None, 403, None)
            .await;
    }
    assert_eq!(app.get_ok(&rs_path(&id(&system))).await, system);
    // The admin token still works, so nothing was deleted.
    assert_eq!(app.get_ok("/api/v2/resource-servers").await, listed);
}

#[tokio::test]
async fn list_pages_with_totals() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id(&app.create_api(&format!("urn:api:{i}"), &[]).await));
    }
    let all = app.get_ok("/api/v2/resource-servers").await;
    let all_ids: Vec<String> = all.as_array().unwrap().iter().map(id).collect();
    assert_eq!(all_ids.len(), 5);
    assert_eq!(all_ids[1..], ids[..], "creation order after the system API");

    let page = app
        .get_ok("/api/v2/resource-servers?include_totals=true&page=1&per_page=2")
        .await;
    assert_eq!(keys(&page), ["start", "limit", "total", "resource_servers"]);
    assert_eq!(page["start"], 2);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["total"], 5);
    assert_eq!(
        page["resource_servers"],
        Value::Array(all.as_array().unwrap()[2..4].to_vec())
    );
    let bare = app
        .get_ok("/api/v2/resource-servers?page=2&per_page=2")
        .await;
    assert_eq!(bare, Value::Array(all.as_array().unwrap()[4..].to_vec()));
    app.admin_error(
        Method::GET,
        "/api/v2/resource-servers?per_page=101",
        None,
        400,
        Some("invalid_query_string"),
    )
    .await;
}

#[tokio::test]
async fn form_encoded_create_and_update() {
    let app = TestApp::spawn().await;
    let r = app
        .admin_form(
            Method::POST,
            "/api/v2/resource-servers",
            &[
                ("identifier", "urn:form"),
                ("name", "Form API"),
                ("token_lifetime", "600"),
                ("allow_offline_access", "true"),
            ],
        )
        .await;
    let (status, rs) = status_json(r).await;
    assert_eq!(status, 201, "{rs}");
    assert_eq!(rs["token_lifetime"], 600);
    assert_eq!(rs["allow_offline_access"], true);
    let r = app
        .admin_form(
            Method::PATCH,
            &rs_path(&id(&rs)),
            &[("token_lifetime", "900")],
        )
        .await;
    let (status, rs) = status_json(r).await;
    assert_eq!(status, 200, "{rs}");
    assert_eq!(rs["token_lifetime"], 900);
}

/// Settings Clavis cannot honour are refused rather than stored and ignored: encrypted
/// tokens (JWE). `token_lifetime_for_web` (implicit and hybrid flows, which Clavis does not
/// serve) is kept as it is, as Auth0's exports carry it.
#[tokio::test]
async fn token_encryption_is_refused_and_token_lifetime_for_web_is_kept() {
    let app = TestApp::spawn().await;
    let body = app
        .admin_expect(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:encrypted", "token_encryption": {"format": "compact-nested-jwe", "encryption_key": {"alg": "RSA-OAEP-256", "pem": "x"}}})),
            400,
        )
        .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("token_encryption"),
        "{body}"
    );
    let body = app
        .admin_expect(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:web", "token_encryption": null, "token_lifetime_for_web": 7200})),
            201,
        )
        .await;
    assert_eq!(body["token_lifetime_for_web"], 7200);
}

// ----- signing_alg and signing_secret (contract sections 4 and 6) -----

/// A client granted `audience`; returns (client_id, secret).
async fn granted_client(app: &TestApp, audience: &str) -> (String, String) {
    let c = app.create_m2m_client("svc").await;
    let client_id = c["client_id"].as_str().unwrap().to_string();
    app.grant(&client_id, audience, &[]).await;
    (client_id, c["client_secret"].as_str().unwrap().to_string())
}

async fn jwks(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verifies `token`'s signature: RSA algorithms with the JWKS key of its `kid`, HS256 with
/// `secret`. Returns its header.
async fn verify_token(app: &TestApp, token: &str, secret: Option<&str>) -> Value {
    use aws_lc_rs::signature;
    let (header, _) = decode_jwt(token);
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig = b64url_decode(sig);
    if header["alg"] == "HS256" {
        assert!(header.get("kid").is_none(), "{header}");
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.unwrap().as_bytes());
        aws_lc_rs::hmac::verify(&key, signed.as_bytes(), &sig).expect("HS256 signature verifies");
        return header;
    }
    let set = jwks(app).await;
    let key = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("kid {} not in {set}", header["kid"]))
        .clone();
    // A key that names an algorithm must name the token's (what JOSE libraries check).
    if let Some(alg) = key.get("alg") {
        assert_eq!(
            *alg, header["alg"],
            "JWKS key {key} for a {} token",
            header["alg"]
        );
    }
    let algorithm: &signature::RsaParameters = match header["alg"].as_str().unwrap() {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        other => panic!("unexpected alg {other}"),
    };
    signature::RsaPublicKeyComponents {
        n: b64url_decode(key["n"].as_str().unwrap()),
        e: b64url_decode(key["e"].as_str().unwrap()),
    }
    .verify(algorithm, signed.as_bytes(), &sig)
    .expect("signature verifies with the published key");
    header
}

#[tokio::test]
async fn every_signing_alg_issues_tokens_that_verify() {
    let app = TestApp::spawn().await;
    let cases = [
        ("RS256", None, "access_token", "JWT"),
        ("RS512", None, "access_token", "JWT"),
        ("PS256", None, "access_token", "JWT"),
        ("PS256", None, "rfc9068_profile", "at+jwt"),
        (
            "HS256",
            Some("a-given-secret-of-32-characters!"),
            "access_token",
            "JWT",
        ),
        ("HS256", None, "rfc9068_profile_authz", "at+jwt"),
    ];
    let kid = decode_jwt(&app.admin_token().await).0["kid"].clone();
    for (i, (alg, given, dialect, typ)) in cases.into_iter().enumerate() {
        let audience = format!("https://alg-{i}.example.com/");
        let mut body =
            json!({"identifier": audience, "signing_alg": alg, "token_dialect": dialect});
        if let Some(secret) = given {
            body["signing_secret"] = json!(secret);
        }
        let rs = app
            .admin_expect(Method::POST, "/api/v2/resource-servers", Some(body), 201)
            .await;
        assert_eq!(rs["signing_alg"], alg);
        // HS256 APIs have a secret (the one given, or a new one); the others none.
        let secret = rs
            .get("signing_secret")
            .map(|s| s.as_str().unwrap().to_string());
        match (alg, given) {
            ("HS256", Some(g)) => assert_eq!(secret.as_deref(), Some(g)),
            ("HS256", None) => assert_eq!(secret.as_ref().map(String::len), Some(64), "{rs}"),
            _ => assert_eq!(secret, None, "{rs}"),
        }
        // GET shows the same.
        let read = app.get_ok(&rs_path(&id(&rs))).await;
        assert_eq!(read, rs);
        let (client_id, client_secret) = granted_client(&app, &audience).await;
        let token = app.token_for(&client_id, &client_secret, &audience).await;
        let header = verify_token(&app, &token, secret.as_deref()).await;
        assert_eq!(header["alg"], alg, "{header}");
        assert_eq!(header["typ"], typ, "{header}");
        if alg != "HS256" {
            assert_eq!(header["kid"], kid, "the tenant's current key signs");
        }
        let (_, claims) = decode_jwt(&token);
        assert_eq!(claims["aud"], audience);
    }
}

#[tokio::test]
async fn jwks_names_rs256_until_another_rsa_alg_is_in_use() {
    let app = TestApp::spawn().await;
    let names_rs256 = |set: &Value| {
        set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["alg"] == "RS256")
    };
    let without_alg = |set: &Value| {
        set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("alg").is_none() && k["kty"] == "RSA" && k["use"] == "sig")
    };
    assert!(names_rs256(&jwks(&app).await));
    // HS256 uses no tenant key: no change.
    let hs = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:hs", "signing_alg": "HS256"})),
        )
        .await
        .1;
    assert!(names_rs256(&jwks(&app).await));
    let ps = app
        .admin_json(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:ps", "signing_alg": "PS256"})),
        )
        .await
        .1;
    let set = jwks(&app).await;
    assert!(without_alg(&set), "{set}");
    // Switched back: RS256 again; PS256 by another API, then deleted.
    let r = app
        .admin(
            Method::PATCH,
            &rs_path(&id(&ps)),
            Some(json!({"signing_alg": "RS256"})),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(names_rs256(&jwks(&app).await));
    let r = app
        .admin(
            Method::PATCH,
            &rs_path(&id(&hs)),
            Some(json!({"signing_alg": "RS512"})),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(without_alg(&jwks(&app).await));
    let r = app.admin(Method::DELETE, &rs_path(&id(&hs)), None).await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(names_rs256(&jwks(&app).await));
}

#[tokio::test]
async fn signing_secret_is_kept_replaced_and_survives_a_restart() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &[]).await;
    assert!(rs.get("signing_secret").is_none(), "{rs}");
    let (client_id, client_secret) = granted_client(&app, API).await;
    // Switched to HS256 without a secret: a new one, and tokens signed with it at once.
    let hs = app
        .admin_expect(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(json!({"signing_alg": "HS256"})),
            200,
        )
        .await;
    let first = hs["signing_secret"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 64);
    let token = app.token_for(&client_id, &client_secret, API).await;
    verify_token(&app, &token, Some(&first)).await;
    // Back to RS256 and to HS256 again: the secret stays (and is still shown).
    for alg in ["RS256", "HS256"] {
        let v = app
            .admin_expect(
                Method::PATCH,
                &rs_path(&id(&rs)),
                Some(json!({"signing_alg": alg})),
                200,
            )
            .await;
        assert_eq!(v["signing_secret"], first.as_str());
    }
    // Replaced.
    let second = "a-replacement-secret-0123456789";
    let v = app
        .admin_expect(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(json!({"signing_secret": second})),
            200,
        )
        .await;
    assert_eq!(v["signing_secret"], second);
    let token = app.token_for(&client_id, &client_secret, API).await;
    verify_token(&app, &token, Some(second)).await;
    // The list shows it too.
    let list = app.get_ok("/api/v2/resource-servers").await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rs["id"])
        .unwrap()
        .clone();
    assert_eq!(listed["signing_secret"], second);
    // Sealed in the store, read back after a restart.
    let app = app.restart().await;
    assert_eq!(
        app.get_ok(&rs_path(&id(&rs))).await["signing_secret"],
        second
    );
    let token = app.token_for(&client_id, &client_secret, API).await;
    verify_token(&app, &token, Some(second)).await;
}

#[tokio::test]
async fn signing_secret_and_alg_refusals() {
    let app = TestApp::spawn().await;
    let rs = app.create_api(API, &[]).await;
    for body in [
        json!({"signing_secret": "fifteen-chars!!"}),
        json!({"signing_secret": 1234567890123456_i64}),
        json!({"signing_alg": "ES256"}),
    ] {
        app.admin_error(
            Method::POST,
            "/api/v2/resource-servers",
            Some({
                let mut b = body.clone();
                b["identifier"] = json!("urn:refused");
                b
            }),
            400,
            Some("invalid_body"),
        )
        .await;
        app.admin_error(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(body.clone()),
            400,
            Some("invalid_body"),
        )
        .await;
    }
    let body = app
        .admin_error(
            Method::PATCH,
            &rs_path(&id(&rs)),
            Some(json!({"signing_secret": "fifteen-chars!!"})),
            400,
            Some("invalid_body"),
        )
        .await;
    assert_eq!(
        body["message"],
        "Payload validation error: 'String is too short (15 chars), minimum 16' on property signing_secret (Secret used to sign tokens when using symmetric algorithms (HS256).)."
    );
    assert!(!body.to_string().contains("fifteen"), "{body}");
    // The Management API signs RS256, always.
    let system = app.get_ok(&rs_path(&enc(&app.management_audience()))).await;
    for change in [
        json!({"signing_alg": "HS256"}),
        json!({"signing_alg": "PS256"}),
        json!({"signing_secret": "0123456789abcdef"}),
    ] {
        app.admin_error(
            Method::PATCH,
            &rs_path(&id(&system)),
            Some(change),
            403,
            Some("operation_not_supported"),
        )
        .await;
    }
    let system = app.get_ok(&rs_path(&id(&system))).await;
    assert_eq!(system["signing_alg"], "RS256");
    assert!(system.get("signing_secret").is_none());
}

#[tokio::test]
async fn an_hs256_token_is_never_a_management_token() {
    let app = TestApp::spawn().await;
    let secret = "the-api-secret-everyone-knows-0123";
    app.admin_expect(
        Method::POST,
        "/api/v2/resource-servers",
        Some(json!({"identifier": API, "signing_alg": "HS256", "signing_secret": secret})),
        201,
    )
    .await;
    let (client_id, client_secret) = granted_client(&app, API).await;
    // The client may also call the Management API: its HS256 token for the API is refused.
    app.grant(&client_id, &app.management_audience(), &["read:clients"])
        .await;
    let token = app.token_for(&client_id, &client_secret, API).await;
    assert_eq!(decode_jwt(&token).0["alg"], "HS256");
    let r = app.call(&token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(r.status().as_u16(), 401);
    // Nor one forged with the API's secret for the Management API audience, with the
    // tenant key's kid.
    let kid = decode_jwt(&app.admin_token().await).0["kid"].clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for header in [
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
    ] {
        let claims = json!({
            "iss": app.issuer(), "sub": format!("{client_id}@clients"), "azp": client_id,
            "aud": app.management_audience(), "iat": now, "exp": now + 600,
            "scope": "read:clients", "gty": "client-credentials",
        });
        let signed = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, signed.as_bytes());
        let forged = format!("{signed}.{}", b64url(tag.as_ref()));
        let r = app
            .call(&forged, Method::GET, "/api/v2/clients", None)
            .await;
        assert_eq!(r.status().as_u16(), 401, "{header}");
    }
    // The genuine management token of the same client works.
    let token = app
        .token_for(&client_id, &client_secret, &app.management_audience())
        .await;
    let r = app.call(&token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(r.status().as_u16(), 200);
}

/// `allow_online_access_with_ephemeral_sessions` (Auth0's online refresh tokens, which Clavis
/// does not issue) is kept as given, as auth0-deploy-cli's YAML carries it; it must be a
/// boolean.
#[tokio::test]
async fn allow_online_access_with_ephemeral_sessions_is_kept() {
    let app = TestApp::spawn().await;
    let body = app
        .admin_expect(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": "urn:ort", "allow_online_access": false, "allow_online_access_with_ephemeral_sessions": false})),
            201,
        )
        .await;
    assert_eq!(body["allow_online_access_with_ephemeral_sessions"], false);
    app.admin_expect(
        Method::PATCH,
        "/api/v2/resource-servers/urn%3Aort",
        Some(json!({"allow_online_access_with_ephemeral_sessions": "yes"})),
        400,
    )
    .await;
    let got = app.get_ok("/api/v2/resource-servers/urn%3Aort").await;
    assert_eq!(got["allow_online_access_with_ephemeral_sessions"], false);
}

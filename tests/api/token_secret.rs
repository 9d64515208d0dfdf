//! `POST /oauth/token` with client secrets, discovery and JWKS (contract sections 5 and 6).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";

struct Setup {
    client_id: String,
    secret: String,
}

/// An API with scopes a b c, a client granted a b c.
async fn setup(app: &TestApp) -> Setup {
    app.create_api(API, &["a", "b", "c", "d"]).await;
    let c = app.create_m2m_client("svc").await;
    let client_id = c["client_id"].as_str().unwrap().to_string();
    app.grant(&client_id, API, &["a", "b", "c"]).await;
    Setup {
        client_id,
        secret: c["client_secret"].as_str().unwrap().to_string(),
    }
}

async fn oauth_error(r: Response, status: u16, error: &str, description: Option<&str>) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/json; charset=utf-8"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(keys(&body), ["error", "error_description"], "{body}");
    assert_eq!(body["error"], error, "{body}");
    if let Some(d) = description {
        assert_eq!(body["error_description"], d);
    }
}

async fn success(r: Response) -> Value {
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/json; charset=utf-8"
    );
    r.json().await.unwrap()
}

/// Verifies an RS256 JWT against the server's JWKS; returns the key used.
async fn verify_with_jwks(app: &TestApp, token: &str) -> Value {
    let (header, _) = decode_jwt(token);
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("kid {} not in {jwks}", header["kid"]))
        .clone();
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let components = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: b64url_decode(key["n"].as_str().unwrap()),
        e: b64url_decode(key["e"].as_str().unwrap()),
    };
    components
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &b64url_decode(sig),
        )
        .expect("signature verifies with the published key");
    key
}

#[tokio::test]
async fn client_secret_post_form_issues_a_bearer_token() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let r = app.secret_post(&s.client_id, &s.secret, API).await;
    let body = success(r).await;
    assert_eq!(
        keys(&body),
        ["access_token", "scope", "expires_in", "token_type"]
    );
    assert_eq!(body["scope"], "a b c");
    assert_eq!(body["expires_in"], 86400);
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn access_token_claims_and_header_are_exact() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = success(app.secret_post(&s.client_id, &s.secret, API).await).await;
    let after = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = body["access_token"].as_str().unwrap();
    let (header, claims) = decode_jwt(token);
    assert_eq!(keys(&header), ["alg", "typ", "kid"]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let key = verify_with_jwks(&app, token).await;
    assert_eq!(key["kid"], header["kid"]);

    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        before <= iat && iat <= after,
        "{iat} not in {before}..{after}"
    );
    assert_eq!(
        claims,
        json!({
            "iss": app.issuer(),
            "sub": format!("{}@clients", s.client_id),
            "aud": API,
            "iat": iat,
            "exp": iat + 86400,
            "scope": "a b c",
            "gty": "client-credentials",
            "azp": s.client_id,
        })
    );
}

#[tokio::test]
async fn lifetime_follows_the_api_token_lifetime() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/resource-servers/{}", enc(API)),
        Some(json!({"token_lifetime": 600})),
        200,
    )
    .await;
    let body = success(app.secret_post(&s.client_id, &s.secret, API).await).await;
    assert_eq!(body["expires_in"], 600);
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
}

#[tokio::test]
async fn json_body_with_null_organization_like_the_python_sdk() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let r = app
        .token_json(json!({
            "client_id": s.client_id,
            "client_secret": s.secret,
            "audience": API,
            "grant_type": "client_credentials",
            "organization": null,
        }))
        .await;
    let body = success(r).await;
    assert_eq!(body["scope"], "a b c");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["azp"], s.client_id);
}

#[tokio::test]
async fn client_secret_basic() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&s.client_id, Some(&s.secret))
        .form(&[("grant_type", "client_credentials"), ("audience", API)])
        .send()
        .await
        .unwrap();
    let body = success(r).await;
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], format!("{}@clients", s.client_id));

    let wrong =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:not-the-secret", s.client_id));
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", format!("Basic {wrong}"))
        .form(&[("grant_type", "client_credentials"), ("audience", API)])
        .send()
        .await
        .unwrap();
    oauth_error(r, 401, "access_denied", Some("Unauthorized")).await;
}

#[tokio::test]
async fn scope_parameter_narrows_to_the_granted_scopes() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    for (requested, granted) in [
        (Some("b c d"), Some("b c")),
        (Some("c a"), Some("a c")),
        (Some("a"), Some("a")),
        (Some("d"), None),
        (Some("zzz"), None),
        (Some(""), Some("a b c")),
        (None, Some("a b c")),
    ] {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.secret.as_str()),
            ("audience", API),
        ];
        if let Some(r) = requested {
            form.push(("scope", r));
        }
        let body = success(app.token_form(&form).await).await;
        let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
        match granted {
            Some(g) => {
                assert_eq!(body["scope"], g, "{requested:?}");
                assert_eq!(claims["scope"], g, "{requested:?}");
            }
            None => {
                assert!(body.get("scope").is_none(), "{requested:?}: {body}");
                assert!(claims.get("scope").is_none(), "{requested:?}: {claims}");
            }
        }
    }
}

#[tokio::test]
async fn wrong_secret_is_401_access_denied() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    for secret in ["wrong", "", &format!("{}x", s.secret)] {
        let r = app.secret_post(&s.client_id, secret, API).await;
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
        oauth_error(r, 401, "access_denied", Some("Unauthorized")).await;
    }
}

#[tokio::test]
async fn unknown_client_is_401_access_denied() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let r = app
        .secret_post("NoSuchClient00000000000000000000", "whatever", API)
        .await;
    oauth_error(r, 401, "access_denied", Some("Unauthorized")).await;
}

#[tokio::test]
async fn grant_type_not_enabled_is_403_unauthorized_client() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/clients/{}", s.client_id),
        Some(json!({"grant_types": ["authorization_code"]})),
        200,
    )
    .await;
    let r = app.secret_post(&s.client_id, &s.secret, API).await;
    oauth_error(
        r,
        403,
        "unauthorized_client",
        Some("Grant type 'client_credentials' not allowed for the client."),
    )
    .await;
}

#[tokio::test]
async fn audience_that_is_not_an_api_is_403() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let r = app
        .secret_post(&s.client_id, &s.secret, "https://unknown.example.com/")
        .await;
    oauth_error(
        r,
        403,
        "access_denied",
        Some("Service not enabled within domain: https://unknown.example.com/"),
    )
    .await;
}

#[tokio::test]
async fn missing_audience_without_a_default_is_refused() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.secret),
        ])
        .await;
    assert!(r.status().is_client_error());
    let body: Value = r.json().await.unwrap();
    assert_eq!(keys(&body), ["error", "error_description"]);
}

#[tokio::test]
async fn default_audience_is_used_when_none_is_given() {
    let app = TestApp::spawn_with(|c| c.default_audience = Some(API.into())).await;
    let s = setup(&app).await;
    let body = success(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.secret),
        ])
        .await,
    )
    .await;
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API);
}

#[tokio::test]
async fn no_grant_for_the_audience_is_403() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    app.create_api("urn:other", &["x"]).await;
    let r = app.secret_post(&s.client_id, &s.secret, "urn:other").await;
    oauth_error(
        r,
        403,
        "access_denied",
        Some(
            "Client is not authorized to access \"urn:other\". You might probably want to create a \"client-grant\" associated to this API.",
        ),
    )
    .await;
}

#[tokio::test]
async fn unsupported_and_missing_grant_type() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    for grant_type in ["password", "authorization_code", "refresh_token"] {
        let r = app
            .token_form(&[
                ("grant_type", grant_type),
                ("client_id", &s.client_id),
                ("client_secret", &s.secret),
                ("audience", API),
            ])
            .await;
        oauth_error(r, 400, "unsupported_grant_type", None).await;
    }
    let r = app
        .token_form(&[
            ("client_id", &s.client_id),
            ("client_secret", &s.secret),
            ("audience", API),
        ])
        .await;
    oauth_error(r, 400, "invalid_request", None).await;
}

#[tokio::test]
async fn malformed_token_requests_are_400_invalid_request() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let post = |ct: &'static str, body: String| {
        app.http
            .post(app.url("/oauth/token"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for (ct, body) in [
        ("application/json", "{not json".to_string()),
        ("application/json", "[]".to_string()),
        ("application/json", "null".to_string()),
        (
            "application/json",
            json!({"grant_type": "client_credentials", "client_id": 5, "client_secret": s.secret, "audience": API}).to_string(),
        ),
    ] {
        let r = post(ct, body.clone()).await.unwrap();
        oauth_error(r, 400, "invalid_request", None).await;
    }
    // Two authentication methods at once.
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&s.client_id, Some(&s.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &s.secret),
            ("audience", API),
        ])
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request", None).await;
}

#[tokio::test]
async fn management_tokens_issued_here_call_the_management_api() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (header, claims) = decode_jwt(&token);
    assert_eq!(claims["aud"], app.management_audience());
    assert_eq!(claims["azp"], ADMIN_ID);
    verify_with_jwks(&app, &token).await;
    assert_eq!(header["alg"], "RS256");
    let r = app.call(&token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn discovery_document_describes_the_token_endpoint() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["issuer"], app.issuer());
    assert_eq!(doc["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    for m in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ] {
        assert!(methods.contains(&json!(m)), "{m} missing: {doc}");
    }
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "RS384", "PS256"])
    );
}

#[tokio::test]
async fn jwks_publishes_rsa_signing_keys() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let jwks: Value = r.json().await.unwrap();
    assert_eq!(keys(&jwks), ["keys"]);
    let list = jwks["keys"].as_array().unwrap();
    assert!(list.len() >= 2, "current and next: {jwks}");
    for k in list {
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "RS256");
        assert!(k["kid"].is_string());
        assert_eq!(k["e"], "AQAB");
        assert!(b64url_decode(k["n"].as_str().unwrap()).len() >= 256);
    }
    let (header, _) = decode_jwt(&app.admin_token().await);
    assert!(list.iter().any(|k| k["kid"] == header["kid"]));
}

#[tokio::test]
async fn unknown_and_null_parameters_are_ignored() {
    let app = TestApp::spawn().await;
    let s = setup(&app).await;
    let r = app
        .token_json(json!({
            "client_id": s.client_id,
            "client_secret": s.secret,
            "audience": API,
            "grant_type": "client_credentials",
            "scope": null,
            "organization": null,
            "resource": "ignored",
            "nonce": "ignored",
        }))
        .await;
    let body = success(r).await;
    assert_eq!(body["scope"], "a b c");
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("client_secret", &s.secret),
            ("audience", API),
            ("whatever", "x"),
        ])
        .await;
    success(r).await;
}

/// RFC 6749 §3.2: a parameter given twice is refused, never resolved by taking one value
/// (`client_id=A&client_id=B` with B's secret used to give a token for B).
#[tokio::test]
async fn repeated_parameters_and_json_keys_are_invalid_request() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let a = app.create_m2m_client("a").await;
    let b = app.create_m2m_client("b").await;
    let (a_id, b_id) = (
        a["client_id"].as_str().unwrap(),
        b["client_id"].as_str().unwrap(),
    );
    let b_secret = b["client_secret"].as_str().unwrap();
    app.grant(b_id, API, &["read"]).await;
    let forms: [&[(&str, &str)]; 4] = [
        &[
            ("grant_type", "client_credentials"),
            ("client_id", a_id),
            ("client_id", b_id),
            ("client_secret", b_secret),
            ("audience", API),
        ],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", b_id),
            ("client_secret", b_secret),
            ("audience", "https://other/"),
            ("audience", API),
        ],
        &[
            ("grant_type", "password"),
            ("grant_type", "client_credentials"),
            ("client_id", b_id),
            ("client_secret", b_secret),
            ("audience", API),
        ],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", b_id),
            ("client_secret", "wrong"),
            ("client_secret", b_secret),
            ("audience", API),
        ],
    ];
    for form in forms {
        let r = app.token_form(form).await;
        let (status, body) = status_json(r).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{form:?}: {body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("more than once"),
            "{body}"
        );
    }
    let json_body = format!(
        r#"{{"grant_type":"client_credentials","client_id":"{a_id}","client_id":"{b_id}","client_secret":"{b_secret}","audience":"{API}"}}"#
    );
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/json")
        .body(json_body)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    // The same request without the repetition works.
    let r = app.secret_post(b_id, b_secret, API).await;
    assert_eq!(r.status(), 200);

    // The Management API refuses a repeated property too (before any scope or rule).
    let r = app
        .http
        .post(app.url("/api/v2/clients"))
        .bearer_auth(app.admin_token().await)
        .header("content-type", "application/json")
        .body(r#"{"name":"one","name":"two"}"#)
        .send()
        .await
        .unwrap();
    let err = assert_error(r, 400, Some("invalid_body")).await;
    assert_eq!(
        err["message"],
        "Payload validation error: 'Property given more than once' on property name."
    );
}

/// An API whose client access policy is `deny_all` gives no machine-to-machine token, grant or
/// not, from the moment the policy is set; `require_client_grant` (Auth0's default) is the
/// grant rule as before. Values outside Auth0's enum are refused.
#[tokio::test]
async fn an_api_with_client_policy_deny_all_issues_no_token() {
    let app = TestApp::spawn().await;
    let api = app.create_api(API, &["read"]).await;
    let path = format!("/api/v2/resource-servers/{}", api["id"].as_str().unwrap());
    let c = app.create_m2m_client("svc").await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    app.grant(id, API, &["read"]).await;
    let request = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("audience", API),
    ];
    assert_eq!(app.token_form(&request).await.status(), 200);
    let policy = |p: &str| json!({"subject_type_authorization": {"client": {"policy": p}, "user": {"policy": "allow_all"}}});
    let body = app
        .admin_expect(Method::PATCH, &path, Some(policy("deny_all")), 200)
        .await;
    assert_eq!(
        body["subject_type_authorization"]["client"]["policy"],
        "deny_all"
    );
    let (status, body) = status_json(app.token_form(&request).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("deny_all")
    );
    app.admin_expect(
        Method::PATCH,
        &path,
        Some(policy("require_client_grant")),
        200,
    )
    .await;
    assert_eq!(app.token_form(&request).await.status(), 200);
    for bad in [
        json!({"subject_type_authorization": {"client": {"policy": "allow_all"}}}),
        json!({"subject_type_authorization": {"client": "deny_all"}}),
        json!({"subject_type_authorization": {"robots": {}}}),
    ] {
        let (status, body) = app
            .admin_json(Method::PATCH, &path, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// `token_dialect` decides the header and the claims, from the moment it is set: Auth0's
/// (`typ: JWT`, `azp`, `gty`) or RFC 9068's (`typ: at+jwt`, `client_id`, a fresh `jti`, no
/// `azp` or `gty`); the `_authz` dialects add `permissions` (the granted scopes) when the API
/// enforces policies. A dialect outside Auth0's enum is refused.
#[tokio::test]
async fn token_dialect_sets_the_header_and_claims() {
    let app = TestApp::spawn().await;
    let api = app.create_api(API, &["read", "write"]).await;
    let path = format!("/api/v2/resource-servers/{}", api["id"].as_str().unwrap());
    let c = app.create_m2m_client("svc").await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    app.grant(id, API, &["read", "write"]).await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let cases = [
        (
            "access_token",
            false,
            "JWT",
            &["aud", "azp", "exp", "gty", "iat", "iss", "scope", "sub"][..],
        ),
        (
            "access_token_authz",
            true,
            "JWT",
            &[
                "aud",
                "azp",
                "exp",
                "gty",
                "iat",
                "iss",
                "permissions",
                "scope",
                "sub",
            ],
        ),
        (
            "access_token_authz",
            false,
            "JWT",
            &["aud", "azp", "exp", "gty", "iat", "iss", "scope", "sub"],
        ),
        (
            "rfc9068_profile",
            false,
            "at+jwt",
            &[
                "aud",
                "client_id",
                "exp",
                "iat",
                "iss",
                "jti",
                "scope",
                "sub",
            ],
        ),
        (
            "rfc9068_profile_authz",
            true,
            "at+jwt",
            &[
                "aud",
                "client_id",
                "exp",
                "iat",
                "iss",
                "jti",
                "permissions",
                "scope",
                "sub",
            ],
        ),
    ];
    let mut jtis = std::collections::HashSet::new();
    for (dialect, enforce, typ, expected) in cases {
        app.admin_expect(
            Method::PATCH,
            &path,
            Some(json!({"token_dialect": dialect, "enforce_policies": enforce})),
            200,
        )
        .await;
        for _ in 0..2 {
            let token = app.token_for(id, secret, API).await;
            let (header, claims) = decode_jwt(&token);
            assert_eq!(header["typ"], typ, "{dialect}");
            assert_eq!(keys(&claims), expected, "{dialect} {enforce}: {claims}");
            assert_eq!(claims["sub"], format!("{id}@clients"));
            if typ == "at+jwt" {
                assert_eq!(claims["client_id"], id);
                assert!(
                    jtis.insert(claims["jti"].as_str().unwrap().to_string()),
                    "jti reused"
                );
            } else {
                assert_eq!(
                    (claims["azp"].as_str(), claims["gty"].as_str()),
                    (Some(id), Some("client-credentials"))
                );
            }
            if expected.contains(&"permissions") {
                assert_eq!(claims["permissions"], json!(["read", "write"]));
            }
        }
    }
    app.admin_expect(
        Method::PATCH,
        &path,
        Some(json!({"token_dialect": "jwt_please"})),
        400,
    )
    .await;
}

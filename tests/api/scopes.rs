//! Bearer tokens and scopes on every Management API endpoint (contract section 1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";

/// One endpoint: method, path, a valid body, and the scopes that admit it (in the order of
/// the `Insufficient scope` message, as in Auth0's OpenAPI document).
struct Endpoint {
    method: Method,
    path: String,
    body: Option<Value>,
    scopes: &'static [&'static str],
}

fn ep(
    method: Method,
    path: String,
    body: Option<Value>,
    scopes: &'static [&'static str],
) -> Endpoint {
    Endpoint {
        method,
        path,
        body,
        scopes,
    }
}

const READ_CLIENTS: &[&str] = &[
    "read:clients",
    "read:client_keys",
    "read:client_credentials",
];
const UPDATE_CLIENTS: &[&str] = &[
    "update:clients",
    "update:client_keys",
    "update:client_credentials",
];

/// Every Management endpoint, aimed at `client`, `credential`, `rs` and `grant` (real or
/// not: the scope check comes first).
fn endpoints(client: &str, credential: &str, rs: &str, grant: &str, kid: &str) -> Vec<Endpoint> {
    let c = format!("/api/v2/clients/{client}");
    let creds = format!("{c}/credentials");
    let cred = format!("{creds}/{credential}");
    let rsp = format!("/api/v2/resource-servers/{rs}");
    let gp = format!("/api/v2/client-grants/{grant}");
    // No organization exists: the scope check comes first.
    let org = "/api/v2/organizations/org_0000000000000000";
    vec![
        ep(Method::GET, "/api/v2/clients".into(), None, READ_CLIENTS),
        ep(
            Method::POST,
            "/api/v2/clients".into(),
            Some(json!({"name": "x"})),
            &["create:clients"],
        ),
        ep(Method::GET, c.clone(), None, READ_CLIENTS),
        ep(
            Method::PATCH,
            c.clone(),
            // A property every one of the operation's scopes may set (SECURITY.md).
            Some(json!({"token_endpoint_auth_method": "client_secret_post"})),
            UPDATE_CLIENTS,
        ),
        ep(Method::DELETE, c.clone(), None, &["delete:clients"]),
        ep(
            Method::POST,
            format!("{c}/rotate-secret"),
            None,
            &["update:client_keys"],
        ),
        ep(
            Method::GET,
            creds.clone(),
            None,
            &["read:client_credentials"],
        ),
        ep(
            Method::POST,
            creds,
            Some(json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=x"})),
            &["create:client_credentials"],
        ),
        ep(
            Method::GET,
            cred.clone(),
            None,
            &["read:client_credentials"],
        ),
        ep(
            Method::PATCH,
            cred.clone(),
            Some(json!({"expires_at": null})),
            &["update:client_credentials"],
        ),
        ep(Method::DELETE, cred, None, &["delete:client_credentials"]),
        ep(
            Method::GET,
            "/api/v2/resource-servers".into(),
            None,
            &["read:resource_servers"],
        ),
        ep(
            Method::POST,
            "/api/v2/resource-servers".into(),
            Some(json!({"identifier": "urn:x"})),
            &["create:resource_servers"],
        ),
        ep(Method::GET, rsp.clone(), None, &["read:resource_servers"]),
        ep(
            Method::PATCH,
            rsp.clone(),
            Some(json!({"name": "y"})),
            &["update:resource_servers"],
        ),
        ep(Method::DELETE, rsp, None, &["delete:resource_servers"]),
        ep(
            Method::GET,
            "/api/v2/client-grants".into(),
            None,
            &["read:client_grants"],
        ),
        ep(
            Method::POST,
            "/api/v2/client-grants".into(),
            Some(json!({"client_id": client, "audience": API, "scope": []})),
            &["create:client_grants"],
        ),
        ep(Method::GET, gp.clone(), None, &["read:client_grants"]),
        ep(
            Method::PATCH,
            gp.clone(),
            Some(json!({"scope": []})),
            &["update:client_grants"],
        ),
        ep(Method::DELETE, gp.clone(), None, &["delete:client_grants"]),
        ep(
            Method::GET,
            format!("{gp}/organizations"),
            None,
            &["read:organization_client_grants"],
        ),
        ep(
            Method::GET,
            "/api/v2/organizations".into(),
            None,
            &["read:organizations"],
        ),
        ep(
            Method::POST,
            "/api/v2/organizations".into(),
            Some(json!({"name": "scoped"})),
            &["create:organizations"],
        ),
        ep(Method::GET, org.to_string(), None, &["read:organizations"]),
        ep(
            Method::GET,
            "/api/v2/organizations/name/no-such-org".into(),
            None,
            &["read:organizations"],
        ),
        ep(
            Method::PATCH,
            org.to_string(),
            Some(json!({"display_name": "x"})),
            &["update:organizations"],
        ),
        ep(
            Method::DELETE,
            org.to_string(),
            None,
            &["delete:organizations"],
        ),
        ep(
            Method::GET,
            format!("{org}/client-grants"),
            None,
            &["read:organization_client_grants"],
        ),
        ep(
            Method::POST,
            format!("{org}/client-grants"),
            Some(json!({"grant_id": grant})),
            &["create:organization_client_grants"],
        ),
        ep(
            Method::DELETE,
            format!("{org}/client-grants/{grant}"),
            None,
            &["delete:organization_client_grants"],
        ),
        ep(
            Method::GET,
            "/api/v2/keys/signing".into(),
            None,
            &["read:signing_keys"],
        ),
        ep(
            Method::GET,
            format!("/api/v2/keys/signing/{kid}"),
            None,
            &["read:signing_keys"],
        ),
        ep(
            Method::POST,
            "/api/v2/keys/signing/rotate".into(),
            None,
            &["create:signing_keys", "update:signing_keys"],
        ),
        ep(
            Method::PUT,
            format!("/api/v2/keys/signing/{kid}/revoke"),
            None,
            &["update:signing_keys"],
        ),
    ]
}

struct World {
    client: String,
    credential: String,
    rs: String,
    grant: String,
    kid: String,
}

async fn world(app: &TestApp) -> World {
    let rs = app.create_api(API, &["read"]).await;
    let c = app.create_m2m_client("target").await;
    let client = c["client_id"].as_str().unwrap().to_string();
    let cred = app
        .credential_ok(
            &client,
            json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=t"}),
        )
        .await;
    let grant = app.grant(&client, API, &["read"]).await;
    let (header, _) = decode_jwt(&app.admin_token().await);
    World {
        client,
        credential: cred["id"].as_str().unwrap().to_string(),
        rs: rs["id"].as_str().unwrap().to_string(),
        grant: grant["id"].as_str().unwrap().to_string(),
        kid: header["kid"].as_str().unwrap().to_string(),
    }
}

async fn send(app: &TestApp, token: Option<&str>, e: &Endpoint) -> Response {
    let mut req = app.http.request(e.method.clone(), app.url(&e.path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = &e.body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_endpoint_refuses_a_token_without_its_scope() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    // Valid management tokens, each with one scope; each endpoint gets one that does not
    // fit it.
    let signing = app.token_with_scopes(&["create:signing_keys"]).await;
    let reading = app.token_with_scopes(&["read:resource_servers"]).await;
    let before = app.everything().await;
    for e in endpoints(&w.client, &w.credential, &w.rs, &w.grant, &w.kid) {
        let token = if e.scopes.contains(&"create:signing_keys") {
            &reading
        } else {
            &signing
        };
        let r = send(&app, Some(token), &e).await;
        assert_eq!(r.status().as_u16(), 403, "{} {}", e.method, e.path);
        let err = assert_error(r, 403, Some("insufficient_scope")).await;
        assert_eq!(
            err["message"],
            format!(
                "Insufficient scope, expected any of: {}",
                e.scopes.join(",")
            ),
            "{} {}",
            e.method,
            e.path
        );
        assert_eq!(err["error"], "Forbidden");
    }
    assert_eq!(app.everything().await, before);
}

#[tokio::test]
async fn token_with_no_scope_at_all_is_403_everywhere() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let token = app.token_with_scopes(&[]).await;
    assert!(decode_jwt(&token).1.get("scope").is_none());
    for e in endpoints(&w.client, &w.credential, &w.rs, &w.grant, &w.kid) {
        let r = send(&app, Some(&token), &e).await;
        assert_eq!(r.status().as_u16(), 403, "{} {}", e.method, e.path);
        assert_error(r, 403, Some("insufficient_scope")).await;
    }
}

#[tokio::test]
async fn each_listed_scope_alone_admits_the_request() {
    let app = TestApp::spawn().await;
    // Aim at things that do not exist, so that admitted requests change nothing.
    let missing = endpoints(
        "NoSuchClient00000000000000000000",
        "cred_1111111111111111111111",
        "0123456789abcdef01234567",
        "cgr_0000000000000000",
        "no-such-kid",
    );
    let mut tokens = std::collections::HashMap::new();
    // Rotating is left out: it would retire the key that signed the earlier tokens.
    for e in missing.iter().filter(|e| !e.path.ends_with("/rotate")) {
        for scope in e.scopes {
            if !tokens.contains_key(scope) {
                tokens.insert(*scope, app.token_with_scopes(&[scope]).await);
            }
            let mut e2 = Endpoint {
                method: e.method.clone(),
                path: e.path.clone(),
                body: e.body.clone(),
                scopes: e.scopes,
            };
            // Creates get a body that fails validation after the scope check.
            if e.method == Method::POST && e.body.is_some() {
                e2.body = Some(json!({"colour": "red"}));
            }
            let r = send(&app, Some(&tokens[scope]), &e2).await;
            let status = r.status().as_u16();
            assert!(
                ![401, 403].contains(&status),
                "{scope} should admit {} {}: {status} {}",
                e.method,
                e.path,
                r.text().await.unwrap()
            );
        }
    }
}

#[tokio::test]
async fn no_token_is_401_with_www_authenticate_bearer() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    for e in endpoints(&w.client, &w.credential, &w.rs, &w.grant, &w.kid) {
        let r = send(&app, None, &e).await;
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{} {}",
            e.method,
            e.path
        );
        let err = assert_error(r, 401, None).await;
        assert_eq!(err["message"], "Missing authentication");
        assert_eq!(err["error"], "Unauthorized");
    }
}

#[tokio::test]
async fn non_bearer_authorization_is_401() {
    let app = TestApp::spawn().await;
    for header in [
        format!(
            "Basic {}",
            b64url(format!("{ADMIN_ID}:{ADMIN_SECRET}").as_bytes())
        ),
        "Bearer".to_string(),
        "Bearer    ".to_string(),
        "Token abc".to_string(),
    ] {
        let r = app
            .http
            .get(app.url("/api/v2/clients"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{header}");
        assert!(r.headers().get("www-authenticate").is_some());
        assert_error(r, 401, None).await;
    }
}

async fn assert_invalid_token(app: &TestApp, token: &str, message: &str) {
    let r = app.call(token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    let err = assert_error(r, 401, Some("invalid_token")).await;
    assert_eq!(err["message"], message, "token {token}");
}

#[tokio::test]
async fn garbage_tokens_are_401_invalid_token() {
    let app = TestApp::spawn().await;
    let real = app.admin_token().await;
    let (h, p, s) = {
        let parts: Vec<&str> = real.split('.').collect();
        (
            parts[0].to_string(),
            parts[1].to_string(),
            parts[2].to_string(),
        )
    };
    let mut claims: Value = serde_json::from_slice(&b64url_decode(&p)).unwrap();
    claims["scope"] = json!("read:clients delete:clients and:more");
    let tampered_payload = b64url(claims.to_string().as_bytes());
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let mut flipped_sig = b64url_decode(&s);
    flipped_sig[0] ^= 1;
    for token in [
        "garbage".to_string(),
        "a.b.c".to_string(),
        format!("{h}.{p}"),
        format!("{h}.{tampered_payload}.{s}"),
        format!("{none_header}.{p}."),
        format!("{h}.{p}.{}", b64url(&flipped_sig)),
        format!("{h}.{p}.{s}.extra"),
    ] {
        assert_invalid_token(&app, &token, "Invalid token").await;
    }
}

#[tokio::test]
async fn token_signed_by_an_unknown_key_is_401() {
    let app = TestApp::spawn().await;
    let real = app.admin_token().await;
    let (header, claims) = decode_jwt(&real);
    let (private, _) = rsa_key(2048);
    let (_, der) = pem_der(&private);
    let kp = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let forged = format!("{signing_input}.{}", b64url(&sig));
    assert_invalid_token(&app, &forged, "Invalid token").await;
}

#[tokio::test]
async fn token_for_another_audience_is_401_bad_audience() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let c = app.create_m2m_client("svc").await;
    let id = c["client_id"].as_str().unwrap();
    app.grant(id, API, &["read"]).await;
    let token = app
        .token_for(id, c["client_secret"].as_str().unwrap(), API)
        .await;
    assert_invalid_token(&app, &token, "Bad audience").await;
}

/// Signs claims with the server's own current key.
fn mint(app: &TestApp, claims: &Value) -> String {
    app.clavis.model.keys().current.sign_jwt(claims).unwrap()
}

#[tokio::test]
async fn expired_token_is_401_expired_token() {
    let app = TestApp::spawn().await;
    let (_, mut claims) = decode_jwt(&app.admin_token().await);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    assert_invalid_token(&app, &mint(&app, &claims), "Expired token").await;
    // The same claims with a future exp pass: the check is on exp.
    claims["exp"] = json!(now + 3600);
    let r = app
        .call(&mint(&app, &claims), Method::GET, "/api/v2/clients", None)
        .await;
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn token_from_another_issuer_is_401() {
    let app = TestApp::spawn().await;
    let (_, mut claims) = decode_jwt(&app.admin_token().await);
    claims["iss"] = json!("https://evil.example.com/");
    assert_invalid_token(&app, &mint(&app, &claims), "Invalid token").await;
}

#[tokio::test]
async fn rotating_signing_keys_admits_create_or_update_signing_keys() {
    for scope in ["create:signing_keys", "update:signing_keys"] {
        let app = TestApp::spawn().await;
        let token = app.token_with_scopes(&[scope]).await;
        let r = app
            .call(&token, Method::POST, "/api/v2/keys/signing/rotate", None)
            .await;
        assert_eq!(r.status().as_u16(), 201, "{scope}");
    }
}

/// Every management scope but `without`.
fn all_scopes_but(without: &[&str]) -> Vec<&'static str> {
    clavis::domain::scopes::MANAGEMENT_SCOPES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| !without.contains(s))
        .collect()
}

/// A body that sets `field` (and parses), for each write table's rows; `None` for the
/// operation's other fields.
fn sample_body(operation: &str, field: Option<&str>) -> Value {
    match (operation, field) {
        ("post_clients", Some("client_authentication_methods")) => json!({
            "name": "with-credentials",
            "client_authentication_methods": {"tls_client_auth": {"credentials": [
                {"credential_type": "cert_subject_dn", "subject_dn": "CN=inline"}
            ]}},
        }),
        ("post_clients", None) => json!({"name": "plain"}),
        ("patch_clients_by_id", Some("client_secret")) => {
            json!({"client_secret": "chosen-by-the-caller-0123456789"})
        }
        ("patch_clients_by_id", Some("encryption_key")) => {
            json!({"encryption_key": {"pub": "x", "cert": "y"}})
        }
        ("patch_clients_by_id", Some("client_authentication_methods")) => {
            json!({"client_authentication_methods": null})
        }
        ("patch_clients_by_id", Some("token_endpoint_auth_method")) => {
            json!({"token_endpoint_auth_method": "client_secret_basic"})
        }
        ("patch_clients_by_id", None) => json!({"name": "renamed"}),
        other => panic!("no sample body for {other:?}: add one with the table row"),
    }
}

/// SECURITY.md's field table, row by row: a token holding every scope but the row's is
/// refused (403 naming the row's scopes, nothing written) or, for reads, not shown the
/// field; a token with one of the row's scopes is admitted.
#[tokio::test]
async fn each_field_scope_row_refuses_a_token_lacking_exactly_its_scopes() {
    use clavis::domain::scopes::fields;
    // Many calls as the admin: no rate limit.
    let app = TestApp::spawn_with(|c| c.http.per_client.per_second = 0).await;
    let target = app.create_m2m_client("target").await;
    let id = target["client_id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/clients/{id}");
    // Read rows: every field is set on one of these two (methods exclude a secret).
    let with_methods = app
        .admin_expect(
            Method::POST,
            "/api/v2/clients",
            Some(json!({
                "name": "credentials", "description": "uses a certificate",
                "client_authentication_methods": {"tls_client_auth": {"credentials": [
                    {"credential_type": "cert_subject_dn", "subject_dn": "CN=reader"}
                ]}},
            })),
            201,
        )
        .await;
    let methods_path = format!(
        "/api/v2/clients/{}",
        with_methods["client_id"].as_str().unwrap()
    );
    app.admin_expect(
        Method::PATCH,
        &path,
        Some(json!({"description": "uses a secret"})),
        200,
    )
    .await;
    for (operation, table) in fields::ALL {
        let rows = table
            .fields
            .iter()
            .map(|(f, s)| (Some(*f), *s))
            .chain([(None, table.others)]);
        for (field, scopes) in rows {
            let lacking = app.token_with_scopes(&all_scopes_but(scopes)).await;
            let mut admitted_scopes = vec![scopes[0]];
            if *operation == "post_clients" && scopes[0] != "create:clients" {
                admitted_scopes.push("create:clients");
            }
            let admitted = app.token_with_scopes(&admitted_scopes).await;
            let what = format!("{operation} {field:?}");
            if *operation == "get_clients_by_id" {
                // Reads: the field is there for one of its scopes, and not without them.
                let field = field.unwrap_or("grant_types");
                let at = if field == "client_authentication_methods" {
                    &methods_path
                } else {
                    &path
                };
                for (token, shown) in [(&admitted, true), (&lacking, false)] {
                    let r = app.call(token, Method::GET, at, None).await;
                    if !shown && r.status() == 403 {
                        continue; // the row's scopes are the operation's own
                    }
                    let (status, body) = status_json(r).await;
                    assert_eq!(status, 200, "{what}: {body}");
                    assert_eq!(body.get(field).is_some(), shown, "{what}: {body}");
                }
                continue;
            }
            let (method, at) = if *operation == "post_clients" {
                (Method::POST, "/api/v2/clients")
            } else {
                (Method::PATCH, path.as_str())
            };
            let body = sample_body(operation, field);
            let before = app.everything().await;
            let r = app
                .call(&lacking, method.clone(), at, Some(body.clone()))
                .await;
            let err = assert_error(r, 403, Some("insufficient_scope")).await;
            assert_eq!(
                err["message"],
                format!("Insufficient scope, expected any of: {}", scopes.join(",")),
                "{what}"
            );
            assert_eq!(app.everything().await, before, "{what}: nothing written");
            let r = app.call(&admitted, method, at, Some(body)).await;
            let (status, body) = status_json(r).await;
            assert!(status == 200 || status == 201, "{what}: {status} {body}");
        }
    }
}

/// The escalation of the security report: `update:clients` alone could set the admin's
/// secret and then take every Management scope with it.
#[tokio::test]
async fn update_clients_alone_cannot_set_the_admins_secret() {
    let app = TestApp::spawn().await;
    let path = format!("/api/v2/clients/{ADMIN_ID}");
    let chosen = "attacker-chosen-secret-0123456789";
    for scopes in [
        &["update:clients"][..],
        &["update:client_credentials"],
        &["update:clients", "update:client_credentials"],
    ] {
        let token = app.token_with_scopes(scopes).await;
        let r = app
            .call(
                &token,
                Method::PATCH,
                &path,
                Some(json!({"client_secret": chosen})),
            )
            .await;
        let err = assert_error(r, 403, Some("insufficient_scope")).await;
        assert_eq!(
            err["message"], "Insufficient scope, expected any of: update:client_keys",
            "{scopes:?}"
        );
    }
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", chosen),
            ("audience", &app.management_audience()),
        ])
        .await;
    assert_eq!(r.status(), 401);
    // The admin's own secret still works.
    app.token_for(ADMIN_ID, ADMIN_SECRET, &app.management_audience())
        .await;
}

/// A Management token is honoured only while its client and its grant still would issue
/// it: deleting either refuses it at once, narrowing the grant takes the scopes away.
#[tokio::test]
async fn a_management_token_dies_with_its_client_or_its_grant() {
    let app = TestApp::spawn().await;
    let audience = app.management_audience();
    let mint_for = |name: &'static str| {
        let app = &app;
        let audience = audience.clone();
        async move {
            let c = app.create_m2m_client(name).await;
            let id = c["client_id"].as_str().unwrap().to_string();
            let g = app
                .grant(&id, &audience, &["read:clients", "read:resource_servers"])
                .await;
            let token = app
                .token_for(&id, c["client_secret"].as_str().unwrap(), &audience)
                .await;
            let r = app.call(&token, Method::GET, "/api/v2/clients", None).await;
            assert_eq!(r.status().as_u16(), 200);
            (id, g["id"].as_str().unwrap().to_string(), token)
        }
    };

    let (id, _, token) = mint_for("deleted").await;
    app.admin(Method::DELETE, &format!("/api/v2/clients/{id}"), None)
        .await;
    assert_invalid_token(&app, &token, "Invalid token").await;

    let (_, grant, token) = mint_for("ungranted").await;
    app.admin(
        Method::DELETE,
        &format!("/api/v2/client-grants/{grant}"),
        None,
    )
    .await;
    assert_invalid_token(&app, &token, "Invalid token").await;

    let (id, grant, token) = mint_for("narrowed").await;
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/client-grants/{grant}"),
        Some(json!({"scope": ["read:resource_servers"]})),
        200,
    )
    .await;
    let r = app.call(&token, Method::GET, "/api/v2/clients", None).await;
    assert_error(r, 403, Some("insufficient_scope")).await;
    let r = app
        .call(&token, Method::GET, "/api/v2/resource-servers", None)
        .await;
    assert_eq!(r.status().as_u16(), 200);

    // Switching client_credentials off refuses it too.
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/clients/{id}"),
        Some(json!({"grant_types": ["authorization_code"]})),
        200,
    )
    .await;
    assert_invalid_token(&app, &token, "Invalid token").await;
}

#[tokio::test]
async fn a_management_token_before_its_nbf_is_401() {
    let app = TestApp::spawn().await;
    let (_, mut claims) = decode_jwt(&app.admin_token().await);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    claims["nbf"] = json!(now + 600);
    assert_invalid_token(&app, &mint(&app, &claims), "Invalid token").await;
    // Within the clock skew it is accepted.
    claims["nbf"] = json!(now + 5);
    let r = app
        .call(&mint(&app, &claims), Method::GET, "/api/v2/clients", None)
        .await;
    assert_eq!(r.status().as_u16(), 200);
}

/// The scopes the served document declares for each operation are the ones enforced: every
/// operation it describes (and the route answering as one, `GET /keys/signing/rotate`)
/// refuses a token holding every other Management scope, naming the declared ones, before
/// reading the request; a token with the first declared scope gets past the check.
#[tokio::test]
async fn every_documented_operation_enforces_the_scopes_it_declares() {
    let app = TestApp::spawn_with(|c| c.http.per_client.per_second = 0).await;
    let doc: Value = app.get_ok("/api/v2/openapi.json").await;
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v2/") || path == "/api/v2/openapi.json" {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            operations.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    let alias = doc["paths"]["/api/v2/keys/signing/{kid}"]["get"].clone();
    operations.push(("GET".into(), "/api/v2/keys/signing/rotate".into(), alias));
    let declared = |op: &Value| -> Vec<String> {
        op["security"][1]["oAuth2ClientCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    // Every token first (each one is a client and a grant), then nothing may be written.
    let mut tokens = std::collections::HashMap::new();
    for (_, _, op) in &operations {
        let declared = declared(op);
        let declared: Vec<&str> = declared.iter().map(String::as_str).collect();
        for scopes in [all_scopes_but(&declared), vec![declared[0]]] {
            if let std::collections::hash_map::Entry::Vacant(slot) = tokens.entry(scopes.join(" "))
            {
                slot.insert(app.token_with_scopes(&scopes).await);
            }
        }
    }
    let before = app.everything().await;
    for (method, path, op) in &operations {
        let declared = declared(op);
        let declared: Vec<&str> = declared.iter().map(String::as_str).collect();
        let concrete = crate::helpers::naming_nothing(path);
        let method: Method = method.parse().unwrap();
        // A body the operation's schema refuses: the scope check answers first.
        let body = Some(json!({"x_not_in_the_schema": 1}));
        let lacking = &tokens[&all_scopes_but(&declared).join(" ")];
        let r = app
            .call(lacking, method.clone(), &concrete, body.clone())
            .await;
        let err = assert_error(r, 403, Some("insufficient_scope")).await;
        assert_eq!(
            err["message"],
            format!(
                "Insufficient scope, expected any of: {}",
                declared.join(",")
            ),
            "{method} {path}"
        );
        let first = &tokens[declared[0]];
        let r = app.call(first, method.clone(), &concrete, body).await;
        assert_ne!(r.status().as_u16(), 403, "{method} {path}");
    }
    assert!(operations.len() >= 45, "{} operations", operations.len());
    assert_eq!(app.everything().await, before);
}

//! Custom claims: a grant's `token_claims` (declarative, from the read model) and the token
//! hook (a real HTTPS receiver in this process, with its own CA): claims added, each denial
//! code, timeouts fail-closed and fail-open, a hook that is down, restricted claims.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "urn:claims:orders";

/// A client with a grant on [`API`]: (client_id, secret, grant id).
async fn client_with_grant(app: &TestApp, claims: Option<Value>) -> (String, String, String) {
    let client = app.create_m2m_client("claims worker").await;
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    let mut body = json!({"client_id": id, "audience": API, "scope": ["read"]});
    if let Some(c) = claims {
        body["token_claims"] = c;
    }
    let grant = app
        .admin_expect(Method::POST, "/api/v2/client-grants", Some(body), 201)
        .await;
    (id, secret, grant["id"].as_str().unwrap().to_string())
}

async fn token(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.token_form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("audience", API),
        ("scope", "read"),
    ])
    .await
}

async fn claims_of(app: &TestApp, id: &str, secret: &str) -> Value {
    let r = token(app, id, secret).await;
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    jwt_payload(body["access_token"].as_str().unwrap())
}

#[tokio::test]
async fn declared_claims_are_in_every_token_and_follow_updates() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let declared =
        json!({"tier": "gold", "https://example.com/limits": {"rps": 10, "zones": ["eu", "us"]}});
    let (id, secret, grant) = client_with_grant(&app, Some(declared.clone())).await;
    // Returned as stored, on create and on read.
    let got = app
        .get_ok(&format!("/api/v2/client-grants?client_id={id}"))
        .await;
    assert_eq!(got[0]["token_claims"], declared);

    let claims = claims_of(&app, &id, &secret).await;
    assert_eq!(claims["tier"], "gold");
    assert_eq!(
        claims["https://example.com/limits"]["zones"],
        json!(["eu", "us"])
    );
    assert_eq!(claims["sub"], format!("{id}@clients"));
    assert_eq!(claims["scope"], "read");

    // An update reaches the next token.
    let body = app
        .admin_expect(
            Method::PATCH,
            &format!("/api/v2/client-grants/{grant}"),
            Some(json!({"token_claims": {"tier": "silver"}})),
            200,
        )
        .await;
    assert_eq!(body["token_claims"], json!({"tier": "silver"}));
    let claims = claims_of(&app, &id, &secret).await;
    assert_eq!(claims["tier"], "silver");
    assert!(
        claims.get("https://example.com/limits").is_none(),
        "{claims}"
    );

    // Other PATCHes leave them alone; null removes them.
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/client-grants/{grant}"),
        Some(json!({"scope": ["read"]})),
        200,
    )
    .await;
    assert_eq!(claims_of(&app, &id, &secret).await["tier"], "silver");
    let body = app
        .admin_expect(
            Method::PATCH,
            &format!("/api/v2/client-grants/{grant}"),
            Some(json!({"token_claims": null})),
            200,
        )
        .await;
    assert!(body.get("token_claims").is_none(), "{body}");
    assert!(claims_of(&app, &id, &secret).await.get("tier").is_none());

    // A restart rebuilds the model from the store: the claims survive.
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/client-grants/{grant}"),
        Some(json!({"token_claims": {"tier": "bronze"}})),
        200,
    )
    .await;
    let app = app.restart().await;
    assert_eq!(claims_of(&app, &id, &secret).await["tier"], "bronze");
}

#[tokio::test]
async fn restricted_and_oversized_claims_are_refused_at_configuration() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let client = app.create_m2m_client("refused").await;
    let cid = client["client_id"].as_str().unwrap().to_string();
    let (_, _, grant) = client_with_grant(&app, None).await;
    let big = "x".repeat(17 * 1024);
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("c{i}"), json!(i))).collect();
    let cases = [
        (json!({"sub": "someone-else"}), "sub"),
        (json!({"aud": "x"}), "aud"),
        (json!({"scope": "admin"}), "scope"),
        (json!({"org_id": "org_x"}), "org_id"),
        (json!({"permissions": ["all"]}), "permissions"),
        (json!({"x5t#S256": "abc"}), "x5t#S256"),
        (json!({"ok": 1, "gty": "password"}), "gty"),
        (json!({"": 1}), "empty"),
        (json!({"big": big}), "bytes"),
        (Value::Object(many), "at most 20"),
        (json!(["tier"]), "Expected type object"),
        (json!("tier"), "Expected type object"),
    ];
    for (claims, named) in cases {
        for (method, path, body) in [
            (
                Method::POST,
                "/api/v2/client-grants".to_string(),
                json!({"client_id": cid, "audience": API, "scope": [], "token_claims": claims}),
            ),
            (
                Method::PATCH,
                format!("/api/v2/client-grants/{grant}"),
                json!({"token_claims": claims}),
            ),
        ] {
            let (status, answer) = app.admin_json(method.clone(), &path, Some(body)).await;
            assert_eq!(status, 400, "{method} {claims}: {answer}");
            let message = answer["message"].as_str().unwrap();
            assert!(
                message.contains("token_claims") && message.contains(named),
                "{method}: {answer}"
            );
        }
    }
    // Nothing was written.
    let grants = app
        .get_ok(&format!("/api/v2/client-grants?audience={}", enc(API)))
        .await;
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");
    assert!(grants[0].get("token_claims").is_none());

    // The Management API takes only namespaced claims (as Auth0 adds no others to its tokens).
    let mgmt = app.management_audience();
    let answer = app
        .admin_expect(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": cid, "audience": mgmt, "scope": ["read:clients"], "token_claims": {"tier": "gold"}})),
            400,
        )
        .await;
    assert!(answer["message"].as_str().unwrap().contains("namespaced"));
    app
        .admin_expect(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": cid, "audience": mgmt, "scope": ["read:clients"], "token_claims": {"https://example.com/tier": "gold"}})),
            201,
        )
        .await;
    let secret = client["client_secret"].as_str().unwrap();
    let management = app.token_for(&cid, secret, &mgmt).await;
    assert_eq!(jwt_payload(&management)["https://example.com/tier"], "gold");
    // The token still works on the Management API.
    let r = app
        .call(&management, Method::GET, "/api/v2/clients", None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---- the token hook -------------------------------------------------------------------

/// What the receiver answers.
#[derive(Clone)]
enum Mode {
    /// 200 with this body.
    Answer(Value),
    /// Sleeps, then 200 `{"claims": {"late": true}}`.
    Slow(Duration),
    /// This status, empty body.
    Status(u16),
}

/// (Authorization header, body) of one call.
type Call = (Option<String>, Value);

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    /// (Authorization header, body) of each call.
    calls: Arc<Mutex<Vec<Call>>>,
    handle: axum_server::Handle<SocketAddr>,
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The calls about `client_id` (the admin's Management API tokens go through the hook
    /// too).
    fn calls_for(&self, client_id: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, event)| event["client"]["client_id"] == client_id)
            .cloned()
            .collect()
    }

    /// Stops listening: connections are refused from then on.
    async fn stop(&self) {
        self.handle.shutdown();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    r.calls
        .lock()
        .unwrap()
        .push((auth, serde_json::from_str(&body).unwrap_or(Value::Null)));
    let mode = r.mode.lock().unwrap().clone();
    match mode {
        Mode::Answer(v) => axum::Json(v).into_response(),
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            axum::Json(json!({"claims": {"late": true}})).into_response()
        }
        Mode::Status(s) => AxumStatus::from_u16(s).unwrap().into_response(),
    }
}

const HOOK_SECRET: &str = "hook-secret-0123456789abcdef";

/// An HTTPS receiver on 127.0.0.1 with a certificate of a CA of its own: (receiver, URL,
/// CA file, its temporary directory).
async fn start_receiver() -> (Receiver, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tls = clavis::tls::ensure_local_tls(dir.path(), &["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    let config = clavis::tls::server_config(&tls.server_cert, &tls.server_key).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let receiver = Receiver {
        mode: Arc::new(Mutex::new(Mode::Answer(json!({})))),
        calls: Arc::default(),
        handle: axum_server::Handle::new(),
    };
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(config),
    )
    .unwrap()
    .handle(receiver.handle.clone());
    tokio::spawn(async move {
        let _ = server.serve(router.into_make_service()).await;
    });
    (
        receiver,
        format!("https://localhost:{}/hook", address.port()),
        tls.ca_cert,
        dir,
    )
}

fn hook_options(url: &str, ca: Option<&std::path::Path>) -> clavis::token_hook::TokenHookOptions {
    clavis::token_hook::TokenHookOptions {
        url: url::Url::parse(url).unwrap(),
        secret: HOOK_SECRET.into(),
        timeout: Duration::from_millis(1500),
        fail_open: false,
        ca_file: ca.map(std::path::Path::to_path_buf),
        max_connections: 4,
    }
}

/// The newest `feccft` event's description and details.
async fn last_failure(app: &TestApp) -> Value {
    app.clavis.audit.flush().await;
    let events = app
        .get_ok("/api/v2/logs?q=type:feccft&sort=date:-1&per_page=1")
        .await;
    events[0].clone()
}

#[tokio::test]
async fn the_hook_sees_the_exchange_and_adds_claims() {
    let (receiver, url, ca, _dir) = start_receiver().await;
    let app = TestApp::spawn_with(|c| c.token_hook = Some(hook_options(&url, Some(&ca)))).await;
    app.create_api(API, &["read", "write"]).await;
    let (id, secret, _) =
        client_with_grant(&app, Some(json!({"tier": "gold", "region": "eu"}))).await;
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/clients/{id}"),
        Some(json!({"client_metadata": {"customer": "acme"}})),
        200,
    )
    .await;
    receiver.set(Mode::Answer(json!({"claims": {
        "https://example.com/customer": "acme",
        "tier": "platinum",
        // Restricted: dropped, as Auth0 drops them, and the exchange goes on.
        "sub": "someone-else",
        "scope": "admin",
        "org_id": "org_forged",
    }})));
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("user-agent", "claims-test/1.0")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("audience", API),
            ("scope", "read admin"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["https://example.com/customer"], "acme");
    assert_eq!(
        claims["tier"], "platinum",
        "the hook's claim overrides the grant's"
    );
    assert_eq!(claims["region"], "eu");
    assert_eq!(claims["sub"], format!("{id}@clients"));
    assert_eq!(claims["scope"], "read");
    assert!(claims.get("org_id").is_none());

    let calls = receiver.calls_for(&id);
    assert_eq!(calls.len(), 1);
    let (auth, event) = &calls[0];
    assert_eq!(
        auth.as_deref(),
        Some(format!("Bearer {HOOK_SECRET}").as_str())
    );
    assert_eq!(event["client"]["client_id"], id.as_str());
    assert_eq!(event["client"]["name"], "claims worker");
    assert_eq!(event["client"]["metadata"], json!({"customer": "acme"}));
    assert_eq!(event["resource_server"]["identifier"], API);
    assert_eq!(event["request"]["ip"], "127.0.0.1");
    assert_eq!(event["request"]["user_agent"], "claims-test/1.0");
    assert_eq!(event["request"]["method"], "POST");
    assert_eq!(event["request"]["hostname"], "127.0.0.1");
    assert_eq!(event["request"]["body"]["audience"], API);
    assert!(
        event["request"]["body"].get("client_secret").is_none(),
        "{event}"
    );
    assert_eq!(
        event["transaction"]["requested_scopes"],
        json!(["read", "admin"])
    );
    assert_eq!(event["accessToken"]["scope"], json!(["read"]));
    assert_eq!(
        event["accessToken"]["customClaims"],
        json!({"tier": "gold", "region": "eu"})
    );
    assert!(event.get("organization").is_none());
    // No secret anywhere in the event.
    assert!(!event.to_string().contains(&secret));

    // A refused exchange never reaches the hook.
    let r = token(&app, &id, "wrong-secret").await;
    assert_eq!(r.status(), 401);
    assert_eq!(receiver.calls_for(&id).len(), 1);
}

#[tokio::test]
async fn each_denial_code_is_the_token_endpoints_answer_and_a_feccft() {
    let (receiver, url, ca, _dir) = start_receiver().await;
    let app = TestApp::spawn_with(|c| c.token_hook = Some(hook_options(&url, Some(&ca)))).await;
    app.create_api(API, &["read"]).await;
    let (id, secret, _) = client_with_grant(&app, None).await;
    for (code, status) in [
        ("invalid_scope", 400),
        ("invalid_request", 400),
        ("server_error", 500),
    ] {
        let reason = format!("not today ({code})");
        receiver.set(Mode::Answer(
            json!({"deny": {"code": code, "reason": reason}}),
        ));
        let r = token(&app, &id, &secret).await;
        let (got, body) = status_json(r).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body, json!({"error": code, "error_description": reason}));
        let event = last_failure(&app).await;
        assert_eq!(event["client_id"], id.as_str());
        assert_eq!(event["details"]["error"], code);
        let description = event["description"].as_str().unwrap();
        assert!(
            description.contains("token hook denied") && description.contains(&reason),
            "{event}"
        );
    }
    // A denial without a reason, or with a code of its own, is still a denial.
    receiver.set(Mode::Answer(json!({"deny": {"code": "forbidden"}})));
    let (got, body) = status_json(token(&app, &id, &secret).await).await;
    assert_eq!(
        (got, body["error"].as_str()),
        (500, Some("server_error")),
        "{body}"
    );
}

#[tokio::test]
async fn failures_refuse_the_exchange_by_default() {
    let (receiver, url, ca, _dir) = start_receiver().await;
    let app = TestApp::spawn_with(|c| c.token_hook = Some(hook_options(&url, Some(&ca)))).await;
    app.create_api(API, &["read"]).await;
    let (id, secret, _) = client_with_grant(&app, Some(json!({"tier": "gold"}))).await;
    let cases = [
        (Mode::Slow(Duration::from_millis(3000)), "timed out"),
        (Mode::Status(500), "HTTP 500"),
        (Mode::Answer(json!({"claims": "tier"})), "not an object"),
        (Mode::Answer(json!(["claims"])), "not a JSON object"),
    ];
    for (mode, why) in cases {
        receiver.set(mode);
        let started = std::time::Instant::now();
        let (status, body) = status_json(token(&app, &id, &secret).await).await;
        assert_eq!(status, 500, "{why}: {body}");
        assert_eq!(body["error"], "server_error");
        assert!(started.elapsed() < Duration::from_millis(2800), "{why}");
        let event = last_failure(&app).await;
        let description = event["description"].as_str().unwrap();
        assert!(description.contains(why), "{why}: {event}");
        assert!(!description.contains(HOOK_SECRET));
    }
    // A hook whose certificate this server does not trust is a failure too (no CA file:
    // the system's roots do not know the receiver's CA). Fail-open here, or not even the
    // admin would get a Management API token.
    let untrusted = TestApp::spawn_with(|c| {
        let mut options = hook_options(&url, None);
        options.fail_open = true;
        c.token_hook = Some(options);
    })
    .await;
    untrusted.create_api(API, &["read"]).await;
    let (id, secret, _) = client_with_grant(&untrusted, Some(json!({"tier": "gold"}))).await;
    receiver.set(Mode::Answer(
        json!({"claims": {"https://example.com/hooked": true}}),
    ));
    let claims = claims_of(&untrusted, &id, &secret).await;
    assert_eq!(claims["tier"], "gold");
    assert!(
        claims.get("https://example.com/hooked").is_none(),
        "{claims}"
    );
    assert!(
        receiver.calls_for(&id).is_empty(),
        "no request reached the receiver"
    );
}

#[tokio::test]
async fn fail_open_issues_the_token_with_the_grants_claims_only() {
    let (receiver, url, ca, _dir) = start_receiver().await;
    let app = TestApp::spawn_with(|c| {
        let mut options = hook_options(&url, Some(&ca));
        options.fail_open = true;
        options.timeout = Duration::from_millis(500);
        c.token_hook = Some(options);
    })
    .await;
    app.create_api(API, &["read"]).await;
    let (id, secret, _) = client_with_grant(&app, Some(json!({"tier": "gold"}))).await;
    receiver.set(Mode::Slow(Duration::from_millis(1500)));
    let claims = claims_of(&app, &id, &secret).await;
    assert_eq!(claims["tier"], "gold");
    assert!(claims.get("late").is_none());
    // A denial is not a failure: it refuses even with fail-open.
    receiver.set(Mode::Answer(
        json!({"deny": {"code": "invalid_request", "reason": "no"}}),
    ));
    let (status, _) = status_json(token(&app, &id, &secret).await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_hook_that_is_down_refuses_or_passes_as_configured() {
    for fail_open in [false, true] {
        let (receiver, url, ca, _dir) = start_receiver().await;
        let app = TestApp::spawn_with(|c| {
            let mut options = hook_options(&url, Some(&ca));
            options.fail_open = fail_open;
            c.token_hook = Some(options);
        })
        .await;
        app.create_api(API, &["read"]).await;
        let (id, secret, _) = client_with_grant(&app, Some(json!({"tier": "gold"}))).await;
        // The hook goes down: its port refuses connections from now on.
        receiver.stop().await;
        let (status, body) = status_json(token(&app, &id, &secret).await).await;
        if fail_open {
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                jwt_payload(body["access_token"].as_str().unwrap())["tier"],
                "gold"
            );
        } else {
            assert_eq!(status, 500, "{body}");
            let event = last_failure(&app).await;
            assert!(
                event["description"]
                    .as_str()
                    .unwrap()
                    .contains("unreachable"),
                "{event}"
            );
        }
    }
}

#[tokio::test]
async fn the_hook_sees_the_organization_of_the_token() {
    let (receiver, url, ca, _dir) = start_receiver().await;
    let app = TestApp::spawn_with(|c| c.token_hook = Some(hook_options(&url, Some(&ca)))).await;
    app.create_api(API, &["read"]).await;
    let client = app.create_m2m_client("org worker").await;
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    app.admin_expect(
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": id, "audience": API, "scope": ["read"],
                        "organization_usage": "allow", "allow_any_organization": true})),
        201,
    )
    .await;
    let org = app
        .admin_expect(
            Method::POST,
            "/api/v2/organizations",
            Some(json!({"name": "acme", "display_name": "Acme Inc.", "metadata": {"plan": "pro"}})),
            201,
        )
        .await;
    let org_id = org["id"].as_str().unwrap();
    receiver.set(Mode::Answer(
        json!({"claims": {"https://example.com/plan": "pro"}}),
    ));
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("audience", API),
            ("organization", org_id),
        ])
        .await;
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    let claims = jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["org_id"], org_id);
    assert_eq!(claims["https://example.com/plan"], "pro");
    let calls = receiver.calls_for(&id);
    let event = &calls.last().unwrap().1;
    assert_eq!(
        event["organization"],
        json!({"id": org_id, "name": "acme", "display_name": "Acme Inc.", "metadata": {"plan": "pro"}})
    );
    assert_eq!(event["request"]["body"]["organization"], org_id);
}

//! Several `clavis serve` processes on one PostgreSQL database: what one node writes, every
//! node enforces within a second; `jti` replay protection, signing keys and the audit feed
//! are shared; a log stream's events are delivered once though both nodes deliver; and a
//! database outage gives 503s (never 500s or hangs) and heals without restarts.
//!
//! These tests need PostgreSQL: `scripts/test-postgres` runs them (they are `#[ignore]`d in
//! the default run, and fail rather than pass without the cluster).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::keys::{AssertionKey, jti, now};
use common::postgres as pg;
use common::server::Server;
use common::{ADMIN_ID, ADMIN_SECRET, jwt_claims, jwt_header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PUBLIC_URL: &str = "https://clavis.cluster.test/";
const MANAGEMENT: &str = "https://clavis.cluster.test/api/v2/";
const API: &str = "urn:cluster:api";
/// What the issue asks: a write on one node is enforced by every node within this.
const PROPAGATION: Duration = Duration::from_secs(1);

/// One `clavis serve` process on the shared database, with an HTTPS client trusting it.
struct Node {
    name: &'static str,
    server: Server,
    http: reqwest::Client,
}

impl Node {
    /// Starts a node and waits until it is ready. Every node has its own data directory
    /// (TLS) but the same master key and public URL (issuer).
    fn start(name: &'static str, database_url: &str, master_key: &str, extra: &[&str]) -> Self {
        let server = Server::builder()
            .args(&["--database-url", database_url, "--public-url", PUBLIC_URL])
            .args(extra)
            .env("CLAVIS_MASTER_KEY", master_key)
            .env("CLAVIS_LOG", "info,clavis=debug")
            .start()
            .unwrap_or_else(|e| panic!("node {name}: {e}"));
        let http = server.http_client().unwrap();
        Self { name, server, http }
    }

    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.server.domain())
    }

    async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http()
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn admin_token(&self) -> String {
        let r = self
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", ADMIN_ID),
                ("client_secret", ADMIN_SECRET),
                ("audience", MANAGEMENT),
            ])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "admin token from {}", self.name);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// A management call that must answer `status`; returns the body text.
    async fn expect(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> String {
        let r = self.call(token, method.clone(), path, body).await;
        let got = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(got, status, "{method} {path} on {}: {text}", self.name);
        text
    }

    /// A PATCH that must answer 200.
    async fn patch(&self, token: &str, path: &str, body: Value) {
        self.expect(token, Method::PATCH, path, Some(body), 200)
            .await;
    }

    /// A POST that must answer 201.
    async fn post(&self, token: &str, path: &str, body: Value) {
        self.expect(token, Method::POST, path, Some(body), 201)
            .await;
    }

    /// A DELETE that must answer 204.
    async fn delete(&self, token: &str, path: &str) {
        self.expect(token, Method::DELETE, path, None, 204).await;
    }

    /// A `private_key_jwt` token request with a fresh assertion; the status.
    async fn assertion_status(&self, client_id: &str, key: &AssertionKey) -> u16 {
        let assertion = sign(client_id, key);
        self.assertion_token(&assertion).await.status().as_u16()
    }

    async fn assertion_token(&self, assertion: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("audience", API),
        ])
        .await
    }

    async fn jwks(&self) -> String {
        self.http()
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- log of node {} ---\n{}",
                self.name,
                self.server.log_tail()
            );
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn sign(client_id: &str, key: &AssertionKey) -> String {
    let iat = now();
    key.sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &json!({"iss": client_id, "sub": client_id, "aud": PUBLIC_URL, "iat": iat, "exp": iat + 120, "jti": jti()}),
    )
}

fn master_key() -> String {
    clavis_crypto::sealed::MasterKey::generate().to_b64()
}

/// Polls `probe` until it returns `want`; the time it took. Fails after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client authenticating with `private_key_jwt`, granted [`API`]; returns its id, key and
/// credential JSON (as created).
async fn key_client(node: &Node, token: &str) -> (String, AssertionKey, Value) {
    let (client_id, _, _) = m2m_client(node, token, json!({"name": "cluster"}), json!({})).await;
    let key = AssertionKey::new(2048);
    let credential: Value = serde_json::from_str(
        &node
            .expect(
                token,
                Method::POST,
                &format!("/api/v2/clients/{client_id}/credentials"),
                Some(
                    json!({"credential_type": "public_key", "pem": key.public_pem, "alg": "RS256"}),
                ),
                201,
            )
            .await,
    )
    .unwrap();
    node.patch(token, &format!("/api/v2/clients/{client_id}"), json!({
            "client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": credential["id"]}]}},
            "token_endpoint_auth_method": null
        })).await;
    (client_id, key, credential)
}

async fn create_api(node: &Node, token: &str) {
    node.post(
        token,
        "/api/v2/resource-servers",
        json!({"name": "cluster api", "identifier": API, "scopes": [{"value": "read:things"}]}),
    )
    .await;
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn three_nodes_enforce_each_others_writes_within_a_second() {
    let nodes = start_nodes::<3>(&[]);
    runtime().block_on(three_nodes(&nodes));
}

async fn three_nodes(nodes: &[Node; 3]) {
    let [a, b, c] = nodes;

    // A token from one node is good on every node: same keys, same issuer.
    let token = a.admin_token().await;
    b.expect(&token, Method::GET, "/api/v2/clients", None, 200)
        .await;
    create_api(a, &token).await;
    let (client_id, assertion_key, created) = key_client(a, &token).await;
    let credential_id = created["id"].as_str().unwrap().to_string();
    let credential_path = format!("/api/v2/clients/{client_id}/credentials/{credential_id}");

    // The credential reads back identically everywhere (and as created).
    let on_a = a
        .expect(&token, Method::GET, &credential_path, None, 200)
        .await;
    for node in [b, c] {
        assert_eq!(
            node.expect(&token, Method::GET, &credential_path, None, 200)
                .await,
            on_a,
            "credential JSON on {}",
            node.name
        );
    }
    assert_eq!(serde_json::from_str::<Value>(&on_a).unwrap(), created);
    let client_path = format!("/api/v2/clients/{client_id}");
    let client_on_a = a.expect(&token, Method::GET, &client_path, None, 200).await;
    for node in [b, c] {
        assert_eq!(
            node.expect(&token, Method::GET, &client_path, None, 200)
                .await,
            client_on_a
        );
    }

    // Created and attached on A: every node accepts the key.
    let mut latencies = Vec::new();
    for node in [b, c] {
        latencies.push(
            until("key accepted on another node", PROPAGATION, || async {
                node.assertion_status(&client_id, &assertion_key).await == 200
            })
            .await,
        );
    }

    // The seed: expire the key through A; B refuses it within a second.
    a.patch(
        &token,
        &credential_path,
        json!({"expires_at": "2020-01-01T00:00:00.000Z"}),
    )
    .await;
    latencies.push(
        until("B refuses the expired key", PROPAGATION, || async {
            b.assertion_status(&client_id, &assertion_key).await == 401
        })
        .await,
    );
    until("C refuses the expired key", PROPAGATION, || async {
        c.assertion_status(&client_id, &assertion_key).await == 401
    })
    .await;

    // Back to no expiry through B; C accepts it again within a second.
    b.patch(&token, &credential_path, json!({"expires_at": null}))
        .await;
    latencies.push(
        until("C accepts the key again", PROPAGATION, || async {
            c.assertion_status(&client_id, &assertion_key).await == 200
        })
        .await,
    );
    // Everyone agrees by now.
    until("A accepts the key again", PROPAGATION, || async {
        a.assertion_status(&client_id, &assertion_key).await == 200
    })
    .await;

    // One assertion, one token, whichever node it is replayed to.
    let assertion = sign(&client_id, &assertion_key);
    assert_eq!(a.assertion_token(&assertion).await.status(), StatusCode::OK);
    for node in [b, c, a] {
        let r = node.assertion_token(&assertion).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "replay on {}",
            node.name
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }

    // Signing-key rotation on A: B publishes the same keys and signs with the new key.
    let rotated: Value = serde_json::from_str(
        &a.expect(
            &token,
            Method::POST,
            "/api/v2/keys/signing/rotate",
            None,
            201,
        )
        .await,
    )
    .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    let old_kid = jwt_header(&token)["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    let jwks_a = a.jwks().await;
    latencies.push(
        until("B publishes the rotated keys", PROPAGATION, || async {
            b.jwks().await == jwks_a
        })
        .await,
    );
    until("C publishes the rotated keys", PROPAGATION, || async {
        c.jwks().await == jwks_a
    })
    .await;
    let fresh = b.admin_token().await;
    assert_eq!(jwt_header(&fresh)["kid"], json!(new_kid));
    // The old key still verifies until it is revoked...
    c.expect(&token, Method::GET, "/api/v2/clients", None, 200)
        .await;
    // ...and revoking it on C stops its tokens on A and B.
    c.expect(
        &fresh,
        Method::PUT,
        &format!("/api/v2/keys/signing/{old_kid}/revoke"),
        None,
        200,
    )
    .await;
    for node in [a, b] {
        latencies.push(
            until("old key refused after revocation", PROPAGATION, || async {
                node.call(&token, Method::GET, "/api/v2/clients", None)
                    .await
                    .status()
                    == StatusCode::UNAUTHORIZED
            })
            .await,
        );
        assert!(!node.jwks().await.contains(&old_kid));
        node.expect(&fresh, Method::GET, "/api/v2/clients", None, 200)
            .await;
    }

    // A client deleted on C stops authenticating on A.
    c.expect(&fresh, Method::DELETE, &client_path, None, 204)
        .await;
    latencies.push(
        until("deleted client refused on A", PROPAGATION, || async {
            a.assertion_status(&client_id, &assertion_key).await == 401
        })
        .await,
    );
    let worst = latencies.iter().max().unwrap();
    println!(
        "propagation latencies (write acknowledged → other node enforces): {latencies:?}; worst {worst:?}"
    );
}

/// A machine-to-machine client created on `node` (`client` adds to or overrides its body)
/// with a grant for `API` and `read:things` (`grant` adds to its body):
/// (client_id, client_secret, grant id).
async fn m2m_client(
    node: &Node,
    token: &str,
    client: Value,
    grant: Value,
) -> (String, String, String) {
    let mut body = json!({"app_type": "non_interactive", "grant_types": ["client_credentials"]});
    body.as_object_mut()
        .unwrap()
        .extend(client.as_object().unwrap().clone());
    let client: Value = serde_json::from_str(
        &node
            .expect(token, Method::POST, "/api/v2/clients", Some(body), 201)
            .await,
    )
    .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let mut body = json!({"client_id": client_id, "audience": API, "scope": ["read:things"]});
    body.as_object_mut()
        .unwrap()
        .extend(grant.as_object().unwrap().clone());
    let grant: Value = serde_json::from_str(
        &node
            .expect(
                token,
                Method::POST,
                "/api/v2/client-grants",
                Some(body),
                201,
            )
            .await,
    )
    .unwrap();
    (
        client_id,
        client["client_secret"].as_str().unwrap().to_string(),
        grant["id"].as_str().unwrap().to_string(),
    )
}

/// Organizations written on one node are enforced by the other within a second: an
/// association lets a token for the organization through, its removal and the
/// organization's deletion stop it.
#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn two_nodes_enforce_each_others_organizations_within_a_second() {
    let nodes = start_nodes::<2>(&[]);
    runtime().block_on(organizations(&nodes));
}

async fn organizations(nodes: &[Node; 2]) {
    let [a, b] = nodes;
    let token = a.admin_token().await;
    create_api(a, &token).await;
    let created = |text: String| serde_json::from_str::<Value>(&text).unwrap();
    let (client_id, secret, grant_id) = m2m_client(
        a,
        &token,
        json!({"name": "org worker"}),
        json!({"organization_usage": "require"}),
    )
    .await;
    let org = created(
        a.expect(
            &token,
            Method::POST,
            "/api/v2/organizations",
            Some(json!({"name": "acme"})),
            201,
        )
        .await,
    );
    let org_id = org["id"].as_str().unwrap().to_string();
    // Not associated yet: 403 on B.
    until("B knows the organization", PROPAGATION, || async {
        org_token(b, &client_id, &secret, &org_id).await == 403
    })
    .await;
    let grants_path = format!("/api/v2/organizations/{org_id}/client-grants");
    a.post(&token, &grants_path, json!({"grant_id": grant_id}))
        .await;
    until("B honours the association", PROPAGATION, || async {
        org_token(b, &client_id, &secret, &org_id).await == 200
    })
    .await;
    b.delete(&token, &format!("{grants_path}/{grant_id}")).await;
    until("A honours the removal", PROPAGATION, || async {
        org_token(a, &client_id, &secret, &org_id).await == 403
    })
    .await;
    b.delete(&token, &format!("/api/v2/organizations/{org_id}"))
        .await;
    until("A forgets the organization", PROPAGATION, || async {
        org_token(a, &client_id, &secret, &org_id).await == 400
    })
    .await;
}

/// `N` nodes (A, B, C) on a fresh database of the shared test cluster, with one master key
/// and `extra` arguments.
fn start_nodes<const N: usize>(extra: &[&str]) -> [Node; N] {
    let database = pg::fresh_database_blocking(&pg::require_base_url());
    let key = master_key();
    std::array::from_fn(|i| Node::start(["A", "B", "C"][i], &database, &key, extra))
}

/// A grant's declared claims (`token_claims`) written on one node are in the other node's
/// tokens within a second, and so are their update and removal.
#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn two_nodes_issue_each_others_declared_claims_within_a_second() {
    let nodes = start_nodes::<2>(&[]);
    runtime().block_on(declared_claims(&nodes));
}

async fn declared_claims(nodes: &[Node; 2]) {
    let [a, b] = nodes;
    let token = a.admin_token().await;
    create_api(a, &token).await;
    let (client_id, secret, grant_id) = m2m_client(
        a,
        &token,
        json!({"name": "claims worker"}),
        json!({"token_claims": {"tier": "gold"}}),
    )
    .await;
    let grant_path = format!("/api/v2/client-grants/{grant_id}");
    until("B issues A's claims", PROPAGATION, || async {
        claim_on(b, &client_id, &secret).await == json!("gold")
    })
    .await;
    b.patch(
        &token,
        &grant_path,
        json!({"token_claims": {"tier": "silver"}}),
    )
    .await;
    until("A issues B's update", PROPAGATION, || async {
        claim_on(a, &client_id, &secret).await == json!("silver")
    })
    .await;
    a.patch(&token, &grant_path, json!({"token_claims": null}))
        .await;
    until("B drops the claims", PROPAGATION, || async {
        claim_on(b, &client_id, &secret).await == Value::Null
    })
    .await;
}

/// The `tier` claim of a fresh token from `node` (`null` when absent or refused).
async fn claim_on(node: &Node, client_id: &str, secret: &str) -> Value {
    let r = node
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("audience", API),
        ])
        .await;
    if r.status() != StatusCode::OK {
        return Value::Null;
    }
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    jwt_claims(token)["tier"].clone()
}

/// The status of a token request for `org_id`.
async fn org_token(node: &Node, client_id: &str, secret: &str, org_id: &str) -> u16 {
    node.token(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("audience", API),
        ("organization", org_id),
    ])
    .await
    .status()
    .as_u16()
}

/// What the load saw.
#[derive(Default)]
struct Observed {
    /// Identifiers of resource servers whose creation was acknowledged (201).
    acknowledged: Vec<String>,
    /// (node, request, status, elapsed)
    responses: Vec<(&'static str, &'static str, u16, Duration)>,
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn database_outage_gives_503s_and_heals_without_restart() {
    // A private cluster: this test stops and starts the server.
    let cluster = pg::Cluster::start();
    let database = pg::fresh_database_blocking(&cluster.url);
    let key = master_key();
    let timeouts = [
        "--db-acquire-timeout-ms",
        "1000",
        "--db-statement-timeout-ms",
        "2000",
        "--db-resync-interval-secs",
        "5",
    ];
    let a = Node::start("A", &database, &key, &timeouts);
    let b = Node::start("B", &database, &key, &timeouts);
    runtime().block_on(outage(&cluster, a, b));
}

async fn outage(cluster: &pg::Cluster, a: Node, b: Node) {
    let token = a.admin_token().await;
    create_api(&a, &token).await;
    let (key_client_id, assertion_key, created) = key_client(&a, &token).await;
    let assertion_key = Arc::new(assertion_key);
    let credential_path = format!(
        "/api/v2/clients/{key_client_id}/credentials/{}",
        created["id"].as_str().unwrap()
    );
    let (secret_id, secret, _) = m2m_client(&a, &token, json!({"name": "secret"}), json!({})).await;
    until("B knows both clients", Duration::from_secs(2), || async {
        let secret_status = b
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &secret_id),
                ("client_secret", &secret),
                ("audience", API),
            ])
            .await
            .status();
        secret_status == StatusCode::OK
            && b.assertion_status(&key_client_id, &assertion_key).await == 200
    })
    .await;

    // A light load on both nodes: management writes, secret and key tokens.
    let nodes = Arc::new([a, b]);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (nodes, observed, stop) = (nodes.clone(), observed.clone(), stop.clone());
        let (token, secret_id, secret) = (token.clone(), secret_id.clone(), secret.clone());
        let (key_client_id, assertion_key) = (key_client_id.clone(), assertion_key.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let node = &nodes[(n % 2) as usize];
                let identifier = format!("urn:load:{n}");
                let started = Instant::now();
                let r = node
                    .call(
                        &token,
                        Method::POST,
                        "/api/v2/resource-servers",
                        Some(json!({"name": "load", "identifier": identifier})),
                    )
                    .await;
                let status = r.status().as_u16();
                let elapsed = started.elapsed();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if status == 503 {
                    assert_eq!(body["statusCode"], 503, "{body}");
                    assert_eq!(body["error"], "Service Unavailable", "{body}");
                    assert_eq!(body["errorCode"], "temporarily_unavailable", "{body}");
                    assert!(body["message"].is_string());
                }
                {
                    let mut o = observed.lock().unwrap();
                    if status == 201 {
                        o.acknowledged
                            .push(body["id"].as_str().unwrap().to_string());
                    }
                    o.responses
                        .push((node.name, "management write", status, elapsed));
                }
                let started = Instant::now();
                let status = node
                    .token(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", &secret_id),
                        ("client_secret", &secret),
                        ("audience", API),
                    ])
                    .await
                    .status()
                    .as_u16();
                observed.lock().unwrap().responses.push((
                    node.name,
                    "secret token",
                    status,
                    started.elapsed(),
                ));
                let started = Instant::now();
                let r = node
                    .assertion_token(&sign(&key_client_id, &assertion_key))
                    .await;
                let status = r.status().as_u16();
                if status == 503 {
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                }
                observed.lock().unwrap().responses.push((
                    node.name,
                    "key token",
                    status,
                    started.elapsed(),
                ));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let [a, b] = &*nodes;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Down.
    let mark = observed.lock().unwrap().responses.len();
    cluster.stop("immediate");
    let down_at = Instant::now();
    for node in [a, b] {
        let started = Instant::now();
        let r = node
            .call(&token, Method::GET, "/api/v2/clients", None)
            .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"statusCode": 503, "error": "Service Unavailable",
                   "message": "The service is temporarily unavailable, please retry",
                   "errorCode": "temporarily_unavailable"})
        );
        let ready = node.http().get(node.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Secrets are checked against the read model: tokens keep coming.
        let r = node
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &secret_id),
                ("client_secret", &secret),
                ("audience", API),
            ])
            .await;
        assert_eq!(r.status(), StatusCode::OK, "secret token during the outage");
        // private_key_jwt needs its jti written: refused with 503, never issued unguarded.
        let started = Instant::now();
        let r = node
            .assertion_token(&sign(&key_client_id, &assertion_key))
            .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Up again: everything recovers, nothing restarted.
    cluster.resume();
    let recovery = until(
        "management API answers again",
        Duration::from_secs(20),
        || async {
            let mut ok = true;
            for node in [a, b] {
                ok &= node
                    .call(&token, Method::GET, "/api/v2/clients", None)
                    .await
                    .status()
                    == StatusCode::OK;
            }
            ok
        },
    )
    .await;
    let outage_time = down_at.elapsed();
    until("key tokens again", Duration::from_secs(10), || async {
        a.assertion_status(&key_client_id, &assertion_key).await == 200
            && b.assertion_status(&key_client_id, &assertion_key).await == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();

    // Change propagation is back: each listener reconnects (within its back-off and the
    // acquire timeout) and resynchronises; from then on a write reaches the other node within
    // the usual second.
    let mut after_recovery = Vec::new();
    for (limit, round) in [(Duration::from_secs(5), "first"), (PROPAGATION, "second")] {
        a.patch(
            &token,
            &credential_path,
            json!({"expires_at": "2020-01-01T00:00:00.000Z"}),
        )
        .await;
        after_recovery.push(
            until(
                &format!("B refuses the expired key after recovery ({round} write)"),
                limit,
                || async { b.assertion_status(&key_client_id, &assertion_key).await == 401 },
            )
            .await,
        );
        b.patch(&token, &credential_path, json!({"expires_at": null}))
            .await;
        after_recovery.push(
            until(
                &format!("A accepts the key again after recovery ({round} write)"),
                limit,
                || async { a.assertion_status(&key_client_id, &assertion_key).await == 200 },
            )
            .await,
        );
    }

    // No acknowledged write was lost; no 500s; nothing hung.
    let o = std::mem::take(&mut *observed.lock().unwrap());
    for id in &o.acknowledged {
        let path = format!("/api/v2/resource-servers/{id}");
        a.expect(&token, Method::GET, &path, None, 200).await;
    }
    let during: Vec<_> = o.responses[mark..].to_vec();
    let count = |what: &str, status: u16| {
        during
            .iter()
            .filter(|(_, w, s, _)| *w == what && *s == status)
            .count()
    };
    for (node, what, status, elapsed) in &o.responses {
        assert!(
            matches!(status, 200 | 201 | 503),
            "{what} on {node}: {status}"
        );
        assert!(
            *elapsed < Duration::from_secs(5),
            "{what} on {node} took {elapsed:?}"
        );
    }
    assert!(count("management write", 503) > 0, "no 503 seen under load");
    assert!(
        count("secret token", 503) == 0,
        "secret tokens refused during the outage"
    );
    let slowest = o.responses[mark..]
        .iter()
        .map(|r| r.3)
        .max()
        .unwrap_or_default();
    println!(
        "outage {outage_time:?}; recovery after restart {recovery:?}; propagation after recovery {after_recovery:?}; \
         {} acknowledged writes all present; during/after: {} management 503, {} key-token 503, {} secret tokens ok; slowest response {slowest:?}",
        o.acknowledged.len(),
        count("management write", 503),
        count("key token", 503),
        count("secret token", 200),
    );
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn database_tls_is_verified_against_the_configured_ca() {
    use clavis::config::DatabaseOptions;
    use clavis::startup::open_store;
    use clavis_crypto::local_ca::LocalCa;

    let cluster = pg::Cluster::start();
    let (ca, ca_pem) = LocalCa::generate("Clavis test database CA").unwrap();
    let server = ca
        .issue_server_certificate(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    cluster.enable_tls(&server.cert_pem, &server.key_pem);
    let (_, other_ca_pem) = LocalCa::generate("Some other CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&ca_file, &ca_pem.cert_pem).unwrap();
    std::fs::write(&other_ca_file, &other_ca_pem.cert_pem).unwrap();
    let url = pg::fresh_database_blocking(&cluster.url);
    let options = |ca: Option<&std::path::Path>| DatabaseOptions {
        ca_file: ca.map(std::path::Path::to_path_buf),
        acquire_timeout: Duration::from_secs(2),
        ..DatabaseOptions::default()
    };
    runtime().block_on(async {
        // The configured CA verifies the server (sslmode=verify-full is implied).
        let store = open_store(&url, &options(Some(&ca_file))).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
        // ...and so does the URL's own sslrootcert.
        let in_url = format!(
            "{url}&sslmode=verify-full&sslrootcert={}",
            ca_file.display()
        );
        open_store(&in_url, &options(None))
            .await
            .unwrap()
            .close()
            .await;
        // A server the CA did not certify is refused.
        let refused = open_store(&url, &options(Some(&other_ca_file))).await;
        assert!(
            refused.is_err(),
            "a server certified by another CA was trusted"
        );
        let refused = open_store(
            &format!("{url}&sslmode=verify-full"),
            &options(Some(&other_ca_file)),
        )
        .await;
        assert!(refused.is_err());
    });
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn two_nodes_serve_one_ordered_audit_feed() {
    let nodes = start_nodes::<2>(&[]);
    runtime().block_on(one_feed(&nodes));
}

/// Every event, oldest first, read by checkpoint from `node`.
async fn export(node: &Node, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = String::new();
    loop {
        let text = node
            .expect(
                token,
                Method::GET,
                &format!("/api/v2/logs?take=100&from={from}"),
                None,
                200,
            )
            .await;
        let page: Vec<Value> = serde_json::from_str(&text).unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        from = last["log_id"].as_str().unwrap().to_string();
        out.extend(page);
    }
}

async fn one_feed(nodes: &[Node; 2]) {
    let [a, b] = nodes;
    let token = a.admin_token().await;
    create_api(a, &token).await;
    // The seed scenario across the nodes: the key is made on A, used on B, expired on A,
    // refused on B, restored on B.
    let (client_id, key, credential) = key_client(a, &token).await;
    let path = format!(
        "/api/v2/clients/{client_id}/credentials/{}",
        credential["id"].as_str().unwrap()
    );
    until("B knows the key", PROPAGATION, || async {
        b.assertion_status(&client_id, &key).await == 200
    })
    .await;
    a.patch(&token, &path, json!({"expires_at": "2020-01-01T00:00:00Z"}))
        .await;
    until("B refuses the expired key", PROPAGATION, || async {
        b.assertion_status(&client_id, &key).await == 401
    })
    .await;
    b.patch(&token, &path, json!({"expires_at": null})).await;
    until("A accepts the key again", PROPAGATION, || async {
        a.assertion_status(&client_id, &key).await == 200
    })
    .await;
    // Token traffic on both nodes at once.
    let traffic = |node: &'static str| {
        let target = if node == "A" { a } else { b };
        let (client_id, key) = (&client_id, &key);
        async move {
            for _ in 0..30 {
                assert_eq!(target.assertion_status(client_id, key).await, 200);
            }
        }
    };
    tokio::join!(traffic("A"), traffic("B"));

    // One feed: both nodes export the same events in the same order, log_ids increasing.
    // (A `GET /logs` first writes what its node has queued: one on each node first.)
    for node in [a, b] {
        node.expect(&token, Method::GET, "/api/v2/logs?take=1", None, 200)
            .await;
    }
    let from_a = export(a, &token).await;
    let from_b = export(b, &token).await;
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["log_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&from_a), ids(&from_b));
    let mut sorted = ids(&from_a);
    sorted.sort();
    assert_eq!(ids(&from_a), sorted);
    let mine = |kind: &str| {
        from_a
            .iter()
            .filter(|e| e["type"] == kind && e["client_id"] == client_id.as_str())
            .count()
    };
    // The token of the first probe at least, and the 60 of the traffic.
    assert!(mine("seccft") >= 61, "{}", mine("seccft"));
    assert!(mine("feccft") >= 1);
    let patches: Vec<&Value> = from_a
        .iter()
        .filter(|e| e["type"] == "sapi" && e["details"]["request"]["path"] == path.as_str())
        .collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[0]["details"]["request"]["body"],
        json!({"expires_at": "2020-01-01T00:00:00Z"})
    );
    assert_eq!(
        patches[1]["details"]["request"]["body"],
        json!({"expires_at": null})
    );
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn two_nodes_record_each_credential_expiry_notice_once() {
    let fast = ["--credential-expiry-scan-seconds", "1"];
    let nodes = start_nodes::<2>(&fast);
    runtime().block_on(expiry_notices(&nodes));
}

async fn expiry_notices(nodes: &[Node; 2]) {
    let [a, b] = nodes;
    let token = a.admin_token().await;
    create_api(a, &token).await;
    let in_two_days = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut paths = Vec::new();
    let mut credential_ids = Vec::new();
    for _ in 0..3 {
        let (client_id, _, credential) = key_client(a, &token).await;
        let id = credential["id"].as_str().unwrap().to_string();
        let path = format!("/api/v2/clients/{client_id}/credentials/{id}");
        a.patch(&token, &path, json!({"expires_at": in_two_days}))
            .await;
        paths.push(path);
        credential_ids.push(id);
    }
    // (credential, type, threshold) of every expiry event in the shared feed.
    let notices = || async {
        for node in [a, b] {
            node.expect(&token, Method::GET, "/api/v2/logs?take=1", None, 200)
                .await;
        }
        export(a, &token)
            .await
            .into_iter()
            .filter(|e| {
                e["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("clavis_credential_"))
            })
            .map(|e| {
                (
                    e["details"]["credential_id"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                    e["details"]["threshold_days"].as_u64(),
                )
            })
            .collect::<Vec<_>>()
    };
    until(
        "both warnings of every key",
        Duration::from_secs(10),
        || async { notices().await.len() >= 6 },
    )
    .await;
    // Both nodes scan every second: a few more rounds, and still one notice each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut seen = notices().await;
    seen.sort();
    let mut expected: Vec<(String, String, Option<u64>)> = credential_ids
        .iter()
        .flat_map(|id| {
            [30, 7].map(|d| {
                (
                    id.clone(),
                    "clavis_credential_expiring".to_string(),
                    Some(d),
                )
            })
        })
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    // Expired (written on B): one expired event per key.
    for path in &paths {
        b.patch(&token, path, json!({"expires_at": "2020-01-01T00:00:00Z"}))
            .await;
    }
    until("every key expired", Duration::from_secs(10), || async {
        notices().await.len() >= 9
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired: Vec<String> = notices()
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind == "clavis_credential_expired")
        .map(|(id, _, _)| id)
        .collect();
    let mut expired_sorted = expired.clone();
    expired_sorted.sort();
    let mut ids = credential_ids.clone();
    ids.sort();
    assert_eq!(expired_sorted, ids);
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn two_nodes_deliver_each_event_of_a_log_stream_once() {
    let fast = ["--log-stream-interval-ms", "50"];
    let nodes = start_nodes::<2>(&fast);
    runtime().block_on(one_delivery(&nodes));
}

/// The bodies a local HTTP receiver was POSTed.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/in",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Received>,
                 body: axum::body::Bytes| async move {
                    r.lock().unwrap().push(body.to_vec());
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(received.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received)
}

async fn one_delivery(nodes: &[Node; 2]) {
    let [a, b] = nodes;
    let token = a.admin_token().await;
    let (url, received) = receiver().await;
    for node in [a, b] {
        node.expect(&token, Method::GET, "/api/v2/logs?take=1", None, 200)
            .await;
    }
    let before = export(a, &token).await.len();
    a.expect(
        &token,
        Method::POST,
        "/api/v2/log-streams",
        Some(json!({"type": "http", "sink": {"httpEndpoint": url, "httpContentFormat": "JSONARRAY"}})),
        200,
    )
    .await;
    // Refused token requests on both nodes at once.
    tokio::join!(refused_tokens(a, 40), refused_tokens(b, 40));
    for node in [a, b] {
        node.expect(&token, Method::GET, "/api/v2/logs?take=1", None, 200)
            .await;
    }
    let events = export(a, &token).await;
    let expected: Vec<String> = events[before..]
        .iter()
        .map(|e| e["log_id"].as_str().unwrap().to_string())
        .collect();
    assert!(expected.len() >= 80, "{}", expected.len());
    let counts = || {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for body in received.lock().unwrap().iter() {
            let batch: Vec<Value> = serde_json::from_slice(body).unwrap();
            for e in batch {
                *counts
                    .entry(e["log_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        counts
    };
    until("every event delivered", Duration::from_secs(20), || async {
        let c = counts();
        expected.iter().all(|id| c.contains_key(id))
    })
    .await;
    // Both nodes run delivery; a stream's lease lets one of them deliver each event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = counts();
    let duplicates: usize = c.values().map(|n| n - 1).sum();
    eprintln!(
        "{} events delivered, {duplicates} duplicates",
        expected.len()
    );
    assert_eq!(duplicates, 0, "{c:?}");
}

/// `n` refused token requests (`feccft`) on `node`.
async fn refused_tokens(node: &Node, n: usize) {
    for _ in 0..n {
        let r = node
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "wrong-secret-0123456789"),
                ("audience", MANAGEMENT),
            ])
            .await;
        assert!(r.status().is_client_error());
    }
}

/// A token quota is counted across nodes: two nodes issuing concurrently for one client
/// issue, between them, exactly its quota (no overshoot; and once both have been refused no
/// reserved token is left unspent); and the tenant's default quota written on one node is
/// applied by the other within a second.
#[test]
#[ignore = "needs PostgreSQL: scripts/test-postgres"]
fn two_nodes_share_a_token_quota_without_overshoot() {
    // Without the per-client rate limit: the quota alone refuses.
    let unlimited = ["--rate-limit-client-rps", "0"];
    let nodes = start_nodes::<2>(&unlimited);
    runtime().block_on(shared_quota(&nodes));
}

async fn shared_quota(nodes: &[Node; 2]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Blocks of 4 (1 % of it): each node reserves 4 tokens at a time.
    const QUOTA: usize = 400;
    const WORKERS_PER_NODE: usize = 6;
    let [a, b] = nodes;
    let token = a.admin_token().await;
    create_api(a, &token).await;
    let (client_id, secret, _) = m2m_client(
        a,
        &token,
        json!({"name": "quota", "token_quota": {"client_credentials": {"per_day": QUOTA}}}),
        json!({}),
    )
    .await;
    let issued = Arc::new(AtomicUsize::new(0));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", API),
    ];
    // B knows the client and its grant (a token it issues counts like any other).
    until("B knows the client", PROPAGATION, || async {
        let r = b.token(&form).await;
        let ok = r.status() == StatusCode::OK;
        if ok {
            issued.fetch_add(1, Ordering::SeqCst);
            let quota = r.headers()["auth0-client-quota-limit"].to_str().unwrap();
            let t: i64 = quota.rsplit("t=").next().unwrap().parse().unwrap();
            assert!(t > 120, "too close to UTC midnight for this test: {quota}");
        }
        ok
    })
    .await;
    // Every worker asks until it has been refused three times in a row.
    let mut tasks = Vec::new();
    for node in [a, b] {
        for _ in 0..WORKERS_PER_NODE {
            let http = node.http().clone();
            let url = node.url("/oauth/token");
            let form: Vec<(String, String)> = form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let issued = issued.clone();
            tasks.push(tokio::spawn(async move {
                let (mut refused, mut mine) = (0, 0);
                while refused < 3 {
                    let r = http.post(&url).form(&form).send().await.unwrap();
                    match r.status().as_u16() {
                        200 => {
                            refused = 0;
                            mine += 1;
                            issued.fetch_add(1, Ordering::SeqCst);
                        }
                        429 => {
                            refused += 1;
                            let body: Value = r.json().await.unwrap();
                            assert_eq!(body["error_description"], "Client quota exceeded");
                        }
                        other => panic!("unexpected {other}: {}", r.text().await.unwrap()),
                    }
                }
                mine
            }));
        }
    }
    let mut per_node = [0, 0];
    for (i, task) in tasks.into_iter().enumerate() {
        per_node[i / WORKERS_PER_NODE] += task.await.unwrap();
    }
    let total = issued.load(Ordering::SeqCst);
    eprintln!(
        "quota {QUOTA}: node A issued {}, node B {} (+ the first)",
        per_node[0], per_node[1]
    );
    assert!(
        total <= QUOTA,
        "overshoot: {total} tokens for a quota of {QUOTA}"
    );
    assert_eq!(total, QUOTA, "tokens left reserved on a node that refuses");
    assert!(per_node[0] > 0 && per_node[1] > 0, "{per_node:?}");

    // The tenant's default, written on B, is applied by A.
    let (other_id, other_secret, _) =
        m2m_client(a, &token, json!({"name": "default"}), json!({})).await;
    b.patch(&token, "/api/v2/tenants/settings", json!({"default_token_quota": {"clients": {"client_credentials": {"per_hour": 100000, "enforce": false}}}})).await;
    let other_form = [
        ("grant_type", "client_credentials"),
        ("client_id", other_id.as_str()),
        ("client_secret", other_secret.as_str()),
        ("audience", API),
    ];
    until("A applies B's default quota", PROPAGATION, || async {
        let r = a.token(&other_form).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.headers().contains_key("auth0-client-quota-limit")
    })
    .await;
}

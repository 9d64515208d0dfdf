//! `/api/v2/log-streams` and delivery, against a real HTTP receiver on 127.0.0.1: every
//! event of a scenario arrives (counted by log_id, duplicates counted), in each of the
//! three formats, with the authorization and custom headers; a receiver that refuses
//! connections and then answers 500 for a while loses nothing; a stream failing long
//! enough is suspended and resumes from its cursor; paused streams and filters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// What the receiver does with a POST.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accept,
    Fail,
    /// Accept this many more POSTs, then fail.
    AcceptOnly(usize),
}

#[derive(Default)]
struct Seen {
    /// (headers, body) of every accepted POST.
    posts: Vec<(HeaderMap, Vec<u8>)>,
    /// POSTs answered 500.
    refused: usize,
}

struct Shared {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
}

/// A local HTTP receiver that can be stopped (connections refused) and started again on
/// the same port.
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AxumStatus {
    let mut mode = shared.mode.lock().unwrap();
    let mut seen = shared.seen.lock().unwrap();
    match *mode {
        Mode::AcceptOnly(n) if n > 0 => {
            *mode = Mode::AcceptOnly(n - 1);
            seen.posts.push((headers, body.to_vec()));
            AxumStatus::OK
        }
        Mode::Accept => {
            seen.posts.push((headers, body.to_vec()));
            AxumStatus::OK
        }
        Mode::Fail | Mode::AcceptOnly(_) => {
            seen.refused += 1;
            AxumStatus::INTERNAL_SERVER_ERROR
        }
    }
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Accept),
            seen: Mutex::new(Seen::default()),
        });
        let mut r = Self {
            addr,
            shared,
            task: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/in", axum::routing::post(receive))
            .with_state(self.shared.clone());
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    fn url(&self) -> String {
        format!("http://{}/in", self.addr)
    }

    /// Stops listening: connections are refused.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    fn refused(&self) -> usize {
        self.shared.seen.lock().unwrap().refused
    }

    /// Every event received, by log_id, with how many times each came; the events are
    /// `{log_id, data}` in any of the three formats.
    fn events(&self) -> BTreeMap<String, (usize, Value)> {
        let seen = self.shared.seen.lock().unwrap();
        let mut out: BTreeMap<String, (usize, Value)> = BTreeMap::new();
        for (_, body) in &seen.posts {
            for event in parse(body) {
                let id = event["log_id"].as_str().unwrap().to_string();
                assert_eq!(event["data"]["log_id"], id.as_str());
                let entry = out.entry(id).or_insert((0, event.clone()));
                entry.0 += 1;
            }
        }
        out
    }

    fn posts(&self) -> Vec<(HeaderMap, Vec<u8>)> {
        self.shared.seen.lock().unwrap().posts.clone()
    }
}

/// The events of one POST body: a JSON array, one object, or JSON lines.
fn parse(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(object @ Value::Object(_)) => vec![object],
        _ => std::str::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    }
}

async fn spawn(suspend_after: Duration) -> TestApp {
    TestApp::spawn_with(|c| {
        c.log_streams.interval = Duration::from_millis(50);
        c.log_streams.timeout = Duration::from_secs(2);
        c.log_streams.suspend_after = suspend_after;
    })
    .await
}

/// Every event in the log, oldest first: (log_id, type).
async fn all_events(app: &TestApp) -> Vec<(String, String)> {
    app.clavis.audit.flush().await;
    let mut out = Vec::new();
    let mut from = String::new();
    loop {
        let r = app
            .admin(
                Method::GET,
                &format!("/api/v2/logs?take=100&from={from}"),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.unwrap();
        let items = page.as_array().unwrap().clone();
        let Some(last) = items.last() else {
            return out;
        };
        from = last["log_id"].as_str().unwrap().to_string();
        out.extend(items.iter().map(|e| {
            (
                e["log_id"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            )
        }));
    }
}

/// A refused token request (`feccft`).
async fn failed_token(app: &TestApp) {
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "wrong-secret-0123456789"),
            ("audience", &app.management_audience()),
        ])
        .await;
    assert!(r.status().is_client_error());
}

/// Some events of each kind Clavis records: token successes and failures, writes.
async fn scenario(app: &TestApp, n: usize) {
    for i in 0..n {
        failed_token(app).await;
        let client = app.create_m2m_client(&format!("stream client {i}")).await;
        let id = client["client_id"].as_str().unwrap();
        let secret = client["client_secret"].as_str().unwrap();
        // A token for a client without a grant fails.
        let r = app
            .token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("audience", &app.management_audience()),
            ])
            .await;
        assert!(r.status().is_client_error());
    }
}

async fn create_stream(app: &TestApp, body: Value) -> Value {
    let r = app
        .admin(Method::POST, "/api/v2/log-streams", Some(body))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Waits until the receiver has every one of `expected` (log_ids); returns the events
/// received by log_id with their counts.
async fn wait_for(
    receiver: &Receiver,
    expected: &BTreeSet<String>,
) -> BTreeMap<String, (usize, Value)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = receiver.events();
        if expected.iter().all(|id| got.contains_key(id)) {
            return got;
        }
        if tokio::time::Instant::now() > deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|id| !got.contains_key(*id))
                .collect();
            panic!(
                "{} of {} events never arrived: {missing:?}",
                missing.len(),
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log_ids after `before` (an index into the log), of types the filter keeps.
fn after(
    events: &[(String, String)],
    before: usize,
    keep: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    events[before..]
        .iter()
        .filter(|(_, t)| keep(t))
        .map(|(id, _)| id.clone())
        .collect()
}

fn duplicates(got: &BTreeMap<String, (usize, Value)>) -> usize {
    got.values().map(|(n, _)| n - 1).sum()
}

#[tokio::test]
async fn crud_is_auth0_shaped_secret_sealed_and_other_types_refused() {
    let app = spawn(Duration::from_secs(3600)).await;
    let body = json!({"name": "siem", "type": "http", "sink": {
        "httpEndpoint": "https://siem.example/in", "httpContentType": "application/json",
        "httpContentFormat": "JSONARRAY", "httpAuthorization": "Bearer s3cr3t-value",
        "httpCustomHeaders": [{"header": "X-Tenant", "value": "acme"}]},
        "filters": [{"type": "category", "name": "auth.token_exchange.fail"}]});
    let created = create_stream(&app, body).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("lst_"), "{id}");
    assert_eq!(
        created,
        json!({"id": id, "name": "siem", "type": "http", "status": "active",
            "sink": {"httpEndpoint": "https://siem.example/in", "httpContentType": "application/json",
                "httpContentFormat": "JSONARRAY", "httpAuthorization": "Bearer s3cr3t-value",
                "httpCustomHeaders": [{"header": "X-Tenant", "value": "acme"}]},
            "filters": [{"type": "category", "name": "auth.token_exchange.fail"}],
            "isPriority": false})
    );
    let list: Value = app
        .admin(Method::GET, "/api/v2/log-streams", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([created]));
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/log-streams/{id}"),
            Some(json!({"status": "paused", "name": "siem 2"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["status"], "paused");
    assert_eq!(patched["name"], "siem 2");
    assert_eq!(patched["sink"]["httpAuthorization"], "Bearer s3cr3t-value");

    // The secret is sealed at rest and redacted in the audit trail.
    for file in ["clavis.db", "clavis.db-wal"] {
        let db = std::fs::read(app.data_dir.path().join(file)).unwrap_or_default();
        assert!(!db.windows(12).any(|w| w == b"s3cr3t-value"), "{file}");
    }
    app.clavis.audit.flush().await;
    let logs: Value = app
        .admin(Method::GET, "/api/v2/logs?q=type:sapi&per_page=100", None)
        .await
        .json()
        .await
        .unwrap();
    let text = logs.to_string();
    assert!(text.contains("/api/v2/log-streams"), "{text}");
    assert!(!text.contains("s3cr3t-value"), "{text}");

    // Other types, unknown filters, plain-HTTP endpoints off the loopback are 400s.
    for (body, says) in [
        (
            // The served schema of `POST /log-streams` is Auth0's `http` member.
            json!({"type": "datadog", "sink": {"datadogApiKey": "k", "datadogRegion": "us"}}),
            "No enum match for: \"datadog\"' on property type",
        ),
        (
            json!({"type": "http", "sink": {"httpEndpoint": "http://siem.example/"}}),
            "httpEndpoint",
        ),
        (
            json!({"type": "http", "sink": {"httpEndpoint": "https://siem.example/"}, "filters": [{"type": "category", "name": "nope"}]}),
            "filters[0].name",
        ),
        (
            json!({"type": "http", "sink": {"httpEndpoint": "https://siem.example/", "httpContentFormat": "XML"}}),
            "httpContentFormat",
        ),
    ] {
        let r = app
            .admin(Method::POST, "/api/v2/log-streams", Some(body))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let e: Value = r.json().await.unwrap();
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
    }

    // Scopes.
    let token = app.token_with_scopes(&["read:logs"]).await;
    let r = app
        .call(&token, Method::GET, "/api/v2/log-streams", None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = app
        .admin(Method::DELETE, &format!("/api/v2/log-streams/{id}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .admin(Method::GET, &format!("/api/v2/log-streams/{id}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_event_arrives_in_each_format_with_the_headers() {
    let app = spawn(Duration::from_secs(3600)).await;
    app.admin_token().await;
    for format in ["JSONARRAY", "JSONLINES", "JSONOBJECT"] {
        let receiver = Receiver::start().await;
        let before = all_events(&app).await.len();
        create_stream(
            &app,
            json!({"name": format, "type": "http", "sink": {"httpEndpoint": receiver.url(),
                "httpContentType": "application/x-test", "httpContentFormat": format,
                "httpAuthorization": "Bearer stream-token",
                "httpCustomHeaders": [{"header": "X-Tenant", "value": "acme"}]}}),
        )
        .await;
        scenario(&app, 3).await;
        let events = all_events(&app).await;
        let expected = after(&events, before, |_| true);
        assert!(expected.len() >= 9, "{expected:?}");
        let got = wait_for(&receiver, &expected).await;
        eprintln!(
            "{format}: {} events, {} duplicates",
            expected.len(),
            duplicates(&got)
        );
        // Nothing from before the stream existed.
        if let Some((last_before, _)) = before.checked_sub(1).map(|i| &events[i]) {
            assert!(
                got.keys().all(|id| id > last_before),
                "an event from before the stream"
            );
        }
        let types: BTreeSet<&str> = got
            .values()
            .filter_map(|(_, e)| e["data"]["type"].as_str())
            .collect();
        assert!(
            types.contains("feccft") && types.contains("sapi"),
            "{types:?}"
        );
        for (headers, body) in receiver.posts() {
            assert_eq!(headers["authorization"], "Bearer stream-token");
            assert_eq!(headers["x-tenant"], "acme");
            assert_eq!(headers["content-type"], "application/x-test");
            match format {
                "JSONARRAY" => assert!(body.starts_with(b"[")),
                "JSONOBJECT" => assert_eq!(parse(&body).len(), 1),
                _ => assert!(body.starts_with(b"{")),
            }
        }
        // Streams of the next round must not see this one's receiver.
        let streams: Value = app
            .admin(Method::GET, "/api/v2/log-streams", None)
            .await
            .json()
            .await
            .unwrap();
        for s in streams.as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            app.admin(Method::DELETE, &format!("/api/v2/log-streams/{id}"), None)
                .await;
        }
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_for_a_while_loses_nothing() {
    let app = spawn(Duration::from_secs(3600)).await;
    app.admin_token().await;
    let mut receiver = Receiver::start().await;
    let before = all_events(&app).await.len();
    let stream = create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": receiver.url(), "httpContentFormat": "JSONLINES"}}),
    )
    .await;
    scenario(&app, 2).await;
    // Connections refused.
    receiver.stop().await;
    scenario(&app, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Back, but answering 500.
    receiver.restart().await;
    receiver.set(Mode::Fail);
    scenario(&app, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.refused() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt while failing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r: Value = app
        .admin(
            Method::GET,
            &format!("/api/v2/log-streams/{}", stream["id"].as_str().unwrap()),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "active");
    receiver.set(Mode::Accept);
    scenario(&app, 1).await;
    let expected = after(&all_events(&app).await, before, |_| true);
    let got = wait_for(&receiver, &expected).await;
    // The series of /metrics count the attempts and the events.
    let text = clavis::metrics::encode(&clavis::metrics::registry(&app.clavis)).unwrap();
    let id = stream["id"].as_str().unwrap();
    for series in [
        format!("clavis_log_stream_posts_total{{log_stream=\"{id}\",outcome=\"failed\"}}"),
        format!("clavis_log_stream_posts_total{{log_stream=\"{id}\",outcome=\"delivered\"}}"),
        format!("clavis_log_stream_events_total{{log_stream=\"{id}\"}}"),
        format!("clavis_log_stream_lag_seconds{{log_stream=\"{id}\"}}"),
    ] {
        assert!(text.contains(&series), "{series} missing:\n{text}");
    }
    eprintln!(
        "outage: {} events, {} duplicates, {} refused POSTs",
        expected.len(),
        duplicates(&got),
        receiver.refused()
    );
}

#[tokio::test]
async fn a_stream_failing_long_enough_is_suspended_and_resumes_from_its_cursor() {
    let app = spawn(Duration::from_secs(1)).await;
    app.admin_token().await;
    let receiver = Receiver::start().await;
    receiver.set(Mode::Fail);
    let before = all_events(&app).await.len();
    let stream = create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": receiver.url(), "httpContentFormat": "JSONARRAY"}}),
    )
    .await;
    let path = format!("/api/v2/log-streams/{}", stream["id"].as_str().unwrap());
    scenario(&app, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s: Value = app
            .admin(Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        if s["status"] == "suspended" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never suspended: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Suspended: no more attempts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = receiver.refused();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.refused(), refused);
    receiver.set(Mode::Accept);
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"status": "active"})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    scenario(&app, 1).await;
    let expected = after(&all_events(&app).await, before, |_| true);
    let got = wait_for(&receiver, &expected).await;
    eprintln!(
        "suspension: {} events, {} duplicates",
        expected.len(),
        duplicates(&got)
    );
}

#[tokio::test]
async fn paused_streams_wait_and_filters_choose_categories() {
    let app = spawn(Duration::from_secs(3600)).await;
    app.admin_token().await;
    let paused_receiver = Receiver::start().await;
    let filtered_receiver = Receiver::start().await;
    let before = all_events(&app).await.len();
    let paused = create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": paused_receiver.url()}}),
    )
    .await;
    let paused_path = format!("/api/v2/log-streams/{}", paused["id"].as_str().unwrap());
    let r = app
        .admin(
            Method::PATCH,
            &paused_path,
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": filtered_receiver.url()},
            "filters": [{"type": "category", "name": "auth.token_exchange.fail"}]}),
    )
    .await;
    scenario(&app, 3).await;
    let events = all_events(&app).await;
    let failures = after(&events, before, |t| t == "feccft");
    assert!(failures.len() >= 6);
    let got = wait_for(&filtered_receiver, &failures).await;
    assert!(
        got.values().all(|(_, e)| e["data"]["type"] == "feccft"),
        "{got:?}"
    );
    assert!(paused_receiver.events().is_empty());
    // Resumed: everything since the stream's creation, nothing lost while paused.
    let r = app
        .admin(
            Method::PATCH,
            &paused_path,
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let expected = after(&events, before, |_| true);
    wait_for(&paused_receiver, &expected).await;
}

#[tokio::test]
async fn jsonobject_does_not_resend_what_a_failed_round_delivered() {
    let app = spawn(Duration::from_secs(3600)).await;
    app.admin_token().await;
    let receiver = Receiver::start().await;
    // Three events get through, then the receiver fails until told otherwise.
    receiver.set(Mode::AcceptOnly(3));
    let before = all_events(&app).await.len();
    create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": receiver.url(), "httpContentFormat": "JSONOBJECT"}}),
    )
    .await;
    scenario(&app, 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.refused() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no failed round");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.events().len(), 3);
    receiver.set(Mode::Accept);
    let expected = after(&all_events(&app).await, before, |_| true);
    let got = wait_for(&receiver, &expected).await;
    assert_eq!(duplicates(&got), 0, "{got:?}");
}

#[tokio::test]
async fn a_node_restart_during_an_outage_loses_nothing() {
    let app = spawn(Duration::from_secs(3600)).await;
    app.admin_token().await;
    let mut receiver = Receiver::start().await;
    let before = all_events(&app).await.len();
    create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": receiver.url(), "httpContentFormat": "JSONARRAY",
            "httpAuthorization": "Bearer across-restarts"}}),
    )
    .await;
    scenario(&app, 2).await;
    receiver.stop().await;
    scenario(&app, 2).await;
    app.clavis.audit.flush().await;
    // The restarted node delivers at the default interval (1 s).
    let app = app.restart().await;
    receiver.restart().await;
    scenario(&app, 1).await;
    let expected = after(&all_events(&app).await, before, |_| true);
    let got = wait_for(&receiver, &expected).await;
    assert!(
        receiver
            .posts()
            .iter()
            .all(|(h, _)| h["authorization"] == "Bearer across-restarts")
    );
    eprintln!(
        "restart: {} events, {} duplicates",
        expected.len(),
        duplicates(&got)
    );
}

const AUDIENCE_10K: &str = "https://api.stream10k.test/";

/// Issue 21's acceptance run: every event of 10,000 token requests reaches a stream, at least
/// once, across a receiver outage and a node restart in the middle of the run; duplicates
/// are counted and reported.
#[tokio::test]
async fn ten_thousand_tokens_reach_a_stream_across_an_outage_and_a_restart() {
    fn fast(c: &mut clavis::config::Config) {
        c.http.per_client.per_second = 0;
        c.http.per_ip.per_second = 0;
        c.log_streams.interval = Duration::from_millis(50);
        c.log_streams.timeout = Duration::from_secs(2);
    }
    async fn tokens(app: &TestApp, (id, secret): (&str, &str), n: usize) {
        let audience = AUDIENCE_10K.to_string();
        let (id, secret) = (id.to_string(), secret.to_string());
        let mut running = tokio::task::JoinSet::new();
        let per_task = n / 16;
        for _ in 0..16 {
            let http = app.http.clone();
            let url = app.url("/oauth/token");
            let audience = audience.clone();
            let (id, secret) = (id.clone(), secret.clone());
            running.spawn(async move {
                for _ in 0..per_task {
                    let r = http
                        .post(&url)
                        .form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", id.as_str()),
                            ("client_secret", secret.as_str()),
                            ("audience", &audience),
                        ])
                        .send()
                        .await
                        .unwrap();
                    // Read to the end: an HTTP/2 stream whose answer is dropped unread is
                    // cancelled, and the server closes a connection that cancels too many.
                    let status = r.status();
                    let body = r.text().await.unwrap();
                    assert_eq!(status, StatusCode::OK, "{body}");
                }
            });
        }
        while let Some(done) = running.join_next().await {
            done.unwrap();
        }
    }
    let app = TestApp::spawn_with(fast).await;
    let r = app
        .admin(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": AUDIENCE_10K, "name": "10k"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let client = app.create_m2m_client("10k").await;
    let id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    let r = app
        .admin(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": id, "audience": AUDIENCE_10K, "scope": []})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let creds = (id.as_str(), secret.as_str());
    let mut receiver = Receiver::start().await;
    let before = all_events(&app).await.len();
    create_stream(
        &app,
        json!({"type": "http", "sink": {"httpEndpoint": receiver.url(), "httpContentFormat": "JSONLINES"}}),
    )
    .await;
    tokens(&app, creds, 4_000).await;
    receiver.stop().await;
    tokens(&app, creds, 3_200).await;
    app.clavis.audit.flush().await;
    let app = app.restart_with(fast).await;
    tokens(&app, creds, 1_600).await;
    receiver.restart().await;
    tokens(&app, creds, 1_200).await;
    let events = all_events(&app).await;
    let expected = after(&events, before, |t| t == "seccft");
    assert!(
        expected.len() >= 10_000,
        "every token request is one seccft"
    );
    let got = wait_for(&receiver, &expected).await;
    let delivered_tokens = got
        .values()
        .filter(|(_, e)| e["data"]["type"] == "seccft" && e["data"]["client_id"] == id.as_str())
        .count();
    assert_eq!(delivered_tokens, 10_000);
    eprintln!(
        "10,000 tokens: {} events delivered, {} duplicates",
        got.len(),
        duplicates(&got)
    );
}

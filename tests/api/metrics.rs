//! `/metrics`: who may read it and where, and that each series counts what happened,
//! read back through a Prometheus text-format parser.

use std::net::SocketAddr;

use clavis::config::Secret;
use prometheus_parse::{Scrape, Value as Metric};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

const API: &str = "https://metrics.example.com/";
const TOKEN: &str = "metrics-token-0123456789abcdef";

fn with_listener(c: &mut clavis::config::Config) {
    c.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
}

/// Scrapes the main listener with the token, checks the answer and parses it.
async fn scrape(app: &TestApp) -> Scrape {
    let r = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&r.text().await.unwrap())
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn matches(sample: &prometheus_parse::Sample, name: &str, labels: &[(&str, &str)]) -> bool {
    sample.metric == name && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

/// The value of a counter or gauge sample; 0 when absent.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|x| matches(x, name, labels))
        .map_or(0.0, |x| match &x.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
}

/// Observations of a histogram (its `+Inf` bucket); 0 when absent.
fn observations(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|x| matches(x, name, labels) && matches!(x.value, Metric::Histogram(_)))
        .map_or(0.0, |x| match &x.value {
            Metric::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .map_or(0.0, |b| b.count),
            _ => 0.0,
        })
}

fn tokens(s: &Scrape, method: &str, outcome: &str) -> f64 {
    value(
        s,
        "clavis_token_requests_total",
        &[("method", method), ("outcome", outcome)],
    )
}

#[tokio::test]
async fn every_series_counts_what_the_requests_did() {
    let app = TestApp::spawn_with(|c| {
        c.metrics.token = Some(Secret(TOKEN.into()));
        with_listener(c);
    })
    .await;
    app.create_api(API, &["read"]).await;
    let client = app.create_m2m_client("metrics").await;
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    app.grant(&client_id, API, &["read"]).await;
    // A private_key_jwt client whose credential expires in about a day.
    let key_client = app.create_m2m_client("metrics-pkjwt").await;
    let key_client_id = key_client["client_id"].as_str().unwrap().to_string();
    app.grant(&key_client_id, API, &["read"]).await;
    let key = AssertionKey::new(2048);
    let expires = now() + 86_400;
    let expires_text = time::OffsetDateTime::from_unix_timestamp(expires)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .create_credential(
            &key_client_id,
            json!({"credential_type": "public_key", "pem": key.public_pem, "alg": "RS256", "expires_at": expires_text}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let credential: serde_json::Value = r.json().await.unwrap();
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/clients/{key_client_id}"),
            Some(json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": credential["id"]}]}}, "token_endpoint_auth_method": null})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let before = scrape(&app).await;
    let post = |extra: &'static str| {
        let (client_id, secret) = (client_id.clone(), secret.clone());
        let app = &app;
        async move {
            app.token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &secret),
                ("audience", if extra.is_empty() { API } else { extra }),
            ])
            .await
            .status()
        }
    };
    // client_secret_post: two issued, one refused (unknown audience).
    assert_eq!(post("").await, StatusCode::OK);
    assert_eq!(post("").await, StatusCode::OK);
    assert_eq!(
        post("https://nowhere.example/").await,
        StatusCode::FORBIDDEN
    );
    // client_secret_basic: one issued.
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("audience", API)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // private_key_jwt: one issued (a durable jti write), one refused.
    let assertion = key.sign(
        &json!({"alg": "RS256"}),
        &assertion_claims(&app, &key_client_id),
    );
    let jwt_form = |assertion: String| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion", assertion),
            ("audience", API.to_string()),
        ]
    };
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&jwt_form(assertion))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&jwt_form("not.an.assertion".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // No credential at all.
    let r = app
        .token_form(&[("grant_type", "client_credentials"), ("audience", API)])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Wrong secrets for one client id from one address: refused, then refused before
    // authentication by the failed-authentication budget.
    for _ in 0..10 {
        let r = app.secret_post("victim", "wrong", API).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app.secret_post("victim", "wrong", API).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Management API: a list and a client that does not exist.
    let r = app.admin(Method::GET, "/api/v2/clients", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .admin(Method::GET, "/api/v2/clients/no-such-client", None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // On SQLite the assertion's id is written behind the token, within a batch's linger.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        let after = scrape(&app).await;
        if observations(&after, "clavis_jti_write_duration_seconds", &[]) >= 1.0
            || std::time::Instant::now() > deadline
        {
            break after;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let delta = |method: &str, outcome: &str| {
        tokens(&after, method, outcome) - tokens(&before, method, outcome)
    };
    assert_eq!(delta("client_secret_post", "issued"), 2.0);
    assert_eq!(delta("client_secret_post", "access_denied"), 11.0);
    assert_eq!(delta("client_secret_post", "too_many_requests"), 1.0);
    assert_eq!(delta("client_secret_basic", "issued"), 1.0);
    assert_eq!(delta("private_key_jwt", "issued"), 1.0);
    assert_eq!(delta("private_key_jwt", "invalid_client"), 1.0);
    assert_eq!(delta("none", "invalid_request"), 1.0);
    // Every series of the token counter exists, at zero if nothing happened.
    assert_eq!(
        after
            .samples
            .iter()
            .filter(|s| s.metric == "clavis_token_requests_total")
            .count(),
        50
    );
    let latency = |s: &Scrape, method: &str| {
        observations(
            s,
            "clavis_token_request_duration_seconds",
            &[("method", method)],
        )
    };
    assert_eq!(
        latency(&after, "client_secret_post") - latency(&before, "client_secret_post"),
        14.0
    );
    assert_eq!(
        latency(&after, "private_key_jwt") - latency(&before, "private_key_jwt"),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "clavis_rate_limited_requests_total",
            &[("bucket", "failed_authentication")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "clavis_rate_limited_requests_total",
            &[("bucket", "token_client")]
        ),
        0.0
    );
    assert_eq!(
        observations(&after, "clavis_jti_write_duration_seconds", &[]),
        1.0
    );
    let management = |route: &str, method: &str, status: &str| {
        value(
            &after,
            "clavis_management_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(management("/api/v2/clients", "GET", "200"), 1.0);
    assert_eq!(management("/api/v2/clients", "POST", "201"), 2.0);
    assert_eq!(management("/api/v2/client-grants", "POST", "201"), 2.0);
    assert_eq!(management("/api/v2/resource-servers", "POST", "201"), 1.0);
    // prometheus-parse 0.2 drops a sample whose label value holds `}` (valid in the format,
    // and in every route template with a parameter): those are read from the instruments.
    let m = &app.clavis.metrics;
    assert_eq!(
        m.management_count("GET", "/api/v2/clients/{client_id}", 404),
        1
    );
    assert_eq!(
        m.management_count("PATCH", "/api/v2/clients/{client_id}", 200),
        1
    );
    assert_eq!(
        m.management_count("POST", "/api/v2/clients/{client_id}/credentials", 201),
        1
    );
    let text = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(
        "clavis_management_requests_total{method=\"GET\",route=\"/api/v2/clients/{client_id}\",status=\"404\"} 1\n"
    ), "{text}");
    // The soonest credential expiry, in seconds from the scrape.
    let left = value(
        &after,
        "clavis_client_credential_expires_in_seconds",
        &[("client_id", &key_client_id)],
    );
    assert!(left > 86_000.0 && left <= 86_400.0, "{left}");
    assert!(!after.samples.iter().any(|s| s.metric
        == "clavis_client_credential_expires_in_seconds"
        && s.labels.get("client_id") == Some(client_id.as_str())));
    // The key client is the only one with an expiring credential.
    assert_eq!(
        value(&after, "clavis_clients_with_expiring_credentials", &[]),
        1.0
    );
    // Process basics (Linux); no database pool on SQLite.
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(value(&after, "process_open_fds", &[]) > 0.0);
    if app.clavis.store.gauges().is_none() {
        assert!(
            !after
                .samples
                .iter()
                .any(|s| s.metric.starts_with("clavis_db_"))
        );
    } else {
        assert!(value(&after, "clavis_db_pool_max_connections", &[]) >= 1.0);
        assert!(value(&after, "clavis_db_pool_connections", &[]) >= 1.0);
        assert_eq!(value(&after, "clavis_change_listener_connected", &[]), 1.0);
        // This node's own writes came back through the listener.
        let age = value(
            &after,
            "clavis_change_listener_last_notification_age_seconds",
            &[],
        );
        assert!((0.0..10.0).contains(&age), "{age}");
        assert!(
            after
                .samples
                .iter()
                .any(|s| s.metric == "clavis_change_listener_last_notification_age_seconds")
        );
    }

    // Without the token, or with a wrong one: 401.
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The separate listener asks for the same token.
    let listener = format!("http://{}", app.metrics_address.unwrap());
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!("{listener}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = plain
        .get(format!("{listener}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(
        value(
            &parse(&text),
            "clavis_token_requests_total",
            &[("method", "client_secret_post"), ("outcome", "issued")]
        ) >= 2.0
    );
}

#[tokio::test]
async fn metrics_are_not_served_unless_configured() {
    // Neither setting: 404 on the main listener.
    let app = TestApp::spawn().await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(app.metrics_address.is_none());
    app.stop().await;
    // A separate listener only: served there without a token, still 404 on the main one.
    // A bucket of one request per address: the second request is refused.
    let app = TestApp::spawn_with(|c| {
        with_listener(c);
        c.http.per_ip = clavis::config::RateQuota {
            per_second: 1,
            burst: 1,
        };
    })
    .await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let listener = format!("http://{}", app.metrics_address.unwrap());
    let r = reqwest::get(format!("{listener}/metrics")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let scrape = parse(&r.text().await.unwrap());
    assert_eq!(
        value(
            &scrape,
            "clavis_rate_limited_requests_total",
            &[("bucket", "address")]
        ),
        1.0
    );
    assert_eq!(
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "clavis_rate_limited_requests_total")
            .count(),
        4
    );
    let r = reqwest::get(format!("{listener}/healthz")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Stops the Prometheus server this test started.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus server (Debian's package, installed by `scripts/test`) scrapes the
/// separate listener with the bearer token, and its query API returns the series.
#[tokio::test]
async fn a_prometheus_server_scrapes_the_metrics() {
    let app = TestApp::spawn_with(|c| {
        c.metrics.token = Some(Secret(TOKEN.into()));
        with_listener(c);
    })
    .await;
    let token = app.admin_token().await;
    assert!(!token.is_empty());
    let r = app
        .admin(Method::GET, "/api/v2/clients/no-such-client", None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: clavis\n    scrape_interval: 1s\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{}']\n",
            token_file.display(),
            app.metrics_address.unwrap()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Child(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus on PATH (Debian's package; scripts/test installs it)"),
    );
    let query = |q: &'static str| {
        let url = format!("http://127.0.0.1:{port}/api/v1/query");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .form(&[("query", q)])
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = r.json().await.ok()?;
            let value = body["data"]["result"][0]["value"][1].as_str()?.to_string();
            value.parse::<f64>().ok()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if query("up{job=\"clavis\"}").await == Some(1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus did not scrape: {}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        query("clavis_token_requests_total{method=\"client_secret_post\",outcome=\"issued\"}")
            .await
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        query(
            "clavis_management_requests_total{route=\"/api/v2/clients/{client_id}\",status=\"404\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        query("count(clavis_token_requests_total)").await,
        Some(50.0)
    );
    assert!(
        query("clavis_token_request_duration_seconds_count{method=\"client_secret_post\"}")
            .await
            .unwrap()
            >= 1.0
    );
}

//! `/api/v2/logs`: the events of the seed scenario with their exact fields, both paging
//! modes, the search query, retention, redaction and the scope.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://api.logs.test/";

async fn logs(app: &TestApp, query: &str) -> Value {
    let r = app
        .admin(Method::GET, &format!("/api/v2/logs?{query}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    r.json().await.unwrap()
}

/// Every event, oldest first (checkpoint from the start).
async fn all_events(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = String::new();
    loop {
        let page = logs(app, &format!("take=100&from={from}")).await;
        let items = page.as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        from = items.last().unwrap()["log_id"]
            .as_str()
            .unwrap()
            .to_string();
        out.extend(items);
    }
}

/// An object's keys, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut keys = crate::helpers::keys(v);
    keys.sort();
    keys
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn sign(app: &TestApp, key: &AssertionKey, client_id: &str) -> String {
    key.sign(&json!({"alg": "RS256"}), &assertion_claims(app, client_id))
}

async fn assertion_token(app: &TestApp, assertion: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("user-agent", "logs-test/1.0")
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("audience", API),
            ("scope", "read:things"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_seed_scenario_leaves_sapi_seccft_and_feccft_with_exact_fields() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read:things"]).await;
    let client = app.create_m2m_client("seed client").await;
    let client_id = client["client_id"].as_str().unwrap().to_string();
    app.grant(&client_id, API, &["read:things"]).await;
    let key = AssertionKey::new(2048);
    let cred = app
        .credential_ok(
            &client_id,
            json!({"credential_type": "public_key", "pem": key.public_pem, "alg": "RS256"}),
        )
        .await;
    let credential_id = cred["id"].as_str().unwrap().to_string();
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/clients/{client_id}"),
            Some(json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": credential_id}]}}, "token_endpoint_auth_method": null})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A token: seccft.
    let r = assertion_token(&app, &sign(&app, &key, &client_id)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The seed: the credential expires.
    let path = format!("/api/v2/clients/{client_id}/credentials/{credential_id}");
    let r = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Refused: feccft with the reason.
    let assertion = sign(&app, &key, &client_id);
    let r = assertion_token(&app, &assertion).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Back.
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"expires_at": null})))
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let events = all_events(&app).await;
    let host = url::Url::parse(&app.issuer())
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();

    let seccft: Vec<&Value> = of_type(&events, "seccft")
        .into_iter()
        .filter(|e| e["client_id"] == client_id.as_str())
        .collect();
    assert_eq!(seccft.len(), 1, "{seccft:?}");
    let s = seccft[0];
    assert_eq!(
        keys(s),
        [
            "audience",
            "client_id",
            "client_name",
            "date",
            "description",
            "hostname",
            "ip",
            "isMobile",
            "log_id",
            "scope",
            "type",
            "user_agent"
        ]
    );
    assert_eq!(s["client_name"], "seed client");
    assert_eq!(s["audience"], API);
    assert_eq!(s["scope"], "read:things");
    assert_eq!(s["ip"], "127.0.0.1");
    assert_eq!(s["user_agent"], "logs-test/1.0");
    assert_eq!(s["hostname"], host.as_str());
    assert_eq!(s["isMobile"], false);
    assert!(is_millis_timestamp(s["date"].as_str().unwrap()), "{s}");
    assert!(
        s["log_id"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit()),
        "{s}"
    );

    let feccft: Vec<&Value> = of_type(&events, "feccft")
        .into_iter()
        .filter(|e| e["client_id"] == client_id.as_str())
        .collect();
    assert_eq!(feccft.len(), 1, "{feccft:?}");
    let f = feccft[0];
    assert_eq!(
        keys(f),
        [
            "audience",
            "client_id",
            "client_name",
            "date",
            "description",
            "details",
            "hostname",
            "ip",
            "isMobile",
            "log_id",
            "scope",
            "type",
            "user_agent"
        ]
    );
    assert_eq!(f["client_name"], "seed client");
    assert_eq!(f["audience"], API);
    let reason = f["description"].as_str().unwrap();
    assert!(
        reason.contains("expired") && reason.contains(&credential_id),
        "{f}"
    );
    assert_eq!(
        f["details"],
        json!({"error": "invalid_client", "error_description": "Client authentication failed"})
    );
    // Never the assertion.
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&assertion));

    // The two PATCHes of the credential: sapi, by the admin, with the body.
    let sapi: Vec<&Value> = of_type(&events, "sapi")
        .into_iter()
        .filter(|e| e["details"]["request"]["path"] == path.as_str())
        .collect();
    assert_eq!(sapi.len(), 2, "{sapi:?}");
    let p = sapi[0];
    assert_eq!(
        keys(p),
        [
            "client_id",
            "client_name",
            "date",
            "description",
            "details",
            "hostname",
            "ip",
            "isMobile",
            "log_id",
            "type"
        ]
    );
    assert_eq!(p["client_id"], ADMIN_ID);
    assert_eq!(p["client_name"], clavis::operator::ADMIN_CLIENT_NAME);
    assert_eq!(p["description"], "Update a client credential");
    let request = &p["details"]["request"];
    assert_eq!(request["method"], "PATCH");
    assert_eq!(
        request["body"],
        json!({"expires_at": "2020-01-01T00:00:00Z"})
    );
    assert_eq!(p["details"]["response"]["statusCode"], 200);
    assert_eq!(
        p["details"]["response"]["body"]["expires_at"],
        "2020-01-01T00:00:00.000Z"
    );
    assert_eq!(
        sapi[1]["details"]["request"]["body"],
        json!({"expires_at": null})
    );

    // Events are in log_id order, which is the order they happened in here.
    let order: Vec<&str> = events
        .iter()
        .filter(|e| {
            e["client_id"] == client_id.as_str() || e["details"]["request"]["path"] == path.as_str()
        })
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["seccft", "sapi", "feccft", "sapi"]);
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["log_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);

    // One event by id.
    let id = f["log_id"].as_str().unwrap();
    let one = app.get_ok(&format!("/api/v2/logs/{id}")).await;
    assert_eq!(&one, f);
}

#[tokio::test]
async fn secrets_are_redacted_and_secret_reads_are_logged() {
    let app = TestApp::spawn().await;
    let created = app.create_m2m_client("with secret").await;
    let client_id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let custom = "a-custom-secret-0123456789abcdef";
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/v2/clients/{client_id}"),
            Some(json!({"client_secret": custom})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .admin(Method::GET, &format!("/api/v2/clients/{client_id}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // A read without secrets is not logged.
    let r = app.admin(Method::GET, "/api/v2/keys/signing", None).await;
    assert_eq!(r.status(), StatusCode::OK);

    let events = all_events(&app).await;
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(secret), "a secret reached the log");
    assert!(!text.contains(ADMIN_SECRET), "a secret reached the log");
    let create = of_type(&events, "sapi")
        .into_iter()
        .find(|e| e["details"]["request"]["path"] == "/api/v2/clients")
        .unwrap();
    assert_eq!(create["description"], "Create a client");
    assert!(!text.contains(custom), "a secret reached the log");
    let update = of_type(&events, "sapi")
        .into_iter()
        .find(|e| e["details"]["request"]["method"] == "PATCH")
        .unwrap();
    assert_eq!(
        update["details"]["request"]["body"],
        json!({"client_secret": "[redacted]"})
    );
    assert_eq!(
        update["details"]["response"]["body"]["client_secret"],
        "[redacted]"
    );
    assert_eq!(create["details"]["response"]["statusCode"], 201);
    assert_eq!(
        create["details"]["response"]["body"]["client_secret"],
        "[redacted]"
    );
    assert_eq!(
        create["details"]["response"]["body"]["client_id"],
        client_id
    );
    assert_eq!(
        create["details"]["accessedSecrets"],
        json!(["client_secret"])
    );
    let reads = of_type(&events, "mgmt_api_read");
    assert_eq!(reads.len(), 1, "{reads:?}");
    let read = reads[0];
    assert_eq!(read["client_id"], ADMIN_ID);
    assert_eq!(
        read["details"]["request"]["path"],
        format!("/api/v2/clients/{client_id}")
    );
    assert_eq!(read["details"]["accessedSecrets"], json!(["client_secret"]));
    assert_eq!(read["details"]["response"], json!({"statusCode": 200}));
    // The admin's own token requests were logged, without the secret.
    assert!(
        of_type(&events, "seccft")
            .iter()
            .any(|e| e["client_id"] == ADMIN_ID)
    );
}

#[tokio::test]
async fn both_paging_modes_and_auth0s_limits() {
    let app = TestApp::spawn().await;
    let client = app.create_m2m_client("pager").await;
    let id = client["client_id"].as_str().unwrap();
    for _ in 0..7 {
        let r = app.secret_post(id, "wrong-secret-0123456789", API).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let all = all_events(&app).await;
    let failures = of_type(&all, "feccft");
    assert_eq!(failures.len(), 7);
    assert_eq!(failures[0]["description"], "wrong client secret");

    // Checkpoint: after `from`, in log_id order, with the next page's URL in Link.
    let first = failures[0]["log_id"].as_str().unwrap();
    let r = app
        .admin(
            Method::GET,
            &format!("/api/v2/logs?from={first}&take=2&q=type:sapi"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 2, "q is ignored with from");
    assert_eq!(page[0]["log_id"], failures[1]["log_id"]);
    let last = page[1]["log_id"].as_str().unwrap();
    assert_eq!(
        link,
        format!(
            "<{}api/v2/logs?from={last}&take=2>; rel=\"next\"",
            app.issuer()
        )
    );
    // At the end: an empty page whose next link stays where it is.
    let end = all.last().unwrap()["log_id"].as_str().unwrap();
    let r = app
        .admin(
            Method::GET,
            &format!("/api/v2/logs?from={end}&take=5"),
            None,
        )
        .await;
    assert!(
        r.headers()["link"]
            .to_str()
            .unwrap()
            .contains(&format!("from={end}&"))
    );
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));

    // Page mode: newest first by default; totals in Auth0's envelope.
    let body = logs(&app, "q=type:feccft&per_page=3&page=0&include_totals=true").await;
    assert_eq!(keys(&body), ["length", "limit", "logs", "start", "total"]);
    assert_eq!(body["total"], 7);
    assert_eq!(
        (
            body["start"].clone(),
            body["limit"].clone(),
            body["length"].clone()
        ),
        (json!(0), json!(3), json!(3))
    );
    assert_eq!(body["logs"][0]["log_id"], failures[6]["log_id"]);
    let third = logs(&app, "q=type:feccft&per_page=3&page=2").await;
    assert_eq!(third.as_array().unwrap().len(), 1);
    assert_eq!(third[0]["log_id"], failures[0]["log_id"]);
    let asc = logs(&app, "q=type:feccft&per_page=2&sort=date:1").await;
    assert_eq!(asc[0]["log_id"], failures[0]["log_id"]);
    // fields / include_fields.
    let picked = logs(&app, "q=type:feccft&per_page=1&fields=type,client_id").await;
    assert_eq!(keys(&picked[0]), ["client_id", "type"]);
    let without = logs(
        &app,
        "q=type:feccft&per_page=1&fields=details&include_fields=false",
    )
    .await;
    assert!(without[0].get("details").is_none() && without[0].get("type").is_some());

    // Auth0's limits.
    for bad in [
        "per_page=101",
        "take=101&from=",
        "page=10&per_page=100",
        "sort=date:2",
        "sort=secret:1",
        "fields=nope",
        "from=notalogid",
    ] {
        app.admin_error(
            Method::GET,
            &format!("/api/v2/logs?{bad}"),
            None,
            400,
            Some("invalid_query_string"),
        )
        .await;
    }
    let ok = logs(&app, "page=9&per_page=100").await;
    assert!(ok.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_search_query() {
    let app = TestApp::spawn().await;
    let client = app.create_m2m_client("searcher").await;
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    app.create_api(API, &["read:things"]).await;
    app.grant(id, API, &["read:things"]).await;
    app.token_for(id, secret, API).await;
    let r = app.secret_post(id, "nope-nope-nope-nope", API).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let count = async |q: &str| -> usize {
        let body = logs(&app, &format!("per_page=100&q={}", enc(q))).await;
        body.as_array().unwrap().len()
    };
    let mine = format!("client_id:{id}");
    assert_eq!(count(&format!("{mine} AND type:seccft")).await, 1);
    assert_eq!(count(&format!("{mine} type:feccft")).await, 1);
    assert_eq!(count(&format!("{mine} AND type:s*")).await, 1);
    assert_eq!(
        count(&format!("{mine} AND (type:seccft OR type:feccft)")).await,
        2
    );
    assert_eq!(count(&format!("{mine} AND NOT type:seccft")).await, 1);
    assert_eq!(count("client_name:\"searcher\"").await, 2);
    assert_eq!(count("client_name:search*").await, 2);
    assert_eq!(
        count(&format!("{mine} AND date:[2020-01-01 TO *]")).await,
        2
    );
    assert_eq!(
        count(&format!("{mine} AND date:[* TO 2020-01-01]")).await,
        0
    );
    assert_eq!(count("user_id:anyone").await, 0);
    // `search`, as the SDKs send it.
    let body = logs(&app, &format!("per_page=100&search={}", enc(&mine))).await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    for bad in [
        "type:",
        "nosuch:x",
        "(type:sapi",
        "type:*ft",
        "date:[soon TO *]",
    ] {
        let body = app
            .admin_error(
                Method::GET,
                &format!("/api/v2/logs?q={}", enc(bad)),
                None,
                400,
                Some("invalid_query_string"),
            )
            .await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid search query"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn retention_purges_old_events_in_chunks() {
    let app = TestApp::spawn().await;
    let store = app.clavis.store.clone();
    let old = clavis::domain::time::Timestamp::now().unix_millis() - 40 * 86_400_000;
    let batch: Vec<clavis::store::NewLog> = (0..(clavis::audit::PURGE_CHUNK + 3))
        .map(|i| {
            let mut doc = serde_json::Map::new();
            doc.insert("type".into(), json!("sapi"));
            doc.insert("description".into(), json!(format!("old {i}")));
            clavis::store::NewLog { date_ms: old, doc }
        })
        .collect();
    store.insert_logs(&batch).await.unwrap();
    app.admin_token().await; // a fresh event
    let before = logs(&app, "include_totals=true&per_page=1").await["total"]
        .as_u64()
        .unwrap();
    assert!(before > clavis::audit::PURGE_CHUNK, "{before}");
    let cutoff = clavis::domain::time::Timestamp::now().unix_millis() - 30 * 86_400_000;
    let purged = clavis::audit::purge(store.as_ref(), cutoff).await.unwrap();
    assert_eq!(purged, clavis::audit::PURGE_CHUNK + 3);
    let after = logs(&app, "include_totals=true&per_page=1").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before - purged);
    assert_eq!(count_old(&app).await, 0);
}

async fn count_old(app: &TestApp) -> usize {
    let body = logs(app, &format!("per_page=100&q={}", enc("description:old*"))).await;
    body.as_array().unwrap().len()
}

#[tokio::test]
async fn read_logs_is_required_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    let token = app.token_with_scopes(&["read:clients"]).await;
    let r = app.call(&token, Method::GET, "/api/v2/logs", None).await;
    assert_error(r, 403, Some("insufficient_scope")).await;
    let r = app
        .call(
            &token,
            Method::GET,
            "/api/v2/logs/90000000000000000000001",
            None,
        )
        .await;
    assert_error(r, 403, Some("insufficient_scope")).await;
    let reader = app.token_with_scopes(&["read:logs"]).await;
    let r = app.call(&reader, Method::GET, "/api/v2/logs", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    for id in ["90000000000099999999999", "nope"] {
        let r = app
            .call(&reader, Method::GET, &format!("/api/v2/logs/{id}"), None)
            .await;
        let body = assert_error(r, 404, Some("inexistent_log")).await;
        assert_eq!(body["message"], "Log not found");
    }
}

#[tokio::test]
async fn an_older_installation_gains_read_logs_and_a_restart_writes_the_queue_first() {
    let app = TestApp::spawn().await;
    // As an installation made before `read:logs` existed: neither the system API nor the
    // admin's grant has it.
    let store = app.clavis.store.clone();
    let api = store
        .resource_server(&app.management_audience())
        .await
        .unwrap()
        .unwrap();
    store
        .update_resource_server(&api.id, &mut |rs| {
            rs.scopes.retain(|s| s.value != "read:logs");
            Ok(())
        })
        .await
        .unwrap();
    let filter = clavis::store::GrantFilter {
        client_id: Some(ADMIN_ID.into()),
        ..Default::default()
    };
    let page = clavis::store::PageRequest::Offset {
        page: 0,
        per_page: 10,
    };
    for grant in store.list_client_grants(&filter, page).await.unwrap().items {
        store
            .update_client_grant(&grant.id, &mut |g| {
                g.scope.retain(|s| s != "read:logs");
                Ok(())
            })
            .await
            .unwrap();
    }
    // Its event is queued when the server is asked to stop.
    app.create_m2m_client("made before the restart").await;
    let app = app.restart().await;
    let token = app.admin_token().await;
    let scope = jwt_payload(&token)["scope"].as_str().unwrap().to_string();
    assert!(scope.split(' ').any(|s| s == "read:logs"), "{scope}");
    let api = app
        .get_ok(&format!("/api/v2/resource-servers/{}", api.id))
        .await;
    assert!(
        api["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["value"] == "read:logs" && s["description"] == "Read Logs")
    );
    let events = all_events(&app).await;
    assert!(
        of_type(&events, "sapi")
            .iter()
            .any(|e| e["details"]["request"]["body"]["name"] == "made before the restart"),
        "{events:?}"
    );
}

#[tokio::test]
async fn rate_limit_refusals_are_api_limit_events() {
    let app = TestApp::spawn_with(|c| {
        c.http.per_client = clavis::config::RateQuota {
            per_second: 1,
            burst: 5,
        };
    })
    .await;
    let reader = app.token_with_scopes(&["read:logs"]).await;
    let mut refused = false;
    for _ in 0..10 {
        let r = app.admin(Method::GET, "/api/v2/clients", None).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
    }
    assert!(refused, "the management bucket never ran out");
    let mut refused = false;
    for _ in 0..10 {
        let r = app
            .token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", ADMIN_ID),
                ("client_secret", ADMIN_SECRET),
                ("audience", &app.management_audience()),
            ])
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
    }
    assert!(refused, "the token bucket never ran out");
    let r = app
        .call(
            &reader,
            Method::GET,
            "/api/v2/logs?q=type:api_limit&sort=date:1",
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let events: Vec<Value> = r.json().await.unwrap();
    let buckets: Vec<&str> = events
        .iter()
        .map(|e| e["details"]["limit"]["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(buckets, ["management client", "token client"], "{events:?}");
    let m = &events[0];
    assert_eq!(m["client_id"], ADMIN_ID);
    assert_eq!(m["client_name"], clavis::operator::ADMIN_CLIENT_NAME);
    assert_eq!(m["description"], "Global limit has been reached");
    assert_eq!(
        m["details"],
        json!({"limit": {"bucket": "management client", "global": false, "size": 5},
               "request": {"method": "GET", "path": "/api/v2/clients"}})
    );
    assert_eq!(
        events[1]["details"]["request"],
        json!({"method": "POST", "path": "/oauth/token"})
    );
    assert_eq!(events[1]["client_id"], ADMIN_ID);
    // A refused token request is an api_limit, not also a feccft.
    let r = app
        .call(&reader, Method::GET, "/api/v2/logs?q=type:feccft", None)
        .await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn an_rfc9068_token_logs_its_jti() {
    let app = TestApp::spawn().await;
    let r = app
        .admin(
            Method::POST,
            "/api/v2/resource-servers",
            Some(
                json!({"identifier": API, "name": "jti api", "token_dialect": "rfc9068_profile",
                        "scopes": [{"value": "read:things"}]}),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let client = app.create_m2m_client("jti logs").await;
    let id = client["client_id"].as_str().unwrap();
    app.grant(id, API, &["read:things"]).await;
    let token = app
        .token_for(id, client["client_secret"].as_str().unwrap(), API)
        .await;
    let jti = jwt_payload(&token)["jti"].as_str().unwrap().to_string();
    let events = logs(&app, &format!("q=type:seccft%20AND%20client_id:{id}")).await;
    assert_eq!(events[0]["details"], json!({"access_token_jti": jti}));
    // The Auth0 dialect has no jti: no details.
    let admin = logs(&app, &format!("q=type:seccft%20AND%20client_id:{ADMIN_ID}")).await;
    assert!(admin[0].get("details").is_none(), "{admin}");
}

#[tokio::test]
async fn with_the_audit_trail_off_nothing_is_recorded() {
    let app = TestApp::spawn_with(|c| c.audit_trail = false).await;
    // A Management write, a secret read, a token and a refused token request.
    let r = app
        .admin(
            Method::POST,
            "/api/v2/resource-servers",
            Some(json!({"identifier": API, "name": "off", "scopes": [{"value": "read:things"}]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .admin(Method::GET, &format!("/api/v2/clients/{ADMIN_ID}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", ADMIN_SECRET),
            ("audience", &app.management_audience()),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", "not the secret"),
            ("audience", &app.management_audience()),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The log reads flush the queue first: an event recorded would be there.
    assert_eq!(logs(&app, "").await, json!([]));
    assert_eq!(logs(&app, "take=100").await, json!([]));
}

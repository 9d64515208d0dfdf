//! Client grants — `/api/v2/client-grants` (contract sections 1 and 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://orders.example.com/";
const OTHER: &str = "urn:inventory";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn client_id(v: &Value) -> String {
    v["client_id"].as_str().unwrap().to_string()
}

fn grant_path(id: &str) -> String {
    format!("/api/v2/client-grants/{id}")
}

async fn setup(app: &TestApp) -> (Value, Value) {
    app.create_api(API, &["read:orders", "write:orders", "delete:orders"])
        .await;
    app.create_api(OTHER, &["read:stock"]).await;
    let a = app.create_m2m_client("a").await;
    let b = app.create_m2m_client("b").await;
    (a, b)
}

async fn token_scope(app: &TestApp, client: &Value) -> (u16, Value) {
    status_json(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id(client)),
            ("client_secret", client["client_secret"].as_str().unwrap()),
            ("audience", API),
        ])
        .await,
    )
    .await
}

#[tokio::test]
async fn create_returns_201_with_a_cgr_id() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let grant = app
        .admin_expect(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": client_id(&a), "audience": API, "scope": ["read:orders", "write:orders"]})),
            201,
        )
        .await;
    assert_eq!(keys(&grant), ["id", "client_id", "audience", "scope"]);
    assert!(is_grant_id(&id(&grant)), "{grant}");
    assert_eq!(grant["client_id"], a["client_id"]);
    assert_eq!(grant["audience"], API);
    assert_eq!(grant["scope"], json!(["read:orders", "write:orders"]));
    assert_eq!(app.get_ok(&grant_path(&id(&grant))).await, grant);
}

#[tokio::test]
async fn create_with_an_empty_scope_list() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let grant = app
        .admin_expect(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": client_id(&a), "audience": API, "scope": []})),
            201,
        )
        .await;
    assert_eq!(grant["scope"], json!([]));
    let (status, token) = token_scope(&app, &a).await;
    assert_eq!(status, 200, "{token}");
    assert!(token.get("scope").is_none(), "{token}");
}

#[tokio::test]
async fn unknown_client_is_404() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let before = app.get_ok("/api/v2/client-grants").await;
    let err = app
        .admin_error(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": "NoSuchClient00000000000000000000", "audience": API, "scope": []})),
            404,
            Some("inexistent_client"),
        )
        .await;
    assert_eq!(err["message"], "The client does not exist");
    assert_eq!(app.get_ok("/api/v2/client-grants").await, before);
}

#[tokio::test]
async fn unknown_audience_is_404() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let before = app.get_ok("/api/v2/client-grants").await;
    for audience in [
        "https://nowhere.example.com/",
        "0123456789abcdef01234567",
        "https://orders.example.com",
    ] {
        let err = app
            .admin_error(
                Method::POST,
                "/api/v2/client-grants",
                Some(json!({"client_id": client_id(&a), "audience": audience, "scope": []})),
                404,
                Some("inexistent_resource_server"),
            )
            .await;
        assert_eq!(err["message"], "The resource server does not exist");
    }
    assert_eq!(app.get_ok("/api/v2/client-grants").await, before);
}

#[tokio::test]
async fn audience_must_be_the_identifier_not_the_id() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let rs = app
        .get_ok(&format!("/api/v2/resource-servers/{}", enc(API)))
        .await;
    app.admin_error(
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": client_id(&a), "audience": rs["id"], "scope": []})),
        404,
        Some("inexistent_resource_server"),
    )
    .await;
}

#[tokio::test]
async fn api_whose_identifier_looks_like_an_id_can_be_granted() {
    let app = TestApp::spawn().await;
    let identifier = "abcdefabcdefabcdefabcdef";
    app.create_api(identifier, &["read"]).await;
    let a = app.create_m2m_client("a").await;
    app.admin_expect(
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": client_id(&a), "audience": identifier, "scope": ["read"]})),
        201,
    )
    .await;
    let rs = app
        .get_ok(&format!("/api/v2/resource-servers/{identifier}"))
        .await;
    assert_eq!(rs["identifier"], identifier);
}

#[tokio::test]
async fn duplicate_grant_is_409() {
    let app = TestApp::spawn().await;
    let (a, b) = setup(&app).await;
    app.grant(&client_id(&a), API, &["read:orders"]).await;
    let before = app.get_ok("/api/v2/client-grants").await;
    let err = app
        .admin_error(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": client_id(&a), "audience": API, "scope": ["write:orders"]})),
            409,
            None,
        )
        .await;
    assert_eq!(err["error"], "Conflict");
    assert_eq!(app.get_ok("/api/v2/client-grants").await, before);
    // Another client, or another audience, is fine.
    app.grant(&client_id(&b), API, &["read:orders"]).await;
    app.grant(&client_id(&a), OTHER, &["read:stock"]).await;
}

#[tokio::test]
async fn scope_not_defined_by_the_api_is_400() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    for scope in [json!(["read:orders", "fly:planes"]), json!(["read:stock"])] {
        let err = app
            .admin_error(
                Method::POST,
                "/api/v2/client-grants",
                Some(json!({"client_id": client_id(&a), "audience": API, "scope": scope})),
                400,
                Some("invalid_body"),
            )
            .await;
        assert!(err["message"].as_str().unwrap().contains("scope"), "{err}");
    }
    assert_eq!(
        app.get_ok(&format!(
            "/api/v2/client-grants?client_id={}",
            client_id(&a)
        ))
        .await,
        json!([])
    );
}

#[tokio::test]
async fn create_refuses_invalid_bodies() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let before = app.get_ok("/api/v2/client-grants").await;
    for body in [
        json!({}),
        json!({"client_id": client_id(&a), "scope": []}),
        json!({"audience": API, "scope": []}),
        json!({"client_id": client_id(&a), "audience": API, "scope": "read:orders"}),
        json!({"client_id": client_id(&a), "audience": API, "scope": [1]}),
        json!({"client_id": client_id(&a), "audience": API, "scope": [""]}),
        json!({"client_id": 7, "audience": API, "scope": []}),
        json!({"client_id": client_id(&a), "audience": API, "scope": [], "colour": "red"}),
    ] {
        let r = app
            .admin(Method::POST, "/api/v2/client-grants", Some(body.clone()))
            .await;
        assert_eq!(r.status().as_u16(), 400, "{body}");
        assert_error(r, 400, Some("invalid_body")).await;
    }
    assert_eq!(app.get_ok("/api/v2/client-grants").await, before);
}

#[tokio::test]
async fn list_filters_by_audience_and_client_id() {
    let app = TestApp::spawn().await;
    let (a, b) = setup(&app).await;
    let a_api = app.grant(&client_id(&a), API, &["read:orders"]).await;
    let a_other = app.grant(&client_id(&a), OTHER, &["read:stock"]).await;
    let b_api = app.grant(&client_id(&b), API, &[]).await;

    let by_audience = app
        .get_ok(&format!("/api/v2/client-grants?audience={}", enc(API)))
        .await;
    assert_eq!(by_audience, json!([a_api, b_api]));
    let by_client = app
        .get_ok(&format!(
            "/api/v2/client-grants?client_id={}",
            client_id(&a)
        ))
        .await;
    assert_eq!(by_client, json!([a_api, a_other]));
    let both = app
        .get_ok(&format!(
            "/api/v2/client-grants?client_id={}&audience={}",
            client_id(&b),
            enc(API)
        ))
        .await;
    assert_eq!(both, json!([b_api]));
    let none = app
        .get_ok(&format!(
            "/api/v2/client-grants?client_id={}&audience={}",
            client_id(&b),
            enc(OTHER)
        ))
        .await;
    assert_eq!(none, json!([]));
    // The admin's own grant is there too, first.
    let all = app.get_ok("/api/v2/client-grants").await;
    assert_eq!(all[0]["client_id"], ADMIN_ID);
    assert_eq!(all[0]["audience"], app.management_audience());
    assert_eq!(all.as_array().unwrap()[1..], [a_api, a_other, b_api]);
}

async fn five_grants(app: &TestApp) -> Vec<Value> {
    let mut grants = Vec::new();
    app.create_api(API, &["read"]).await;
    for i in 0..5 {
        let c = app.create_m2m_client(&format!("c{i}")).await;
        grants.push(app.grant(&client_id(&c), API, &["read"]).await);
    }
    grants
}

#[tokio::test]
async fn offset_paging_envelope() {
    let app = TestApp::spawn().await;
    let grants = five_grants(&app).await;
    let q = format!("/api/v2/client-grants?audience={}", enc(API));
    let page = app
        .get_ok(&format!("{q}&include_totals=true&page=1&per_page=2"))
        .await;
    assert_eq!(keys(&page), ["start", "limit", "total", "client_grants"]);
    assert_eq!(page["start"], 2);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["total"], 5);
    assert_eq!(page["client_grants"], Value::Array(grants[2..4].to_vec()));
    let bare = app.get_ok(&format!("{q}&page=2&per_page=2")).await;
    assert_eq!(bare, Value::Array(grants[4..].to_vec()));
    let all = app
        .get_ok("/api/v2/client-grants?include_totals=true")
        .await;
    assert_eq!(all["total"], 6);
    assert_eq!(all["limit"], 50);
}

#[tokio::test]
async fn checkpoint_paging_follows_next_until_the_end() {
    let app = TestApp::spawn().await;
    let grants = five_grants(&app).await;
    let base = format!("/api/v2/client-grants?audience={}&take=2", enc(API));
    let mut path = base.clone();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = app.get_ok(&path).await;
        pages += 1;
        seen.extend(page["client_grants"].as_array().unwrap().iter().cloned());
        match page.get("next") {
            Some(next) => {
                assert_eq!(keys(&page), ["next", "client_grants"]);
                assert_eq!(page["client_grants"].as_array().unwrap().len(), 2);
                path = format!("{base}&from={}", enc(next.as_str().unwrap()));
            }
            None => {
                assert_eq!(keys(&page), ["client_grants"]);
                break;
            }
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, grants);

    // Exactly one full page: no `next`.
    let whole = app
        .get_ok(&format!(
            "/api/v2/client-grants?audience={}&take=5",
            enc(API)
        ))
        .await;
    assert_eq!(whole, json!({"client_grants": grants}));
    // take with include_totals still answers with the checkpoint shape (Node SDK).
    let node = app
        .get_ok(&format!(
            "/api/v2/client-grants?audience={}&take=3&include_totals=true",
            enc(API)
        ))
        .await;
    assert!(node.get("next").is_some(), "{node}");
    assert_eq!(node["client_grants"], Value::Array(grants[..3].to_vec()));
}

#[tokio::test]
async fn bad_checkpoint_parameters_are_invalid_query_string() {
    let app = TestApp::spawn().await;
    for q in [
        "take=0",
        "take=101",
        "take=x",
        "from=%2A%2A%2A",
        "from=c2VxOi0x",
    ] {
        app.admin_error(
            Method::GET,
            &format!("/api/v2/client-grants?{q}"),
            None,
            400,
            Some("invalid_query_string"),
        )
        .await;
    }
}

#[tokio::test]
async fn patch_scope_changes_what_tokens_carry() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let grant = app.grant(&client_id(&a), API, &["read:orders"]).await;
    let (_, token) = token_scope(&app, &a).await;
    assert_eq!(token["scope"], "read:orders");

    let patched = app
        .admin_expect(
            Method::PATCH,
            &grant_path(&id(&grant)),
            Some(json!({"scope": ["write:orders", "delete:orders"]})),
            200,
        )
        .await;
    assert_eq!(keys(&patched), keys(&grant));
    assert_eq!(patched["id"], grant["id"]);
    assert_eq!(patched["client_id"], grant["client_id"]);
    assert_eq!(patched["audience"], grant["audience"]);
    assert_eq!(patched["scope"], json!(["write:orders", "delete:orders"]));
    assert_eq!(app.get_ok(&grant_path(&id(&grant))).await, patched);
    let (_, token) = token_scope(&app, &a).await;
    assert_eq!(token["scope"], "write:orders delete:orders");
}

#[tokio::test]
async fn patch_refuses_undefined_scopes_and_other_fields() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let grant = app.grant(&client_id(&a), API, &["read:orders"]).await;
    for body in [
        json!({"scope": ["read:stock"]}),
        json!({"scope": "read:orders"}),
        json!({"audience": OTHER}),
        json!({"client_id": "x"}),
        json!({"colour": "red"}),
    ] {
        let r = app
            .admin(Method::PATCH, &grant_path(&id(&grant)), Some(body.clone()))
            .await;
        assert_eq!(r.status().as_u16(), 400, "{body}");
        assert_error(r, 400, Some("invalid_body")).await;
    }
    assert_eq!(app.get_ok(&grant_path(&id(&grant))).await, grant);
}

#[tokio::test]
async fn unknown_grant_is_404() {
    let app = TestApp::spawn().await;
    let path = grant_path("cgr_0000000000000000");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"scope": []}))),
        (Method::DELETE, None),
    ] {
        let r = app.admin(method, &path, body).await;
        assert_error(r, 404, None).await;
    }
}

#[tokio::test]
async fn delete_returns_204_and_the_grant_is_gone() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let grant = app.grant(&client_id(&a), API, &["read:orders"]).await;
    let kept = app.grant(&client_id(&a), OTHER, &["read:stock"]).await;
    let r = app
        .admin(Method::DELETE, &grant_path(&id(&grant)), None)
        .await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    app.admin_error(Method::GET, &grant_path(&id(&grant)), None, 404, None)
        .await;
    app.admin_error(Method::DELETE, &grant_path(&id(&grant)), None, 404, None)
        .await;
    assert_eq!(
        app.get_ok(&format!(
            "/api/v2/client-grants?client_id={}",
            client_id(&a)
        ))
        .await,
        json!([kept])
    );
    let (status, err) = token_scope(&app, &a).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"], "access_denied");
}

#[tokio::test]
async fn concurrent_duplicate_grants_create_exactly_one() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let token = app.admin_token().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let req = app
            .http
            .post(app.url("/api/v2/client-grants"))
            .bearer_auth(&token)
            .json(&json!({"client_id": client_id(&a), "audience": API, "scope": ["read:orders"]}));
        set.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn scopes_removed_from_the_api_are_no_longer_issued() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    app.grant(&client_id(&a), API, &["read:orders", "write:orders"])
        .await;
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/resource-servers/{}", enc(API)),
        Some(json!({"scopes": [{"value": "read:orders"}]})),
        200,
    )
    .await;
    let (status, token) = token_scope(&app, &a).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["scope"], "read:orders");
}

/// A grant with `subject_type: "user"` is for user flows: it does not authorize the
/// `client_credentials` grant (nor Management tokens). Values outside Auth0's enum are refused.
#[tokio::test]
async fn a_user_grant_does_not_authorize_client_credentials() {
    let app = TestApp::spawn().await;
    app.create_api(API, &["read"]).await;
    let c = app.create_m2m_client("svc").await;
    let (id, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    let grant = app
        .admin_expect(
            Method::POST,
            "/api/v2/client-grants",
            Some(json!({"client_id": id, "audience": API, "scope": ["read"], "subject_type": "user"})),
            201,
        )
        .await;
    assert_eq!(grant["subject_type"], "user");
    let request = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("audience", API),
    ];
    let (status, body) = status_json(app.token_form(&request).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{body}"
    );
    // The same grant for the client itself does.
    let path = format!("/api/v2/client-grants/{}", grant["id"].as_str().unwrap());
    app.admin_json(Method::DELETE, &path, None).await;
    app.admin_expect(
        Method::POST,
        "/api/v2/client-grants",
        Some(
            json!({"client_id": id, "audience": API, "scope": ["read"], "subject_type": "client"}),
        ),
        201,
    )
    .await;
    assert_eq!(app.token_form(&request).await.status(), 200);
    app.admin_expect(
        Method::POST,
        "/api/v2/client-grants",
        Some(json!({"client_id": id, "audience": API, "scope": [], "subject_type": "robot"})),
        400,
    )
    .await;
}

async fn post_grant(app: &TestApp, body: Value) -> (u16, Value) {
    app.admin_json(Method::POST, "/api/v2/client-grants", Some(body))
        .await
}

/// Auth0 keeps one grant per client, audience and subject type: a `client` grant and a `user`
/// grant live side by side, a second of either is a 409, and only the `client` grant decides
/// what a `client_credentials` token carries — whichever was created first.
#[tokio::test]
async fn a_client_grant_and_a_user_grant_for_one_api() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let cid = client_id(&a);
    let (status, user) = post_grant(
        &app,
        json!({"client_id": cid, "audience": API, "scope": ["write:orders"], "subject_type": "user"}),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let (status, client) = post_grant(
        &app,
        json!({"client_id": cid, "audience": API, "scope": ["read:orders"]}),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    for subject_type in ["user", "client"] {
        let (status, body) = post_grant(
            &app,
            json!({"client_id": cid, "audience": API, "scope": [], "subject_type": subject_type}),
        )
        .await;
        assert_eq!(status, 409, "{subject_type}: {body}");
        assert_eq!(body["errorCode"], "conflict", "{body}");
    }
    let (status, body) = token_scope(&app, &a).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("read:orders")),
        "{body}"
    );
    // Deleting the user grant leaves the client grant in force; deleting that one ends it.
    app.admin_json(Method::DELETE, &grant_path(&id(&user)), None)
        .await;
    assert_eq!(token_scope(&app, &a).await.0, 200);
    app.admin_json(Method::DELETE, &grant_path(&id(&client)), None)
        .await;
    assert_eq!(token_scope(&app, &a).await.0, 403);
}

/// `GET /client-grants` filters as Auth0's document has them: `subject_type`,
/// `allow_any_organization` (only `true`), `default_for` (default grants, which Clavis refuses
/// to create, so none); totals count the filtered set; other values are a 400.
#[tokio::test]
async fn list_filters_by_subject_type_organization_and_default_for() {
    let app = TestApp::spawn().await;
    let (a, b) = setup(&app).await;
    let (_, a_user) = post_grant(
        &app,
        json!({"client_id": client_id(&a), "audience": API, "scope": [], "subject_type": "user"}),
    )
    .await;
    let (_, a_client) = post_grant(
        &app,
        json!({"client_id": client_id(&a), "audience": API, "scope": [], "allow_any_organization": true}),
    )
    .await;
    let (_, b_client) = post_grant(
        &app,
        json!({"client_id": client_id(&b), "audience": API, "scope": [], "allow_any_organization": false, "subject_type": "client"}),
    )
    .await;
    let api = enc(API);
    let get = |query: String| {
        let app = &app;
        async move { app.get_ok(&format!("/api/v2/client-grants?{query}")).await }
    };
    assert_eq!(
        get(format!("audience={api}&subject_type=user")).await,
        json!([a_user])
    );
    assert_eq!(
        get(format!("audience={api}&subject_type=client")).await,
        json!([a_client, b_client])
    );
    assert_eq!(
        get("allow_any_organization=true".into()).await,
        json!([a_client])
    );
    let page = get(format!(
        "audience={api}&subject_type=client&include_totals=true&per_page=1"
    ))
    .await;
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(page["client_grants"], json!([a_client]));
    let page = get("subject_type=client&take=1".into()).await;
    assert_eq!(page["client_grants"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(
        get("default_for=third_party_clients".into()).await,
        json!([])
    );
    // Checked against Auth0's schema of each parameter: a value of the wrong type is a type
    // error (as z-schema reports it), a value of the right type outside the enum no match.
    for (bad, says) in [
        ("subject_type=robot", "No enum match"),
        ("allow_any_organization=false", "No enum match"),
        (
            "allow_any_organization=yes",
            "Expected type boolean but found type string",
        ),
        ("default_for=first_party_clients", "No enum match"),
    ] {
        let (status, body) = app
            .admin_json(Method::GET, &format!("/api/v2/client-grants?{bad}"), None)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["errorCode"], "invalid_query_string", "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{bad}: {body}"
        );
    }
}

/// `default_for` (a grant for every third-party client, without `client_id`) is refused rather
/// than stored and ignored; `organization_usage` must be one of Auth0's values.
#[tokio::test]
async fn default_grants_and_bad_organization_usage_are_refused() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let (status, body) = post_grant(
        &app,
        json!({"client_id": client_id(&a), "audience": API, "scope": [], "default_for": "third_party_clients"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("default_for") && message.contains("does not support"),
        "{body}"
    );
    let (status, body) = post_grant(
        &app,
        json!({"client_id": client_id(&a), "audience": API, "scope": [], "organization_usage": "sometimes"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("organization_usage"),
        "{body}"
    );
    assert_eq!(
        app.get_ok(&format!(
            "/api/v2/client-grants?client_id={}",
            client_id(&a)
        ))
        .await,
        json!([])
    );
}

/// A grant with `organization_usage: require` authorizes no token without an organization,
/// and a request naming an organization that does not exist is refused (Auth0 validates the
/// parameter). `deny` and `allow` issue tokens without one (`organizations.rs` has the rest).
#[tokio::test]
async fn organization_usage_require_and_the_organization_parameter() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let (_, grant) = post_grant(
        &app,
        json!({"client_id": client_id(&a), "audience": API, "scope": ["read:orders"], "organization_usage": "require"}),
    )
    .await;
    let (status, body) = token_scope(&app, &a).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("organization"),
        "{body}"
    );
    for usage in ["allow", "deny"] {
        app.admin_expect(
            Method::PATCH,
            &grant_path(&id(&grant)),
            Some(json!({"organization_usage": usage})),
            200,
        )
        .await;
        assert_eq!(token_scope(&app, &a).await.0, 200, "{usage}");
    }
    let (status, body) = status_json(
        app.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id(&a)),
            ("client_secret", a["client_secret"].as_str().unwrap()),
            ("audience", API),
            ("organization", "org_abc"),
        ])
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}

/// Auth0's schema: each `authorization_details_types` item is a string of 1 to 255
/// characters, on create and on update (found by schemathesis with Auth0's document as the
/// oracle, `scripts/api-fuzz --oracle auth0`).
#[tokio::test]
async fn authorization_details_types_items_are_bounded_as_auth0s_schema() {
    let app = TestApp::spawn().await;
    let (a, _) = setup(&app).await;
    let long = "t".repeat(256);
    for (types, what, at) in [
        (
            json!([long]),
            "String is too long (256 chars), maximum 255",
            "[0]",
        ),
        (
            json!(["ok", ""]),
            "String is too short (0 chars), minimum 1",
            "[1]",
        ),
        (
            json!([7]),
            "Expected type string but found type integer",
            "[0]",
        ),
    ] {
        let body = json!({"client_id": client_id(&a), "audience": API, "scope": [],
            "subject_type": "user", "authorization_details_types": types});
        let err = assert_error(
            app.admin(Method::POST, "/api/v2/client-grants", Some(body))
                .await,
            400,
            Some("invalid_body"),
        )
        .await;
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains(what)
                && message.contains(&format!("on property authorization_details_types{at}")),
            "{message}"
        );
    }
    let grant = app
        .admin_expect(
            Method::POST,
            "/api/v2/client-grants",
            Some(
                json!({"client_id": client_id(&a), "audience": API, "scope": [],
                "subject_type": "user", "authorization_details_types": ["t".repeat(255)]}),
            ),
            201,
        )
        .await;
    app.admin_error(
        Method::PATCH,
        &grant_path(&id(&grant)),
        Some(json!({"authorization_details_types": [long]})),
        400,
        Some("invalid_body"),
    )
    .await;
    assert_eq!(app.get_ok(&grant_path(&id(&grant))).await, grant);
}

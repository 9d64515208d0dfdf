//! Token quotas — `token_quota` on clients and organizations, the tenant's
//! `default_token_quota` (`/api/v2/tenants/settings`), Auth0's quota headers and the 429
//! when a quota is spent (contract sections 9 and 12).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://quota.example.com/";

/// A client granted [`API`] with `settings` (e.g. a `token_quota`); returns (id, secret).
async fn quota_client(app: &TestApp, settings: Value) -> (String, String) {
    let mut body = json!({"name": "quota", "app_type": "non_interactive", "grant_types": ["client_credentials"]});
    for (k, v) in settings.as_object().unwrap() {
        body[k] = v.clone();
    }
    let c = app
        .admin_expect(Method::POST, "/api/v2/clients", Some(body), 201)
        .await;
    let id = c["client_id"].as_str().unwrap().to_string();
    app.grant(&id, API, &[]).await;
    (id, c["client_secret"].as_str().unwrap().to_string())
}

async fn token(app: &TestApp, id: &str, secret: &str, org: Option<&str>) -> Response {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("audience", API),
    ];
    if let Some(org) = org {
        form.push(("organization", org));
    }
    app.token_form(&form).await
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// `b=per_hour;q=..;r=..;t=..,...` as (bucket, q, r, t).
fn buckets(value: &str) -> Vec<(String, u64, u64, i64)> {
    value
        .split(',')
        .map(|part| {
            let fields: Vec<(&str, &str)> = part
                .split(';')
                .map(|kv| kv.split_once('=').unwrap())
                .collect();
            assert_eq!(
                fields.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                ["b", "q", "r", "t"],
                "{value}"
            );
            (
                fields[0].1.to_string(),
                fields[1].1.parse().unwrap(),
                fields[2].1.parse().unwrap(),
                fields[3].1.parse().unwrap(),
            )
        })
        .collect()
}

/// Moves the quota clock to one minute past the next UTC midnight, so that an hour later
/// is still the same UTC day.
fn to_next_day(app: &TestApp) {
    let now = app.clavis.quotas.now();
    let next_day = now - now.rem_euclid(86_400) + 86_400 + 60;
    app.clavis.quotas.shift_clock(next_day - now);
}

async fn setup(app: &TestApp) {
    app.create_api(API, &["read"]).await;
}

/// Asserts Auth0's 429 for a spent quota; returns its headers' `retry-after`.
async fn assert_quota_refusal(r: Response, description: &str, header_name: &str) -> i64 {
    assert_eq!(r.status().as_u16(), 429);
    let retry_after: i64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    let reset: i64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((reset - now() - retry_after).abs() <= 2, "{reset}");
    let quota = header(&r, header_name).expect("the quota header of the refusing quota");
    let b = buckets(&quota);
    assert!(
        b.iter().any(|(_, _, r, t)| *r == 0 && *t == retry_after),
        "{quota}"
    );
    assert_eq!(
        header(&r, "x-ratelimit-limit")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        b.iter().find(|(_, _, _, t)| *t == retry_after).unwrap().1
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "too_many_requests", "error_description": description})
    );
    retry_after
}

#[tokio::test]
async fn a_client_quota_counts_reports_refuses_and_resets_each_bucket() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    to_next_day(&app);
    let quota = json!({"client_credentials": {"per_hour": 2, "per_day": 3}});
    let (id, secret) = quota_client(&app, json!({ "token_quota": quota })).await;
    let c = app.get_ok(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(c["token_quota"], quota);

    for remaining in [1, 0] {
        let r = token(&app, &id, &secret, None).await;
        assert_eq!(r.status().as_u16(), 200);
        let value = header(&r, "auth0-client-quota-limit").unwrap();
        let b = buckets(&value);
        assert_eq!(b.len(), 2, "{value}");
        assert_eq!(
            (b[0].0.as_str(), b[0].1, b[0].2),
            ("per_hour", 2, remaining)
        );
        assert_eq!(
            (b[1].0.as_str(), b[1].1, b[1].2),
            ("per_day", 3, remaining + 1)
        );
        // One minute past the hour (and past midnight): 59 minutes and 23 h 59 min left.
        assert!((3538..=3540).contains(&b[0].3), "{value}");
        assert!((86_338..=86_340).contains(&b[1].3), "{value}");
        assert!(header(&r, "auth0-organization-quota-limit").is_none());
    }
    // The hour's quota is spent: 429 until the hour's end.
    let r = token(&app, &id, &secret, None).await;
    let wait = assert_quota_refusal(r, "Client quota exceeded", "auth0-client-quota-limit").await;
    assert!((3538..=3540).contains(&wait), "{wait}");

    // The next hour: the hourly bucket starts afresh; the day has one token left.
    app.clavis.quotas.shift_clock(3600);
    let r = token(&app, &id, &secret, None).await;
    assert_eq!(r.status().as_u16(), 200);
    let b = buckets(&header(&r, "auth0-client-quota-limit").unwrap());
    assert_eq!((b[0].2, b[1].2), (1, 0));
    // Now the day's quota is spent: the wait is until midnight, not the hour's end.
    let r = token(&app, &id, &secret, None).await;
    let wait = assert_quota_refusal(r, "Client quota exceeded", "auth0-client-quota-limit").await;
    assert!((82_738..=82_740).contains(&wait), "{wait}");

    // The next day: both start afresh.
    app.clavis.quotas.shift_clock(86_400);
    let r = token(&app, &id, &secret, None).await;
    assert_eq!(r.status().as_u16(), 200);

    // The refusal was logged as a failed exchange (Auth0's feccft).
    let token_admin = app.admin_token().await;
    let mut found = false;
    for _ in 0..50 {
        let r = app
            .call(
                &token_admin,
                Method::GET,
                "/api/v2/logs?q=type:feccft",
                None,
            )
            .await;
        let logs: Value = r.json().await.unwrap();
        if logs
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["client_id"] == id.as_str() && l["description"] == "Client quota exceeded")
        {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "no feccft event for the refusal");

    // Removing the quota: no more headers.
    let c = app
        .admin_expect(
            Method::PATCH,
            &format!("/api/v2/clients/{id}"),
            Some(json!({"token_quota": null})),
            200,
        )
        .await;
    assert!(c.get("token_quota").is_none(), "{c}");
    let r = token(&app, &id, &secret, None).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "auth0-client-quota-limit").is_none());
}

#[tokio::test]
async fn a_quota_not_enforced_counts_and_reports_without_refusing() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let (id, secret) = quota_client(
        &app,
        json!({"token_quota": {"client_credentials": {"per_hour": 1, "enforce": false}}}),
    )
    .await;
    for _ in 0..3 {
        let r = token(&app, &id, &secret, None).await;
        assert_eq!(r.status().as_u16(), 200);
        let b = buckets(&header(&r, "auth0-client-quota-limit").unwrap());
        assert_eq!((b.len(), b[0].1, b[0].2), (1, 1, 0));
    }
}

/// Auth0's consumption warnings: 60, 80 and 100 % of a bucket, each once per window.
#[tokio::test]
async fn consumption_warnings_are_logged_at_60_80_and_100_percent() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let (id, secret) = quota_client(
        &app,
        json!({"token_quota": {"client_credentials": {"per_day": 5, "enforce": false}}}),
    )
    .await;
    for _ in 0..7 {
        let r = token(&app, &id, &secret, None).await;
        assert_eq!(r.status().as_u16(), 200);
    }
    let admin = app.admin_token().await;
    let mut warnings = Vec::new();
    for _ in 0..50 {
        let r = app
            .call(
                &admin,
                Method::GET,
                "/api/v2/logs?q=type:token_quota_consumption_warning&sort=date:1",
                None,
            )
            .await;
        warnings = r.json::<Value>().await.unwrap().as_array().unwrap().clone();
        if warnings.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<(Value, Value)> = warnings
        .iter()
        .map(|w| (w["description"].clone(), w["details"].clone()))
        .collect();
    let expected: Vec<(Value, Value)> = [(60, 3), (80, 4), (100, 5)]
        .into_iter()
        .map(|(pct, n)| {
            (
                json!(format!("{pct}% of client per_day quota consumed")),
                json!({"bucket": "per_day", "entity_type": "client", "entity_id": id,
                       "quota": 5, "quota_consumption_percentage": pct, "quota_consumption": n}),
            )
        })
        .collect();
    assert_eq!(seen, expected);
    assert!(warnings.iter().all(|w| w["client_id"] == id.as_str()));
}

#[tokio::test]
async fn without_any_quota_nothing_is_counted_or_reported() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let (id, secret) = quota_client(&app, json!({})).await;
    for _ in 0..3 {
        let r = token(&app, &id, &secret, None).await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(header(&r, "auth0-client-quota-limit").is_none());
        assert!(header(&r, "auth0-organization-quota-limit").is_none());
    }
}

#[tokio::test]
async fn the_tenant_default_applies_to_clients_without_their_own() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let (plain, plain_secret) = quota_client(&app, json!({})).await;
    let (own, own_secret) = quota_client(
        &app,
        json!({"token_quota": {"client_credentials": {"per_hour": 3}}}),
    )
    .await;
    let settings = app
        .admin_expect(
            Method::PATCH,
            "/api/v2/tenants/settings",
            Some(json!({"default_token_quota": {"clients": {"client_credentials": {"per_hour": 1}}}})),
            200,
        )
        .await;
    assert_eq!(
        settings,
        json!({"default_token_quota": {"clients": {"client_credentials": {"per_hour": 1}}}})
    );
    let r = token(&app, &plain, &plain_secret, None).await;
    assert_eq!(r.status().as_u16(), 200);
    let b = buckets(&header(&r, "auth0-client-quota-limit").unwrap());
    assert_eq!((b[0].1, b[0].2), (1, 0));
    let r = token(&app, &plain, &plain_secret, None).await;
    assert_quota_refusal(r, "Client quota exceeded", "auth0-client-quota-limit").await;
    // A client's own quota overrides the default.
    for remaining in [2, 1, 0] {
        let r = token(&app, &own, &own_secret, None).await;
        assert_eq!(r.status().as_u16(), 200);
        let b = buckets(&header(&r, "auth0-client-quota-limit").unwrap());
        assert_eq!((b[0].1, b[0].2), (3, remaining));
    }
    // The admin (no quota of its own) is limited too, as in Auth0: lift the default.
    let settings = app
        .admin_expect(
            Method::PATCH,
            "/api/v2/tenants/settings",
            Some(json!({"default_token_quota": null})),
            200,
        )
        .await;
    assert_eq!(settings, json!({}));
    let r = token(&app, &plain, &plain_secret, None).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "auth0-client-quota-limit").is_none());
}

/// An organization in the token: its quota (own or the tenant's default for organizations)
/// is counted beside the client's, and either refuses.
#[tokio::test]
async fn an_organization_quota_counts_every_client_of_the_organization() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let org = app
        .admin_expect(
            Method::POST,
            "/api/v2/organizations",
            Some(json!({"name": "acme", "token_quota": {"client_credentials": {"per_day": 2}}})),
            201,
        )
        .await;
    assert_eq!(
        org["token_quota"],
        json!({"client_credentials": {"per_day": 2}})
    );
    let org_id = org["id"].as_str().unwrap().to_string();
    app.admin_expect(
        Method::POST,
        "/api/v2/organizations",
        Some(json!({"name": "globex"})),
        201,
    )
    .await;
    let globex = app.get_ok("/api/v2/organizations/name/globex").await;
    let globex_id = globex["id"].as_str().unwrap().to_string();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let c = app
            .admin_expect(
                Method::POST,
                "/api/v2/clients",
                Some(json!({"name": "org client", "app_type": "non_interactive", "grant_types": ["client_credentials"]})),
                201,
            )
            .await;
        let id = c["client_id"].as_str().unwrap().to_string();
        app
            .admin_expect(
                Method::POST,
                "/api/v2/client-grants",
                Some(json!({"client_id": id, "audience": API, "scope": [], "organization_usage": "allow", "allow_any_organization": true})),
                201,
            )
            .await;
        clients.push((id, c["client_secret"].as_str().unwrap().to_string()));
    }
    // Two clients share the organization's two tokens a day.
    for (i, (id, secret)) in clients.iter().enumerate() {
        let r = token(&app, id, secret, Some(&org_id)).await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(header(&r, "auth0-client-quota-limit").is_none());
        let b = buckets(&header(&r, "auth0-organization-quota-limit").unwrap());
        assert_eq!((b.len(), b[0].0.as_str(), b[0].1), (1, "per_day", 2));
        assert_eq!(b[0].2, 1 - i as u64);
    }
    let (id, secret) = &clients[0];
    let r = token(&app, id, secret, Some(&org_id)).await;
    assert_quota_refusal(
        r,
        "Organization quota exceeded",
        "auth0-organization-quota-limit",
    )
    .await;
    // Without the organization, or for another one without a quota: not counted.
    let r = token(&app, id, secret, None).await;
    assert_eq!(r.status().as_u16(), 200);
    let r = token(&app, id, secret, Some(&globex_id)).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "auth0-organization-quota-limit").is_none());
    // The default for organizations applies to globex; the client's own quota is counted
    // beside it.
    app
        .admin_expect(
            Method::PATCH,
            "/api/v2/tenants/settings",
            Some(json!({"default_token_quota": {"organizations": {"client_credentials": {"per_hour": 1}}}})),
            200,
        )
        .await;
    app.admin_expect(
        Method::PATCH,
        &format!("/api/v2/clients/{id}"),
        Some(json!({"token_quota": {"client_credentials": {"per_hour": 10}}})),
        200,
    )
    .await;
    let r = token(&app, id, secret, Some(&globex_id)).await;
    assert_eq!(r.status().as_u16(), 200);
    let o = buckets(&header(&r, "auth0-organization-quota-limit").unwrap());
    assert_eq!((o[0].1, o[0].2), (1, 0));
    let c = buckets(&header(&r, "auth0-client-quota-limit").unwrap());
    assert_eq!((c[0].1, c[0].2), (10, 9));
    // Refused by the organization's quota: the client's is not counted.
    let r = token(&app, id, secret, Some(&globex_id)).await;
    assert!(header(&r, "auth0-client-quota-limit").is_none());
    assert_quota_refusal(
        r,
        "Organization quota exceeded",
        "auth0-organization-quota-limit",
    )
    .await;
    let r = token(&app, id, secret, None).await;
    let c = buckets(&header(&r, "auth0-client-quota-limit").unwrap());
    assert_eq!((c[0].1, c[0].2), (10, 8));
}

#[tokio::test]
async fn quota_bodies_are_validated_as_auth0_does() {
    let app = TestApp::spawn().await;
    for (path, method, body, fragment) in [
        (
            "/api/v2/clients",
            Method::POST,
            json!({"name": "x", "token_quota": {"client_credentials": {"per_hour": 0}}}),
            "token_quota.client_credentials.per_hour",
        ),
        (
            "/api/v2/clients",
            Method::POST,
            json!({"name": "x", "token_quota": {}}),
            "Missing required property: client_credentials",
        ),
        (
            "/api/v2/clients",
            Method::POST,
            json!({"name": "x", "token_quota": {"client_credentials": {"per_minute": 5}}}),
            "Additional properties not allowed: per_minute",
        ),
        (
            "/api/v2/tenants/settings",
            Method::PATCH,
            json!({"default_token_quota": {"clients": {"client_credentials": {"per_day": 2147483648_i64}}}}),
            "default_token_quota.clients.client_credentials.per_day",
        ),
        (
            "/api/v2/tenants/settings",
            Method::PATCH,
            json!({"default_token_quota": {}}),
            "Too few properties",
        ),
        (
            "/api/v2/tenants/settings",
            Method::PATCH,
            json!({"session_lifetime": 24}),
            "which Clavis does not serve",
        ),
        (
            "/api/v2/tenants/settings",
            Method::PATCH,
            json!({"flags": {"enable_sso": true}}),
            "flags",
        ),
        (
            "/api/v2/tenants/settings",
            Method::PATCH,
            json!({"support_email": "nobody"}),
            "format email-or-empty",
        ),
        (
            "/api/v2/tenants/settings",
            Method::PATCH,
            json!({"colour": "red"}),
            "Additional properties not allowed: colour",
        ),
    ] {
        let r = app.admin(method, path, Some(body.clone())).await;
        let err = assert_error(r, 400, Some("invalid_body")).await;
        assert!(
            err["message"].as_str().unwrap().contains(fragment),
            "{body} → {err}"
        );
    }
    // Nothing was stored.
    assert_eq!(app.get_ok("/api/v2/tenants/settings").await, json!({}));
}

#[tokio::test]
async fn tenant_settings_are_read_and_changed_with_their_scopes() {
    let app = TestApp::spawn().await;
    let reader = app.token_with_scopes(&["read:tenant_settings"]).await;
    let writer = app.token_with_scopes(&["update:tenant_settings"]).await;
    let r = app
        .call(
            &reader,
            Method::PATCH,
            "/api/v2/tenants/settings",
            Some(json!({"friendly_name": "Acme"})),
        )
        .await;
    let err = assert_error(r, 403, Some("insufficient_scope")).await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("update:tenant_settings"),
        "{err}"
    );
    let r = app
        .call(&writer, Method::GET, "/api/v2/tenants/settings", None)
        .await;
    assert_error(r, 403, Some("insufficient_scope")).await;

    let body = json!({
        "friendly_name": "Acme",
        "support_url": "https://acme.example/support",
        "default_token_quota": {"clients": {"client_credentials": {"per_day": 100, "enforce": false}}},
        "flags": null,
        "allow_organization_name_in_authentication_api": false,
    });
    let r = app
        .call(
            &writer,
            Method::PATCH,
            "/api/v2/tenants/settings",
            Some(body),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let updated: Value = r.json().await.unwrap();
    let r = app
        .call(&reader, Method::GET, "/api/v2/tenants/settings", None)
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read, updated);
    assert_eq!(
        keys(&read),
        ["default_token_quota", "friendly_name", "support_url"]
    );
    let r = app
        .call(
            &reader,
            Method::GET,
            "/api/v2/tenants/settings?fields=friendly_name",
            None,
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"friendly_name": "Acme"})
    );
    let r = app
        .call(
            &reader,
            Method::GET,
            "/api/v2/tenants/settings?fields=default_token_quota,support_url&include_fields=false",
            None,
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"friendly_name": "Acme"})
    );

    // Kept across a restart.
    let app = app.restart().await;
    assert_eq!(app.get_ok("/api/v2/tenants/settings").await, updated);
}

/// Each tenant setting `clavis::domain::properties` declares refused is a 400 naming it and
/// saying why; `null` (or `false` where only `true` is refused) is accepted and not kept.
#[tokio::test]
async fn declared_tenant_setting_refusals_are_400s_naming_the_setting() {
    use clavis::domain::properties::{Meaning, TENANT_SETTINGS, When};
    let app = TestApp::spawn().await;
    let mut checked = 0;
    for property in TENANT_SETTINGS {
        let Meaning::Refused {
            why, sample, when, ..
        } = property.meaning
        else {
            continue;
        };
        let value: Value = serde_json::from_str(sample).unwrap();
        let (status, answer) = app
            .admin_json(
                Method::PATCH,
                "/api/v2/tenants/settings",
                Some(json!({ property.name: value })),
            )
            .await;
        assert_eq!(status, 400, "{}: {answer}", property.name);
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(property.name) && message.contains(why),
            "{answer}"
        );
        let accepted = match when {
            When::True => json!(false),
            _ => Value::Null,
        };
        let (status, answer) = app
            .admin_json(
                Method::PATCH,
                "/api/v2/tenants/settings",
                Some(json!({ property.name: accepted })),
            )
            .await;
        assert_eq!(status, 200, "{}: {answer}", property.name);
        checked += 1;
    }
    assert!(checked > 25, "{checked}");
    assert_eq!(app.get_ok("/api/v2/tenants/settings").await, json!({}));
}

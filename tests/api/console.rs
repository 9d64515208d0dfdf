//! The admin console's files (`/console/`): served from memory with the security headers,
//! compressed when the client accepts gzip, revalidated by ETag; anything else is a 404.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

fn assert_secure(headers: &HeaderMap, what: &str) {
    assert_eq!(headers["content-security-policy"], CSP, "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn files_carry_the_csp_types_validators_and_gzip() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/pages.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        // Without Accept-Encoding: the plain file.
        let plain = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(plain.status(), StatusCode::OK, "{path}");
        let headers = plain.headers().clone();
        assert_secure(&headers, path);
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["vary"], "accept-encoding", "{path}");
        assert!(headers.get("content-encoding").is_none(), "{path}");
        let etag = headers["etag"].to_str().unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "{path}: {etag}"
        );
        let body = plain.bytes().await.unwrap();
        assert!(!body.is_empty());

        // With gzip accepted: the same bytes, compressed, under another validator.
        let zipped = app
            .http
            .get(app.url(path))
            .header("accept-encoding", "br;q=1, gzip;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.status(), StatusCode::OK);
        let zheaders = zipped.headers().clone();
        assert_secure(&zheaders, path);
        if body.len() > 2000 {
            assert_eq!(zheaders["content-encoding"], "gzip", "{path}");
            assert_ne!(zheaders["etag"], headers["etag"], "{path}");
            let compressed = zipped.bytes().await.unwrap();
            assert!(compressed.len() < body.len(), "{path}");
            assert_eq!(gunzip(&compressed), body.to_vec(), "{path}");
        }
        // gzip refused with q=0: plain.
        let refused = app
            .http
            .get(app.url(path))
            .header("accept-encoding", "gzip;q=0")
            .send()
            .await
            .unwrap();
        assert!(
            refused.headers().get("content-encoding").is_none(),
            "{path}"
        );

        // Revalidation: 304 without a body, still with the headers.
        let again = app
            .http
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_secure(again.headers(), path);
        assert_eq!(again.headers()["etag"], etag.as_str());
        assert!(again.bytes().await.unwrap().is_empty());
        let other = app
            .http
            .get(app.url(path))
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_page_loads_nothing_inline_and_nothing_from_elsewhere() {
    let app = TestApp::spawn().await;
    let html = app
        .http
        .get(app.url("/console/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#));
    assert!(!html.contains("style="), "no inline style");
    assert!(!html.contains("<style"), "no inline style sheet");
    assert_eq!(html.matches("<script").count(), 1, "one script, by URL");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no other origin"
    );
}

#[tokio::test]
async fn unknown_files_are_404_with_the_headers_and_console_redirects() {
    let app = TestApp::spawn().await;
    for path in [
        "/console/nope.js",
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/a/b.js",
        "/console/index.html.gz",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        if path.starts_with("/console/") && !path.contains("..") && !path.contains("%2e") {
            assert_secure(r.headers(), path);
        }
    }
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = no_redirects.get(app.url("/console")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()["location"], "/console/");
    assert_secure(r.headers(), "/console");
    // Files are read-only.
    let r = app
        .http
        .post(app.url("/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn config_names_the_management_audience_and_is_not_cached() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/console/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_secure(r.headers(), "config.json");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["management_audience"], app.management_audience());
    assert_eq!(body["issuer"], app.issuer());
    assert_eq!(body.as_object().unwrap().len(), 2);
    // What the page then sends: a JSON token request for that audience.
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .json(&serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": ADMIN_ID,
            "client_secret": ADMIN_SECRET,
            "audience": body["management_audience"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

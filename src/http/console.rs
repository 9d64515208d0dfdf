//! The admin console at `/console/`: a few hand-written files (HTML, one style sheet, plain
//! ES modules, no build step) embedded in the binary. They are compressed once, on first use,
//! and served from memory with an `ETag`, so the console costs the token endpoint nothing.
//! The page does everything through the public API (`/oauth/token`, `/api/v2/...`) with the
//! signed-in token; the only other thing served here is `config.json`, the Management API's
//! audience, which is not a secret (the discovery document says as much).

use std::io::Write;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, error::ApiError, json_response};

/// Where the console lives.
pub const PREFIX: &str = "/console/";

/// What the browser may do on a console page: only this origin's own scripts, styles and API
/// calls; no inline code, no frames, no form posts, no other origins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The files, by name under [`PREFIX`] (`""` is the page itself).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/ui.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/pages.js"),
    ),
    (
        "credentials.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/credentials.js"),
    ),
    (
        "timeline.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/timeline.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../console/favicon.svg"),
    ),
];

/// One file, ready to serve.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    /// The file (a static slice: answering it copies nothing).
    body: Bytes,
    /// The gzip form, when it is smaller (reference-counted: answering it copies nothing).
    gzip: Option<Bytes>,
    /// Strong validator of the plain body; the gzip form's is this with `-gzip` appended.
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
            let hex: String = digest.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Asset {
                name,
                content_type,
                body: Bytes::from_static(body),
                gzip: gzip(body).filter(|z| z.len() < body.len()).map(Bytes::from),
                etag: hex,
            }
        })
        .collect()
});

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// Compresses the files now rather than on the first console request.
pub fn prepare() {
    LazyLock::force(&ASSETS);
}

/// Headers every console answer carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// Whether `Accept-Encoding` accepts gzip (`gzip` or `*` with a non-zero `q`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let mut q = 1.0_f32;
            for param in parts {
                if let Some((k, v)) = param.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q > 0.0);
            } else if coding == "*" {
                any = Some(q > 0.0);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 §13.1.2 asks).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let compressed = asset.gzip.as_ref().filter(|_| accepts_gzip(request));
    let etag = match compressed {
        Some(_) => format!("\"{}-gzip\"", asset.etag),
        None => format!("\"{}\"", asset.etag),
    };
    let mut response = if not_modified(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = compressed.unwrap_or(&asset.body).clone();
        let mut response = (StatusCode::OK, body).into_response();
        if compressed.is_some() {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Revalidated on every use (a new binary may serve new files under the same names); an
    // unchanged file costs a 304 without a body.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    secure(headers);
    response
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET /console`: to `/console/`, where the page's relative links resolve.
pub async fn redirect() -> Response {
    let mut response = (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static(PREFIX))],
    )
        .into_response();
    secure(response.headers_mut());
    response
}

/// `GET /console/`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    match find("") {
        Some(asset) => serve(asset, &headers),
        None => missing(),
    }
}

/// `GET /console/{file}`: a file of the console, or 404.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match find(&name).filter(|a| !a.name.is_empty()) {
        Some(asset) => serve(asset, &headers),
        None => missing(),
    }
}

fn missing() -> Response {
    let mut response = ApiError::route_not_found().into_response();
    secure(response.headers_mut());
    response
}

/// `GET /console/config.json`: what the page needs to ask for a Management API token.
pub async fn config(State(app): State<AppState>) -> Response {
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "issuer": app.issuer.issuer,
            "management_audience": app.issuer.management_audience,
        }),
    );
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(headers);
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip, br")])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip;q=0, *"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, identity"
        )])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn every_file_is_there_and_the_big_ones_shrink() {
        for (name, _, body) in FILES {
            let asset = find(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(asset.body.len(), body.len());
            if body.len() > 2000 {
                assert!(asset.gzip.is_some(), "{name} was not compressed");
            }
        }
    }
}

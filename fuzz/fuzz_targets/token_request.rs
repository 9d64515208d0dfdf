//! `POST /oauth/token` bodies (form or JSON) with an `Authorization` header.
#![no_main]

use clavis::http::oauth::parse_token_body;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // [flags][header length][header][body]
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return;
    };
    let (auth, body) = rest.split_at((len as usize).min(rest.len()));
    let mut headers = HeaderMap::new();
    if flags & 2 != 0
        && let Ok(value) = HeaderValue::from_bytes(auth)
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok(request) = parse_token_body(&headers, body, flags & 1 != 0) {
        // Its Display is what the logs see: it never prints the secret or the assertion.
        let shown = request.to_string();
        let others = format!(
            "{:?}{:?}{:?}",
            request.grant_type, request.client_id, request.audience
        );
        for secret in [&request.client_secret, &request.client_assertion]
            .into_iter()
            .flatten()
        {
            if secret.len() >= 16 && !others.contains(secret.as_str()) {
                assert!(!shown.contains(secret.as_str()), "{shown}");
            }
        }
    }
});

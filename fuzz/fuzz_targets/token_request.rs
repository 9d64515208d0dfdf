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
    if let Ok(request) = parse_token_body(&headers, body, flags & 1 != 0, None) {
        // Its Display is what the logs see: exactly these three fields, never the secret,
        // the Basic credentials or the assertion.
        let expected = format!(
            "grant_type={:?} client_id={:?} audience={:?}",
            request.grant_type.as_ref().map(|g| g.as_str()),
            request.named_client(),
            request.audience
        );
        assert_eq!(request.to_string(), expected);
    }
});

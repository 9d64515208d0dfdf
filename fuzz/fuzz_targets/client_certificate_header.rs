//! The `client-certificate` header a TLS-terminating proxy sets: a URL-encoded PEM.
#![no_main]

use clavis_crypto::x509::Certificate;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode;

fuzz_target!(|data: &[u8]| {
    // Header values are visible ASCII; anything else never reaches the parser.
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(value) = value.to_str() else {
        return;
    };
    if value.len() > 4096 * 3 {
        return;
    }
    let Ok(pem) = percent_decode(value.as_bytes()).decode_utf8() else {
        return;
    };
    if let Ok(cert) = Certificate::from_pem(&pem) {
        let _ = cert.thumbprint_sha256();
        let _ = cert.subject().to_auth0_string();
        let _ = cert.is_valid_at(time::OffsetDateTime::UNIX_EPOCH);
    }
});

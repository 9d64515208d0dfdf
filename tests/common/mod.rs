//! The test harness shared by every integration-test binary: one admin identity, one way to
//! start a `clavis serve` child process ([`server::Server::builder`]; `tests/api` starts the
//! same server in process with `TestApp`, on the same identity and database choice), the
//! request and JWT helpers, test keys, PostgreSQL databases and the SDK runner.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod keys;
pub mod postgres;
pub mod request;
pub mod sdk;
pub mod server;

use serde_json::Value;

/// The bootstrap admin of every test server (in process or child process).
pub const ADMIN_ID: &str = "adminClientForTests0000000000001";
/// Its secret.
pub const ADMIN_SECRET: &str = "admin-secret-for-tests-0123456789";

/// Decodes a compact JWT without verifying it: (header, claims).
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let segment = token
            .split('.')
            .nth(i)
            .unwrap_or_else(|| panic!("not a compact JWS: {token}"));
        let bytes = clavis_crypto::encoding::b64url_decode(segment)
            .unwrap_or_else(|e| panic!("segment {i} of {token} is not base64url: {e:?}"));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("segment {i} of {token} is not JSON: {e}"))
    };
    assert_eq!(token.split('.').count(), 3, "not a compact JWS: {token}");
    (part(0), part(1))
}

/// The claims of a JWT (not verified).
pub fn jwt_claims(token: &str) -> Value {
    decode_jwt(token).1
}

/// The header of a JWT (not verified).
pub fn jwt_header(token: &str) -> Value {
    decode_jwt(token).0
}

//! Integration tests: the real server over HTTPS, one module per feature.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod bad_input;
mod client_grants;
mod clients;
mod console;
mod credentials;
mod expiry;
mod log_streams;
mod logs;
mod metrics;
mod mtls;
mod organizations;
mod private_key_jwt;
mod quotas;
mod resource_servers;
mod responses;
mod restart;
mod schema;
mod scopes;
mod signing_keys;
mod smoke;
mod token_claims;
mod token_secret;

//! Clavis: a self-hosted machine-to-machine authorization server that speaks the Auth0
//! Management API v2 and Auth0's `/oauth/token`.
//!
//! Layout (see `docs/design.md`):
//! - [`domain`]: resources and their rules, pure (no HTTP, no SQL);
//! - `clavis_crypto` (its own crate): key and certificate parsing, JWS, sealed secrets;
//! - [`store`]: the persistence trait and its SQLite implementation;
//! - [`model`]: the in-memory read model that the token endpoint reads;
//! - [`service`]: the operations that change state (store write + read-model update);
//! - [`http`]: the HTTP surface — Management API, OAuth endpoints, health;
//! - [`mtls`]: how client certificates arrive (TLS handshake or a trusted proxy);
//! - [`config`], [`startup`], [`bootstrap`], [`tls`]: configuration and process start.

pub mod audit;
pub mod batch;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod expiry;
pub mod http;
pub mod log_streams;
pub mod log_text;
pub mod metrics;
pub mod model;
pub mod mtls;
pub mod operator;
pub mod quota;
pub mod service;
pub mod startup;
pub mod store;
pub mod tls;
pub mod token_hook;

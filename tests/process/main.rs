//! The tests of the `clavis` binary as a process, one module per concern, in one test binary
//! (each binary links the whole crate): connection and request limits, log hygiene, the
//! operator log, graceful shutdown, rate limits, mutual TLS with curl, crash consistency.
//! Every server is a child process started by `common::server::Server::builder`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod limits;
mod log_hygiene;
mod mtls_curl;
mod operator_log;
mod rate_limit;
mod shutdown;

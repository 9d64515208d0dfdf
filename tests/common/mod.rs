//! Shared by the integration-test crates that run the `clavis` binary as a process.

#![allow(dead_code)]

pub mod binary;
pub mod keys;
pub mod postgres;
pub mod server;

//! Clavis's resources and the rules that govern them. Nothing here performs I/O: handlers and
//! the store call into these types, and most unit tests live next to them.

pub mod auth0_schema;
pub mod claims;
pub mod client;
pub mod client_grant;
pub mod credential;
pub mod error;
pub mod ids;
pub mod log_query;
pub mod log_stream;
pub mod organization;
pub mod properties;
pub mod resource_server;
pub mod scopes;
pub mod tenant_settings;
pub mod time;
pub mod token_quota;
pub mod validate;

pub use error::DomainError;

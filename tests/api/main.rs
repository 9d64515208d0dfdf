//! Integration tests: the real server over HTTPS, one module per feature.

mod helpers;

mod private_key_jwt;
mod signing_keys;
mod smoke;

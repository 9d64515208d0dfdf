//! Identifier formats, as Auth0 generates them.

use clavis_crypto::random;

/// `client_id`: 32 alphanumerics.
pub fn new_client_id() -> String {
    random::string(random::ALPHANUMERIC, 32)
}

/// Credential id: `cred_` + 22 base58 characters.
pub fn new_credential_id() -> String {
    format!("cred_{}", random::string(random::BASE58, 22))
}

/// Client grant id: `cgr_` + 16 alphanumerics.
pub fn new_client_grant_id() -> String {
    format!("cgr_{}", random::string(random::ALPHANUMERIC, 16))
}

/// Organization id: `org_` + 16 alphanumerics.
pub fn new_organization_id() -> String {
    format!("org_{}", random::string(random::ALPHANUMERIC, 16))
}

/// Resource server id: 24 lowercase hex digits.
pub fn new_resource_server_id() -> String {
    random::string(random::HEX_LOWER, 24)
}

/// Whether `s` has the shape of a resource server id (as opposed to an identifier).
pub fn is_resource_server_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a well-formed client id given by an operator (bootstrap): 1–64 characters
/// of `[A-Za-z0-9_-]`.
pub fn is_valid_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(new_client_id().len(), 32);
        let cred = new_credential_id();
        assert!(cred.starts_with("cred_") && cred.len() == 27);
        let grant = new_client_grant_id();
        assert!(grant.starts_with("cgr_") && grant.len() == 20);
        assert!(is_resource_server_id(&new_resource_server_id()));
        assert!(!is_resource_server_id("https://api.example.com/"));
    }
}

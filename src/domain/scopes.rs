//! The Management API's scopes, and those that individual fields need.

/// Every scope of the Management API that Clavis serves; the bootstrap admin client is
/// granted all of them.
pub const MANAGEMENT_SCOPES: &[(&str, &str)] = &[
    ("read:clients", "Read Clients"),
    ("create:clients", "Create Clients"),
    ("update:clients", "Update Clients"),
    ("delete:clients", "Delete Clients"),
    ("read:client_keys", "Read Client Keys"),
    ("update:client_keys", "Update Client Keys"),
    ("read:client_credentials", "Read Client Credentials"),
    ("create:client_credentials", "Create Client Credentials"),
    ("update:client_credentials", "Update Client Credentials"),
    ("delete:client_credentials", "Delete Client Credentials"),
    ("read:resource_servers", "Read Resource Servers"),
    ("create:resource_servers", "Create Resource Servers"),
    ("update:resource_servers", "Update Resource Servers"),
    ("delete:resource_servers", "Delete Resource Servers"),
    ("read:client_grants", "Read Client Grants"),
    ("create:client_grants", "Create Client Grants"),
    ("update:client_grants", "Update Client Grants"),
    ("delete:client_grants", "Delete Client Grants"),
    ("read:organizations", "Read Organizations"),
    ("create:organizations", "Create Organizations"),
    ("update:organizations", "Update Organizations"),
    ("delete:organizations", "Delete Organizations"),
    (
        "read:organization_client_grants",
        "Read Organization Client Grants",
    ),
    (
        "create:organization_client_grants",
        "Create Organization Client Grants",
    ),
    (
        "delete:organization_client_grants",
        "Delete Organization Client Grants",
    ),
    ("read:signing_keys", "Read Signing Keys"),
    ("create:signing_keys", "Create Signing Keys"),
    ("update:signing_keys", "Update Signing Keys"),
    ("read:logs", "Read Logs"),
    ("read:log_streams", "Read Log Streams"),
    ("create:log_streams", "Create Log Streams"),
    ("update:log_streams", "Update Log Streams"),
    ("delete:log_streams", "Delete Log Streams"),
    ("read:tenant_settings", "Read Tenant Settings"),
    ("update:tenant_settings", "Update Tenant Settings"),
];

/// Scopes that reveal a client's key material (`client_secret`,
/// `client_authentication_methods`, `encryption_key`) in client responses. The scopes each
/// operation accepts are declared beside its handler, in its `#[utoipa::path]` attribute's
/// `security` (the served document carries them, and the Management router enforces them).
pub const SEE_SECRET: &[&str] = &["read:client_keys", "read:client_credentials"];

/// The refusal of a caller holding none of `scopes` (403 `insufficient_scope`), in Auth0's
/// words.
pub fn insufficient_scope(scopes: &[&str]) -> super::DomainError {
    super::DomainError::Forbidden {
        code: "insufficient_scope",
        message: format!("Insufficient scope, expected any of: {}", scopes.join(",")),
    }
}

/// The scopes each field of a request body or of a response needs, beyond its operation's
/// own — Auth0's documentation of the operation (SECURITY.md lists every row).
#[derive(Debug)]
pub struct FieldScopes {
    /// Fields with scopes of their own, each admitted by any one of its scopes.
    pub fields: &'static [(&'static str, &'static [&'static str])],
    /// What every other field needs.
    pub others: &'static [&'static str],
}

impl FieldScopes {
    /// The scopes that admit `field` (any one suffices).
    pub fn scopes(&self, field: &str) -> &'static [&'static str] {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(self.others, |(_, scopes)| *scopes)
    }

    /// The scopes of the first of `fields` that a caller holding `held` may not use.
    pub fn refused<'a>(
        &self,
        fields: impl IntoIterator<Item = &'a str>,
        held: impl Fn(&[&str]) -> bool,
    ) -> Option<&'static [&'static str]> {
        fields
            .into_iter()
            .map(|f| self.scopes(f))
            .find(|scopes| !held(scopes))
    }
}

/// The field tables of the operations that have them.
pub mod fields {
    use super::{FieldScopes, SEE_SECRET};

    /// The scopes of `GET /clients` and `GET /clients/{id}` (their handlers' `security`), for
    /// the rows any of them admits; `tests/openapi.rs` keeps the two equal.
    pub const READ_CLIENTS: &[&str] = &[
        "read:clients",
        "read:client_keys",
        "read:client_credentials",
    ];
    /// The scopes of `PATCH /clients/{id}` (its handler's `security`), likewise.
    pub const UPDATE_CLIENTS: &[&str] = &[
        "update:clients",
        "update:client_keys",
        "update:client_credentials",
    ];

    /// `POST /clients`: credentials need the credentials scope (Auth0: "To configure
    /// `client_authentication_methods`, the `create:client_credentials` scope is required").
    pub const CREATE_CLIENT: FieldScopes = FieldScopes {
        fields: &[(
            "client_authentication_methods",
            &["create:client_credentials"],
        )],
        others: &["create:clients"],
    };

    /// `PATCH /clients/{id}`. Auth0: "The `client_secret` and `signing_key` attributes can
    /// only be updated with the `update:client_keys` scope"; "To configure
    /// `client_authentication_methods`, the `update:client_credentials` scope is required".
    /// `encryption_key` is key material too (Auth0 shows it only to the key scopes).
    /// `token_endpoint_auth_method` goes with either kind of method (a caller attaching
    /// credentials sends it as `null`). Every other setting needs `update:clients` or
    /// `update:client_keys`, the scopes whose readers see those settings: a token holding only
    /// `update:client_credentials` manages how the client authenticates, nothing else.
    pub const UPDATE_CLIENT: FieldScopes = FieldScopes {
        fields: &[
            ("client_secret", &["update:client_keys"]),
            ("encryption_key", &["update:client_keys"]),
            (
                "client_authentication_methods",
                &["update:client_credentials"],
            ),
            ("token_endpoint_auth_method", UPDATE_CLIENTS),
        ],
        others: &["update:clients", "update:client_keys"],
    };

    /// `GET /clients`, `GET /clients/{id}`: what each read scope shows (Auth0's list in the
    /// operation's description).
    pub const READ_CLIENT: FieldScopes = FieldScopes {
        fields: &[
            ("client_id", READ_CLIENTS),
            ("name", READ_CLIENTS),
            ("app_type", READ_CLIENTS),
            ("description", READ_CLIENTS),
            ("client_secret", SEE_SECRET),
            ("client_authentication_methods", SEE_SECRET),
            ("encryption_key", SEE_SECRET),
        ],
        others: &["read:clients", "read:client_keys"],
    };

    /// Every table, named by its operation (the tests walk them row by row).
    pub const ALL: &[(&str, &FieldScopes)] = &[
        ("post_clients", &CREATE_CLIENT),
        ("patch_clients_by_id", &UPDATE_CLIENT),
        ("get_clients_by_id", &READ_CLIENT),
    ];
}

#[cfg(test)]
mod tests {
    use super::fields::{READ_CLIENT, UPDATE_CLIENT};
    use super::*;

    #[test]
    fn a_field_takes_its_own_scopes_or_the_others() {
        assert_eq!(
            UPDATE_CLIENT.scopes("client_secret"),
            ["update:client_keys"]
        );
        assert_eq!(
            UPDATE_CLIENT.scopes("name"),
            ["update:clients", "update:client_keys"]
        );
        let only_credentials = |s: &[&str]| s.contains(&"update:client_credentials");
        assert_eq!(
            UPDATE_CLIENT.refused(["client_authentication_methods"], only_credentials),
            None
        );
        assert_eq!(
            UPDATE_CLIENT.refused(
                ["client_authentication_methods", "client_secret"],
                only_credentials
            ),
            Some(&["update:client_keys"][..])
        );
        assert_eq!(
            READ_CLIENT.scopes("grant_types"),
            ["read:clients", "read:client_keys"]
        );
    }

    #[test]
    fn every_scope_in_a_table_is_a_management_scope() {
        for (_, table) in fields::ALL {
            let rows = table.fields.iter().flat_map(|(_, s)| s.iter());
            for scope in rows.chain(table.others.iter()) {
                assert!(MANAGEMENT_SCOPES.iter().any(|(s, _)| s == scope), "{scope}");
            }
        }
    }
}

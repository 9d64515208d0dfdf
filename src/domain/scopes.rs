//! The Management API's scopes and which ones each operation accepts.

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
    ("read:signing_keys", "Read Signing Keys"),
    ("create:signing_keys", "Create Signing Keys"),
    ("update:signing_keys", "Update Signing Keys"),
];

/// Scopes accepted by each operation (any one suffices).
pub mod required {
    /// `GET /clients`, `GET /clients/{id}` (as Auth0's OpenAPI lists them, less
    /// `read:client_summary`, which Clavis does not define).
    pub const READ_CLIENTS: &[&str] = &[
        "read:clients",
        "read:client_keys",
        "read:client_credentials",
    ];
    /// `POST /clients`
    pub const CREATE_CLIENTS: &[&str] = &["create:clients"];
    /// `PATCH /clients/{id}` (as Auth0's OpenAPI lists them, less
    /// `update:client_token_vault_privileged_access`).
    pub const UPDATE_CLIENTS: &[&str] = &[
        "update:clients",
        "update:client_keys",
        "update:client_credentials",
    ];
    /// `DELETE /clients/{id}`
    pub const DELETE_CLIENTS: &[&str] = &["delete:clients"];
    /// `POST /clients/{id}/rotate-secret`
    pub const ROTATE_SECRET: &[&str] = &["update:client_keys"];
    /// Scopes that reveal `client_secret` in client responses.
    pub const SEE_SECRET: &[&str] = &["read:client_keys", "read:client_credentials"];
    /// Setting `client_authentication_methods` on PATCH.
    pub const UPDATE_AUTH_METHODS: &[&str] = &["update:client_credentials"];
    /// Setting `client_authentication_methods` on POST.
    pub const CREATE_AUTH_METHODS: &[&str] = &["create:client_credentials"];
    /// Credentials.
    pub const READ_CREDENTIALS: &[&str] = &["read:client_credentials"];
    /// Credentials.
    pub const CREATE_CREDENTIALS: &[&str] = &["create:client_credentials"];
    /// Credentials (the seed).
    pub const UPDATE_CREDENTIALS: &[&str] = &["update:client_credentials"];
    /// Credentials.
    pub const DELETE_CREDENTIALS: &[&str] = &["delete:client_credentials"];
    /// Resource servers.
    pub const READ_RESOURCE_SERVERS: &[&str] = &["read:resource_servers"];
    /// Resource servers.
    pub const CREATE_RESOURCE_SERVERS: &[&str] = &["create:resource_servers"];
    /// Resource servers.
    pub const UPDATE_RESOURCE_SERVERS: &[&str] = &["update:resource_servers"];
    /// Resource servers.
    pub const DELETE_RESOURCE_SERVERS: &[&str] = &["delete:resource_servers"];
    /// Client grants.
    pub const READ_CLIENT_GRANTS: &[&str] = &["read:client_grants"];
    /// Client grants.
    pub const CREATE_CLIENT_GRANTS: &[&str] = &["create:client_grants"];
    /// Client grants.
    pub const UPDATE_CLIENT_GRANTS: &[&str] = &["update:client_grants"];
    /// Client grants.
    pub const DELETE_CLIENT_GRANTS: &[&str] = &["delete:client_grants"];
}

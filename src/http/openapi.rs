//! The OpenAPI 3.1 document of everything Clavis serves, served at `GET /api/v2/openapi.json`.
//!
//! It is generated, not written: each handler carries a `#[utoipa::path]` attribute (method,
//! path, parameters, request and success bodies), the wire types below derive their schemas,
//! and [`Conventions`] adds what every operation shares from the code that implements it —
//! the scopes each operation checks (`domain::scopes::required`), the error body
//! (`http::error`), the rate-limit headers (`http::ratelimit`), the Auth0 properties Clavis
//! stores verbatim (the domain's `STORED_PROPERTIES` tables) and the stateful links
//! (create → get → patch → delete) that API fuzzers follow.
//!
//! The wire types mirror what the domain's validators accept and what the `to_json`/`view`
//! renderers emit; the API fuzzer (`scripts/api-fuzz`) checks every response against them,
//! and `tests/openapi.rs` keeps the document equal to the committed snapshot and consistent
//! with Auth0's own document for every field Clavis serves.

#![allow(dead_code)] // The wire types exist for their schemas; they are never built.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder,
};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::domain::scopes::required;
use crate::http::management::{
    client_grants, clients, credentials, log_streams, logs, organizations, resource_servers,
    signing_keys, tenant_settings,
};
use crate::http::{health, oauth};

// ----- shared -----

/// The Management API's error body.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorBody {
    /// The HTTP status code.
    status_code: u16,
    /// The HTTP reason phrase.
    error: String,
    /// What went wrong, in Auth0's wording.
    message: String,
    /// A machine-readable code, e.g. `invalid_body`, `inexistent_client`, `too_many_requests`.
    #[serde(default)]
    error_code: String,
}

/// Paging (offset with `page`/`per_page`, or checkpoint with `from`/`take`) and totals.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PagingParams {
    /// Page index of the results to return. First page is 0.
    #[param(minimum = 0, maximum = 4294967295_i64, nullable = false)]
    page: Option<u32>,
    /// Number of results per page. Defaults to 50.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    per_page: Option<u32>,
    /// Return results inside an object that contains the total result count (true) or as a
    /// direct array of results (false, default).
    #[param(nullable = false)]
    include_totals: Option<bool>,
    /// Optional Id from which to start selection (checkpoint paging).
    #[param(nullable = false)]
    from: Option<String>,
    /// Number of results per page for checkpoint paging. Defaults to 50.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    take: Option<u32>,
}

/// `fields` selection of client properties.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldsParams {
    /// Comma-separated list of fields to include or exclude (based on value provided for
    /// include_fields) in the result. Leave empty to retrieve all fields.
    #[param(max_length = 1000, nullable = false)]
    fields: Option<String>,
    /// Whether specified fields are to be included (true) or excluded (false).
    #[param(nullable = false)]
    include_fields: Option<bool>,
}

/// Filters of `GET /clients`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientFilterParams {
    /// Optional filter on the global client parameter (Clavis has no global client).
    #[param(nullable = false)]
    is_global: Option<bool>,
    /// Optional filter on whether or not a client is a first-party client.
    #[param(nullable = false)]
    is_first_party: Option<bool>,
    /// Optional filter by a comma-separated list of application types.
    #[param(
        nullable = false,
        pattern = "^((native)|(spa)|(regular_web)|(non_interactive)|(resource_server)|(express_configuration)|(rms)|(box)|(cloudbees)|(concur)|(dropbox)|(mscrm)|(echosign)|(egnyte)|(newrelic)|(office365)|(salesforce)|(sentry)|(sharepoint)|(slack)|(springcm)|(zendesk)|(zoom)|(sso_integration)|(oag))(,((native)|(spa)|(regular_web)|(non_interactive)|(resource_server)|(express_configuration)|(rms)|(box)|(cloudbees)|(concur)|(dropbox)|(mscrm)|(echosign)|(egnyte)|(newrelic)|(office365)|(salesforce)|(sentry)|(sharepoint)|(slack)|(springcm)|(zendesk)|(zoom)|(sso_integration)|(oag)))*$"
    )]
    app_type: Option<String>,
}

/// Parameters of `GET /logs`: a search (page mode) or a checkpoint export (`from`, `take`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Page index of the results to return. First page is 0.
    #[param(minimum = 0, nullable = false)]
    page: Option<u32>,
    /// Number of results per page. Default: 50. Max value: 100. A search pages through at
    /// most 1,000 results.
    #[param(minimum = 0, maximum = 100, nullable = false)]
    per_page: Option<u32>,
    /// Field to use for sorting appended with `:1` for ascending and `:-1` for descending,
    /// e.g. `date:-1` (the default).
    #[param(nullable = false)]
    sort: Option<String>,
    /// Comma-separated list of fields to include or exclude (based on `include_fields`).
    #[param(nullable = false)]
    fields: Option<String>,
    /// Whether specified fields are to be included (true) or excluded (false).
    #[param(nullable = false)]
    include_fields: Option<bool>,
    /// Return results inside an object that also contains a total result count when true.
    #[param(nullable = false)]
    include_totals: Option<bool>,
    /// Log Event Id from which to start selection from (checkpoint: events after it, in
    /// log_id order; every other parameter is ignored).
    #[param(nullable = false)]
    from: Option<String>,
    /// Number of entries to retrieve when using the `from` parameter. Default 50, max 100.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    take: Option<u32>,
    /// Search query in (a subset of) Auth0's query syntax, e.g. `type:seccft AND
    /// date:[2026-01-01 TO *]`.
    #[param(nullable = false)]
    q: Option<String>,
    /// The same query under the name Auth0's SDKs send it (`q` wins when both are given).
    #[param(nullable = false)]
    search: Option<String>,
}

/// A log event (Auth0's `Log`; fields by event type).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Log {
    /// When the event occurred (ISO 8601, milliseconds, UTC).
    date: String,
    /// Event type code: Auth0's `seccft`, `feccft`, `sapi`, `mgmt_api_read`, `api_limit`,
    /// `token_quota_consumption_warning`, and
    /// Clavis's own `clavis_credential_expiring`, `clavis_credential_expired`.
    #[serde(rename = "type")]
    kind: String,
    /// Description of this event.
    description: String,
    /// The client (application) involved.
    #[serde(default)]
    client_id: Option<String>,
    /// Its name (empty when unknown).
    #[serde(default)]
    client_name: Option<String>,
    /// IP address of the log event source.
    #[serde(default)]
    ip: Option<String>,
    /// Hostname the event applies to (the host of the public URL).
    #[serde(default)]
    hostname: Option<String>,
    /// User agent of the request.
    #[serde(default)]
    user_agent: Option<String>,
    /// API audience (token events).
    #[serde(default)]
    audience: Option<String>,
    /// Scopes (token events, space separated).
    #[serde(default)]
    scope: Option<String>,
    /// Thumbprint of the certificate a token is bound to (`seccft`).
    #[serde(default)]
    mtls_thumbprint_sha256: Option<String>,
    /// Always false (server-to-server).
    #[serde(rename = "isMobile", default)]
    is_mobile: Option<bool>,
    /// Event-type specific details.
    #[serde(default)]
    #[schema(value_type = Object)]
    details: Option<Value>,
    /// Unique ID of the event; ids sort in the order the events were stored.
    log_id: String,
}

/// `GET /logs` with `include_totals=true`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ListLogOffsetPaginatedResponseContent {
    /// Index of the first event of the page.
    start: u64,
    /// `per_page`.
    limit: u64,
    /// Events in this page.
    length: u64,
    /// Events matching the search.
    total: u64,
    /// The events.
    logs: Vec<Log>,
}

/// `GET /logs`: an array, or the envelope with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListLogResponseContent {
    /// Plain array.
    Array(Vec<Log>),
    /// With totals.
    Totals(ListLogOffsetPaginatedResponseContent),
}

/// Filters of `GET /client-grants`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantFilterParams {
    /// Optional filter on audience.
    #[param(nullable = false)]
    audience: Option<String>,
    /// Optional filter on client_id.
    #[param(nullable = false)]
    client_id: Option<String>,
    /// Optional filter on allow_any_organization (only `true`).
    #[param(inline, nullable = false)]
    allow_any_organization: Option<ClientGrantAllowAnyOrganizationEnum>,
    /// The type of application access the client grant allows.
    #[param(inline, nullable = false)]
    subject_type: Option<ClientGrantSubjectTypeEnum>,
    /// Only default grants (`third_party_clients`); Clavis stores none.
    #[param(inline, nullable = false)]
    default_for: Option<ClientGrantDefaultForEnum>,
}

/// Auth0's `allow_any_organization` filter: only `true`.
#[derive(Deserialize, ToSchema)]
pub enum ClientGrantAllowAnyOrganizationEnum {
    /// Grants that allow any organization.
    #[serde(rename = "true")]
    True,
}

/// The type of application access the client grant allows.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientGrantSubjectTypeEnum {
    /// Machine-to-machine access.
    Client,
    /// Access on behalf of users.
    User,
}

/// Default grants for a group of clients.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientGrantDefaultForEnum {
    /// Every third-party client.
    ThirdPartyClients,
}

// ----- client credentials -----

/// The kind of credential.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientCredentialTypeEnum {
    /// An RSA public key (`private_key_jwt`).
    PublicKey,
    /// A certificate subject DN (`tls_client_auth`).
    CertSubjectDn,
    /// A pinned certificate (`self_signed_tls_client_auth`).
    X509Cert,
}

/// Algorithm which will be used with the credential.
#[derive(Serialize, Deserialize, ToSchema)]
pub enum ClientCredentialAlgorithmEnum {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PSS with SHA-256.
    PS256,
}

/// `POST /clients/{client_id}/credentials`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "credential_type": "public_key",
    "name": "ci key",
    "pem": EXAMPLE_PUBLIC_KEY_PEM,
    "alg": "RS256"
}))]
pub struct PostClientCredentialRequestContent {
    credential_type: ClientCredentialTypeEnum,
    /// Friendly name for a credential.
    #[serde(default)]
    #[schema(max_length = 128)]
    name: String,
    /// Subject Distinguished Name. Mutually exclusive with `pem` property. Applies to
    /// `cert_subject_dn` credential type.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    subject_dn: String,
    /// PEM-formatted public key (SPKI and PKCS1) or X509 certificate. Must be JSON escaped.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 16384)]
    pem: String,
    /// Algorithm which will be used with the credential (`public_key` only). Default RS256.
    #[serde(default)]
    #[schema(nullable = false)]
    alg: Option<ClientCredentialAlgorithmEnum>,
    /// Parse expiry from x509 certificate. If true, attempts to parse the expiry date from
    /// the provided PEM. Applies to `public_key` credential type.
    #[serde(default)]
    parse_expiry_from_cert: bool,
    /// The ISO 8601 formatted date representing the expiration of the credential. If not
    /// specified (not recommended), the credential never expires. Applies to `public_key`
    /// credential type.
    #[serde(default)]
    #[schema(format = DateTime, max_length = 64)]
    expires_at: String,
    /// Optional kid (Key ID), used to uniquely identify the credential. If not specified, a
    /// kid value will be auto-generated.
    #[serde(default)]
    #[schema(min_length = 10, max_length = 64, pattern = "^[0-9a-zA-Z_-]{10,64}$")]
    kid: String,
}

/// `PATCH /clients/{client_id}/credentials/{credential_id}`: set, move or remove the expiry.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_at": "2031-02-03T04:05:06.000Z"}))]
pub struct PatchClientCredentialRequestContent {
    /// The ISO 8601 formatted date representing the expiration of the credential; `null`
    /// removes the expiry. A past instant is accepted and means "expired now".
    #[schema(format = DateTime, max_length = 64, required = true)]
    expires_at: Option<String>,
}

/// A client credential. `pem` is never returned.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCredential {
    /// `cred_` + 22 base58 characters.
    id: String,
    credential_type: ClientCredentialTypeEnum,
    /// Key id (`public_key`): given on create, else the RFC 7638 thumbprint of the key.
    #[serde(default)]
    kid: String,
    /// Signature algorithm (`public_key`).
    #[serde(default)]
    #[schema(nullable = false)]
    alg: Option<ClientCredentialAlgorithmEnum>,
    /// Friendly name, may be empty.
    name: String,
    /// Subject DN (`cert_subject_dn`).
    #[serde(default)]
    subject_dn: String,
    /// base64url SHA-256 of the certificate DER (`x509_cert`).
    #[serde(default)]
    thumbprint_sha256: String,
    /// Creation time.
    #[schema(format = DateTime)]
    created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    updated_at: String,
    /// When the credential stops authenticating; omitted when it never expires.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: String,
}

/// The filter of `GET /credentials/expiring`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpiringCredentialsParams {
    /// Credentials expiring before this date-time (RFC 3339), or this date (`YYYY-MM-DD`,
    /// midnight UTC); every credential that expires when omitted.
    #[param(nullable = false)]
    before: Option<String>,
}

/// A credential with its client, as `GET /credentials/expiring` lists it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpiringCredential {
    /// `cred_` + 22 base58 characters.
    id: String,
    credential_type: ClientCredentialTypeEnum,
    /// Key id (`public_key`).
    #[serde(default)]
    kid: String,
    /// Signature algorithm (`public_key`).
    #[serde(default)]
    #[schema(nullable = false)]
    alg: Option<ClientCredentialAlgorithmEnum>,
    /// Friendly name, may be empty.
    name: String,
    /// Subject DN (`cert_subject_dn`).
    #[serde(default)]
    subject_dn: String,
    /// base64url SHA-256 of the certificate DER (`x509_cert`).
    #[serde(default)]
    thumbprint_sha256: String,
    /// Creation time.
    #[schema(format = DateTime)]
    created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    updated_at: String,
    /// When the credential stops authenticating (the earlier of `expires_at` and a pinned
    /// certificate's notAfter).
    #[schema(format = DateTime)]
    expires_at: String,
    /// The client the credential is attached to.
    client_id: String,
    /// That client's name.
    client_name: String,
}

/// A page of expiring credentials.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListExpiringCredentialsResponseContent {
    /// Without `include_totals`.
    Array(Vec<ExpiringCredential>),
    /// Offset paging with totals.
    Offset(ListExpiringCredentialsOffsetPaginatedResponseContent),
    /// Checkpoint paging.
    Checkpoint(ListExpiringCredentialsPaginatedResponseContent),
}

/// Offset paging with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExpiringCredentialsOffsetPaginatedResponseContent {
    start: u64,
    limit: u64,
    total: u64,
    credentials: Vec<ExpiringCredential>,
}

/// Checkpoint paging; `next` is omitted on the last page.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExpiringCredentialsPaginatedResponseContent {
    /// Opaque identifier for use with the `from` query parameter for the next page.
    #[serde(default)]
    next: String,
    credentials: Vec<ExpiringCredential>,
}

// ----- clients -----

/// A reference to a credential of the client.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialId {
    /// Credential ID.
    #[schema(min_length = 1, max_length = 600)]
    id: String,
}

/// The credentials attached to one authentication method.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachedCredentials {
    /// At most the configured per-method cap (Auth0: 2).
    credentials: Vec<CredentialId>,
}

/// Credential-based client authentication: exactly one method.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct ClientAuthenticationMethod {
    /// JWT assertions signed with `public_key` credentials.
    #[serde(default)]
    #[schema(nullable = false)]
    private_key_jwt: Option<AttachedCredentials>,
    /// mTLS with a CA-issued certificate matched by `cert_subject_dn` credentials.
    #[serde(default)]
    #[schema(nullable = false)]
    tls_client_auth: Option<AttachedCredentials>,
    /// mTLS with a pinned `x509_cert` credential.
    #[serde(default)]
    #[schema(nullable = false)]
    self_signed_tls_client_auth: Option<AttachedCredentials>,
}

/// Credentials created together with the client.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineCredentials {
    /// Full credential bodies, of the type the method uses.
    credentials: Vec<PostClientCredentialRequestContent>,
}

/// `client_authentication_methods` on `POST /clients`: exactly one method, with its
/// credentials defined inline.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct ClientCreateAuthenticationMethod {
    /// `public_key` credentials.
    #[serde(default)]
    #[schema(nullable = false)]
    private_key_jwt: Option<InlineCredentials>,
    /// `cert_subject_dn` credentials.
    #[serde(default)]
    #[schema(nullable = false)]
    tls_client_auth: Option<InlineCredentials>,
    /// `x509_cert` credentials.
    #[serde(default)]
    #[schema(nullable = false)]
    self_signed_tls_client_auth: Option<InlineCredentials>,
}

/// Algorithm used to sign JWTs.
#[derive(Serialize, Deserialize, ToSchema)]
pub enum SigningAlgorithmEnum {
    /// HMAC SHA-256.
    HS256,
    /// RSA SHA-256.
    RS256,
    /// RSA SHA-512.
    RS512,
    /// RSA-PSS SHA-256.
    PS256,
}

/// ID token settings (kept for compatibility; Clavis issues no ID tokens).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientJwtConfiguration {
    /// Number of seconds the JWT will be valid for (affects `exp` claim).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2592000)]
    lifetime_in_seconds: i64,
    /// Whether the client secret is base64 encoded (true) or unencoded (false).
    #[serde(default)]
    secret_encoded: bool,
    /// Scopes configuration, stored verbatim.
    #[serde(default)]
    #[schema(value_type = Object)]
    scopes: Value,
    #[serde(default)]
    #[schema(nullable = false)]
    alg: Option<SigningAlgorithmEnum>,
}

/// Defines the requested authentication method for the token endpoint.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientTokenEndpointAuthMethodEnum {
    /// Public client without a secret.
    None,
    /// `client_secret` in the body.
    ClientSecretPost,
    /// HTTP Basic.
    ClientSecretBasic,
}

/// A client (application). Every property may be left out by `fields`; Auth0 properties
/// Clavis stores without acting on them are echoed as given.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Client {
    /// 32 alphanumerics.
    #[serde(default)]
    client_id: String,
    /// Name of this client.
    #[serde(default)]
    name: String,
    /// Free text description of this client.
    #[serde(default)]
    description: String,
    /// The type of application this client represents.
    #[serde(default)]
    app_type: String,
    /// Whether this is your application (true) or a third-party one (false).
    #[serde(default)]
    is_first_party: bool,
    /// Shown while a secret method is in use, to callers holding `read:client_keys` or
    /// `read:client_credentials`, and once on create and rotate.
    #[serde(default)]
    client_secret: String,
    /// Left out while `client_authentication_methods` is set.
    #[serde(default)]
    #[schema(nullable = false)]
    token_endpoint_auth_method: Option<ClientTokenEndpointAuthMethodEnum>,
    #[serde(default)]
    #[schema(nullable = false)]
    client_authentication_methods: Option<ClientAuthenticationMethod>,
    /// Grant types this client may use.
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    #[schema(nullable = false)]
    jwt_configuration: Option<ClientJwtConfiguration>,
    /// String metadata (at most 255 characters per key and value).
    #[serde(default)]
    client_metadata: BTreeMap<String, String>,
}

/// `POST /clients`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "billing",
    "app_type": "non_interactive",
    "grant_types": ["client_credentials"]
}))]
pub struct CreateClientRequestContent {
    /// Name of this client. Can not contain `<` or `>`.
    #[schema(min_length = 1, pattern = "^[^<>]+$")]
    name: String,
    /// Free text description of this client.
    #[serde(default)]
    #[schema(max_length = 140)]
    description: String,
    /// The type of application this client represents.
    #[serde(default)]
    app_type: String,
    /// Whether this is your application (true) or a third-party one (false).
    #[serde(default)]
    is_first_party: bool,
    /// Grant types this client may use (default: authorization_code, implicit,
    /// refresh_token, client_credentials).
    #[serde(default)]
    #[schema(max_items = 20, inline)]
    grant_types: Vec<GrantTypeString>,
    #[serde(default)]
    #[schema(nullable = false)]
    token_endpoint_auth_method: Option<ClientTokenEndpointAuthMethodEnum>,
    #[serde(default)]
    #[schema(nullable = false)]
    jwt_configuration: Option<ClientJwtConfiguration>,
    /// String metadata (at most 255 characters per key and value).
    #[serde(default)]
    client_metadata: BTreeMap<String, MetadataString>,
    /// `null`, or exactly one method with its credentials defined inline.
    #[serde(default)]
    client_authentication_methods: Option<ClientCreateAuthenticationMethod>,
}

/// `PATCH /clients/{client_id}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "billing service"}))]
pub struct UpdateClientRequestContent {
    /// Name of this client. Can not contain `<` or `>`.
    #[serde(default)]
    #[schema(min_length = 1, pattern = "^[^<>]+$")]
    name: String,
    /// Free text description of this client.
    #[serde(default)]
    #[schema(max_length = 140)]
    description: String,
    /// The type of application this client represents.
    #[serde(default)]
    app_type: String,
    /// Whether this is your application (true) or a third-party one (false).
    #[serde(default)]
    is_first_party: bool,
    /// Grant types this client may use.
    #[serde(default)]
    #[schema(max_items = 20, inline)]
    grant_types: Vec<GrantTypeString>,
    /// `null` clears it (send it with `client_authentication_methods`).
    #[serde(default)]
    #[schema(inline)]
    token_endpoint_auth_method: Option<ClientTokenEndpointAuthMethodEnum>,
    #[serde(default)]
    #[schema(nullable = false)]
    jwt_configuration: Option<ClientJwtConfiguration>,
    /// String metadata; a `null` value removes the key.
    #[serde(default)]
    client_metadata: BTreeMap<String, Option<String>>,
    /// `null`, or exactly one method referencing credentials already on the client.
    #[serde(default)]
    client_authentication_methods: Option<ClientAuthenticationMethod>,
}

/// A grant type name.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(min_length = 1, max_length = 100)]
pub struct GrantTypeString(String);

/// A metadata value.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(max_length = 255)]
pub struct MetadataString(String);

/// A page of clients: a bare array, or an envelope with `include_totals=true` (offset
/// paging) or with `take`/`from` (checkpoint paging).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListClientsResponseContent {
    /// Without `include_totals`.
    Array(Vec<Client>),
    /// Offset paging with totals.
    Offset(ListClientsOffsetPaginatedResponseContent),
    /// Checkpoint paging.
    Checkpoint(ListClientsPaginatedResponseContent),
}

/// Offset paging with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListClientsOffsetPaginatedResponseContent {
    start: u64,
    limit: u64,
    total: u64,
    clients: Vec<Client>,
}

/// Checkpoint paging; `next` is omitted on the last page.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListClientsPaginatedResponseContent {
    /// Opaque identifier for use with the `from` query parameter for the next page.
    #[serde(default)]
    next: String,
    clients: Vec<Client>,
}

// ----- resource servers -----

/// A scope a resource server defines.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerScope {
    /// Value of this scope (no whitespace).
    #[schema(min_length = 1, max_length = 280, pattern = "^\\S+$")]
    value: String,
    /// User-friendly description of this scope.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

/// A resource server (API): an audience tokens are issued for.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ResourceServer {
    /// 24 hexadecimal digits.
    id: String,
    /// Friendly name for this resource server.
    name: String,
    /// Whether this is the Management API itself (it cannot be changed or deleted).
    #[serde(default)]
    is_system: bool,
    /// The audience; cannot be changed.
    identifier: String,
    /// Whether refresh tokens can be issued for this API.
    allow_offline_access: bool,
    /// Whether to skip user consent for first-party applications.
    skip_consent_for_verifiable_first_party_clients: bool,
    /// Lifetime (seconds) of access tokens issued for this API.
    token_lifetime: i64,
    /// Algorithm access tokens are signed with: RS256, RS512, PS256 (the tenant's signing
    /// key) or HS256 (`signing_secret`).
    signing_alg: SigningAlgorithmEnum,
    /// Secret used to sign tokens when using symmetric algorithms (HS256). Present when
    /// the API has one: given, or created when it was set to HS256 without one.
    #[serde(default)]
    #[schema(nullable = false, min_length = 16)]
    signing_secret: Option<String>,
    /// Scopes this API defines.
    scopes: Vec<ResourceServerScope>,
}

/// `POST /resource-servers`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "billing API",
    "identifier": "https://billing.example.com/",
    "scopes": [{"value": "read:invoices", "description": "Read invoices"}]
}))]
pub struct CreateResourceServerRequestContent {
    /// Friendly name for this resource server. Can not contain `<` or `>` characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "^[^<>]+$")]
    name: String,
    /// Unique identifier for the API used as the audience parameter on authorization
    /// calls. Can not be changed once set.
    #[schema(min_length = 1, max_length = 600)]
    identifier: String,
    /// List of permissions (scopes) that this API uses.
    #[serde(default)]
    #[schema(max_items = 1000)]
    scopes: Vec<ResourceServerScope>,
    /// Algorithm used to sign JWTs: RS256 (the default), RS512 or PS256 with the tenant's
    /// signing key, HS256 with `signing_secret`.
    #[serde(default)]
    #[schema(nullable = false)]
    signing_alg: Option<SigningAlgorithmEnum>,
    /// Secret used to sign tokens when using symmetric algorithms (HS256). Without one, an
    /// API set to HS256 gets a new one.
    #[serde(default)]
    #[schema(nullable = false, min_length = 16)]
    signing_secret: Option<String>,
    /// Expiration value (in seconds) for access tokens issued for this API.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2592000)]
    token_lifetime: i64,
    /// Whether refresh tokens can be issued for this API (true) or not (false).
    #[serde(default)]
    allow_offline_access: bool,
    /// Whether to skip user consent for applications flagged as first party.
    #[serde(default)]
    skip_consent_for_verifiable_first_party_clients: bool,
}

/// `PATCH /resource-servers/{id}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token_lifetime": 3600}))]
pub struct UpdateResourceServerRequestContent {
    /// Friendly name for this resource server. Can not contain `<` or `>` characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "^[^<>]+$")]
    name: String,
    /// List of permissions (scopes) that this API uses.
    #[serde(default)]
    #[schema(max_items = 1000)]
    scopes: Vec<ResourceServerScope>,
    /// Algorithm used to sign JWTs: RS256 (the default), RS512 or PS256 with the tenant's
    /// signing key, HS256 with `signing_secret`.
    #[serde(default)]
    #[schema(nullable = false)]
    signing_alg: Option<SigningAlgorithmEnum>,
    /// Secret used to sign tokens when using symmetric algorithms (HS256). Without one, an
    /// API set to HS256 gets a new one.
    #[serde(default)]
    #[schema(nullable = false, min_length = 16)]
    signing_secret: Option<String>,
    /// Expiration value (in seconds) for access tokens issued for this API.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2592000)]
    token_lifetime: i64,
    /// Whether refresh tokens can be issued for this API (true) or not (false).
    #[serde(default)]
    allow_offline_access: bool,
    /// Whether to skip user consent for applications flagged as first party.
    #[serde(default)]
    skip_consent_for_verifiable_first_party_clients: bool,
}

/// A page of resource servers.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListResourceServerResponseContent {
    /// Without `include_totals`.
    Array(Vec<ResourceServer>),
    /// Offset paging with totals.
    Offset(ListResourceServerOffsetPaginatedResponseContent),
    /// Checkpoint paging.
    Checkpoint(ListResourceServerPaginatedResponseContent),
}

/// Offset paging with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListResourceServerOffsetPaginatedResponseContent {
    start: u64,
    limit: u64,
    total: u64,
    resource_servers: Vec<ResourceServer>,
}

/// Checkpoint paging; `next` is omitted on the last page.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListResourceServerPaginatedResponseContent {
    /// Opaque identifier for use with the `from` query parameter for the next page.
    #[serde(default)]
    next: String,
    resource_servers: Vec<ResourceServer>,
}

// ----- client grants -----

/// A scope name in a grant.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(min_length = 1, max_length = 280)]
pub struct GrantScope(String);

/// A client grant: which scopes of an API a client may request.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientGrant {
    /// `cgr_` + 16 alphanumerics.
    id: String,
    /// ID of the client.
    client_id: String,
    /// The audience (API identifier).
    audience: String,
    /// Scopes allowed for this client grant.
    #[schema(inline)]
    scope: Vec<GrantScope>,
    /// Clavis extension: claims every access token of this grant carries (not restricted
    /// claim names; at most 20 claims, 16 KiB as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_claims: Option<serde_json::Map<String, Value>>,
}

/// `POST /client-grants`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientGrantRequestContent {
    /// ID of the client.
    #[schema(min_length = 1, max_length = 64)]
    client_id: String,
    /// The audience (API identifier) of this client grant.
    #[schema(min_length = 1, max_length = 600)]
    audience: String,
    /// Scopes allowed for this client grant; each must be defined by the API.
    #[serde(default)]
    #[schema(max_items = 1000, inline)]
    scope: Vec<GrantScope>,
    /// Clavis extension: claims every access token of this grant carries (not restricted
    /// claim names; at most 20 claims, 16 KiB as JSON).
    #[serde(default)]
    token_claims: Option<serde_json::Map<String, Value>>,
}

/// `PATCH /client-grants/{id}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientGrantRequestContent {
    /// Scopes allowed for this client grant; `null` removes them all.
    #[serde(default)]
    #[schema(max_items = 1000, inline)]
    scope: Option<Vec<GrantScope>>,
    /// Clavis extension: claims every access token of this grant carries; `null` removes
    /// them.
    #[serde(default)]
    token_claims: Option<serde_json::Map<String, Value>>,
}

/// A page of client grants.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListClientGrantResponseContent {
    /// Without `include_totals`.
    Array(Vec<ClientGrant>),
    /// Offset paging with totals.
    Offset(ListClientGrantOffsetPaginatedResponseContent),
    /// Checkpoint paging.
    Checkpoint(ListClientGrantPaginatedResponseContent),
}

/// Offset paging with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListClientGrantOffsetPaginatedResponseContent {
    start: u64,
    limit: u64,
    total: u64,
    client_grants: Vec<ClientGrant>,
}

/// Checkpoint paging; `next` is omitted on the last page.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListClientGrantPaginatedResponseContent {
    /// Opaque identifier for use with the `from` query parameter for the next page.
    #[serde(default)]
    next: String,
    client_grants: Vec<ClientGrant>,
}

// ----- organizations -----

/// An organization: a customer on whose behalf clients obtain tokens.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Organization {
    /// Organization identifier (`org_` + 16 alphanumerics).
    #[schema(max_length = 50)]
    id: String,
    /// The name of this organization (lowercase letters, digits, `_` and `-`).
    #[schema(min_length = 1, max_length = 50)]
    name: String,
    /// Friendly name of this organization.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    display_name: Option<String>,
    /// Login-page branding (kept, inert).
    #[serde(default)]
    branding: Option<serde_json::Value>,
    /// Metadata: at most 25 string values of at most 255 characters.
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `{client_credentials: {per_hour, per_day, enforce}}`: tokens obtained for it per UTC
    /// hour / day.
    #[serde(default)]
    token_quota: Option<TokenQuota>,
}

/// `POST /organizations`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganizationRequestContent {
    /// The name of this organization (lowercase letters, digits, `_` and `-`; unique).
    #[schema(min_length = 1, max_length = 50)]
    name: String,
    /// Friendly name of this organization.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    display_name: Option<String>,
    /// Login-page branding (kept, inert).
    #[serde(default)]
    branding: Option<serde_json::Value>,
    /// Metadata: at most 25 string values of at most 255 characters.
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `{client_credentials: {per_hour, per_day, enforce}}`: tokens obtained for it per UTC
    /// hour / day.
    #[serde(default)]
    token_quota: Option<TokenQuota>,
}

/// `PATCH /organizations/{id}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganizationRequestContent {
    /// The name of this organization (lowercase letters, digits, `_` and `-`; unique).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 50)]
    name: Option<String>,
    /// Friendly name of this organization; `null` removes it.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    display_name: Option<String>,
    /// Login-page branding (kept, inert).
    #[serde(default)]
    branding: Option<serde_json::Value>,
    /// Metadata (replaces the stored object).
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Replaces its token quota; `null` removes it.
    #[serde(default)]
    token_quota: Option<TokenQuota>,
}

/// A token quota (Auth0's `TokenQuota`).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenQuota {
    client_credentials: TokenQuotaClientCredentials,
}

/// Auth0's `TokenQuotaClientCredentials` (at least one property).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenQuotaClientCredentials {
    /// Refuse requests beyond the quota (default true); otherwise count and report only.
    #[serde(default)]
    enforce: Option<bool>,
    /// Maximum number of issued tokens per UTC day.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    per_day: Option<i64>,
    /// Maximum number of issued tokens per UTC hour.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    per_hour: Option<i64>,
}

/// Auth0's `DefaultTokenQuota`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultTokenQuota {
    /// The quota of every client without one of its own.
    #[serde(default)]
    clients: Option<TokenQuota>,
    /// The quota of every organization without one of its own.
    #[serde(default)]
    organizations: Option<TokenQuota>,
}

/// The tenant's settings that Clavis keeps (every other one of Auth0's is refused with a
/// 400 naming it, or accepted as `null`; see the contract).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Token quotas of clients and organizations without one of their own; `null` removes
    /// them.
    #[serde(default)]
    default_token_quota: Option<DefaultTokenQuota>,
    /// Friendly name for this tenant (inert).
    #[serde(default)]
    friendly_name: Option<String>,
    /// URL of logo to be shown for this tenant (inert).
    #[serde(default)]
    picture_url: Option<String>,
    /// End-user support email (inert).
    #[serde(default)]
    support_email: Option<String>,
    /// End-user support url (inert).
    #[serde(default)]
    support_url: Option<String>,
}

/// A page of organizations.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListOrganizationsResponseContent {
    /// Without `include_totals`.
    Array(Vec<Organization>),
    /// Offset paging with totals.
    Offset(ListOrganizationsOffsetPaginatedResponseContent),
    /// Checkpoint paging.
    Checkpoint(ListOrganizationsPaginatedResponseContent),
}

/// Offset paging with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrganizationsOffsetPaginatedResponseContent {
    start: u64,
    limit: u64,
    total: u64,
    organizations: Vec<Organization>,
}

/// Checkpoint paging; `next` is omitted on the last page.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrganizationsPaginatedResponseContent {
    /// Opaque identifier for use with the `from` query parameter for the next page.
    #[serde(default)]
    next: String,
    organizations: Vec<Organization>,
}

/// `sort` of `GET /organizations`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationSortParams {
    /// Field to sort by: `field:order`, order `1` ascending, `-1` descending (`name`,
    /// `display_name`, `created_at`; default `created_at:1`). With page/per_page paging only.
    #[param(
        nullable = false,
        max_length = 15,
        pattern = r"^((display_name)|(created_at)|(name))\:(1|-1)$"
    )]
    sort: Option<String>,
}

/// `POST /organizations/{id}/client-grants`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssociateOrganizationClientGrantRequestContent {
    /// A Client Grant ID to add to the organization.
    grant_id: String,
}

/// A page of the client grants of an organization.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ListOrganizationClientGrantsResponseContent {
    /// Without `include_totals`.
    Array(Vec<ClientGrant>),
    /// Offset paging with totals.
    Offset(ListOrganizationClientGrantsOffsetPaginatedResponseContent),
}

/// Offset paging with totals.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrganizationClientGrantsOffsetPaginatedResponseContent {
    start: u64,
    limit: u64,
    total: u64,
    client_grants: Vec<ClientGrant>,
}

/// Filters of `GET /organizations/{id}/client-grants`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationGrantFilterParams {
    /// Optional filter on audience of the client grant.
    #[param(nullable = false, max_length = 600)]
    audience: Option<String>,
    /// Optional filter on client_id of the client grant.
    #[param(nullable = false)]
    client_id: Option<String>,
    /// Optional filter on the ID of the client grant (repeatable, at most 10).
    #[param(nullable = false)]
    grant_ids: Option<Vec<String>>,
}

// ----- signing keys -----

/// A key that signs (or signed, or will sign) access tokens.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// The key id (`kid` in token headers and the JWKS).
    kid: String,
    /// The self-signed certificate of the key, PEM.
    cert: String,
    /// Whether this key signs now.
    current: bool,
    /// The key that signs after the next rotation.
    #[serde(default)]
    next: bool,
    /// The key that signed before the last rotation.
    #[serde(default)]
    previous: bool,
    /// Since when the key signs (or signed).
    #[serde(default)]
    #[schema(format = DateTime)]
    current_since: String,
    /// Until when the key signed.
    #[serde(default)]
    #[schema(format = DateTime)]
    current_until: String,
    /// SHA-1 fingerprint of the certificate, colon-separated hex.
    fingerprint: String,
    /// SHA-1 thumbprint of the certificate, hex.
    thumbprint: String,
    /// Whether the key was revoked.
    #[serde(default)]
    revoked: bool,
    /// When the key was revoked.
    #[serde(default)]
    #[schema(format = DateTime)]
    revoked_at: String,
}

/// The certificate and id of a key (rotate and revoke answers).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyCert {
    /// The certificate, PEM.
    cert: String,
    /// The key id.
    kid: String,
}

// ----- OAuth, discovery, health -----

/// `POST /oauth/token` parameters (form or JSON). Unknown and `null` parameters are
/// ignored. Exactly one client authentication: `client_secret` (post), HTTP Basic, or
/// `client_assertion` (`private_key_jwt`).
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "grant_type": "client_credentials",
    "client_id": "8mQxKq0e0p0Yr4N6y1uTTKcN3cUe0Zz1",
    "client_secret": "…",
    "audience": "https://127.0.0.1:8443/api/v2/"
}))]
pub struct TokenRequest {
    /// Only `client_credentials`.
    grant_type: String,
    /// The client.
    #[serde(default)]
    client_id: String,
    /// `client_secret_post`.
    #[serde(default)]
    client_secret: String,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with `client_assertion`.
    #[serde(default)]
    client_assertion_type: String,
    /// A JWT signed with a `public_key` credential of the client.
    #[serde(default)]
    client_assertion: String,
    /// The API identifier; required unless a default audience is configured.
    #[serde(default)]
    audience: String,
    /// Space-separated scopes; default: everything granted.
    #[serde(default)]
    scope: String,
}

/// A token answer (sent with `cache-control: no-store`).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    /// An RS256 JWT.
    access_token: String,
    /// Granted scopes, space separated; omitted when none.
    #[serde(default)]
    scope: String,
    /// Seconds until the token expires (the API's `token_lifetime`).
    expires_in: i64,
    /// Always `Bearer`.
    token_type: String,
}

/// An OAuth 2.0 error (RFC 6749 §5.2).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `access_denied`, `unauthorized_client`,
    /// `unsupported_grant_type`, `too_many_requests`, ...
    error: String,
    /// Human-readable detail.
    error_description: String,
}

/// A public signing key.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// `RSA`.
    kty: String,
    /// `sig`.
    #[serde(rename = "use")]
    use_: String,
    /// `RS256` while every API the tenant keys sign for uses RS256; absent while one uses
    /// RS512 or PS256 (the key then serves each of them).
    #[serde(default)]
    #[schema(nullable = false)]
    alg: Option<String>,
    /// Key id.
    kid: String,
    /// Modulus, base64url.
    n: String,
    /// Exponent, base64url.
    e: String,
}

/// `GET /.well-known/jwks.json`: the current key, the next one and the unrevoked previous.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// OpenID Connect discovery metadata (the parts a client-credentials server has).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OpenIdConfiguration {
    /// `https://{domain}/`.
    issuer: String,
    /// The token endpoint URL.
    token_endpoint: String,
    /// The JWKS URL.
    jwks_uri: String,
    grant_types_supported: Vec<String>,
    response_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    scopes_supported: Vec<String>,
    /// With mTLS on: tokens from a certificate-authenticated request are bound to it.
    #[serde(default)]
    tls_client_certificate_bound_access_tokens: bool,
    /// With mTLS on: `{"token_endpoint": ...}` (one listener serves both).
    #[serde(default)]
    #[schema(value_type = Object)]
    mtls_endpoint_aliases: Value,
}

/// Liveness and readiness answers.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthStatus {
    /// `ok`, `ready` or `unavailable`.
    status: String,
}

/// A public RSA-2048 key used as the example credential.
pub const EXAMPLE_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0mFNeygg49KXsGlgy4lZ
i5eD4svZaQ0xe777o0AXHk0aYd6L7Gg9EWXZOsIER8xTTXvhvB/uoGt8SsyN8xjy
s1UbTcIDLiemF7okB1+eutdtmL2Y8eoF0m6ILSybnw0j1cqtcdJto6y1nIWpYM+x
587QowGNNNnPvLXwkaH1d0vrVILqiZFrcRmsSi0Q5CDDA3tnxeKQoijSjPbCBQaP
2p3Jl9NRS80p1pruZwLRKLs9XmW1qeAsLT9Om1PZuoiCUrCNWa5H3I/wdfCr/zmg
f3rp6auyE1gWhTPWCcpDDgB9Lzv3RKs/kvWubL3IuEA9W0CzDizaewDA8vOlgCHe
LQIDAQAB
-----END PUBLIC KEY-----
";

// ----- the document -----

// ----- log streams -----

/// The `sink` of an `http` log stream.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogStreamHttpSink {
    /// HTTP endpoint (`https://`, or `http://` to a loopback address).
    #[serde(rename = "httpEndpoint")]
    #[schema(min_length = 1, max_length = 2048)]
    http_endpoint: String,
    /// HTTP Content-Type header.
    #[serde(rename = "httpContentType", default)]
    http_content_type: Option<String>,
    /// HTTP JSON format: `JSONARRAY`, `JSONLINES` (the default) or `JSONOBJECT`.
    #[serde(rename = "httpContentFormat", default)]
    http_content_format: Option<String>,
    /// HTTP Authorization header (sealed at rest).
    #[serde(rename = "httpAuthorization", default)]
    http_authorization: Option<String>,
    /// Custom HTTP headers: `{header, value}`.
    #[serde(rename = "httpCustomHeaders", default)]
    http_custom_headers: Option<Vec<serde_json::Value>>,
}

/// An `http` log stream.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LogStreamHttpResponseSchema {
    /// The id of the log stream (`lst_` + 16 digits).
    id: String,
    /// log stream name
    name: String,
    /// `active`, `paused` or `suspended`.
    status: String,
    /// `http`.
    #[serde(rename = "type")]
    kind: String,
    /// True for priority log streams, false for non-priority (inert).
    #[serde(rename = "isPriority")]
    is_priority: bool,
    /// `{type: "category", name}`: only events of these categories are delivered.
    #[serde(default)]
    filters: Option<Vec<serde_json::Value>>,
    /// PII obfuscation (inert: Clavis's events carry no user fields).
    #[serde(default)]
    pii_config: Option<serde_json::Value>,
    sink: LogStreamHttpSink,
}

/// `POST /log-streams` (`type: http` only).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLogStreamHttpRequestBody {
    /// log stream name
    #[serde(default)]
    name: Option<String>,
    /// `http`; any other type is refused.
    #[serde(rename = "type")]
    kind: String,
    /// Inert.
    #[serde(rename = "isPriority", default)]
    is_priority: Option<bool>,
    /// `{type: "category", name}`.
    #[serde(default)]
    filters: Option<Vec<serde_json::Value>>,
    /// Inert.
    #[serde(default)]
    pii_config: Option<serde_json::Value>,
    sink: LogStreamHttpSink,
    /// The optional datetime (ISO 8601) to start streaming logs from.
    #[serde(rename = "startFrom", default)]
    start_from: Option<String>,
}

/// `PATCH /log-streams/{id}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLogStreamRequestContent {
    /// log stream name
    #[serde(default)]
    name: Option<String>,
    /// `active` (resumes from the stream's cursor), `paused` or `suspended`.
    #[serde(default)]
    status: Option<String>,
    /// Inert.
    #[serde(rename = "isPriority", default)]
    is_priority: Option<bool>,
    /// `{type: "category", name}`; empty: every event.
    #[serde(default)]
    filters: Option<Vec<serde_json::Value>>,
    /// Inert.
    #[serde(default)]
    pii_config: Option<serde_json::Value>,
    /// Replaces the sink.
    #[serde(default)]
    sink: Option<LogStreamHttpSink>,
}

/// The whole document; see the module documentation.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Clavis",
        description = "Self-hosted machine-to-machine authorization server speaking the Auth0 \
                       Management API v2 (clients, client credentials, resource servers, client \
                       grants, organizations, signing keys, logs, log streams) and Auth0's \
                       `POST /oauth/token`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        oauth::token,
        oauth::jwks,
        oauth::openid_configuration,
        health::healthz,
        health::readyz,
        serve,
        clients::list,
        clients::create,
        clients::get,
        clients::update,
        clients::delete,
        clients::rotate_secret,
        credentials::list,
        credentials::create,
        credentials::get,
        credentials::update,
        credentials::delete,
        credentials::expiring,
        resource_servers::list,
        resource_servers::create,
        resource_servers::get,
        resource_servers::update,
        resource_servers::delete,
        client_grants::list,
        client_grants::create,
        client_grants::get,
        client_grants::update,
        client_grants::delete,
        organizations::list,
        organizations::create,
        organizations::get,
        organizations::get_by_name,
        organizations::update,
        organizations::delete,
        organizations::list_grants,
        organizations::associate,
        organizations::dissociate,
        organizations::grant_organizations,
        signing_keys::list,
        signing_keys::get,
        signing_keys::rotate,
        signing_keys::revoke,
        logs::list,
        logs::get,
        log_streams::list,
        log_streams::create,
        log_streams::get,
        log_streams::update,
        log_streams::delete,
        tenant_settings::get,
        tenant_settings::update,
    ),
    components(schemas(ErrorBody, OAuthErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "oauth", description = "Token endpoint, discovery and JWKS"),
        (name = "clients", description = "Clients (applications)"),
        (name = "client credentials", description = "Keys and certificates clients authenticate with"),
        (name = "resource servers", description = "APIs: the audiences tokens are issued for"),
        (name = "client grants", description = "Which scopes of an API a client may request"),
        (name = "organizations", description = "Customers on whose behalf clients obtain tokens, and the client grants associated with each"),
        (name = "signing keys", description = "The keys that sign access tokens"),
        (name = "log streams", description = "Delivery of the audit trail to HTTP endpoints"),
        (name = "tenants", description = "The tenant's settings: default token quotas"),
        (name = "logs", description = "The audit trail: token requests, Management API writes and secret reads, rate-limit refusals, credential expiry"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// Scopes each Management API operation accepts (any one suffices), from the constants the
/// handlers check.
fn operation_scopes(operation_id: &str) -> Option<&'static [&'static str]> {
    Some(match operation_id {
        "get_clients" | "get_clients_by_id" => required::READ_CLIENTS,
        "post_clients" => required::CREATE_CLIENTS,
        "patch_clients_by_id" => required::UPDATE_CLIENTS,
        "delete_clients_by_id" => required::DELETE_CLIENTS,
        "post_rotate-secret" => required::ROTATE_SECRET,
        "get_credentials" | "get_credentials_by_credential_id" => required::READ_CREDENTIALS,
        "post_credentials" => required::CREATE_CREDENTIALS,
        "patch_credentials_by_credential_id" => required::UPDATE_CREDENTIALS,
        "delete_credentials_by_credential_id" => required::DELETE_CREDENTIALS,
        "get_expiring_credentials" => required::READ_CREDENTIALS,
        "get_resource-servers" | "get_resource-servers_by_id" => required::READ_RESOURCE_SERVERS,
        "post_resource-servers" => required::CREATE_RESOURCE_SERVERS,
        "patch_resource-servers_by_id" => required::UPDATE_RESOURCE_SERVERS,
        "delete_resource-servers_by_id" => required::DELETE_RESOURCE_SERVERS,
        "get_client-grants" | "get_client-grant" => required::READ_CLIENT_GRANTS,
        "post_client-grants" => required::CREATE_CLIENT_GRANTS,
        "patch_client-grants_by_id" => required::UPDATE_CLIENT_GRANTS,
        "delete_client-grants_by_id" => required::DELETE_CLIENT_GRANTS,
        "get_organizations" | "get_organizations_by_id" | "get_name_by_name" => {
            required::READ_ORGANIZATIONS
        }
        "post_organizations" => required::CREATE_ORGANIZATIONS,
        "get_log-streams" | "get_log-streams_by_id" => required::READ_LOG_STREAMS,
        "post_log-streams" => required::CREATE_LOG_STREAMS,
        "patch_log-streams_by_id" => required::UPDATE_LOG_STREAMS,
        "delete_log-streams_by_id" => required::DELETE_LOG_STREAMS,
        "patch_organizations_by_id" => required::UPDATE_ORGANIZATIONS,
        "delete_organizations_by_id" => required::DELETE_ORGANIZATIONS,
        "get_organization-client-grants" | "get_client-grant-organizations" => {
            required::READ_ORGANIZATION_CLIENT_GRANTS
        }
        "create_organization-client-grants" => required::CREATE_ORGANIZATION_CLIENT_GRANTS,
        "delete_client-grants_by_grant_id" => required::DELETE_ORGANIZATION_CLIENT_GRANTS,
        "get_signing_keys" | "get_signing_key" => signing_keys::READ,
        "post_signing_keys" => signing_keys::CREATE,
        "put_signing_keys" => signing_keys::UPDATE,
        "get_logs" | "get_logs_by_id" => required::READ_LOGS,
        "tenant_settings_route" => required::READ_TENANT_SETTINGS,
        "patch_settings" => required::UPDATE_TENANT_SETTINGS,
        _ => return None,
    })
}

/// Links from a create answer to the operations on what it created:
/// (from operation, status, link name, to operation, [(parameter, expression)]).
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LINKS: &[LinkSpec] = &[
    (
        "post_clients",
        "201",
        "GetClient",
        "get_clients_by_id",
        &[("client_id", "$response.body#/client_id")],
    ),
    (
        "post_clients",
        "201",
        "UpdateClient",
        "patch_clients_by_id",
        &[("client_id", "$response.body#/client_id")],
    ),
    (
        "post_clients",
        "201",
        "DeleteClient",
        "delete_clients_by_id",
        &[("client_id", "$response.body#/client_id")],
    ),
    (
        "post_clients",
        "201",
        "RotateSecret",
        "post_rotate-secret",
        &[("client_id", "$response.body#/client_id")],
    ),
    (
        "post_clients",
        "201",
        "CreateCredential",
        "post_credentials",
        &[("client_id", "$response.body#/client_id")],
    ),
    (
        "post_clients",
        "201",
        "ListCredentials",
        "get_credentials",
        &[("client_id", "$response.body#/client_id")],
    ),
    (
        "post_credentials",
        "201",
        "GetCredential",
        "get_credentials_by_credential_id",
        &[
            ("client_id", "$request.path.client_id"),
            ("credential_id", "$response.body#/id"),
        ],
    ),
    (
        "post_credentials",
        "201",
        "UpdateCredential",
        "patch_credentials_by_credential_id",
        &[
            ("client_id", "$request.path.client_id"),
            ("credential_id", "$response.body#/id"),
        ],
    ),
    (
        "post_credentials",
        "201",
        "DeleteCredential",
        "delete_credentials_by_credential_id",
        &[
            ("client_id", "$request.path.client_id"),
            ("credential_id", "$response.body#/id"),
        ],
    ),
    (
        "post_resource-servers",
        "201",
        "GetResourceServer",
        "get_resource-servers_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "post_resource-servers",
        "201",
        "UpdateResourceServer",
        "patch_resource-servers_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "post_resource-servers",
        "201",
        "DeleteResourceServer",
        "delete_resource-servers_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "post_client-grants",
        "201",
        "GetClientGrant",
        "get_client-grant",
        &[("id", "$response.body#/id")],
    ),
    (
        "post_client-grants",
        "201",
        "UpdateClientGrant",
        "patch_client-grants_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "post_client-grants",
        "201",
        "DeleteClientGrant",
        "delete_client-grants_by_id",
        &[("id", "$response.body#/id")],
    ),
    (
        "post_signing_keys",
        "201",
        "GetSigningKey",
        "get_signing_key",
        &[("kid", "$response.body#/kid")],
    ),
    (
        "post_signing_keys",
        "201",
        "RevokeSigningKey",
        "put_signing_keys",
        &[("kid", "$response.body#/kid")],
    ),
];

/// Links that fill a create body from an earlier answer:
/// (from operation, status, link name, to operation, body property, expression).
const BODY_LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "post_clients",
        "201",
        "CreateClientGrant",
        "post_client-grants",
        "client_id",
        "$response.body#/client_id",
    ),
    (
        "post_resource-servers",
        "201",
        "CreateClientGrant",
        "post_client-grants",
        "audience",
        "$response.body#/identifier",
    ),
];

/// Error answers every Management API operation may give, besides its own:
/// (status, name in `components/responses`, description).
const MANAGEMENT_ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Invalid path, query or body (`invalid_uri`, `invalid_query_string`, `invalid_body`).",
    ),
    (
        "401",
        "Unauthorized",
        "Missing, invalid or expired token (with `WWW-Authenticate: Bearer`).",
    ),
    (
        "403",
        "Forbidden",
        "The token lacks a scope the operation requires (`insufficient_scope`).",
    ),
    ("404", "NotFound", "The resource does not exist."),
    (
        "408",
        "RequestTimeout",
        "The request body did not arrive within the request timeout.",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is larger than 64 KiB.",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The request body is neither JSON (the default without a content-type) nor a form.",
    ),
    (
        "429",
        "TooManyRequests",
        "Rate limit reached (`too_many_requests`, with `retry-after`).",
    ),
];

/// The rate-limit headers (names in `components/headers`).
const RATE_LIMIT_HEADERS: &[(&str, &str, &str)] = &[
    (
        "x-ratelimit-limit",
        "RateLimitLimit",
        "Size of the caller's token bucket.",
    ),
    (
        "x-ratelimit-remaining",
        "RateLimitRemaining",
        "Requests the caller may still make at once.",
    ),
    (
        "x-ratelimit-reset",
        "RateLimitReset",
        "Unix time (seconds) at which the bucket is full again.",
    ),
];

/// Adds what every operation shares; see the module documentation.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc
            .components
            .get_or_insert_with(|| ComponentsBuilder::new().build());
        security_schemes(components);
        stored_properties(components);
        shared_answers(components);

        for (path, item) in doc.paths.paths.iter_mut() {
            let management = path.starts_with("/api/v2/") && path != "/api/v2/openapi.json";
            let limited = path != "/healthz" && path != "/readyz";
            for operation in operations(item) {
                let id = operation.operation_id.clone().unwrap_or_default();
                for parameter in operation.parameters.iter_mut().flatten() {
                    limit_path_parameter(parameter);
                }
                operation
                    .responses
                    .responses
                    .entry("431".to_string())
                    .or_insert_with(|| {
                        RefOr::Ref(Ref::new(
                            "#/components/responses/RequestHeaderFieldsTooLarge",
                        ))
                    });
                if management {
                    if let Some(scopes) = operation_scopes(&id) {
                        operation.security = Some(vec![
                            SecurityRequirement::new::<&str, [&str; 0], &str>("bearerAuth", []),
                            SecurityRequirement::new(
                                "oAuth2ClientCredentials",
                                scopes.iter().copied(),
                            ),
                        ]);
                    }
                    for (status, name, _) in MANAGEMENT_ERRORS {
                        operation
                            .responses
                            .responses
                            .entry((*status).to_string())
                            .or_insert_with(|| {
                                RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                            });
                    }
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if limited {
                        add_rate_limit_headers(response, status == "429");
                    }
                    for (from, link_status, name, to, parameters) in LINKS {
                        if *from != id || link_status != status {
                            continue;
                        }
                        let mut link = LinkBuilder::new().operation_id(*to);
                        for (p, expr) in *parameters {
                            link = link.parameter(*p, *expr);
                        }
                        response
                            .links
                            .insert((*name).to_string(), RefOr::T(link.build()));
                    }
                }
            }
        }
        doc.security = None;
    }
}

fn security_schemes(components: &mut utoipa::openapi::Components) {
    components.add_security_scheme(
        "bearerAuth",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token for the Management API audience (`<issuer>api/v2/`), from \
                     `POST /oauth/token`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "clientSecretBasic",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "`client_secret_basic`: the client id and secret, form-encoded, as HTTP Basic \
                     credentials.",
                ))
                .build(),
        ),
    );
    let scopes: Vec<(String, String)> = crate::domain::scopes::MANAGEMENT_SCOPES
        .iter()
        .map(|(s, d)| ((*s).to_string(), (*d).to_string()))
        .collect();
    components.add_security_scheme(
        "oAuth2ClientCredentials",
        SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(
            ClientCredentials::new("/oauth/token", Scopes::from_iter(scopes)),
        )])),
    );
}

/// The rate-limit headers and the Management API's error answers, once, for reference.
fn shared_answers(components: &mut utoipa::openapi::Components) {
    let integer = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .minimum(Some(0))
            .build()
    };
    let header = |description: &str| {
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(integer()))
                .description(Some(description))
                .build(),
        )
    };
    for (_, name, description) in RATE_LIMIT_HEADERS {
        components
            .headers
            .insert((*name).to_string(), header(description));
    }
    components.headers.insert(
        "RetryAfter".to_string(),
        header("Seconds to wait before retrying."),
    );
    components.responses.insert(
        "RequestHeaderFieldsTooLarge".to_string(),
        RefOr::T(
            ResponseBuilder::new()
                .description(format!(
                    "The request line and headers exceed {} KiB (no body).",
                    super::hardening::MAX_HEADER_BYTES / 1024
                ))
                .build(),
        ),
    );
    for (status, name, description) in MANAGEMENT_ERRORS {
        let mut response = ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        add_rate_limit_headers(&mut response, *status == "429");
        components
            .responses
            .insert((*name).to_string(), RefOr::T(response));
    }
}

/// Path segments longer than 600 characters are refused (`management::path_param`).
fn limit_path_parameter(parameter: &mut RefOr<utoipa::openapi::path::Parameter>) {
    let RefOr::T(parameter) = parameter else {
        return;
    };
    if parameter.parameter_in != ParameterIn::Path {
        return;
    }
    if let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() {
        schema.min_length = Some(1);
        schema.max_length = Some(600);
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<&mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `x-ratelimit-*` on an answer; `retry-after` too on a 429.
fn add_rate_limit_headers(response: &mut utoipa::openapi::Response, too_many: bool) {
    let reference = |name: &str| RefOr::Ref(Ref::new(format!("#/components/headers/{name}")));
    for (header, name, _) in RATE_LIMIT_HEADERS {
        response
            .headers
            .insert((*header).to_string(), reference(name));
    }
    if too_many {
        response
            .headers
            .insert("retry-after".to_string(), reference("RetryAfter"));
    }
}

/// A domain table of stored-verbatim properties and their JSON types.
type StoredProperties = &'static [(&'static str, &'static [&'static str])];

/// Adds the Auth0 properties Clavis stores verbatim (the domain's tables) to the client,
/// resource server and client grant schemas, with the JSON types they may take.
fn stored_properties(components: &mut utoipa::openapi::Components) {
    use crate::domain::{client, client_grant, resource_server};
    let tables: [(&[&str], StoredProperties); 3] = [
        (
            &[
                "Client",
                "CreateClientRequestContent",
                "UpdateClientRequestContent",
            ],
            client::STORED_PROPERTIES,
        ),
        (
            &[
                "ResourceServer",
                "CreateResourceServerRequestContent",
                "UpdateResourceServerRequestContent",
            ],
            resource_server::STORED_PROPERTIES,
        ),
        (
            &[
                "ClientGrant",
                "CreateClientGrantRequestContent",
                "UpdateClientGrantRequestContent",
            ],
            client_grant::STORED_PROPERTIES,
        ),
    ];
    for (schemas, properties) in tables {
        for name in schemas {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) else {
                continue;
            };
            for (key, types) in properties {
                // Immutable after create.
                if *name == "UpdateClientRequestContent" && *key == "resource_server_identifier" {
                    continue;
                }
                // Optional on create; PATCH takes only `scope` and these.
                if *name == "UpdateClientGrantRequestContent"
                    && !matches!(
                        *key,
                        "organization_usage"
                            | "allow_any_organization"
                            | "authorization_details_types"
                            | "allow_all_scopes"
                    )
                {
                    continue;
                }
                object
                    .properties
                    .entry((*key).to_string())
                    .or_insert_with(|| json_types(types));
            }
        }
    }
    // The enums of the client's string properties, from the validator's lists.
    for name in [
        "Client",
        "CreateClientRequestContent",
        "UpdateClientRequestContent",
    ] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name)
            && let Some(RefOr::T(Schema::Object(app_type))) = object.properties.get_mut("app_type")
        {
            app_type.enum_values =
                Some(client::APP_TYPES.iter().map(|t| Value::from(*t)).collect());
        }
    }
}

/// A schema accepting the named JSON types (`Value` contents are kept as given).
fn json_types(types: &[&str]) -> RefOr<Schema> {
    let to_type = |t: &str| match t {
        "string" => Type::String,
        "boolean" => Type::Boolean,
        "integer" => Type::Integer,
        "number" => Type::Number,
        "array" => Type::Array,
        "null" => Type::Null,
        _ => Type::Object,
    };
    if types == ["array"] {
        return RefOr::T(Schema::Array(ArrayBuilder::new().build()));
    }
    let schema_type = match types {
        [one] => SchemaType::new(to_type(one)),
        many => SchemaType::from_iter(many.iter().map(|t| to_type(t))),
    };
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(schema_type).build(),
    ))
}

/// The document, built once: what the handlers and types declare, with the Management
/// requests' schemas derived from Auth0's document and Clavis's declaration
/// ([`super::schema::derive`]).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        super::schema::derive(&mut doc);
        doc
    })
}

/// The document as JSON, built once.
pub fn document_json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_vec_pretty(document()).unwrap_or_default())
}

/// `GET /api/v2/openapi.json`: this document (no authentication needed).
#[utoipa::path(
    get,
    path = "/api/v2/openapi.json",
    operation_id = "get_openapi",
    tag = "oauth",
    responses((status = 200, description = "The OpenAPI 3.1 document of Clavis.", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    let json = document_json();
    if json.is_empty() {
        tracing::error!("the OpenAPI document could not be serialised");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        json,
    )
        .into_response()
}

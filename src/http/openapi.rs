//! The OpenAPI 3.1 document of everything Clavis serves, served at `GET /api/v2/openapi.json`.
//!
//! It is generated, not written: each handler carries a `#[utoipa::path]` attribute (method,
//! path, operation id, statuses and their descriptions, and for the Management API the scopes
//! it accepts), registered together with its route (`http::public_routes`,
//! `http::management::routes`). [`Conventions`] adds what every operation shares from the code
//! that implements it — the Bearer alternative to the scopes, the error body (`http::error::ErrorBody`), the rate-limit
//! headers (`http::ratelimit`) and the stateful links (create → get → patch → delete) that API
//! fuzzers follow. The Management API's request bodies, query parameters and answers are not
//! written here at all: [`super::schema::derive`] takes them from Auth0's document restricted by
//! the declarations of `domain::properties`, and the request validator is compiled from the
//! result, so the document is what the server checks and answers.
//!
//! `tests/openapi.rs` keeps the document equal to the committed snapshot and consistent with
//! Auth0's own document; `tests/api/responses.rs` checks the answers against it and
//! `tests/api/schema.rs` that every handler validates with it.

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder,
};
use utoipa::{Modify, OpenApi};

use crate::http::oauth;

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
    components(schemas(super::error::ErrorBody, oauth::OAuthErrorBody)),
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
                    // The handler's attribute declares the scopes; Auth0's document offers a
                    // Bearer token besides, as here.
                    if let Some(security) = operation.security.as_mut() {
                        security.insert(
                            0,
                            SecurityRequirement::new::<&str, [&str; 0], &str>("bearerAuth", []),
                        );
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

/// The document, built once: what the handlers and types declare, with the Management
/// requests' schemas derived from Auth0's document and Clavis's declaration
/// ([`super::schema::derive`]).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let registered = super::public_routes().merge(super::management::routes());
        let mut api = ApiDoc::openapi();
        api.merge(registered.into_openapi());
        Conventions.modify(&mut api);
        let mut doc = serde_json::to_value(api).unwrap_or_default();
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

//! What Clavis does with every property of Auth0's client, resource-server, client-grant,
//! organization and log-stream schemas: enforced as Auth0 documents it, inert (kept and
//! returned, with the reason it means nothing for machine-to-machine tokens), refused (with
//! the reason), or Auth0's output only.
//!
//! One declaration: the validators refuse what this says is refused (with this reason), the
//! table in `docs/contract.md` section 9 is generated from it, and tests check that it names
//! every property of Auth0's schemas and that each refusal is a 400 naming the property.

use serde_json::Value;

use super::DomainError;
use super::validate::{Body, payload_error};

/// What Clavis does with one property.
#[derive(Debug, Clone, Copy)]
pub enum Meaning {
    /// Acted on as Auth0 documents it (how).
    Enforced(&'static str),
    /// Kept and returned, with no effect (why that is right for machine-to-machine tokens).
    Inert(&'static str),
    /// A request carrying a value `when` matches is refused with a 400 saying `why`; other
    /// values are accepted as `otherwise` says.
    Refused {
        /// Which values are refused.
        when: When,
        /// Why (the 400's message says it).
        why: &'static str,
        /// What happens to the values that are accepted.
        otherwise: &'static str,
        /// A value that is refused (JSON), for the tests and the table.
        sample: &'static str,
    },
    /// In Auth0's responses only; Clavis does not return it (why). A request carrying it is
    /// refused as an unknown property, as Auth0 refuses it.
    OutputOnly(&'static str),
    /// Not in Auth0's schema: a Clavis extension, acted on as described.
    Extension(&'static str),
}

/// Which values of a refused property are refused.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// Any value.
    Present,
    /// Anything but `null`.
    NotNull,
    /// `true`.
    True,
    /// Anything but `null` and these strings.
    NotNoneOr(&'static [&'static str]),
}

impl When {
    fn refuses(self, v: &Value) -> bool {
        match self {
            Self::Present => true,
            Self::NotNull => !v.is_null(),
            Self::True => v == &Value::Bool(true),
            Self::NotNoneOr(allowed) => {
                !v.is_null() && !v.as_str().is_some_and(|s| allowed.contains(&s))
            }
        }
    }

    /// Whether `null` is accepted (it sets nothing, or clears).
    pub fn accepts_null(self) -> bool {
        !self.refuses(&Value::Null)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Present => "any value",
            Self::NotNull => "any value but null",
            Self::True => "true",
            Self::NotNoneOr(_) => "any value but null or the listed ones",
        }
    }
}

/// One property of an Auth0 schema.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// Its name.
    pub name: &'static str,
    /// What Clavis does with it.
    pub meaning: Meaning,
}

const fn enforced(name: &'static str, how: &'static str) -> Property {
    Property {
        name,
        meaning: Meaning::Enforced(how),
    }
}

const fn extension(name: &'static str, how: &'static str) -> Property {
    Property {
        name,
        meaning: Meaning::Extension(how),
    }
}

const fn inert(name: &'static str, why: &'static str) -> Property {
    Property {
        name,
        meaning: Meaning::Inert(why),
    }
}

const fn output(name: &'static str, why: &'static str) -> Property {
    Property {
        name,
        meaning: Meaning::OutputOnly(why),
    }
}

const fn refused(
    name: &'static str,
    when: When,
    why: &'static str,
    otherwise: &'static str,
    sample: &'static str,
) -> Property {
    Property {
        name,
        meaning: Meaning::Refused {
            when,
            why,
            otherwise,
            sample,
        },
    }
}

const USER_FLOWS: &str =
    "user login (/authorize, sessions, login pages), which Clavis does not serve";

/// Auth0's `Client` (and its create and update bodies).
pub const CLIENT: &[Property] = &[
    enforced(
        "client_id",
        "generated on create (32 alphanumerics), immutable; the `sub` (`<id>@clients`) and `azp`/`client_id` of its tokens",
    ),
    output("tenant", "Clavis serves one tenant"),
    inert("name", "a label (required on create)"),
    inert("description", "a label"),
    output(
        "global",
        "no client is global in Clavis; the `is_global` list filter matches accordingly",
    ),
    enforced(
        "client_secret",
        "authenticates `client_secret_post` and `client_secret_basic`; sealed at rest, compared in constant time; set or read only with the key scopes (SECURITY.md)",
    ),
    inert(
        "app_type",
        "a label (and a list filter); Auth0 also decides client_credentials by `grant_types` and the authentication method, not by type",
    ),
    inert("logo_uri", USER_FLOWS),
    inert(
        "is_first_party",
        "third-party status governs user consent; client_credentials tokens already need an explicit client grant (a list filter)",
    ),
    inert("oidc_conformant", USER_FLOWS),
    inert("callbacks", USER_FLOWS),
    inert("allowed_origins", USER_FLOWS),
    inert("web_origins", USER_FLOWS),
    inert("client_aliases", "WS-Federation audiences (user flows)"),
    inert(
        "allowed_clients",
        "delegation between clients (legacy user flows)",
    ),
    inert("allowed_logout_urls", USER_FLOWS),
    inert("session_transfer", USER_FLOWS),
    inert("oidc_logout", USER_FLOWS),
    enforced(
        "grant_types",
        "a token needs `client_credentials` in it (403 `unauthorized_client`)",
    ),
    inert(
        "jwt_configuration",
        "configures ID tokens of user flows; access tokens follow the API's settings",
    ),
    output(
        "signing_keys",
        "the tenant's SAML/WS-Fed signing certificates; Clavis serves neither protocol",
    ),
    inert(
        "encryption_key",
        "encrypts SAML/WS-Fed assertions, which Clavis does not issue; changing it needs `update:client_keys`",
    ),
    inert("sso", USER_FLOWS),
    inert("sso_disabled", USER_FLOWS),
    inert("cross_origin_authentication", USER_FLOWS),
    inert("cross_origin_loc", USER_FLOWS),
    inert("custom_login_page_on", USER_FLOWS),
    inert("custom_login_page", USER_FLOWS),
    inert("custom_login_page_preview", USER_FLOWS),
    inert("form_template", USER_FLOWS),
    inert(
        "addons",
        "SAML, WS-Fed and third-party add-ons (user flows)",
    ),
    enforced(
        "token_endpoint_auth_method",
        "`client_secret_post`/`client_secret_basic` choose how the secret is sent; `none` authenticates nothing (no token)",
    ),
    refused(
        "is_token_endpoint_ip_header_trusted",
        When::True,
        "Clavis does not take a client's word for the caller's address (auth0-forwarded-for); its limits use the connection's address, or a configured trusted proxy's",
        "`false` is kept and returned",
        "true",
    ),
    inert(
        "client_metadata",
        "the operator's data (Clavis has no Actions that could read it)",
    ),
    inert("mobile", USER_FLOWS),
    inert("initiate_login_uri", USER_FLOWS),
    inert("native_social_login", USER_FLOWS),
    inert(
        "refresh_token",
        "client_credentials issues no refresh tokens",
    ),
    enforced(
        "default_organization",
        "`{organization_id, flows: [\"client_credentials\"]}`: the organization (which must exist, 404) of a client_credentials request that names none when its grant's `organization_usage` is `require`",
    ),
    inert(
        "organization_usage",
        "organizations at user login; machine-to-machine access to organizations is the client grant's `organization_usage`",
    ),
    inert("organization_require_behavior", USER_FLOWS),
    inert("organization_discovery_methods", USER_FLOWS),
    enforced(
        "client_authentication_methods",
        "`private_key_jwt`, `tls_client_auth`, `self_signed_tls_client_auth` with the attached credentials, honouring each credential's expiry at once",
    ),
    inert(
        "require_pushed_authorization_requests",
        "PAR is part of /authorize, which Clavis does not serve: there is no flow it could weaken",
    ),
    enforced(
        "require_proof_of_possession",
        "tokens only when a client certificate binds them (`cnf`), whatever the authentication; otherwise 400 `invalid_request`",
    ),
    inert(
        "signed_request_object",
        "JAR is part of /authorize, which Clavis does not serve: there is no flow it could weaken",
    ),
    refused(
        "compliance_level",
        When::NotNoneOr(&["none"]),
        "Clavis does not enforce FAPI profiles",
        "`null` and `none` are kept and returned",
        r#""fapi1_adv_pkj_par""#,
    ),
    inert(
        "skip_non_verifiable_callback_uri_confirmation_prompt",
        USER_FLOWS,
    ),
    inert(
        "token_exchange",
        "permits Custom Token Exchange, a grant Clavis does not serve (only client_credentials)",
    ),
    inert(
        "par_request_expiry",
        "PAR is part of /authorize, which Clavis does not serve",
    ),
    enforced(
        "token_quota",
        "`client_credentials.per_hour` / `per_day`: tokens per UTC hour / day for this client, overriding the tenant's `default_token_quota.clients`; beyond them 429 `too_many_requests` when `enforce` (default true), counted and reported (`Auth0-Client-Quota-Limit`) either way; `null` removes it",
    ),
    inert(
        "express_configuration",
        "Okta Express configuration for user login",
    ),
    inert(
        "my_organization_configuration",
        "the My Organization API for users of organizations",
    ),
    inert(
        "third_party_security_mode",
        "security controls of third-party clients' user flows; client_credentials tokens already need an explicit client grant",
    ),
    inert("redirection_policy", USER_FLOWS),
    inert(
        "resource_server_identifier",
        "links a client that represents an API to it (immutable); tokens are unaffected",
    ),
    inert(
        "async_approval_notification_channels",
        "CIBA notifications (user approval), a grant Clavis does not serve",
    ),
    output(
        "external_metadata_type",
        "set by Auth0 for dynamically registered clients; Clavis has no dynamic registration",
    ),
    output(
        "external_metadata_created_by",
        "set by Auth0 for dynamically registered clients; Clavis has no dynamic registration",
    ),
    output(
        "external_client_id",
        "set by Auth0 for clients registered by metadata document; Clavis has no dynamic registration",
    ),
    output(
        "jwks_uri",
        "set by Auth0 for clients registered by metadata document; keys are attached as credentials instead",
    ),
    inert("oidc_backchannel_logout", USER_FLOWS),
];

/// Auth0's `ResourceServer` (and its create and update bodies).
pub const RESOURCE_SERVER: &[Property] = &[
    enforced(
        "id",
        "generated (24 hex); paths take it or the URL-encoded identifier",
    ),
    inert(
        "name",
        "a label (the system API's is Auth0's, `Auth0 Management API`)",
    ),
    enforced(
        "is_system",
        "true only for the Management API, which cannot be changed or deleted (403)",
    ),
    enforced(
        "identifier",
        "the audience of its tokens; unique and immutable",
    ),
    enforced(
        "scopes",
        "grants and token requests are limited to them; a scope removed is no longer issued",
    ),
    enforced(
        "signing_alg",
        "signs its tokens: RS256 (default), RS512, PS256 with the tenant's signing key, HS256 with `signing_secret`",
    ),
    enforced(
        "signing_secret",
        "the HS256 key (≥ 16 characters), sealed at rest",
    ),
    inert(
        "allow_offline_access",
        "refresh tokens: client_credentials issues none",
    ),
    inert("allow_online_access", USER_FLOWS),
    inert(
        "allow_online_access_with_ephemeral_sessions",
        "user sessions (newer than Auth0's document; auth0-deploy-cli's schema carries it)",
    ),
    inert(
        "skip_consent_for_verifiable_first_party_clients",
        "user consent (user flows)",
    ),
    enforced(
        "token_lifetime",
        "`exp` − `iat` and `expires_in` of its tokens",
    ),
    inert(
        "token_lifetime_for_web",
        "tokens of the implicit and hybrid flows, which Clavis does not serve (Auth0's exports carry it)",
    ),
    enforced(
        "enforce_policies",
        "with an `_authz` dialect, tokens carry `permissions` (the granted scopes)",
    ),
    enforced(
        "token_dialect",
        "the header `typ` and claim set of each of Auth0's four dialects",
    ),
    refused(
        "token_encryption",
        When::NotNull,
        "Clavis does not support encrypted access tokens (JWE) yet",
        "`null` is accepted",
        r#"{"format":"compact-nested-jwe","encryption_key":{"alg":"RSA-OAEP-256","pem":"x"}}"#,
    ),
    inert("consent_policy", "user consent (user flows)"),
    inert(
        "authorization_details",
        "Rich Authorization Requests of user flows",
    ),
    enforced(
        "proof_of_possession",
        "`mechanism: mtls` with `required: true`: tokens only when a client certificate binds them (`cnf`); `dpop` is refused until DPoP exists",
    ),
    enforced(
        "subject_type_authorization",
        "`client.policy: deny_all` refuses every client_credentials token (403); the `user` policy is for user flows",
    ),
    refused(
        "authorization_policy",
        When::NotNull,
        "Clavis has no authorization policies",
        "`null` is accepted",
        r#"{"policy_id":"pol_1"}"#,
    ),
    output(
        "client_id",
        "the client Auth0 links to an API; Clavis links none",
    ),
];

/// Auth0's `ClientGrant` (and its create and update bodies).
pub const CLIENT_GRANT: &[Property] = &[
    enforced("id", "generated (`cgr_` + 16 alphanumerics)"),
    enforced("client_id", "the client it authorizes (404 when unknown)"),
    enforced("audience", "the API (its identifier; 404 when unknown)"),
    enforced(
        "scope",
        "the scopes a token may carry, each defined by the API",
    ),
    enforced(
        "organization_usage",
        "whether a token request may (`allow`), must (`require`) or must not (`deny`, the default) name an `organization`; a token for one carries its `org_id`",
    ),
    enforced(
        "allow_any_organization",
        "the grant serves every organization; otherwise only those associated with it (`/organizations/{id}/client-grants`); not for third-party clients (400); a list filter",
    ),
    refused(
        "default_for",
        When::Present,
        "Clavis does not support default grants; grant each client instead",
        "the list filter is accepted and matches nothing",
        r#""third_party_clients""#,
    ),
    output(
        "is_system",
        "grants Auth0 creates for its own clients; Clavis has none",
    ),
    enforced(
        "subject_type",
        "only `client` grants (the default) authorize client_credentials; one grant per client, audience and subject type",
    ),
    inert(
        "authorization_details_types",
        "Rich Authorization Requests of user flows",
    ),
    enforced(
        "allow_all_scopes",
        "the grant covers every scope of the API, present and future",
    ),
    extension(
        super::claims::PROPERTY,
        "an object of claims (JSON values) every access token of the grant carries; at most 20 claims, names of at most 256 characters that are not restricted claims (contract section 9), 16 KiB as JSON; namespaced names only for the Management API; `null` removes them",
    ),
];

/// Auth0's `Organization` (and its create and update bodies).
pub const ORGANIZATION: &[Property] = &[
    enforced(
        "id",
        "generated (`org_` + 16 alphanumerics); the `org_id` of tokens obtained for it",
    ),
    enforced(
        "name",
        "unique (409), lowercase letters, digits, `_` and `-`, 1–50 characters; `GET /organizations/name/{name}`",
    ),
    inert("display_name", "a label"),
    inert(
        "metadata",
        "a label (at most 25 string values of at most 255 characters; a PATCH replaces the object)",
    ),
    inert("branding", USER_FLOWS),
    refused(
        "enabled_connections",
        When::Present,
        "Clavis has no connections (user login)",
        "absent is accepted",
        r#"[{"connection_id":"con_abc"}]"#,
    ),
    enforced(
        "token_quota",
        "`client_credentials.per_hour` / `per_day`: tokens per UTC hour / day obtained for this organization (by any client), overriding the tenant's `default_token_quota.organizations`; beyond them 429 `too_many_requests` when `enforce` (default true), counted and reported (`Auth0-Organization-Quota-Limit`) either way; `null` removes it",
    ),
];

/// Auth0's `http` log stream (`LogStreamHttpResponseSchema` and its create and update
/// bodies).
pub const LOG_STREAM: &[Property] = &[
    enforced("id", "generated (`lst_` + 16 digits)"),
    inert("name", "a label (default `HTTP log stream`)"),
    enforced(
        "type",
        "`http` only; any other type is a 400 naming it (Clavis supports http log streams only)",
    ),
    enforced(
        "status",
        "`active` delivers; `paused` does not (events wait behind the stream's cursor while they are kept); `suspended` is set after failing deliveries for the configured period (Auth0: 7 days), and a PATCH to `active` resumes from the cursor",
    ),
    enforced(
        "sink",
        "`httpEndpoint` (https, or http to a loopback address) receives POSTs of `{log_id, data}` in `httpContentFormat` (`JSONARRAY`, `JSONLINES` the default, `JSONOBJECT` one POST per event) with `httpContentType`, `httpAuthorization` (sealed at rest, returned as Auth0 returns it) and `httpCustomHeaders`",
    ),
    enforced(
        "filters",
        "`{type: category, name}`: only the events of those categories are delivered (the contract lists the categories that cover Clavis's events); none or empty: every event",
    ),
    inert(
        "isPriority",
        "Auth0's delivery priority among a tenant's streams; Clavis delivers every stream alike",
    ),
    inert(
        "pii_config",
        "masks or hashes user fields (names, email, phone, address) that Clavis's events do not carry; checked against Auth0's schema",
    ),
    enforced(
        "startFrom",
        "on create: the stream starts with the kept events dated from then on (default: the events after its creation)",
    ),
];

const TENANT_USER_FLOWS: &str =
    "configures user login, sessions or pages, which Clavis does not serve";

/// Auth0's `TenantSettings` (`GET`/`PATCH /tenants/settings`).
pub const TENANT_SETTINGS: &[Property] = &[
    enforced(
        "default_token_quota",
        "`clients.client_credentials` / `organizations.client_credentials`: the token quota of every client / organization that has no `token_quota` of its own; `null` removes both",
    ),
    inert("friendly_name", "a label (login pages and emails)"),
    inert("picture_url", "a label (login pages and emails)"),
    inert("support_email", "a label (login pages and emails)"),
    inert("support_url", "a label (login pages and emails)"),
    refused(
        "default_audience",
        When::NotNull,
        "Clavis's default audience is set by its operator (CLAVIS_DEFAULT_AUDIENCE), not through the API",
        "`null` is accepted",
        r#""https://api.example.com/""#,
    ),
    refused(
        "allowed_logout_urls",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"["https://example.com/"]"#,
    ),
    refused(
        "change_password",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"{"enabled":true,"html":"x"}"#,
    ),
    refused(
        "guardian_mfa_page",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"{"enabled":true,"html":"x"}"#,
    ),
    refused(
        "default_directory",
        When::NotNull,
        "Clavis has no connections (user login)",
        "`null` is accepted",
        r#""Username-Password-Authentication""#,
    ),
    refused(
        "error_page",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"{"url":"https://example.com/"}"#,
    ),
    refused(
        "device_flow",
        When::NotNull,
        "Clavis serves no device authorization grant",
        "`null` is accepted",
        r#"{"charset":"base20"}"#,
    ),
    refused(
        "flags",
        When::NotNull,
        "Auth0's tenant flags change Auth0's own behaviour; Clavis has none of them",
        "`null` is accepted",
        r#"{"enable_sso":true}"#,
    ),
    refused(
        "session_lifetime",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "168",
    ),
    refused(
        "idle_session_lifetime",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "72",
    ),
    refused(
        "ephemeral_session_lifetime",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "72",
    ),
    refused(
        "idle_ephemeral_session_lifetime",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "24",
    ),
    refused(
        "sandbox_version",
        When::NotNull,
        "Clavis runs no extensibility sandbox (rules, hooks, actions)",
        "`null` is accepted",
        r#""22""#,
    ),
    refused(
        "legacy_sandbox_version",
        When::NotNull,
        "Clavis runs no extensibility sandbox (rules, hooks, actions)",
        "`null` is accepted",
        r#""12""#,
    ),
    output(
        "sandbox_versions_available",
        "Clavis runs no extensibility sandbox",
    ),
    refused(
        "default_redirection_uri",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#""https://example.com/login""#,
    ),
    refused(
        "enabled_locales",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"["en"]"#,
    ),
    refused(
        "session_cookie",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"{"mode":"persistent"}"#,
    ),
    refused(
        "sessions",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"{"oidc_logout_prompt_enabled":true}"#,
    ),
    refused(
        "oidc_logout",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"{"rp_logout_end_session_endpoint_discovery":true}"#,
    ),
    refused(
        "allow_organization_name_in_authentication_api",
        When::True,
        "Clavis's token endpoint takes organization ids; names are not accepted there",
        "`false` and `null` are accepted (and not kept)",
        "true",
    ),
    refused(
        "customize_mfa_in_postlogin_action",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "true",
    ),
    refused(
        "acr_values_supported",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        r#"["urn:x"]"#,
    ),
    refused(
        "mtls",
        When::NotNull,
        "Clavis's mTLS endpoint is set by its operator (CLAVIS_MTLS_*), not through the API",
        "`null` is accepted",
        r#"{"enable_endpoint_aliases":true}"#,
    ),
    refused(
        "pushed_authorization_requests_supported",
        When::NotNull,
        "PAR is part of /authorize, which Clavis does not serve",
        "`null` is accepted",
        "true",
    ),
    refused(
        "authorization_response_iss_parameter_supported",
        When::NotNull,
        "/authorize responses, which Clavis does not serve",
        "`null` is accepted",
        "true",
    ),
    refused(
        "skip_non_verifiable_callback_uri_confirmation_prompt",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "true",
    ),
    refused(
        "resource_parameter_profile",
        When::NotNull,
        "Clavis takes the `audience` parameter only",
        "`null` is accepted",
        r#""compatibility""#,
    ),
    refused(
        "client_id_metadata_document_supported",
        When::NotNull,
        "Clavis has no dynamic client registration",
        "`null` is accepted",
        "true",
    ),
    refused(
        "phone_consolidated_experience",
        When::NotNull,
        TENANT_USER_FLOWS,
        "`null` is accepted",
        "true",
    ),
    refused(
        "enable_ai_guide",
        When::NotNull,
        "Auth0's dashboard assistant; Clavis has no dashboard",
        "`null` is accepted",
        "true",
    ),
    refused(
        "dynamic_client_registration_security_mode",
        When::NotNull,
        "Clavis has no dynamic client registration",
        "`null` is accepted",
        r#""strict""#,
    ),
];

/// One resource of Auth0's Management API as Clavis serves it: the meaning of each property,
/// Auth0's schemas that carry it (requests and responses), and what Clavis takes and returns
/// beyond them. The served document's request and response schemas (and so the request
/// validator, `http::schema`) are Auth0's schemas restricted by this.
#[derive(Debug, Clone, Copy)]
pub struct Resource {
    /// Its name (`client`).
    pub name: &'static str,
    /// What Clavis does with each property.
    pub properties: &'static [Property],
    /// Auth0's request schemas (components) of the resource.
    pub requests: &'static [&'static str],
    /// Auth0's response schemas (components) of the resource.
    pub responses: &'static [&'static str],
    /// Properties beyond Auth0's schemas, with the JSON schema each is validated against
    /// (added where Auth0's schema lacks them; their meaning is declared in `properties`).
    pub beyond_auth0: &'static [(&'static str, &'static str)],
}

impl Resource {
    /// The meaning of `property`.
    pub fn meaning(&self, property: &str) -> Option<Meaning> {
        self.properties
            .iter()
            .find(|p| p.name == property)
            .map(|p| p.meaning)
    }
}

/// Every resource whose properties are declared here.
pub const RESOURCES: &[Resource] = &[
    Resource {
        name: "client",
        properties: CLIENT,
        requests: &["CreateClientRequestContent", "UpdateClientRequestContent"],
        responses: &[
            "Client",
            "GetClientResponseContent",
            "CreateClientResponseContent",
            "UpdateClientResponseContent",
            "RotateClientSecretResponseContent",
        ],
        // Accepted on create by Auth0's document (kept verbatim) and returned as given.
        beyond_auth0: &[("oidc_backchannel_logout", OIDC_BACKCHANNEL_LOGOUT)],
    },
    Resource {
        name: "resource server",
        properties: RESOURCE_SERVER,
        requests: &[
            "CreateResourceServerRequestContent",
            "UpdateResourceServerRequestContent",
        ],
        responses: &[
            "ResourceServer",
            "GetResourceServerResponseContent",
            "CreateResourceServerResponseContent",
            "UpdateResourceServerResponseContent",
        ],
        beyond_auth0: &[
            // Read-only in Auth0's document, but its exports carry it and auth0-deploy-cli
            // sends it back on import: accepted (inert) so that an import round-trips.
            ("token_lifetime_for_web", TOKEN_LIFETIME_FOR_WEB),
            // Newer than Auth0's document (online refresh tokens); auth0-deploy-cli's schema
            // carries it: accepted (inert) so that its YAML imports.
            (
                "allow_online_access_with_ephemeral_sessions",
                EPHEMERAL_SESSIONS,
            ),
        ],
    },
    Resource {
        name: "client grant",
        properties: CLIENT_GRANT,
        requests: &[
            "CreateClientGrantRequestContent",
            "UpdateClientGrantRequestContent",
        ],
        responses: &[
            "ClientGrantResponseContent",
            "GetClientGrantResponseContent",
            "CreateClientGrantResponseContent",
            "UpdateClientGrantResponseContent",
        ],
        // A Clavis extension (`claims`): the claims a grant's tokens carry.
        beyond_auth0: &[(super::claims::PROPERTY, TOKEN_CLAIMS)],
    },
    Resource {
        name: "organization",
        properties: ORGANIZATION,
        requests: &[
            "CreateOrganizationRequestContent",
            "UpdateOrganizationRequestContent",
        ],
        responses: &[
            "Organization",
            "GetOrganizationResponseContent",
            "CreateOrganizationResponseContent",
            "UpdateOrganizationResponseContent",
            "GetOrganizationByNameResponseContent",
        ],
        beyond_auth0: &[],
    },
    Resource {
        name: "log stream",
        properties: LOG_STREAM,
        requests: &[
            "CreateLogStreamHttpRequestBody",
            "UpdateLogStreamRequestContent",
        ],
        responses: &["LogStreamHttpResponseSchema"],
        beyond_auth0: &[],
    },
    Resource {
        name: "tenant settings",
        properties: TENANT_SETTINGS,
        requests: &["UpdateTenantSettingsRequestContent"],
        responses: &[
            "GetTenantSettingsResponseContent",
            "UpdateTenantSettingsResponseContent",
        ],
        beyond_auth0: &[],
    },
];

/// Properties of Auth0's request schemas that also take `null` in Clavis, which clears them
/// (docs/contract.md section 9): (request schema, property).
pub const NULL_CLEARS: &[(&str, &str)] = &[("UpdateOrganizationRequestContent", "display_name")];

/// Keywords of Auth0's schemas Clavis serves without, because a rule of the domain decides
/// instead (it answers with Auth0's wording): (component, property, keyword, why).
pub const RELAXED: &[(&str, &str, &str, &str)] = &[(
    "LogStreamHttpSink",
    "httpEndpoint",
    "pattern",
    "Auth0's pattern is `^https://.*`; Clavis also takes `http://` to a loopback address (a collector on the same host); any other endpoint is refused with Auth0's pattern message",
)];

const OIDC_BACKCHANNEL_LOGOUT: &str = r##"{"$ref": "#/components/schemas/ClientOIDCBackchannelLogoutSettings", "description": "Configuration for OIDC backchannel logout (deprecated, in favor of oidc_logout)"}"##;
const TOKEN_LIFETIME_FOR_WEB: &str = r#"{"type": "integer", "description": "Expiration value (in seconds) for access tokens issued for this API via Implicit or Hybrid Flows. Cannot be greater than the `token_lifetime` value."}"#;
const EPHEMERAL_SESSIONS: &str = r#"{"type": "boolean", "description": "Whether Online Refresh Tokens can be issued for this API with ephemeral sessions (true) or not (false)."}"#;
const TOKEN_CLAIMS: &str = r#"{"type": ["object", "null"], "description": "Claims every access token of this grant carries (a Clavis extension); null removes them."}"#;

/// Refuses the properties of `table` that are present in `body` with a refused value: a 400
/// naming the property and saying why.
pub fn refuse(body: &Body<'_>, table: &[Property]) -> Result<(), DomainError> {
    for property in table {
        if let Meaning::Refused { when, why, .. } = property.meaning
            && let Some(v) = body.peek(property.name)
            && when.refuses(v)
        {
            return Err(payload_error(why, property.name, ""));
        }
    }
    Ok(())
}

/// The table of `table` in Markdown (the contract's section 9 carries it).
pub fn markdown(title: &str, table: &[Property]) -> String {
    let mut out = format!("| {title} | Clavis | what it does, or why |\n|---|---|---|\n");
    for p in table {
        let (kind, text) = match p.meaning {
            Meaning::Enforced(how) => ("enforced", how.to_string()),
            Meaning::Inert(why) => ("inert", why.to_string()),
            Meaning::Refused {
                when,
                why,
                otherwise,
                ..
            } => (
                "refused",
                format!("{} is a 400: {why}; {otherwise}", when.describe()),
            ),
            Meaning::OutputOnly(why) => ("not returned", why.to_string()),
            Meaning::Extension(how) => ("Clavis extension", how.to_string()),
        };
        out.push_str(&format!("| `{}` | {kind} | {text} |\n", p.name));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_are_unique_and_samples_are_refused_json() {
        for table in [
            CLIENT,
            RESOURCE_SERVER,
            CLIENT_GRANT,
            ORGANIZATION,
            LOG_STREAM,
            TENANT_SETTINGS,
        ] {
            let mut names: Vec<_> = table.iter().map(|p| p.name).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len());
            for p in table {
                if let Meaning::Refused { when, sample, .. } = p.meaning {
                    let v: Value = serde_json::from_str(sample).unwrap();
                    assert!(when.refuses(&v), "{}", p.name);
                    assert!(!when.refuses(&Value::Null) || matches!(when, When::Present));
                }
            }
        }
    }
}

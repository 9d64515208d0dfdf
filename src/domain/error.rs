//! Errors raised by domain rules. Each maps to one Auth0 Management API error body in
//! `http::error`; the message is what the caller sees.

/// A request that the domain refuses. `message` is complete and safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The body is invalid (400 `invalid_body`).
    #[error("{0}")]
    InvalidBody(String),
    /// A property of the body is invalid (400 `invalid_body`), in Auth0's words:
    /// `Payload validation error: '<what>' on property <path> (<description>).` The HTTP
    /// layer describes `path` as the served schema does when it can (Auth0's description);
    /// `description` is the domain's, for a property the schema does not describe.
    #[error("{}", payload_message(.what, .path, .description))]
    Payload {
        /// What is wrong.
        what: String,
        /// The property's path (`sink.httpEndpoint`, `scopes[0]`).
        path: String,
        /// Its description, or empty.
        description: String,
    },
    /// A rule of the resource refuses the change (400, errorCode given).
    #[error("{message}")]
    Rule {
        /// Auth0 errorCode, e.g. `invalid_body` or `operation_not_supported`.
        code: &'static str,
        /// Human-readable text.
        message: String,
    },
    /// A referenced resource does not exist (404).
    #[error("{message}")]
    NotFound {
        /// Auth0 errorCode such as `inexistent_client`.
        code: &'static str,
        /// Human-readable text.
        message: String,
    },
    /// The change conflicts with existing state (409).
    #[error("{message}")]
    Conflict {
        /// Auth0 errorCode.
        code: &'static str,
        /// Human-readable text.
        message: String,
    },
    /// The operation is not allowed on this resource (403), e.g. changing the system API.
    #[error("{message}")]
    Forbidden {
        /// Auth0 errorCode.
        code: &'static str,
        /// Human-readable text.
        message: String,
    },
}

impl DomainError {
    /// 400 `invalid_body` with a free-form message.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::InvalidBody(message.into())
    }

    /// 400 with a specific error code.
    pub fn rule(code: &'static str, message: impl Into<String>) -> Self {
        Self::Rule {
            code,
            message: message.into(),
        }
    }

    /// 404 for an unknown client.
    pub fn client_not_found() -> Self {
        Self::NotFound {
            code: "inexistent_client",
            message: "The client does not exist".into(),
        }
    }

    /// 404 for an unknown credential (or one of another client).
    pub fn credential_not_found() -> Self {
        Self::NotFound {
            code: "inexistent_credential",
            message: "The credential does not exist".into(),
        }
    }

    /// 404 for an unknown resource server.
    pub fn resource_server_not_found() -> Self {
        Self::NotFound {
            code: "inexistent_resource_server",
            message: "The resource server does not exist".into(),
        }
    }

    /// 404 for an unknown client grant.
    pub fn client_grant_not_found() -> Self {
        Self::NotFound {
            code: "inexistent_client_grant",
            message: "The client grant does not exist".into(),
        }
    }

    /// 404 for an unknown organization.
    pub fn organization_not_found() -> Self {
        Self::NotFound {
            code: "inexistent_organization",
            message: "No organization found by that id or name".into(),
        }
    }
}

/// `Payload validation error: '<what>' on property <path> (<description>).`, without the
/// parenthesis when there is no description.
fn payload_message(what: &str, path: &str, description: &str) -> String {
    if description.is_empty() {
        format!("Payload validation error: '{what}' on property {path}.")
    } else {
        format!("Payload validation error: '{what}' on property {path} ({description}).")
    }
}

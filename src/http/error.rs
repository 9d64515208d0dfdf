//! The Management API's error type. Every `/api/v2` failure becomes
//! `{"statusCode", "error", "message", "errorCode"}` here; the token endpoint has its own
//! OAuth error body (`service::token::OAuthError`), rendered in `http::oauth`.
//!
//! Use the constructors for HTTP-level problems (bad query, missing auth); domain and store
//! errors convert with `?`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;
use crate::service::ServiceError;
use crate::service::access::TokenRejection;

/// A Management API error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Option<&'static str>,
    message: String,
}

/// The Management API's error body.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorBody<'a> {
    /// The HTTP status code.
    status_code: u16,
    /// The HTTP reason phrase.
    error: &'a str,
    /// What went wrong, in Auth0's wording.
    message: &'a str,
    /// A machine-readable code, e.g. `invalid_body`, `inexistent_client`, `too_many_requests`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error_code: Option<&'a str>,
}

impl ApiError {
    /// Any status with an optional errorCode.
    pub fn new(status: StatusCode, code: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_body`.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalid_body"), message)
    }

    /// 400 `invalid_query_string`.
    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some("invalid_query_string"),
            message,
        )
    }

    /// 400 `invalid_uri`.
    pub fn invalid_uri(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalid_uri"), message)
    }

    /// 403 `insufficient_scope` listing the accepted scopes.
    pub fn insufficient_scope(scopes: &[&str]) -> Self {
        crate::domain::scopes::insufficient_scope(scopes).into()
    }

    /// 404 for an unknown route.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, None, "Not Found")
    }

    /// 503 when the store cannot be reached.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable"),
            "The service is temporarily unavailable, please retry",
        )
    }

    /// 500 (the cause is logged, never sent).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "Internal error")
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status_code: self.status.as_u16(),
            error: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            error_code: self.code,
        };
        let mut response = super::json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::InvalidBody(_) | DomainError::Payload { .. } => {
                Self::invalid_body(message)
            }
            DomainError::Rule { code, .. } => {
                Self::new(StatusCode::BAD_REQUEST, Some(code), message)
            }
            DomainError::NotFound { code, .. } => {
                Self::new(StatusCode::NOT_FOUND, Some(code), message)
            }
            DomainError::Conflict { code, .. } => {
                Self::new(StatusCode::CONFLICT, Some(code), message)
            }
            DomainError::Forbidden { code, .. } => {
                Self::new(StatusCode::FORBIDDEN, Some(code), message)
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Refused(d) => d.into(),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                Self::unavailable()
            }
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "store error");
                Self::internal()
            }
        }
    }
}

impl From<TokenRejection> for ApiError {
    fn from(e: TokenRejection) -> Self {
        let code = match e {
            TokenRejection::Missing => None,
            _ => Some("invalid_token"),
        };
        Self::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

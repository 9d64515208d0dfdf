//! What a service operation answers when it does not succeed: a refusal the caller can act on
//! (a domain rule, something that does not exist, a conflict), or a failure of the store. The
//! HTTP layer alone turns these into statuses and Auth0's error bodies (`http::error`).

use crate::domain::DomainError;
use crate::store::{Entity, StoreError};

/// Why a service operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Refused, with the domain's reason (bad input, a rule, not found, conflict, forbidden);
    /// nothing was written.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// The store cannot be reached or timed out; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a corrupt row, a bug); the cause is for the operator's log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of service operations.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// The refusal for an entity that does not exist, in Auth0's words.
pub fn not_found(entity: Entity) -> DomainError {
    match entity {
        Entity::Client => DomainError::client_not_found(),
        Entity::Credential => DomainError::credential_not_found(),
        Entity::ResourceServer => DomainError::resource_server_not_found(),
        Entity::ClientGrant => DomainError::client_grant_not_found(),
        Entity::Organization => DomainError::organization_not_found(),
        Entity::LogStream => crate::domain::log_stream::not_found(),
        Entity::SigningKey => crate::service::signing_keys::key_not_found(),
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(entity) => Self::Refused(not_found(entity)),
            StoreError::Conflict { message, .. } => Self::Refused(DomainError::Conflict {
                code: "conflict",
                message,
            }),
            StoreError::Rejected(d) => Self::Refused(d),
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            StoreError::Internal(cause) => Self::Internal(cause),
        }
    }
}

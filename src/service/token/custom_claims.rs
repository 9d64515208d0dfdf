//! The token hook's part of a token request: the event it is sent, and what its answer
//! makes of the exchange (claims over the grant's, a denial, or a failure).

use serde_json::{Map, Value};

use super::{OAuthError, OAuthErrorKind, TokenRequest};
use crate::audit::Origin;
use crate::model::{ClientEntry, GrantEntry};
use crate::service::Clavis;
use crate::token_hook::{self as hook, Outcome, TokenHook};

impl Clavis {
    /// Asks the token hook about an exchange the grant allows: `Some` claims (the grant's
    /// and the hook's) to sign, `None` for the grant's alone (the hook added none, or failed
    /// with `fail_open`), or the refusal (a denial, or a failure without `fail_open`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn ask_hook(
        &self,
        h: &TokenHook,
        req: &TokenRequest,
        origin: &Origin,
        client: &ClientEntry,
        audience: &str,
        grant: &GrantEntry,
        org_id: Option<&str>,
        scope: &[&str],
    ) -> Result<Option<Map<String, Value>>, OAuthError> {
        let empty = Map::new();
        let no_metadata = Value::Object(Map::new());
        let org = org_id.and_then(|id| self.model.organization(id));
        let declared = grant.claims.as_deref();
        let event = hook::HookEvent {
            client: hook::HookClient {
                client_id: &client.client_id,
                name: &client.name,
                metadata: client.metadata.as_deref().unwrap_or(&empty),
            },
            resource_server: hook::HookResourceServer {
                identifier: audience,
            },
            request: hook::HookRequest {
                ip: &origin.ip,
                user_agent: origin.user_agent.as_deref(),
                hostname: h.hostname(),
                method: "POST",
                body: hook::HookRequestBody {
                    grant_type: "client_credentials",
                    client_id: &client.client_id,
                    audience,
                    scope: req.scope.as_deref(),
                    organization: req.organization.as_deref(),
                },
            },
            transaction: hook::HookTransaction {
                requested_scopes: req
                    .scope
                    .as_deref()
                    .map(|s| s.split_whitespace().collect())
                    .unwrap_or_default(),
            },
            access_token: hook::HookAccessToken {
                scope,
                custom_claims: declared.unwrap_or(&empty),
            },
            organization: org.as_deref().map(|o| hook::HookOrganization {
                id: &o.id,
                name: &o.name,
                display_name: o.display_name.as_deref(),
                metadata: o.metadata.as_ref().unwrap_or(&no_metadata),
            }),
        };
        let management = audience == self.issuer.management_audience;
        let failure = match h.call(&event, management).await {
            Outcome::Claims(added) if added.is_empty() => return Ok(None),
            Outcome::Claims(added) => {
                let mut merged = declared.cloned().unwrap_or_default();
                merged.extend(added);
                let size = serde_json::to_vec(&merged).map_or(usize::MAX, |v| v.len());
                if size <= crate::domain::claims::MAX_TOKEN_CLAIMS_BYTES {
                    return Ok(Some(merged));
                }
                format!(
                    "token hook: the token's custom claims would take {size} bytes; at most {}",
                    crate::domain::claims::MAX_TOKEN_CLAIMS_BYTES
                )
            }
            Outcome::Deny { code, reason } => {
                let kind = match code {
                    "invalid_scope" => OAuthErrorKind::InvalidScope,
                    "invalid_request" => OAuthErrorKind::InvalidRequest,
                    _ => OAuthErrorKind::ServerError,
                };
                let why = match &reason {
                    Some(r) => format!("token hook denied the exchange ({code}): {r}"),
                    None => format!("token hook denied the exchange ({code})"),
                };
                tracing::info!(client_id = %client.client_id, %audience, reason = %why, "token request refused");
                let description =
                    reason.unwrap_or_else(|| "The token hook denied the request".into());
                return Err(OAuthError::new(kind, description).because(why));
            }
            Outcome::Failed(why) => why,
        };
        if h.fail_open {
            tracing::warn!(client_id = %client.client_id, %audience, reason = %failure, "token hook failed; token issued without its claims (fail-open)");
            Ok(None)
        } else {
            tracing::warn!(client_id = %client.client_id, %audience, reason = %failure, "token hook failed; token refused (fail-closed)");
            Err(OAuthError::server_error().because(failure))
        }
    }
}

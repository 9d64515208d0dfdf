//! Step 2 of the pipeline: what the authenticated client may have. Its grant for the
//! audience, the granted scopes, the organization, the certificate binding, the token
//! quotas and the token hook decide an [`Authorization`]; nothing is signed here.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::mint::AccessTokenFormat;
use super::{Authenticated, OAuthError, OAuthErrorKind, TokenRequest, truncate};
use crate::audit::Origin;
use crate::model::{ApiEntry, ClientEntry, GrantEntry, OrganizationUsage};
use crate::quota::{Applied, Entity as QuotaEntity, QuotaReport};
use crate::service::Clavis;
use crate::store::StoreError;

/// What a token is issued for: every decision, none of the signing.
pub struct Authorization {
    /// The client.
    pub client: Arc<ClientEntry>,
    /// The resource server (API) the token is for.
    pub api: Arc<ApiEntry>,
    /// The client's grant for it.
    pub grant: Arc<GrantEntry>,
    /// The audience (the request's, or the default audience).
    pub audience: String,
    /// The granted scopes, space separated; `None` when none is granted.
    pub scope: Option<String>,
    /// The organization the token is for.
    pub organization: Option<String>,
    /// The thumbprint (`x5t#S256`) of the certificate the token is bound to.
    pub bound_to: Option<String>,
    /// The token quotas that counted the token (response headers).
    pub quota: Vec<QuotaReport>,
    /// The token hook's claims over the grant's; `None`: the grant's alone.
    pub hooked_claims: Option<Map<String, Value>>,
    /// How the token is written: header, claim set, lifetime.
    pub format: AccessTokenFormat,
}

impl Authorization {
    /// The custom claims the token carries (the hook's over the grant's), if any.
    pub fn custom_claims(&self) -> Option<&Map<String, Value>> {
        self.hooked_claims.as_ref().or(self.grant.claims.as_deref())
    }
}

impl Clavis {
    /// Authorizes an authenticated client for the request: refusals in Auth0's order
    /// (grant type allowed, audience, API, its client policy, grant, organization, binding),
    /// then the quota is counted and the token hook asked (while an assertion's `jti` record
    /// is being made durable).
    pub async fn authorize(
        &self,
        req: &TokenRequest,
        origin: &Origin,
        authenticated: Authenticated,
    ) -> Result<Authorization, OAuthError> {
        let Authenticated {
            client,
            bound_to,
            replay_record: _,
            credential_expires_at,
        } = authenticated;
        if !client.allows_client_credentials {
            return Err(OAuthError::new(
                OAuthErrorKind::UnauthorizedClient,
                "Grant type 'client_credentials' not allowed for the client.",
            ));
        }
        let audience = match req.audience.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => a.to_string(),
            None => self.issuer.default_audience.clone().ok_or_else(|| {
                OAuthError::new(
                    OAuthErrorKind::AccessDenied,
                    "No audience parameter was provided, and no default audience has been configured",
                )
            })?,
        };
        let api = self.model.api(&audience).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!("Service not enabled within domain: {}", truncate(&audience)),
            )
        })?;
        if api.denies_clients {
            return Err(OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!(
                    "Client is not authorized to access \"{}\": the API's client access policy is deny_all.",
                    truncate(&audience)
                ),
            ));
        }
        let grant = self.model.grant(&client.client_id, &audience).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!(
                    "Client is not authorized to access \"{}\". You might probably want to create a \"client-grant\" associated to this API.",
                    truncate(&audience)
                ),
            )
        })?;
        let org_id = self.organization_for(req, &client, &grant, &audience)?;
        let granted: Vec<&str> = if grant.all_scopes {
            api.scopes.iter().map(String::as_str).collect()
        } else {
            grant
                .scope
                .iter()
                .map(String::as_str)
                .filter(|s| api.scopes.iter().any(|a| a == s))
                .collect()
        };
        let scope: Vec<&str> = match req
            .scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => granted,
            Some(requested) => {
                let requested: Vec<&str> = requested.split_whitespace().collect();
                granted
                    .into_iter()
                    .filter(|s| requested.contains(s))
                    .collect()
            }
        };
        // Bound to the certificate presented with the request, whatever authenticated the
        // client (RFC 8705 §3); required when the API or the client asks for it.
        let bound_to = bound_to.or_else(|| {
            req.certificate
                .as_ref()
                .and_then(crate::service::mtls::binding_thumbprint)
        });
        if bound_to.is_none() && (api.requires_binding || client.requires_binding) {
            let whose = if api.requires_binding {
                "this API"
            } else {
                "this client"
            };
            return Err(OAuthError::invalid_request(format!(
                "Proof of possession is required for {whose}: present a client certificate (mTLS) to get a certificate-bound token"
            )));
        }
        let quota = self.count_quota(&client, org_id.as_deref()).await?;
        // Custom claims: the grant's, then the token hook's over them (as a later
        // `setCustomClaim`). Without a hook, nothing is built. For an assertion, the hook runs
        // while its `jti` record is being made durable.
        let hooked = match &self.token_hook {
            None => None,
            Some(h) => {
                self.ask_hook(
                    h,
                    req,
                    origin,
                    &client,
                    &audience,
                    &grant,
                    org_id.as_deref(),
                    &scope,
                )
                .await?
            }
        };
        let scope = (!scope.is_empty()).then(|| scope.join(" "));
        let format = AccessTokenFormat::of(&api, credential_expires_at, &self.issuer);
        Ok(Authorization {
            client,
            api,
            grant,
            audience,
            scope,
            organization: org_id,
            bound_to,
            quota,
            hooked_claims: hooked,
            format,
        })
    }

    /// Counts the token against the quotas that apply (the client's own or the tenant's
    /// default for clients; with an organization, also its own or the default for
    /// organizations), or refuses it with 429 when an enforced one is spent. With no quota
    /// anywhere, only the read model is looked at.
    async fn count_quota(
        &self,
        client: &ClientEntry,
        org_id: Option<&str>,
    ) -> Result<Vec<QuotaReport>, OAuthError> {
        let defaults = self.model.default_quotas();
        let org = org_id.and_then(|id| {
            self.model
                .organization(id)
                .and_then(|o| o.token_quota)
                .or(defaults.organizations)
                .map(|limits| (id, limits))
        });
        let client_quota = client.token_quota.or(defaults.clients);
        if client_quota.is_none() && org.is_none() {
            return Ok(Vec::new());
        }
        let mut applied = Vec::with_capacity(2);
        if let Some(limits) = client_quota {
            applied.push(Applied {
                entity: QuotaEntity::Client,
                id: &client.client_id,
                limits,
            });
        }
        if let Some((id, limits)) = org {
            applied.push(Applied {
                entity: QuotaEntity::Organization,
                id,
                limits,
            });
        }
        let (reports, allowed) = self.quotas.take(&applied).await.map_err(|e| {
            tracing::warn!(client_id = %client.client_id, error = %e, "token quota could not be counted");
            match e {
                StoreError::Unavailable(_) => OAuthError::unavailable(),
                _ => OAuthError::server_error(),
            }
            .because("the token quota could not be counted")
        })?;
        if allowed {
            return Ok(reports);
        }
        // The client's quota first, when both refuse.
        let refusing = reports.into_iter().find(|r| r.refused_by.is_some());
        let description = match refusing.as_ref().map(|r| r.entity) {
            Some(QuotaEntity::Organization) => "Organization quota exceeded",
            _ => "Client quota exceeded",
        };
        let mut e = OAuthError::new(OAuthErrorKind::TooManyRequests, description);
        e.quota = refusing.map(Box::new);
        Err(e)
    }

    /// The organization a token is for, from the read model: the request's `organization`
    /// (an organization id), else the client's `default_organization` when the grant
    /// requires one; checked against the grant's `organization_usage` and its
    /// organizations (`allow_any_organization` or an association).
    fn organization_for(
        &self,
        req: &TokenRequest,
        client: &ClientEntry,
        grant: &GrantEntry,
        audience: &str,
    ) -> Result<Option<String>, OAuthError> {
        // Auth0 validates `organization` on every request (since June 2025): one that does
        // not exist is refused, whatever the grant says.
        let named = match &req.organization {
            Some(org) => Some(self.model.organization(org).ok_or_else(|| {
                OAuthError::invalid_request(format!(
                    "Organization \"{}\" does not exist",
                    truncate(org)
                ))
            })?),
            None => None,
        };
        let org = match (grant.organization_usage, named) {
            (OrganizationUsage::Deny, Some(_)) => {
                return Err(OAuthError::new(
                    OAuthErrorKind::AccessDenied,
                    format!(
                        "Client is not authorized to access \"{}\" on behalf of an organization: the client grant's organization_usage is deny.",
                        truncate(audience)
                    ),
                ));
            }
            (OrganizationUsage::Deny, None) => return Ok(None),
            (_, Some(org)) => org,
            (OrganizationUsage::Allow, None) => return Ok(None),
            (OrganizationUsage::Require, None) => client
                .default_organization
                .as_deref()
                .and_then(|id| self.model.organization(id))
                .ok_or_else(|| {
                    OAuthError::new(
                        OAuthErrorKind::AccessDenied,
                        format!(
                            "Client is not authorized to access \"{}\" without an organization: the client grant's organization_usage is require.",
                            truncate(audience)
                        ),
                    )
                })?,
        };
        if !grant.any_organization && !org.grant_ids.contains(&grant.id) {
            return Err(OAuthError::new(
                OAuthErrorKind::AccessDenied,
                format!(
                    "Client is not authorized to access \"{}\" on behalf of organization \"{}\": the client grant is not associated with the organization.",
                    truncate(audience),
                    org.id
                ),
            ));
        }
        Ok(Some(org.id.clone()))
    }
}

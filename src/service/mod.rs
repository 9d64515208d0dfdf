//! The operations that change state. Each one commits to the store and then updates the
//! read model while holding the node's write lock, so the model never applies an older
//! version of a row after a newer one.

pub mod access;
pub mod client_views;
mod error;
pub mod log_streams;
pub mod mtls;
mod reads;
pub mod replay;
pub mod signing_keys;
pub mod sync;
pub mod token;
mod write_order;

pub use error::{ServiceError, ServiceResult, not_found};

use std::sync::Arc;

use clavis_crypto::sealed::MasterKey;
use clavis_crypto::secret::generate_client_secret;

use crate::domain::DomainError;
use crate::domain::client::{ClientAggregate, ClientUpdate, CredentialLimits, NewClient};
use crate::domain::client_grant::{ClientGrant, ClientGrantUpdate, NewClientGrant};
use crate::domain::credential::{Credential, NewCredential};
use crate::domain::organization::{NewOrganization, Organization, OrganizationUpdate};
use crate::domain::resource_server::{
    NewResourceServer, ResourceServer, ResourceServerUpdate, SigningSecret, system_api_error,
};
use crate::domain::tenant_settings::{TenantSettings, TenantSettingsUpdate};
use crate::domain::time::Timestamp;
use crate::model::ReadModel;
use crate::store::{OrganizationRecord, Store};

/// Issuer-level settings the services need.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// `https://host:port/` — always with a trailing slash.
    pub issuer: String,
    /// `<issuer>oauth/token`.
    pub token_endpoint: String,
    /// `<issuer>api/v2/`.
    pub management_audience: String,
    /// Audience used when a token request names none.
    pub default_audience: Option<String>,
    /// Also accept, in a client assertion's `aud`, the token endpoint URL and arrays
    /// holding the issuer (what older client libraries send); off by default.
    pub legacy_assertion_audience: bool,
    /// Cap a token's `exp` at the expiry of the credential that obtained it (beyond Auth0,
    /// opt-in).
    pub cap_token_expiry_at_credential: bool,
}

impl Issuer {
    /// Derives the URLs from the public base URL.
    pub fn new(public_url: &str, default_audience: Option<String>) -> Self {
        let issuer = if public_url.ends_with('/') {
            public_url.to_string()
        } else {
            format!("{public_url}/")
        };
        Self {
            token_endpoint: format!("{issuer}oauth/token"),
            management_audience: format!("{issuer}api/v2/"),
            issuer,
            default_audience,
            legacy_assertion_audience: false,
            cap_token_expiry_at_credential: false,
        }
    }
}

/// The application core: store, read model, keys and limits.
pub struct Clavis {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// What the hot paths read.
    pub model: ReadModel,
    /// Seals secrets and private keys at rest.
    pub master_key: MasterKey,
    /// Credential caps.
    pub limits: CredentialLimits,
    /// URLs.
    pub issuer: Issuer,
    /// Single-use assertion ids.
    pub replay: replay::ReplayGuard,
    /// How client certificates arrive and which CAs `tls_client_auth` trusts.
    pub mtls: crate::mtls::MtlsSettings,
    /// Management tokens already verified.
    pub verified_tokens: access::VerifiedTokens,
    /// What `/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The audit trail (`/api/v2/logs`).
    pub audit: crate::audit::AuditLog,
    /// Credential-expiry warnings (`crate::expiry`).
    pub expiry: crate::expiry::ExpiryWatch,
    /// Token quotas (`crate::quota`).
    pub quotas: crate::quota::QuotaCounter,
    /// The token hook, when one is configured.
    pub token_hook: Option<crate::token_hook::TokenHook>,
    writes: write_order::WriteOrder,
}

impl std::fmt::Debug for Clavis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clavis")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Clavis {
    /// Assembles the core and starts its background tasks (must run inside a Tokio runtime).
    pub fn new(
        store: Arc<dyn Store>,
        model: ReadModel,
        master_key: MasterKey,
        limits: CredentialLimits,
        issuer: Issuer,
    ) -> Self {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let hostname = url::Url::parse(&issuer.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let writes = write_order::WriteOrder::new(store.concurrent_writes());
        Self {
            replay: replay::ReplayGuard::start(store.clone(), metrics.jti_write.clone()),
            metrics,
            audit: crate::audit::AuditLog::start(store.clone(), hostname),
            verified_tokens: access::VerifiedTokens::default(),
            quotas: crate::quota::QuotaCounter::new(store.clone()),
            store,
            model,
            master_key,
            limits,
            issuer,
            mtls: crate::mtls::MtlsSettings::default(),
            expiry: crate::expiry::ExpiryWatch::default(),
            token_hook: None,
            writes,
        }
    }

    /// Runs one write (the store call and the read-model update after it) in its turn, so
    /// the model changes in commit order (`write_order`: one write at a time on SQLite; on
    /// PostgreSQL several, taking turns from their commits on); then, its turn over so that
    /// the next writes can commit meanwhile, waits until the store has made it durable
    /// (group commit). Every write goes through here: nothing is answered before it is on disk.
    async fn write<T>(&self, f: impl AsyncFnOnce() -> ServiceResult<T>) -> ServiceResult<T> {
        let out = self.writes.write(f).await?;
        self.store.durable().await?;
        Ok(out)
    }

    /// Sets the mTLS configuration (default: no certificate can arrive).
    pub fn with_mtls(mut self, mtls: crate::mtls::MtlsSettings) -> Self {
        self.mtls = mtls;
        self
    }

    /// Turns the audit trail off (`--audit-trail false`): nothing is recorded.
    pub fn without_audit_trail(mut self) -> Self {
        self.audit = crate::audit::AuditLog::off();
        self
    }

    /// Sets the credential-expiry warning thresholds, in days (default 30, 7 and 1).
    pub fn with_expiry_warnings(mut self, days: Vec<u32>) -> Self {
        self.expiry = crate::expiry::ExpiryWatch::new(days);
        self
    }

    /// Calls this hook on every client-credentials exchange (default: none).
    pub fn with_token_hook(mut self, hook: crate::token_hook::TokenHook) -> Self {
        self.token_hook = Some(hook);
        self
    }

    /// Seals a client secret (bound to the client id).
    pub fn seal_secret(&self, client_id: &str, secret: &str) -> Vec<u8> {
        self.master_key
            .seal(secret.as_bytes(), client_id.as_bytes())
    }

    /// Seals an API's `signing_secret` (bound to its id, see
    /// [`ResourceServer::sealing_context`]).
    fn seal_signing_secret(&self, id: &str, secret: &SigningSecret) -> Vec<u8> {
        self.master_key
            .seal(secret.expose().as_bytes(), id.as_bytes())
    }

    /// An API's `signing_secret` in clear, for responses; `None` when it has none (or it
    /// cannot be unsealed, logged).
    pub fn open_signing_secret(&self, rs: &ResourceServer) -> Option<SigningSecret> {
        let sealed = rs.sealed_signing_secret.as_deref()?;
        match self
            .master_key
            .open(sealed, rs.sealing_context())
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok())
        {
            Some(secret) => Some(SigningSecret::new(secret)),
            None => {
                tracing::error!(resource_server_id = %rs.id, "signing secret could not be unsealed");
                None
            }
        }
    }

    /// The API representation of `rs`, with its `signing_secret`.
    pub fn resource_server_json(
        &self,
        rs: &ResourceServer,
    ) -> serde_json::Map<String, serde_json::Value> {
        rs.to_json(self.open_signing_secret(rs).as_ref())
    }

    /// The client's secret in clear, for responses that show it.
    pub fn open_secret(&self, client_id: &str, sealed: Option<&[u8]>) -> Option<String> {
        let plain = self.master_key.open(sealed?, client_id.as_bytes()).ok()?;
        String::from_utf8(plain).ok()
    }

    // ----- clients -----

    /// Creates a client (with inline credentials); returns it with its new secret.
    pub async fn create_client(&self, new: NewClient) -> ServiceResult<(ClientAggregate, String)> {
        if let Some(org) = new.default_organization() {
            self.organization(org).await?;
        }
        let mut aggregate = new.build(None, self.limits, Timestamp::now())?;
        let secret = generate_client_secret();
        aggregate.sealed_secret = Some(self.seal_secret(&aggregate.client.client_id, &secret));
        self.write(async || {
            self.store.insert_client(&aggregate).await?;
            self.model.put_client(&aggregate, &self.master_key);
            Ok(())
        })
        .await?;
        Ok((aggregate, secret))
    }

    /// Reads a client.
    pub async fn client(&self, client_id: &str) -> ServiceResult<ClientAggregate> {
        self.store
            .client(client_id)
            .await?
            .ok_or(ServiceError::Refused(DomainError::client_not_found()))
    }

    /// Changes a client.
    pub async fn update_client(
        &self,
        client_id: &str,
        update: ClientUpdate,
    ) -> ServiceResult<ClientAggregate> {
        if let Some(org) = update.default_organization() {
            self.organization(org).await?;
        }
        let new_secret = update
            .client_secret
            .as_deref()
            .map(|s| self.seal_secret(client_id, s));
        let limits = self.limits;
        let now = Timestamp::now();
        self.mutate_client(client_id, &mut |aggregate| {
            update.apply(aggregate, limits, now)?;
            if let Some(sealed) = &new_secret {
                aggregate.sealed_secret = Some(sealed.clone());
            }
            Ok(())
        })
        .await
    }

    /// Generates a new secret; refused for clients that use credentials.
    pub async fn rotate_secret(&self, client_id: &str) -> ServiceResult<(ClientAggregate, String)> {
        let secret = generate_client_secret();
        let sealed = self.seal_secret(client_id, &secret);
        let now = Timestamp::now();
        let aggregate = self
            .mutate_client(client_id, &mut |aggregate| {
                aggregate.replace_secret(sealed.clone(), now)
            })
            .await?;
        Ok((aggregate, secret))
    }

    /// Deletes a client with its credentials and grants.
    pub async fn delete_client(&self, client_id: &str) -> ServiceResult<()> {
        self.write(async || {
            let grants = self.store.delete_client(client_id).await?;
            self.model.remove_client(client_id, &grants);
            Ok(())
        })
        .await
    }

    async fn mutate_client(
        &self,
        client_id: &str,
        mutation: &mut (dyn FnMut(&mut ClientAggregate) -> Result<(), DomainError> + Send),
    ) -> ServiceResult<ClientAggregate> {
        self.write(async || {
            let aggregate = self.store.update_client(client_id, mutation).await?;
            self.model.put_client(&aggregate, &self.master_key);
            Ok(aggregate)
        })
        .await
    }

    // ----- credentials -----

    /// Creates a credential on a client.
    pub async fn create_credential(
        &self,
        client_id: &str,
        new: NewCredential,
    ) -> ServiceResult<Credential> {
        // Key material is parsed before the transaction: it needs no state.
        let credential = new.build(client_id, Timestamp::now())?;
        let limits = self.limits;
        self.mutate_client(client_id, &mut |aggregate| {
            aggregate.add_credential(credential.clone(), limits)
        })
        .await?;
        Ok(credential)
    }

    /// Reads one credential of a client: from the read model when it remembers it for the
    /// client's current entry (see [`ReadModel::with_credential_cache`]), else with one store
    /// lookup (not the whole client).
    pub async fn credential(
        &self,
        client_id: &str,
        credential_id: &str,
    ) -> ServiceResult<Arc<Credential>> {
        let version = self.model.credential_version(client_id);
        if let Some(hit) =
            version.and_then(|v| self.model.cached_credential(v, client_id, credential_id))
        {
            return Ok(hit);
        }
        let credential = Arc::new(
            self.store
                .credential(client_id, credential_id)
                .await?
                .ok_or(ServiceError::Refused(DomainError::credential_not_found()))?,
        );
        if let Some(v) = version {
            self.model.remember_credential(v, &credential);
        }
        Ok(credential)
    }

    /// The seed's PATCH: sets, moves or removes `expires_at`.
    pub async fn set_credential_expiry(
        &self,
        client_id: &str,
        credential_id: &str,
        expires_at: Option<Timestamp>,
    ) -> ServiceResult<Credential> {
        let now = Timestamp::now();
        let aggregate = self
            .mutate_client(client_id, &mut |aggregate| {
                aggregate
                    .set_credential_expiry(credential_id, expires_at, now)
                    .map(|_| ())
            })
            .await?;
        aggregate
            .credential(credential_id)
            .cloned()
            .ok_or(ServiceError::Refused(DomainError::credential_not_found()))
    }

    /// Deletes a credential that is not attached.
    pub async fn delete_credential(
        &self,
        client_id: &str,
        credential_id: &str,
    ) -> ServiceResult<()> {
        self.mutate_client(client_id, &mut |aggregate| {
            aggregate.remove_credential(credential_id).map(|_| ())
        })
        .await?;
        Ok(())
    }

    // ----- resource servers -----

    /// Creates a resource server.
    pub async fn create_resource_server(
        &self,
        new: NewResourceServer,
    ) -> ServiceResult<ResourceServer> {
        let rs = new.build(Timestamp::now(), &|id, secret| {
            self.seal_signing_secret(id, secret)
        });
        self.write(async || {
            self.store.insert_resource_server(&rs).await?;
            self.model.put_api(&rs, &self.master_key);
            Ok(())
        })
        .await?;
        Ok(rs)
    }

    /// Reads a resource server by id or identifier.
    pub async fn resource_server(&self, key: &str) -> ServiceResult<ResourceServer> {
        self.store
            .resource_server(key)
            .await?
            .ok_or(ServiceError::Refused(
                DomainError::resource_server_not_found(),
            ))
    }

    /// Changes a resource server.
    pub async fn update_resource_server(
        &self,
        key: &str,
        update: ResourceServerUpdate,
    ) -> ServiceResult<ResourceServer> {
        let now = Timestamp::now();
        self.write(async || {
            let rs = self
                .store
                .update_resource_server(key, &mut |rs| {
                    update.apply(rs, now, &|id, secret| self.seal_signing_secret(id, secret))
                })
                .await?;
            self.model.put_api(&rs, &self.master_key);
            Ok(rs)
        })
        .await
    }

    /// Deletes a resource server and its grants.
    pub async fn delete_resource_server(&self, key: &str) -> ServiceResult<()> {
        self.write(async || {
            let (rs, grants) = self
                .store
                .delete_resource_server(key, &mut |rs| {
                    if rs.is_system {
                        Err(system_api_error())
                    } else {
                        Ok(())
                    }
                })
                .await?;
            self.model.remove_api(&rs.identifier, &grants);
            Ok(())
        })
        .await
    }

    // ----- client grants -----

    /// Creates a grant.
    pub async fn create_client_grant(&self, new: NewClientGrant) -> ServiceResult<ClientGrant> {
        let rs = self
            .store
            .resource_server(&new.audience)
            .await?
            .filter(|rs| rs.identifier == new.audience)
            .ok_or(ServiceError::Refused(
                DomainError::resource_server_not_found(),
            ))?;
        if new.allows_any_organization() {
            self.refuse_any_organization_for_third_party(&new.client_id)
                .await?;
        }
        let grant = new.build(&rs, Timestamp::now())?;
        self.write(async || {
            self.store.insert_client_grant(&grant).await?;
            self.model.put_grant(&grant);
            Ok(())
        })
        .await?;
        Ok(grant)
    }

    /// Reads a grant.
    pub async fn client_grant(&self, id: &str) -> ServiceResult<ClientGrant> {
        self.store
            .client_grant(id)
            .await?
            .ok_or(ServiceError::Refused(DomainError::client_grant_not_found()))
    }

    /// Changes a grant's scopes or settings.
    pub async fn update_client_grant(
        &self,
        id: &str,
        update: ClientGrantUpdate,
    ) -> ServiceResult<ClientGrant> {
        let existing = self.client_grant(id).await?;
        if update.allows_any_organization() {
            self.refuse_any_organization_for_third_party(&existing.client_id)
                .await?;
        }
        let rs = self.store.resource_server(&existing.audience).await?;
        let now = Timestamp::now();
        self.write(async || {
            let grant = self
                .store
                .update_client_grant(id, &mut |g| update.apply(g, rs.as_ref(), now))
                .await?;
            self.model.put_grant(&grant);
            Ok(grant)
        })
        .await
    }

    /// Deletes a grant.
    pub async fn delete_client_grant(&self, id: &str) -> ServiceResult<()> {
        self.write(async || {
            self.store.delete_client_grant(id).await?;
            self.model.remove_grant(id);
            Ok(())
        })
        .await
    }

    /// `allow_any_organization: true` is not available for third-party clients (Auth0); an
    /// unknown client is left to the grant's own check.
    async fn refuse_any_organization_for_third_party(&self, client_id: &str) -> ServiceResult<()> {
        match self.store.client(client_id).await? {
            Some(c) if !c.client.is_first_party => Err(ServiceError::Refused(
                crate::domain::client_grant::any_organization_third_party_error(),
            )),
            _ => Ok(()),
        }
    }

    // ----- organizations -----

    /// Re-reads an organization with its associations into the read model (after a write
    /// under the write lock).
    async fn refresh_organization(&self, id: &str) -> ServiceResult<()> {
        match self.store.organization(id).await? {
            Some(record) => self.model.put_organization(&record),
            None => self.model.remove_organization(id),
        }
        Ok(())
    }

    /// Creates an organization.
    pub async fn create_organization(&self, new: NewOrganization) -> ServiceResult<Organization> {
        let org = new.build(Timestamp::now());
        self.write(async || {
            self.store.insert_organization(&org).await?;
            self.model.put_organization(&OrganizationRecord {
                organization: org.clone(),
                grant_ids: Vec::new(),
            });
            Ok(())
        })
        .await?;
        Ok(org)
    }

    /// Reads an organization by id.
    pub async fn organization(&self, id: &str) -> ServiceResult<Organization> {
        self.store
            .organization(id)
            .await?
            .map(|r| r.organization)
            .ok_or(ServiceError::Refused(DomainError::organization_not_found()))
    }

    /// Reads an organization by name.
    pub async fn organization_by_name(&self, name: &str) -> ServiceResult<Organization> {
        self.store
            .organization_by_name(name)
            .await?
            .ok_or(ServiceError::Refused(DomainError::organization_not_found()))
    }

    /// Changes an organization.
    pub async fn update_organization(
        &self,
        id: &str,
        update: OrganizationUpdate,
    ) -> ServiceResult<Organization> {
        let now = Timestamp::now();
        self.write(async || {
            let org = self
                .store
                .update_organization(id, &mut |o| update.apply(o, now))
                .await?;
            self.refresh_organization(id).await?;
            Ok(org)
        })
        .await
    }

    /// Deletes an organization and its associations.
    pub async fn delete_organization(&self, id: &str) -> ServiceResult<()> {
        self.write(async || {
            self.store.delete_organization(id).await?;
            self.model.remove_organization(id);
            Ok(())
        })
        .await
    }

    /// Associates a client grant with an organization; returns the grant.
    pub async fn associate_client_grant(
        &self,
        org_id: &str,
        grant_id: &str,
    ) -> ServiceResult<ClientGrant> {
        self.write(async || {
            let grant = self.store.associate_client_grant(org_id, grant_id).await?;
            self.refresh_organization(org_id).await?;
            Ok(grant)
        })
        .await
    }

    // ----- tenant settings -----

    /// The tenant's settings.
    pub async fn tenant_settings(&self) -> ServiceResult<TenantSettings> {
        Ok(self.store.tenant_settings().await?)
    }

    /// Changes the tenant's settings.
    pub async fn update_tenant_settings(
        &self,
        update: TenantSettingsUpdate,
    ) -> ServiceResult<TenantSettings> {
        self.write(async || {
            let settings = self
                .store
                .update_tenant_settings(&mut |s| {
                    update.apply(s);
                    Ok(())
                })
                .await?;
            self.model.put_tenant_settings(&settings);
            Ok(settings)
        })
        .await
    }

    /// Removes a client grant from an organization.
    pub async fn dissociate_client_grant(&self, org_id: &str, grant_id: &str) -> ServiceResult<()> {
        self.write(async || {
            self.store.dissociate_client_grant(org_id, grant_id).await?;
            self.refresh_organization(org_id).await?;
            Ok(())
        })
        .await
    }
}

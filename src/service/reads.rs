//! The reads the Management API serves from the store rather than the read model: pages of
//! lists, the audit trail and readiness. The HTTP layer reads through these, never through
//! the store itself, so that what it may see is decided here.

use super::ServiceResult;
use crate::domain::client_grant::ClientGrant;
use crate::domain::organization::Organization;
use crate::domain::resource_server::ResourceServer;
use crate::store::{
    ClientFilter, ClientRow, GrantFilter, LogRow, LogSearch, LogStreamRecord, OrganizationFilter,
    Page, PageRequest,
};

use super::Clavis;

impl Clavis {
    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> ServiceResult<()> {
        self.store.ping().await.map_err(Into::into)
    }

    /// A page of clients matching `filter`.
    pub async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<ClientRow>> {
        self.store
            .list_clients(filter, page)
            .await
            .map_err(Into::into)
    }

    /// A page of resource servers.
    pub async fn list_resource_servers(
        &self,
        page: PageRequest,
    ) -> ServiceResult<Page<ResourceServer>> {
        self.store
            .list_resource_servers(page)
            .await
            .map_err(Into::into)
    }

    /// A page of client grants matching `filter`.
    pub async fn list_client_grants(
        &self,
        filter: &GrantFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<ClientGrant>> {
        self.store
            .list_client_grants(filter, page)
            .await
            .map_err(Into::into)
    }

    /// A page of organizations matching `filter`.
    pub async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Organization>> {
        self.store
            .list_organizations(filter, page)
            .await
            .map_err(Into::into)
    }

    /// Every log stream.
    pub async fn log_streams(&self) -> ServiceResult<Vec<LogStreamRecord>> {
        self.store.log_streams().await.map_err(Into::into)
    }

    /// One audit event by sequence number.
    pub async fn log(&self, seq: i64) -> ServiceResult<Option<LogRow>> {
        self.store.log(seq).await.map_err(Into::into)
    }

    /// Up to `take` audit events after sequence number `after`.
    pub async fn logs_after(&self, after: i64, take: u64) -> ServiceResult<Vec<LogRow>> {
        self.store.logs_after(after, take).await.map_err(Into::into)
    }

    /// A page of an audit-trail search, with the number of matches when asked for.
    pub async fn search_logs(
        &self,
        search: &LogSearch,
    ) -> ServiceResult<(Vec<LogRow>, Option<u64>)> {
        self.store.search_logs(search).await.map_err(Into::into)
    }
}

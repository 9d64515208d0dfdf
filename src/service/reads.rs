//! The reads the Management API serves from the store rather than the read model: pages of
//! lists, the audit trail and readiness. The HTTP layer reads through these, never through
//! the store itself, so that what it may see is decided here.

use crate::domain::client_grant::ClientGrant;
use crate::domain::organization::Organization;
use crate::domain::resource_server::ResourceServer;
use crate::store::{
    ClientFilter, ClientRow, GrantFilter, LogRow, LogSearch, LogStreamRecord, OrganizationFilter,
    Page, PageRequest, StoreResult,
};

use super::Clavis;

impl Clavis {
    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }

    /// A page of clients matching `filter`.
    pub async fn list_clients(
        &self,
        filter: &ClientFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientRow>> {
        self.store.list_clients(filter, page).await
    }

    /// A page of resource servers.
    pub async fn list_resource_servers(
        &self,
        page: PageRequest,
    ) -> StoreResult<Page<ResourceServer>> {
        self.store.list_resource_servers(page).await
    }

    /// A page of client grants matching `filter`.
    pub async fn list_client_grants(
        &self,
        filter: &GrantFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>> {
        self.store.list_client_grants(filter, page).await
    }

    /// A page of organizations matching `filter`.
    pub async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Organization>> {
        self.store.list_organizations(filter, page).await
    }

    /// Every log stream.
    pub async fn log_streams(&self) -> StoreResult<Vec<LogStreamRecord>> {
        self.store.log_streams().await
    }

    /// One audit event by sequence number.
    pub async fn log(&self, seq: i64) -> StoreResult<Option<LogRow>> {
        self.store.log(seq).await
    }

    /// Up to `take` audit events after sequence number `after`.
    pub async fn logs_after(&self, after: i64, take: u64) -> StoreResult<Vec<LogRow>> {
        self.store.logs_after(after, take).await
    }

    /// A page of an audit-trail search, with the number of matches when asked for.
    pub async fn search_logs(&self, search: &LogSearch) -> StoreResult<(Vec<LogRow>, Option<u64>)> {
        self.store.search_logs(search).await
    }
}

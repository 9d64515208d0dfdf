//! What a caller may set on a client and see of it. The rules are the field-scope tables of
//! `domain::scopes::fields` (Auth0's, listed in SECURITY.md) and the secret's visibility; the
//! client operations of the Management API take the caller and apply them here, so a handler
//! renders what it is given and decides nothing.

use serde_json::{Map, Value};

use super::access::Caller;
use super::{Clavis, ServiceResult};
use crate::domain::DomainError;
use crate::domain::client::{Client, ClientUpdate, NewClient};
use crate::domain::scopes::{FieldScopes, SEE_SECRET, fields};
use crate::store::{ClientFilter, Page, PageRequest};

/// A client as one caller may see it (Auth0's client object).
pub type ClientView = Map<String, Value>;

impl Caller {
    /// Refused unless the caller may set every property of `body` (a JSON object) that
    /// `table` guards. With `null_is_absent`, a `null` property sets nothing (create).
    fn may_set(
        &self,
        table: &FieldScopes,
        body: &Value,
        null_is_absent: bool,
    ) -> Result<(), DomainError> {
        let Value::Object(body) = body else {
            return Ok(());
        };
        let set = body
            .iter()
            .filter(|(_, v)| !(null_is_absent && v.is_null()))
            .map(|(k, _)| k.as_str());
        match table.refused(set, |scopes| self.has_any(scopes)) {
            None => Ok(()),
            Some(scopes) => Err(crate::domain::scopes::insufficient_scope(scopes)),
        }
    }

    /// Whether the caller may see client secrets.
    fn sees_secrets(&self) -> bool {
        self.has_any(SEE_SECRET)
    }
}

impl Clavis {
    /// `client` for `caller`: its secret only while a secret method is in use and only for a
    /// caller allowed to see it; for a read (`read`), only the properties the caller's read
    /// scopes show ([`fields::READ_CLIENT`]).
    fn view(
        &self,
        caller: &Caller,
        client: &Client,
        sealed: Option<&[u8]>,
        read: bool,
    ) -> ClientView {
        let secret = (client.uses_secret() && caller.sees_secrets())
            .then(|| self.open_secret(&client.client_id, sealed))
            .flatten();
        let mut json = client.to_json(secret.as_deref());
        if read {
            json.retain(|k, _| caller.has_any(fields::READ_CLIENT.scopes(k)));
        }
        json
    }

    /// Creates a client for `caller`, who must hold the scopes of every property `body` sets
    /// ([`fields::CREATE_CLIENT`]). The answer shows the new secret (while a secret method is
    /// in use): its creator is handed it once, without a read scope.
    pub async fn create_client_for(
        &self,
        caller: &Caller,
        new: NewClient,
        body: &Value,
    ) -> ServiceResult<ClientView> {
        caller.may_set(&fields::CREATE_CLIENT, body, true)?;
        let (aggregate, secret) = self.create_client(new).await?;
        let secret = Some(secret.as_str()).filter(|_| aggregate.client.uses_secret());
        Ok(aggregate.client.to_json(secret))
    }

    /// A client as `caller` may read it.
    pub async fn client_for(&self, caller: &Caller, client_id: &str) -> ServiceResult<ClientView> {
        let aggregate = self.client(client_id).await?;
        Ok(self.view(
            caller,
            &aggregate.client,
            aggregate.sealed_secret.as_deref(),
            true,
        ))
    }

    /// A page of clients as `caller` may read them; secrets are unsealed only when
    /// `with_secrets` (the caller's `fields` selection shows them) and the caller may see them.
    pub async fn list_clients_for(
        &self,
        caller: &Caller,
        filter: &ClientFilter,
        page: PageRequest,
        with_secrets: bool,
    ) -> ServiceResult<Page<ClientView>> {
        let page = self.list_clients(filter, page).await?;
        Ok(page.map(|row| {
            let sealed = row.sealed_secret.as_deref().filter(|_| with_secrets);
            self.view(caller, &row.client, sealed, true)
        }))
    }

    /// Changes a client for `caller`, who must hold the scopes of every property `body` sets
    /// ([`fields::UPDATE_CLIENT`]); the answer is the whole client, its secret shown as on a
    /// read.
    pub async fn update_client_for(
        &self,
        caller: &Caller,
        client_id: &str,
        update: ClientUpdate,
        body: &Value,
    ) -> ServiceResult<ClientView> {
        caller.may_set(&fields::UPDATE_CLIENT, body, false)?;
        let aggregate = self.update_client(client_id, update).await?;
        Ok(self.view(
            caller,
            &aggregate.client,
            aggregate.sealed_secret.as_deref(),
            false,
        ))
    }
}

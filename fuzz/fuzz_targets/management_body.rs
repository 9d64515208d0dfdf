//! Management API request bodies (JSON and form) through every domain validator, and the
//! builders that parse key material; the tenant settings; and the paging query string.
#![no_main]

use clavis::domain::client::{ClientUpdate, CredentialLimits, NewClient};
use clavis::domain::client_grant::{ClientGrantUpdate, NewClientGrant};
use clavis::domain::credential::{NewCredential, parse_patch};
use clavis::domain::resource_server::{NewResourceServer, ResourceServerUpdate};
use clavis::domain::tenant_settings::{TenantSettings, TenantSettingsUpdate};
use clavis::domain::time::Timestamp;
use clavis::domain::validate::Body;
use clavis::http::extract::QueryParams;
use clavis::http::strict;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn body(value: &Value, form: bool) -> Option<Body<'_>> {
    if form {
        Body::new_form(value).ok()
    } else {
        Body::new(value).ok()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 4 == 3 {
        let q = QueryParams::parse(std::str::from_utf8(rest).ok());
        let _ = q.paging();
        let _ = q.boolean("include_fields");
        return;
    }
    let form = mode % 4 == 2;
    let parsed = if form {
        strict::form(rest).map(Value::Object)
    } else {
        strict::json(rest)
    };
    let Ok(value) = parsed else {
        return;
    };
    let now = Timestamp::now();
    let limits = CredentialLimits::default();
    if let Some(b) = body(&value, form)
        && let Ok(c) = NewCredential::parse(b)
    {
        let _ = c.build("abcdefghijklmnopqrstuvwxyz012345", now);
    }
    if let Some(b) = body(&value, form)
        && let Ok(c) = NewClient::parse(b)
    {
        let _ = c.build(None, limits, now);
    }
    if let Some(b) = body(&value, form) {
        let _ = ClientUpdate::parse(b);
    }
    if let Some(b) = body(&value, form) {
        let _ = parse_patch(b);
    }
    if let Some(b) = body(&value, form)
        && let Ok(rs) = NewResourceServer::parse(b)
    {
        // Sealing is the service's; a stand-in keeps the secret's length.
        let _ = rs.build(now, &|_, secret| secret.expose().as_bytes().to_vec());
    }
    if let Some(b) = body(&value, form) {
        let _ = ResourceServerUpdate::parse(b);
    }
    if let Some(b) = body(&value, form) {
        let _ = NewClientGrant::parse(b);
    }
    if let Some(b) = body(&value, form) {
        let _ = ClientGrantUpdate::parse(b);
    }
    if let Some(b) = body(&value, form)
        && let Ok(update) = TenantSettingsUpdate::parse(b)
    {
        // What is applied reads back as the same settings (and its quotas).
        let mut settings = TenantSettings::default();
        update.apply(&mut settings);
        let stored = TenantSettings::from_stored(Some(&settings.to_stored()));
        assert_eq!(stored, settings);
        assert_eq!(stored.default_quotas(), settings.default_quotas());
    }
});

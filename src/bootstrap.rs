//! First start: the master key, and — on an empty store — the Management API resource
//! server, the admin client with its grant, and the first signing keys, written in one
//! transaction.

use std::path::Path;

use anyhow::{Context, Result, bail};
use clavis_crypto::jws::SigningKey;
use clavis_crypto::sealed::MasterKey;
use clavis_crypto::secret::generate_client_secret;

use crate::config::Config;
use crate::domain::client::{AuthMethods, Client, ClientAggregate, JwtConfiguration};
use crate::domain::client_grant::ClientGrant;
use crate::domain::ids;
use crate::domain::resource_server::{
    DEFAULT_TOKEN_LIFETIME, MANAGEMENT_API_NAME, ResourceServer, ScopeDef,
};
use crate::domain::scopes::MANAGEMENT_SCOPES;
use crate::domain::time::Timestamp;
use crate::service::Issuer;
use crate::store::{Bootstrap, KeyState, SigningKeyRecord, Store};
use crate::tls::write_private;

const MASTER_KEY_CHECK: &str = "master_key_check";
const MASTER_KEY_CHECK_PLAINTEXT: &[u8] = b"clavis master key check";

/// The master key from the configuration, or from `<data-dir>/master.key` (created with
/// mode 0600 on first start).
pub fn load_master_key(config: &Config) -> Result<MasterKey> {
    if let Some(secret) = &config.master_key {
        return MasterKey::from_b64(&secret.0)
            .context("CLAVIS_MASTER_KEY must be base64 of 32 bytes");
    }
    let path = config.data_dir.join("master.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return MasterKey::from_b64(&text)
            .with_context(|| format!("{} must hold base64 of 32 bytes", path.display()));
    }
    let key = MasterKey::generate();
    write_private(&path, format!("{}\n", key.to_b64()).as_bytes())?;
    Ok(key)
}

/// Refuses to start with a master key other than the one the store was created with.
pub async fn check_master_key(store: &dyn Store, key: &MasterKey) -> Result<()> {
    let sealed = key.seal(MASTER_KEY_CHECK_PLAINTEXT, MASTER_KEY_CHECK.as_bytes());
    let stored = store
        .init_setting(MASTER_KEY_CHECK, &clavis_crypto::encoding::b64url(&sealed))
        .await?;
    let stored = clavis_crypto::encoding::b64url_decode(&stored)
        .context("corrupt master key check value")?;
    match key.open(&stored, MASTER_KEY_CHECK.as_bytes()) {
        Ok(plain) if plain == MASTER_KEY_CHECK_PLAINTEXT => Ok(()),
        _ => bail!("the master key does not match the one this database was created with"),
    }
}

/// A new signing key record, sealed.
pub fn new_signing_key(
    master_key: &MasterKey,
    issuer: &Issuer,
    state: KeyState,
    now: Timestamp,
) -> Result<SigningKeyRecord> {
    let key = SigningKey::generate().context("cannot generate a signing key")?;
    let host = url::Url::parse(&issuer.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "clavis".into());
    let cert_pem = key
        .self_signed_certificate_pem(&host, 3650)
        .context("cannot create the signing key certificate")?;
    Ok(SigningKeyRecord {
        kid: key.kid().to_string(),
        sealed_pkcs8: master_key.seal(key.pkcs8_der(), key.kid().as_bytes()),
        cert_pem,
        state,
        created_at: now,
        current_since: (state == KeyState::Current).then_some(now),
        current_until: None,
        revoked_at: None,
    })
}

/// Credentials of the admin client, printed once on first start.
#[derive(Clone)]
pub struct AdminCredentials {
    /// client_id
    pub client_id: String,
    /// client_secret
    pub client_secret: String,
    /// Whether the operator supplied the secret (then it is not printed).
    pub secret_supplied: bool,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Creates the first-start state unless the store already has it. Returns the admin
/// credentials when it did.
pub async fn bootstrap(
    store: &dyn Store,
    config: &Config,
    master_key: &MasterKey,
    issuer: &Issuer,
) -> Result<Option<AdminCredentials>> {
    if store.setting("bootstrapped").await?.is_some() {
        if let Some(rs) = store.resource_server(&issuer.management_audience).await?
            && !rs.is_system
        {
            tracing::warn!("the Management API audience is a non-system resource server");
        } else if store
            .resource_server(&issuer.management_audience)
            .await?
            .is_none()
        {
            tracing::warn!(
                audience = %issuer.management_audience,
                remedy = "stop the server and run `clavis move-public-url` with the same options",
                "the public URL changed since the first start: the Management API was created for another audience, so no client gets Management tokens"
            );
        }
        add_new_scopes(store, issuer).await?;
        return Ok(None);
    }
    let now = Timestamp::now();
    let client_id = match &config.bootstrap_client_id {
        Some(id) if ids::is_valid_client_id(id) => id.clone(),
        Some(_) => bail!("CLAVIS_BOOTSTRAP_CLIENT_ID must be 1-64 characters of [A-Za-z0-9_-]"),
        None => ids::new_client_id(),
    };
    let client_secret = match &config.bootstrap_client_secret {
        Some(s) if s.0.len() >= 16 && s.0.len() <= 512 => s.0.clone(),
        Some(_) => bail!("CLAVIS_BOOTSTRAP_CLIENT_SECRET must be 16-512 characters"),
        None => generate_client_secret(),
    };
    let scopes: Vec<String> = MANAGEMENT_SCOPES
        .iter()
        .map(|(s, _)| s.to_string())
        .collect();
    let management_api = ResourceServer {
        id: ids::new_resource_server_id(),
        name: MANAGEMENT_API_NAME.into(),
        identifier: issuer.management_audience.clone(),
        scopes: MANAGEMENT_SCOPES
            .iter()
            .map(|(value, description)| ScopeDef {
                value: (*value).to_string(),
                description: Some((*description).to_string()),
            })
            .collect(),
        signing_alg: "RS256".into(),
        sealed_signing_secret: None,
        token_lifetime: DEFAULT_TOKEN_LIFETIME,
        allow_offline_access: false,
        skip_consent_for_verifiable_first_party_clients: false,
        is_system: true,
        extra: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let admin = ClientAggregate {
        client: Client {
            client_id: client_id.clone(),
            name: crate::operator::ADMIN_CLIENT_NAME.into(),
            description: Some("Created on first start; holds every Management API scope.".into()),
            app_type: Some("non_interactive".into()),
            is_first_party: true,
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: Some("client_secret_post".into()),
            client_authentication_methods: None::<AuthMethods>,
            jwt_configuration: JwtConfiguration::default(),
            client_metadata: Default::default(),
            extra: Default::default(),
            created_at: now,
            updated_at: now,
        },
        sealed_secret: Some(master_key.seal(client_secret.as_bytes(), client_id.as_bytes())),
        credentials: Vec::new(),
    };
    let admin_grant = ClientGrant {
        id: ids::new_client_grant_id(),
        client_id: client_id.clone(),
        audience: issuer.management_audience.clone(),
        scope: scopes,
        extra: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let signing_keys = vec![
        new_signing_key(master_key, issuer, KeyState::Current, now)?,
        new_signing_key(master_key, issuer, KeyState::Next, now)?,
    ];
    let data = Bootstrap {
        management_api,
        admin,
        admin_grant,
        signing_keys,
    };
    if store.bootstrap(&data).await? {
        store
            .init_setting(crate::operator::ADMIN_CLIENT_SETTING, &client_id)
            .await?;
        Ok(Some(AdminCredentials {
            client_id,
            client_secret,
            secret_supplied: config.bootstrap_client_secret.is_some(),
        }))
    } else {
        Ok(None)
    }
}

/// Brings an existing installation's Management API up to this version's scope list: a
/// scope added since (e.g. `read:logs`) is defined on the system API and granted to the
/// admin client, as a first start would have. Scopes the API already defines are left as
/// they are, so a scope an operator took from the admin grant stays taken.
pub async fn add_new_scopes(store: &dyn Store, issuer: &Issuer) -> Result<()> {
    let Some(api) = store.resource_server(&issuer.management_audience).await? else {
        return Ok(());
    };
    if !api.is_system {
        return Ok(());
    }
    let missing: Vec<(&str, &str)> = MANAGEMENT_SCOPES
        .iter()
        .copied()
        .filter(|(value, _)| !api.scopes.iter().any(|s| s.value == *value))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    store
        .update_resource_server(&api.id, &mut |rs| {
            for (value, description) in &missing {
                if !rs.scopes.iter().any(|s| s.value == *value) {
                    rs.scopes.push(ScopeDef {
                        value: (*value).to_string(),
                        description: Some((*description).to_string()),
                    });
                }
            }
            Ok(())
        })
        .await?;
    if let Some(admin) = store.setting(crate::operator::ADMIN_CLIENT_SETTING).await? {
        let filter = crate::store::GrantFilter {
            audience: Some(issuer.management_audience.clone()),
            client_id: Some(admin),
            ..Default::default()
        };
        let grants = store
            .list_client_grants(
                &filter,
                crate::store::PageRequest::Offset {
                    page: 0,
                    per_page: 10,
                },
            )
            .await?;
        for grant in grants.items {
            store
                .update_client_grant(&grant.id, &mut |g| {
                    for (value, _) in &missing {
                        if !g.scope.iter().any(|s| s == value) {
                            g.scope.push((*value).to_string());
                        }
                    }
                    Ok(())
                })
                .await?;
        }
    }
    let added: Vec<&str> = missing.iter().map(|(v, _)| *v).collect();
    tracing::info!(scopes = ?added, "added new Management API scopes to the system API and the admin grant");
    Ok(())
}

/// Creates the data directory (mode 0700 on Unix).
pub fn ensure_data_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    Ok(())
}

//! Operator commands on a data directory or database, run beside (or instead of)
//! `clavis serve`: what an operator needs when something was lost or moved.
//!
//! With SQLite a running server keeps its own picture of the data in memory, so a command
//! that changes the data refuses to run while a server holds the data directory (the server
//! holds exclusive locks on `<data-dir>/clavis.lock` and `<database file>.lock`, see [`InstallationLock`]). With
//! PostgreSQL every write is announced to the running nodes, which apply it at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::bootstrap;
use crate::config::Config;
use crate::domain::time::Timestamp;
use crate::startup::open_store;
use crate::store::{PageRequest, Store};

/// The setting naming the admin client created on first start.
pub const ADMIN_CLIENT_SETTING: &str = "admin_client_id";
/// The name the first start gives the admin client (how stores created before
/// [`ADMIN_CLIENT_SETTING`] existed are searched).
pub const ADMIN_CLIENT_NAME: &str = "Clavis Admin (bootstrap)";

/// An exclusive lock on a data directory, held while a server or a command uses it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        Ok(Self {
            _file: lock_file(&data_dir.join("clavis.lock"), data_dir)?,
        })
    }
}

/// What one process holds while it serves or changes an installation: the data directory
/// and, with SQLite, the database file wherever it lies (`<file>.lock` beside it), so that
/// two processes never share one SQLite database even when `--database-url` points outside
/// the data directory. SQLite's read model and its `jti` replay guard (decided in memory,
/// written behind) are only sound with one process on the file.
#[derive(Debug)]
pub struct InstallationLock {
    _data_dir: DataDirLock,
    _database: Option<File>,
}

impl InstallationLock {
    /// Takes both locks, or says who holds one.
    pub fn acquire(config: &Config) -> Result<Self> {
        let data_dir = DataDirLock::acquire(&config.data_dir)?;
        let database = match sqlite_file(&config.database_url) {
            Some(file) => {
                let at = database_lock_path(&file)?;
                Some(lock_file(&at, &file)?)
            }
            None => None,
        };
        Ok(Self {
            _data_dir: data_dir,
            _database: database,
        })
    }
}

/// The database file of a `sqlite:` URL (`None` for PostgreSQL).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let file = rest.split('?').next().unwrap_or(rest);
    (!file.is_empty()).then(|| PathBuf::from(file))
}

/// `<file>.lock` in the file's real directory (symbolic links resolved, so that two spellings
/// of one database take one lock).
fn database_lock_path(file: &Path) -> Result<PathBuf> {
    let real = match file.canonicalize() {
        Ok(real) => real,
        Err(_) => {
            // Not created yet: its directory must exist (SQLite does not create it).
            let parent = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let dir = parent
                .canonicalize()
                .with_context(|| format!("no directory {} for the database", parent.display()))?;
            let name = file
                .file_name()
                .with_context(|| format!("{} names no file", file.display()))?;
            dir.join(name)
        }
    };
    let mut name = real.clone().into_os_string();
    name.push(".lock");
    Ok(PathBuf::from(name))
}

/// Opens (creating) `path` and locks it exclusively; `what` names the locked thing.
fn lock_file(path: &Path, what: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another clavis process (a running server?) is using {}; stop it first",
            what.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Opens the store of an existing installation (never creates one), with the installation's
/// locks when the store is SQLite.
async fn existing_store(config: &Config) -> Result<(Option<InstallationLock>, Arc<dyn Store>)> {
    let lock = match sqlite_file(&config.database_url) {
        Some(file) => {
            if !file.exists() {
                bail!("no Clavis database at {}", file.display());
            }
            Some(InstallationLock::acquire(config)?)
        }
        None => None,
    };
    let store = open_store(&config.database_url, &config.db).await?;
    if store.setting("bootstrapped").await?.is_none() {
        bail!("this database has never been started by `clavis serve`");
    }
    Ok((lock, store))
}

/// Every item of a list, page by page.
async fn every_page<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = crate::store::StoreResult<crate::store::Page<T>>>,
{
    const PER_PAGE: u64 = 100;
    let mut all = Vec::new();
    for page in 0.. {
        let items = fetch(PageRequest::Offset {
            page,
            per_page: PER_PAGE,
        })
        .await?
        .items;
        let last = (items.len() as u64) < PER_PAGE;
        all.extend(items);
        if last {
            break;
        }
    }
    Ok(all)
}

/// The admin client's id: the one given, the one the first start recorded, or the only
/// client with the first start's name.
async fn admin_client_id(store: &dyn Store, given: Option<&str>) -> Result<String> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    if let Some(id) = store.setting(ADMIN_CLIENT_SETTING).await? {
        return Ok(id);
    }
    let every_client = crate::store::ClientFilter::default();
    let found: Vec<String> = every_page(|page| store.list_clients(&every_client, page))
        .await?
        .into_iter()
        .filter(|r| r.client.name == ADMIN_CLIENT_NAME)
        .map(|r| r.client.client_id)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no admin client found: name it with --client-id"),
        _ => bail!("several clients are named \"{ADMIN_CLIENT_NAME}\": name one with --client-id"),
    }
}

/// `clavis reset-admin-secret`: gives the admin client (or `client_id`) a new secret and
/// returns it; the old one stops working at once (with PostgreSQL, on every node).
pub async fn reset_admin_secret(
    config: &Config,
    client_id: Option<&str>,
) -> Result<(String, String)> {
    if config.master_key.is_none() && !config.data_dir.join("master.key").exists() {
        bail!(
            "no master key: set CLAVIS_MASTER_KEY (or _FILE), or point --data-dir at the server's data directory"
        );
    }
    let (lock, store) = existing_store(config).await?;
    let master_key = bootstrap::load_master_key(config)?;
    bootstrap::check_master_key(store.as_ref(), &master_key).await?;
    let client_id = admin_client_id(store.as_ref(), client_id).await?;
    let secret = clavis_crypto::secret::generate_client_secret();
    let sealed = master_key.seal(secret.as_bytes(), client_id.as_bytes());
    let now = Timestamp::now();
    store
        .update_client(&client_id, &mut |aggregate| {
            aggregate.replace_secret(sealed.clone(), now)
        })
        .await
        .with_context(|| format!("cannot reset the secret of client {client_id}"))?;
    store.durable().await?;
    store.close().await;
    drop(lock);
    Ok((client_id, secret))
}

/// What [`move_public_url`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The Management API audience before.
    pub from: String,
    /// And after.
    pub to: String,
    /// Client grants moved to the new audience.
    pub grants: usize,
}

/// `clavis move-public-url`: moves the Management API to the audience of the new public URL
/// (`<public-url>/api/v2/`), with every client grant for it, so that the admin (and every
/// other Management client) gets tokens for it again. Re-runnable: an interrupted move is
/// finished by running it again. Run it with every server stopped, then start them with the
/// new `--public-url`.
pub async fn move_public_url(config: &Config) -> Result<Moved> {
    let Some(public_url) = &config.public_url else {
        bail!("name the new public URL with --public-url (or CLAVIS_PUBLIC_URL)");
    };
    let target = crate::service::Issuer::new(public_url, None).management_audience;
    let (lock, store) = existing_store(config).await?;
    let systems: Vec<_> = every_page(|page| store.list_resource_servers(page))
        .await?
        .into_iter()
        .filter(|rs| rs.is_system)
        .collect();
    let Some(old) = systems.iter().find(|rs| rs.identifier != target).cloned() else {
        if systems.is_empty() {
            bail!("this database has no Management API");
        }
        return Ok(Moved {
            from: target.clone(),
            to: target,
            grants: 0,
        });
    };
    let now = Timestamp::now();
    // 1. The Management API under the new audience (unless an interrupted run made it).
    if !systems.iter().any(|rs| rs.identifier == target) {
        if store.resource_server(&target).await?.is_some() {
            bail!("an API with the identifier {target} exists already; delete it first");
        }
        let moved = crate::domain::resource_server::ResourceServer {
            id: crate::domain::ids::new_resource_server_id(),
            identifier: target.clone(),
            created_at: now,
            updated_at: now,
            ..old.clone()
        };
        store.insert_resource_server(&moved).await?;
    }
    // 2. Every grant for the old audience, again for the new one.
    let filter = crate::store::GrantFilter {
        audience: Some(old.identifier.clone()),
        ..Default::default()
    };
    let grants = every_page(|page| store.list_client_grants(&filter, page)).await?;
    for grant in &grants {
        let copy = crate::domain::client_grant::ClientGrant {
            id: crate::domain::ids::new_client_grant_id(),
            audience: target.clone(),
            created_at: now,
            updated_at: now,
            ..grant.clone()
        };
        match store.insert_client_grant(&copy).await {
            Ok(()) | Err(crate::store::StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // 3. The old Management API goes, with its grants.
    store
        .delete_resource_server(&old.identifier, &mut |_| Ok(()))
        .await?;
    store.durable().await?;
    store.close().await;
    drop(lock);
    Ok(Moved {
        from: old.identifier,
        to: target,
        grants: grants.len(),
    })
}

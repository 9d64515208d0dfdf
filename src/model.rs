//! The in-memory read model: what the token endpoint and the Management API's token check
//! read on every request, without touching the store.
//!
//! It holds, per client, only what authentication needs — the SHA-256 digest of the secret
//! (never the secret), the attached credentials' public keys (each parsed once, on first
//! use) — plus the APIs, the grants and the signing keys. Every management write updates it
//! in the same critical section that commits the write (see `service`), so a credential that
//! is expired, detached or deleted stops authenticating with the very next request.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use clavis_crypto::jws::{HmacSigningKey, JwsAlg, JwtTyp, RsaSigningAlg, SigningKey};
use clavis_crypto::rsa::{RsaPublicKey, parse_public_key_pem};
use clavis_crypto::sealed::MasterKey;
use clavis_crypto::secret::SecretDigest;
use clavis_crypto::x509::DistinguishedName;
use serde::Serialize;

use crate::domain::client::{AuthMethodKind, ClientAggregate};
use crate::domain::client_grant::ClientGrant;
use crate::domain::credential::{Credential, CredentialType};
use crate::domain::resource_server::ResourceServer;
use crate::domain::tenant_settings::{DefaultQuotas, TenantSettings};
use crate::domain::time::Timestamp;
use crate::domain::token_quota::QuotaLimits;
use crate::store::{
    KeyState, OrganizationRecord, SigningKeyRecord, Snapshot, SnapshotItem, SnapshotSink, Store,
    StoreError, StoreResult,
};

/// A credential a client authenticates with, and when it expires
/// ([`ReadModel::expiring_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCredential {
    /// The credential.
    pub credential_id: String,
    /// Its type.
    pub credential_type: CredentialType,
    /// Its client.
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    /// Its effective expiry.
    pub expires_at: Timestamp,
}

/// A public key attached to a client's `private_key_jwt` method.
#[derive(Debug, Clone)]
pub struct AttachedKey {
    /// Credential id (for logs).
    pub credential_id: String,
    /// Key id.
    pub kid: String,
    /// The only algorithm accepted with this key.
    pub alg: JwsAlg,
    /// Effective expiry.
    pub expires_at: Option<Timestamp>,
    /// The stored PEM, parsed by the first assertion that needs it: at 100,000 clients,
    /// parsing every key at start-up took a third of the start-up time and a parsed key
    /// holds several times the memory of its PEM, while most keys of a large tenant sign
    /// rarely. Rebuilding an entry after a write (e.g. a PATCH of `expires_at`) costs no
    /// parse either.
    pem: Box<str>,
    parsed: OnceLock<Option<RsaPublicKey>>,
}

impl AttachedKey {
    /// A key to be parsed on first use.
    pub fn new(
        credential_id: String,
        kid: String,
        alg: JwsAlg,
        expires_at: Option<Timestamp>,
        pem: &str,
    ) -> Self {
        Self {
            credential_id,
            kid,
            alg,
            expires_at,
            pem: pem.into(),
            parsed: OnceLock::new(),
        }
    }

    /// The parsed key; `None` (logged once) when the stored PEM does not parse, which
    /// validation on every write prevents.
    pub fn key(&self) -> Option<&RsaPublicKey> {
        self.parsed
            .get_or_init(|| match parse_public_key_pem(&self.pem) {
                Ok(material) => Some(material.key),
                Err(e) => {
                    tracing::error!(credential_id = %self.credential_id, error = %e, "stored public key could not be loaded");
                    None
                }
            })
            .as_ref()
    }
}

/// A subject DN attached to a client's `tls_client_auth` method.
#[derive(Debug, Clone)]
pub struct AttachedDn {
    /// Credential id (for logs).
    pub credential_id: String,
    /// Parsed DN.
    pub dn: DistinguishedName,
    /// Effective expiry.
    pub expires_at: Option<Timestamp>,
}

/// A pinned certificate attached to a client's `self_signed_tls_client_auth` method.
#[derive(Debug, Clone)]
pub struct AttachedCert {
    /// Credential id (for logs).
    pub credential_id: String,
    /// base64url SHA-256 of the certificate DER.
    pub thumbprint_sha256: String,
    /// Effective expiry (the earlier of `expires_at` and notAfter).
    pub expires_at: Option<Timestamp>,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_post` / `client_secret_basic`.
    Secret(SecretDigest),
    /// `private_key_jwt` with these keys.
    PrivateKeyJwt(Vec<AttachedKey>),
    /// `tls_client_auth` with these DNs.
    TlsClientAuth(Vec<AttachedDn>),
    /// `self_signed_tls_client_auth` with these certificates.
    SelfSignedTlsClientAuth(Vec<AttachedCert>),
    /// No usable method (`none`, or nothing configured).
    Unavailable,
}

/// What the token endpoint knows of a client.
#[derive(Debug, Clone)]
pub struct ClientEntry {
    /// The client id.
    pub client_id: String,
    /// Its name (`client_name` of its log events).
    pub name: String,
    /// Whether `client_credentials` is enabled.
    pub allows_client_credentials: bool,
    /// Its authentication method.
    pub auth: ClientAuth,
    /// `require_proof_of_possession`: tokens only when a certificate binds them.
    pub requires_binding: bool,
    /// `default_organization` for `client_credentials`: the organization of a request that
    /// names none when the grant requires one.
    pub default_organization: Option<String>,
    /// Its own `token_quota` (else the tenant's default for clients applies).
    pub token_quota: Option<QuotaLimits>,
    /// `client_metadata`, when not empty (the token hook's event carries it).
    pub metadata: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Distinguishes this entry from every other one built by the process: a write that
    /// replaces the entry retires what was remembered under the old one.
    version: u64,
}

/// Source of [`ClientEntry`] versions.
static ENTRY_VERSIONS: AtomicU64 = AtomicU64::new(1);

/// The credentials the client's method uses, in the order it names them. (`build` matches
/// on that method's kind, so there is no other kind to check here.)
fn attached(aggregate: &ClientAggregate) -> Vec<&Credential> {
    aggregate
        .client
        .attached_credential_ids()
        .iter()
        .filter_map(|id| aggregate.credential(id))
        .collect()
}

impl ClientEntry {
    /// Each credential the client authenticates with that has an expiry, with it and its
    /// type.
    fn each_expiry(&self, mut f: impl FnMut(&str, Timestamp, CredentialType)) {
        let mut add = |id: &str, expires_at: Option<Timestamp>, kind| {
            if let Some(expires_at) = expires_at {
                f(id, expires_at, kind);
            }
        };
        match &self.auth {
            ClientAuth::PrivateKeyJwt(keys) => keys
                .iter()
                .for_each(|k| add(&k.credential_id, k.expires_at, CredentialType::PublicKey)),
            ClientAuth::TlsClientAuth(dns) => dns.iter().for_each(|d| {
                add(
                    &d.credential_id,
                    d.expires_at,
                    CredentialType::CertSubjectDn,
                );
            }),
            ClientAuth::SelfSignedTlsClientAuth(certs) => certs
                .iter()
                .for_each(|x| add(&x.credential_id, x.expires_at, CredentialType::X509Cert)),
            ClientAuth::Secret(_) | ClientAuth::Unavailable => {}
        }
    }

    /// The soonest expiry among the credentials the client authenticates with.
    fn soonest_expiry(&self) -> Option<Timestamp> {
        let mut soonest: Option<Timestamp> = None;
        self.each_expiry(|_, at, _| soonest = Some(soonest.map_or(at, |s| s.min(at))));
        soonest
    }

    /// Derives the entry from a stored aggregate. Public keys are parsed on first use (see
    /// [`AttachedKey`]); subject DNs here.
    pub fn build(aggregate: &ClientAggregate, master_key: &MasterKey) -> Self {
        let client = &aggregate.client;
        let auth = match client.client_authentication_methods.as_ref().map(|m| m.kind) {
            Some(AuthMethodKind::PrivateKeyJwt) => ClientAuth::PrivateKeyJwt(
                attached(aggregate)
                    .into_iter()
                    .filter_map(|c| match (&c.pem, c.alg, &c.kid) {
                        (Some(pem), Some(alg), Some(kid)) => Some(AttachedKey::new(
                            c.id.clone(),
                            kid.clone(),
                            alg,
                            c.effective_expiry(),
                            pem,
                        )),
                        _ => {
                            tracing::error!(credential_id = %c.id, "stored public key credential is incomplete");
                            None
                        }
                    })
                    .collect(),
            ),
            Some(AuthMethodKind::TlsClientAuth) => ClientAuth::TlsClientAuth(
                attached(aggregate)
                    .into_iter()
                    .filter_map(|c| {
                        match DistinguishedName::parse(c.subject_dn.as_deref().unwrap_or_default()) {
                            Ok(dn) => Some(AttachedDn {
                                credential_id: c.id.clone(),
                                dn,
                                expires_at: c.effective_expiry(),
                            }),
                            Err(_) => {
                                tracing::error!(credential_id = %c.id, "stored subject DN could not be parsed");
                                None
                            }
                        }
                    })
                    .collect(),
            ),
            Some(AuthMethodKind::SelfSignedTlsClientAuth) => {
                ClientAuth::SelfSignedTlsClientAuth(
                    attached(aggregate)
                        .into_iter()
                        .filter_map(|c| {
                            Some(AttachedCert {
                                credential_id: c.id.clone(),
                                thumbprint_sha256: c.thumbprint_sha256.clone()?,
                                expires_at: c.effective_expiry(),
                            })
                        })
                        .collect(),
                )
            }
            None if client.uses_secret() => match aggregate
                .sealed_secret
                .as_deref()
                .map(|sealed| master_key.open(sealed, client.client_id.as_bytes()))
            {
                Some(Ok(secret)) => ClientAuth::Secret(SecretDigest::of(
                    std::str::from_utf8(&secret).unwrap_or_default(),
                )),
                Some(Err(_)) => {
                    tracing::error!(client_id = %client.client_id, "client secret could not be unsealed");
                    ClientAuth::Unavailable
                }
                None => ClientAuth::Unavailable,
            },
            None => ClientAuth::Unavailable,
        };
        Self {
            client_id: client.client_id.clone(),
            name: client.name.clone(),
            allows_client_credentials: client.allows_client_credentials(),
            auth,
            requires_binding: client.requires_proof_of_possession(),
            default_organization: client.default_organization().map(str::to_string),
            token_quota: client.token_quota(),
            metadata: (!client.client_metadata.is_empty())
                .then(|| Box::new(client.client_metadata.clone())),
            version: ENTRY_VERSIONS.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// What the token endpoint knows of an API.
#[derive(Debug, Clone)]
pub struct ApiEntry {
    /// Audience.
    pub identifier: String,
    /// `expires_in` of its tokens.
    pub token_lifetime: i64,
    /// Scopes it defines.
    pub scopes: Vec<String>,
    /// Its client access policy is `deny_all`.
    pub denies_clients: bool,
    /// An RFC 9068 profile (`typ: at+jwt`, `client_id`, `jti`) rather than Auth0's.
    pub rfc9068: bool,
    /// Tokens carry `permissions` (an `_authz` dialect with policies enforced).
    pub permissions: bool,
    /// `proof_of_possession` (mTLS, required): tokens only when a certificate binds them.
    pub requires_binding: bool,
    /// How its tokens are signed.
    pub signer: ApiSigner,
    /// The `typ` of its tokens' header (`at+jwt` for the RFC 9068 profiles).
    pub typ: JwtTyp,
}

/// How an API's tokens are signed, decided when its entry is built.
#[derive(Debug, Clone)]
pub enum ApiSigner {
    /// With the tenant's current key.
    Rsa(RsaSigningAlg),
    /// HS256 with the API's `signing_secret`.
    Hmac(Arc<HmacSigningKey>),
    /// HS256, but its secret is missing or cannot be unsealed (logged when the entry is
    /// built): no token can be signed for it.
    Unavailable,
}

impl ApiEntry {
    /// Derives the entry from a stored resource server, unsealing its `signing_secret` when
    /// it signs with HS256.
    pub fn build(rs: &ResourceServer, master_key: &MasterKey) -> Self {
        let signer = match rs.signing_alg.as_str() {
            "RS512" => ApiSigner::Rsa(RsaSigningAlg::RS512),
            "PS256" => ApiSigner::Rsa(RsaSigningAlg::PS256),
            _ if rs.signs_with_secret() => match rs
                .sealed_signing_secret
                .as_deref()
                .map(|sealed| master_key.open(sealed, rs.sealing_context()))
            {
                Some(Ok(secret)) => ApiSigner::Hmac(Arc::new(HmacSigningKey::new(&secret))),
                Some(Err(_)) => {
                    tracing::error!(resource_server_id = %rs.id, "signing secret could not be unsealed");
                    ApiSigner::Unavailable
                }
                None => {
                    tracing::error!(resource_server_id = %rs.id, "HS256 API without a signing secret");
                    ApiSigner::Unavailable
                }
            },
            _ => ApiSigner::Rsa(RsaSigningAlg::RS256),
        };
        let rfc9068 = rs.token_dialect().rfc9068();
        Self {
            signer,
            typ: if rfc9068 { JwtTyp::AtJwt } else { JwtTyp::Jwt },
            identifier: rs.identifier.clone(),
            token_lifetime: rs.token_lifetime,
            scopes: rs.scopes.iter().map(|s| s.value.clone()).collect(),
            denies_clients: rs.denies_clients(),
            rfc9068,
            permissions: rs.token_permissions(),
            requires_binding: rs.requires_certificate_binding(),
        }
    }
}

/// What the token endpoint knows of a grant.
#[derive(Debug, Clone)]
pub struct GrantEntry {
    /// Grant id.
    pub id: String,
    /// Granted scopes.
    pub scope: Vec<String>,
    /// Every scope of the API, present and future.
    pub all_scopes: bool,
    /// `organization_usage`: whether a token may or must be for an organization.
    pub organization_usage: OrganizationUsage,
    /// `allow_any_organization`: every organization, not only the associated ones.
    pub any_organization: bool,
    /// `token_claims` (a Clavis extension): claims every token of the grant carries.
    pub claims: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

/// A grant's `organization_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationUsage {
    /// No organization (Auth0's default).
    Deny,
    /// With or without one.
    Allow,
    /// Only with one.
    Require,
}

/// What the token endpoint knows of an organization.
#[derive(Debug, Clone)]
pub struct OrgEntry {
    /// `org_…`.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// The client grants associated with it (ids of deleted grants may linger until the
    /// next write or resynchronisation; grant ids are never reused).
    pub grant_ids: std::collections::HashSet<String>,
    /// Its own `token_quota` (else the tenant's default for organizations applies).
    pub token_quota: Option<QuotaLimits>,
    /// Its `display_name` (the token hook's event carries it).
    pub display_name: Option<String>,
    /// Its `metadata`, when set (the token hook's event carries it).
    pub metadata: Option<serde_json::Value>,
}

impl OrgEntry {
    fn build(record: &OrganizationRecord) -> Self {
        Self {
            id: record.organization.id.clone(),
            name: record.organization.name.clone(),
            grant_ids: record.grant_ids.iter().cloned().collect(),
            token_quota: record.organization.token_quota(),
            display_name: record.organization.display_name.clone(),
            metadata: record.organization.extra.get("metadata").cloned(),
        }
    }
}

/// A key that verifies tokens, with its JWKS entry.
#[derive(Debug, Clone)]
pub struct VerifyKey {
    /// Parsed public key.
    pub key: RsaPublicKey,
    /// Lifecycle state.
    pub state: KeyState,
}

/// A public signing key, as `GET /.well-known/jwks.json` publishes it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwk<'a> {
    /// `RSA`.
    kty: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    use_: &'static str,
    /// `RS256` while every API the tenant keys sign for uses RS256; absent while one uses
    /// RS512 or PS256 (the key then serves each of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    alg: Option<&'static str>,
    /// Key id.
    kid: &'a str,
    /// Modulus, base64url.
    n: String,
    /// Exponent, base64url.
    e: String,
}

/// `GET /.well-known/jwks.json`: the current key, the next one and the unrevoked previous.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwks<'a> {
    keys: Vec<Jwk<'a>>,
}

/// The signing keys in their current states.
#[derive(Debug)]
pub struct KeyRing {
    /// Signs new tokens.
    pub current: Arc<SigningKey>,
    /// Keys that verify tokens (current, next, previous; not revoked), by kid.
    pub verifiers: HashMap<String, VerifyKey>,
    /// The JWKS document, rendered once, each key with `"alg":"RS256"`: served while every
    /// API whose tokens the tenant keys sign uses RS256.
    pub jwks: Arc<[u8]>,
    /// The same without `alg`, served while some API uses RS512 or PS256 (a JOSE library
    /// refuses a key whose `alg` is not the token's; without `alg` the key serves every RSA
    /// algorithm).
    pub jwks_without_alg: Arc<[u8]>,
}

impl KeyRing {
    /// Builds the ring from stored records, unsealing private keys of the current key only.
    pub fn build(records: &[SigningKeyRecord], master_key: &MasterKey) -> Result<Self, String> {
        let current = records
            .iter()
            .rev()
            .find(|r| r.state == KeyState::Current && r.revoked_at.is_none())
            .ok_or("no current signing key")?;
        let der = master_key
            .open(&current.sealed_pkcs8, current.kid.as_bytes())
            .map_err(|_| "the current signing key cannot be unsealed with this master key")?;
        let signer = SigningKey::from_pkcs8_der(&current.kid, &der)
            .map_err(|e| format!("signing key {}: {e}", current.kid))?;
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        let mut jwks_without_alg = Vec::new();
        // Publish in a stable order: current, next, previous.
        for state in [KeyState::Current, KeyState::Next, KeyState::Previous] {
            for r in records
                .iter()
                .filter(|r| r.state == state && r.revoked_at.is_none())
            {
                let key = if r.kid == signer.kid() {
                    signer.public_key().clone()
                } else {
                    let der = master_key
                        .open(&r.sealed_pkcs8, r.kid.as_bytes())
                        .map_err(|_| format!("signing key {} cannot be unsealed", r.kid))?;
                    SigningKey::from_pkcs8_der(&r.kid, &der)
                        .map_err(|e| format!("signing key {}: {e}", r.kid))?
                        .public_key()
                        .clone()
                };
                let (n, e) = (key.jwk_n(), key.jwk_e());
                jwks_without_alg.push(Jwk {
                    kty: "RSA",
                    use_: "sig",
                    alg: None,
                    kid: &r.kid,
                    n: n.clone(),
                    e: e.clone(),
                });
                jwks.push(Jwk {
                    kty: "RSA",
                    use_: "sig",
                    alg: Some("RS256"),
                    kid: &r.kid,
                    n,
                    e,
                });
                verifiers.insert(r.kid.clone(), VerifyKey { key, state });
            }
        }
        let render = |keys: Vec<Jwk<'_>>| {
            serde_json::to_vec(&Jwks { keys })
                .map(Arc::<[u8]>::from)
                .map_err(|e| e.to_string())
        };
        Ok(Self {
            current: Arc::new(signer),
            verifiers,
            jwks: render(jwks)?,
            jwks_without_alg: render(jwks_without_alg)?,
        })
    }
}

/// The model's maps. Their keys are ids and audiences that administrators create, so
/// foldhash (seeded at random per process) rather than the standard SipHash, which was
/// about 6 % of a start-up's CPU at a million clients.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
struct Model {
    /// By client id (the key shared with [`Grants`]).
    clients: Map<Arc<str>, Arc<ClientEntry>>,
    /// The clients among them with a credential that expires.
    expiring: Expiring,
    apis: Map<String, Arc<ApiEntry>>,
    grants: Grants,
    orgs: Map<String, Arc<OrgEntry>>,
    keys: Arc<KeyRing>,
    /// How many APIs the tenant keys sign for with another algorithm than RS256.
    other_rsa_algs: usize,
    /// The tenant's `default_token_quota`.
    default_quotas: DefaultQuotas,
}

/// The clients whose method uses a credential with an expiry, by the soonest such expiry
/// (each entry is immutable, so its soonest expiry is fixed until the entry is replaced).
/// The expiry scan (every minute), `GET /api/v2/credentials/expiring` and `/metrics` read
/// these instead of every client: at a million clients a pass over all of them held a
/// worker and the model's read lock for about 250 ms — every minute, on an idle node, the
/// requests behind that worker waited for it, and with a write queued for the lock every
/// token request did.
#[derive(Debug, Default)]
struct Expiring {
    /// (soonest expiry, client id), the id shared with the clients' map.
    by_soonest: BTreeSet<(Timestamp, Arc<str>)>,
}

impl Expiring {
    fn add(&mut self, id: &Arc<str>, entry: &ClientEntry) {
        if let Some(at) = entry.soonest_expiry() {
            self.by_soonest.insert((at, id.clone()));
        }
    }

    fn remove(&mut self, id: &Arc<str>, entry: &ClientEntry) {
        if let Some(at) = entry.soonest_expiry() {
            self.by_soonest.remove(&(at, id.clone()));
        }
    }

    /// The clients with a credential that expires before `before` (every one with an
    /// expiry when `None`).
    fn soonest_before(&self, before: Option<Timestamp>) -> impl Iterator<Item = &str> {
        self.by_soonest
            .iter()
            .take_while(move |(at, _)| before.is_none_or(|b| *at < b))
            .map(|(_, id)| &**id)
    }
}

/// The grants, kept for a million clients without a copy of a client id or an audience
/// per map: by audience (each stored once), then by client id (shared with the clients'
/// map when the client is there); a lookup allocates nothing.
#[derive(Debug, Default)]
struct Grants {
    /// The grants that authorize `client_credentials`.
    by_audience: Map<Arc<str>, Map<Arc<str>, Arc<GrantEntry>>>,
    /// Every grant's audience and client, by grant id (for removals by id).
    keys: Map<Box<str>, (Arc<str>, Arc<str>)>,
}

impl Grants {
    fn get(&self, client_id: &str, audience: &str) -> Option<&Arc<GrantEntry>> {
        self.by_audience.get(audience)?.get(client_id)
    }

    /// Removes the entry at (audience, client) if it is grant `id`'s.
    fn remove_if(&mut self, audience: &str, client_id: &str, id: &str) {
        if let Some(clients) = self.by_audience.get_mut(audience)
            && clients.get(client_id).is_some_and(|g| g.id == id)
        {
            clients.remove(client_id);
            if clients.is_empty() {
                self.by_audience.remove(audience);
            }
        }
    }

    /// `clients`: where to find the shared copy of the grant's client id.
    fn insert(&mut self, grant: &ClientGrant, clients: &Map<Arc<str>, Arc<ClientEntry>>) {
        let client: Arc<str> = match clients.get_key_value(grant.client_id.as_str()) {
            Some((id, _)) => id.clone(),
            None => grant.client_id.as_str().into(),
        };
        let audience: Arc<str> = match self.by_audience.get_key_value(grant.audience.as_str()) {
            Some((aud, _)) => aud.clone(),
            None => grant.audience.as_str().into(),
        };
        // A grant whose audience changed (never through the API) leaves its old place.
        if let Some((old_aud, old_client)) = self
            .keys
            .insert(grant.id.as_str().into(), (audience.clone(), client.clone()))
            && (old_aud != audience || old_client != client)
        {
            self.remove_if(&old_aud, &old_client, &grant.id);
        }
        // Only grants for the client itself authorize machine-to-machine tokens (and
        // Management tokens); a `user` grant is for user flows.
        if !grant.authorizes_client_credentials() {
            self.remove_if(&audience, &client, &grant.id);
            return;
        }
        self.by_audience.entry(audience).or_default().insert(
            client,
            Arc::new(GrantEntry {
                id: grant.id.clone(),
                scope: grant.scope.clone(),
                all_scopes: grant.allows_all_scopes(),
                organization_usage: match grant.organization_usage() {
                    Some("allow") => OrganizationUsage::Allow,
                    Some("require") => OrganizationUsage::Require,
                    _ => OrganizationUsage::Deny,
                },
                any_organization: grant.allows_any_organization(),
                claims: grant.token_claims().cloned().map(Box::new),
            }),
        );
    }

    fn remove(&mut self, id: &str) {
        // Only if the entry is still this grant's: a newer grant for the same client and
        // audience may have replaced it (a late announcement of the old one's deletion).
        if let Some((audience, client)) = self.keys.remove(id) {
            self.remove_if(&audience, &client, id);
        }
    }
}

impl ApiEntry {
    /// Signed by the tenant keys with another algorithm than RS256.
    fn other_rsa_alg(&self) -> bool {
        matches!(&self.signer, ApiSigner::Rsa(alg) if *alg != RsaSigningAlg::RS256)
    }
}

impl Model {
    fn insert_api(&mut self, entry: ApiEntry) {
        let added = usize::from(entry.other_rsa_alg());
        let replaced = self
            .apis
            .insert(entry.identifier.clone(), Arc::new(entry))
            .map_or(0, |old| usize::from(old.other_rsa_alg()));
        self.other_rsa_algs = (self.other_rsa_algs + added).saturating_sub(replaced);
    }

    fn remove_api(&mut self, identifier: &str) {
        if let Some(old) = self.apis.remove(identifier) {
            self.other_rsa_algs = self
                .other_rsa_algs
                .saturating_sub(usize::from(old.other_rsa_alg()));
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct ReadModel {
    inner: RwLock<Model>,
    credentials: Option<CredentialCache>,
}

/// Credentials that the Management API read from the store, each remembered with the
/// version of its client's entry that was current before the read (see
/// [`ReadModel::with_credential_cache`]). Bounded: when full, it starts over.
#[derive(Debug, Default)]
struct CredentialCache {
    /// By credential id: the entry version it was read under, and the credential.
    entries: Mutex<HashMap<Box<str>, Remembered>>,
}

type Remembered = (u64, Arc<Credential>);

/// Most credentials remembered (a few MB: the largest part of one is its PEM).
const CACHED_CREDENTIALS: usize = 4096;

impl ReadModel {
    /// Builds the model from a store snapshot, consuming it: each client's stored form is
    /// dropped as soon as its entry is built, so start-up does not hold the whole store and
    /// the whole model at once.
    pub fn load(snapshot: Snapshot, master_key: &MasterKey) -> Result<Self, String> {
        Ok(Self {
            inner: RwLock::new(build_model(snapshot, master_key)?),
            credentials: None,
        })
    }

    /// Lets the Management API's reads of one credential be answered from memory. Only for
    /// a store that no other process writes (a store that announces no changes): every
    /// write then passes through this node and replaces the client's entry after its
    /// commit, which retires whatever was remembered under the old entry.
    ///
    /// Why that is enough: a reader takes the entry's version *before* it reads the store,
    /// and an entry is installed only after its write committed, so what the reader gets
    /// is at least as new as that version; once a newer entry is installed, nothing
    /// remembered under an older version is served again. With a store that other nodes
    /// write, this node learns of their writes only a moment later, so the cache stays off
    /// and every read goes to the store.
    pub fn with_credential_cache(mut self) -> Self {
        self.credentials = Some(CredentialCache::default());
        self
    }

    /// The version a credential of this client read from the store from now on may be
    /// remembered under; `None` when the cache is off or the client has no entry.
    pub fn credential_version(&self, client_id: &str) -> Option<u64> {
        self.credentials.as_ref()?;
        self.read().clients.get(client_id).map(|e| e.version)
    }

    /// The credential remembered under `version` of its client's entry.
    pub fn cached_credential(
        &self,
        version: u64,
        client_id: &str,
        credential_id: &str,
    ) -> Option<Arc<Credential>> {
        let cache = self.credentials.as_ref()?;
        let entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(credential_id)
            .filter(|(v, c)| *v == version && c.client_id == client_id)
            .map(|(_, c)| c.clone())
    }

    /// Remembers a credential read from the store after [`Self::credential_version`]
    /// returned `version`.
    pub fn remember_credential(&self, version: u64, credential: &Arc<Credential>) {
        let Some(cache) = self.credentials.as_ref() else {
            return;
        };
        let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHED_CREDENTIALS && !entries.contains_key(credential.id.as_str()) {
            entries.clear();
        }
        entries.insert(credential.id.as_str().into(), (version, credential.clone()));
    }

    /// Builds the model from the store (start-up), reading and building side by side
    /// without holding the whole store in memory (see [`Store::snapshot_into`]).
    pub async fn load_from(store: &dyn Store, master_key: &MasterKey) -> StoreResult<Self> {
        Ok(Self {
            inner: RwLock::new(build_model_from(store, master_key).await?),
            credentials: None,
        })
    }

    /// Replaces everything with what the store holds now (resynchronisation with a shared
    /// store), built like [`Self::load_from`]. On error the model is left as it was.
    pub async fn reload_from(&self, store: &dyn Store, master_key: &MasterKey) -> StoreResult<()> {
        let model = build_model_from(store, master_key).await?;
        *self.write() = model;
        Ok(())
    }

    /// Replaces everything with a fresh snapshot (resynchronisation with a shared store).
    /// On error (e.g. no usable signing key) the model is left as it was.
    pub fn replace_all(&self, snapshot: Snapshot, master_key: &MasterKey) -> Result<(), String> {
        let model = build_model(snapshot, master_key)?;
        *self.write() = model;
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, Model> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Model> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The client, if it exists.
    pub fn client(&self, client_id: &str) -> Option<Arc<ClientEntry>> {
        self.read().clients.get(client_id).cloned()
    }

    /// The API with this audience.
    pub fn api(&self, audience: &str) -> Option<Arc<ApiEntry>> {
        self.read().apis.get(audience).cloned()
    }

    /// The grant of `client_id` for `audience`.
    pub fn grant(&self, client_id: &str, audience: &str) -> Option<Arc<GrantEntry>> {
        self.read().grants.get(client_id, audience).cloned()
    }

    /// The signing keys.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.read().keys.clone()
    }

    /// The clients with an expiring credential among those they authenticate with: how many
    /// there are, and the first `limit` of them by their soonest expiry, with it, soonest
    /// first (for `/metrics`, computed when scraped).
    pub fn soonest_credential_expiries(&self, limit: usize) -> (usize, Vec<(String, Timestamp)>) {
        let model = self.read();
        let soonest = &model.expiring.by_soonest;
        let first = soonest
            .iter()
            .take(limit)
            .map(|(at, id)| (id.to_string(), *at))
            .collect();
        (soonest.len(), first)
    }

    /// Every credential a client authenticates with whose effective expiry is before
    /// `before` (every one with an expiry when `None`), soonest first (ties by credential
    /// id). Only attached credentials are in the model: only they authenticate. Reads only
    /// the clients with such a credential ([`Expiring`]), not every client.
    pub fn expiring_credentials(&self, before: Option<Timestamp>) -> Vec<ExpiringCredential> {
        let model = self.read();
        let mut out = Vec::new();
        for id in model.expiring.soonest_before(before) {
            let Some(c) = model.clients.get(id) else {
                continue;
            };
            c.each_expiry(|credential_id, expires_at, credential_type| {
                if before.is_none_or(|b| expires_at < b) {
                    out.push(ExpiringCredential {
                        credential_id: credential_id.to_string(),
                        credential_type,
                        client_id: c.client_id.clone(),
                        client_name: c.name.clone(),
                        expires_at,
                    });
                }
            });
        }
        drop(model);
        out.sort_by(|a, b| (a.expires_at, &a.credential_id).cmp(&(b.expires_at, &b.credential_id)));
        out
    }

    /// Number of clients (for diagnostics and tests).
    pub fn client_count(&self) -> usize {
        self.read().clients.len()
    }

    /// Replaces one client's entry after a committed write.
    pub fn put_client(&self, aggregate: &ClientAggregate, master_key: &MasterKey) {
        let entry = Arc::new(ClientEntry::build(aggregate, master_key));
        let id: Arc<str> = aggregate.client.client_id.as_str().into();
        let m = &mut *self.write();
        put_entry(&mut m.clients, &mut m.expiring, id, entry);
    }

    /// Removes a client and its grants after a committed delete.
    pub fn remove_client(&self, client_id: &str, grant_ids: &[String]) {
        let mut m = self.write();
        if let Some((id, old)) = m.clients.remove_entry(client_id) {
            m.expiring.remove(&id, &old);
        }
        for id in grant_ids {
            m.grants.remove(id);
        }
    }

    /// Replaces one API's entry.
    pub fn put_api(&self, rs: &ResourceServer, master_key: &MasterKey) {
        let entry = ApiEntry::build(rs, master_key);
        self.write().insert_api(entry);
    }

    /// The JWKS document to serve: each key with `"alg":"RS256"` while every API the tenant
    /// keys sign for uses RS256, without `alg` while one uses RS512 or PS256.
    pub fn jwks(&self) -> Arc<[u8]> {
        let m = self.read();
        if m.other_rsa_algs == 0 {
            m.keys.jwks.clone()
        } else {
            m.keys.jwks_without_alg.clone()
        }
    }

    /// Removes an API and its grants.
    pub fn remove_api(&self, identifier: &str, grant_ids: &[String]) {
        let mut m = self.write();
        m.remove_api(identifier);
        for id in grant_ids {
            m.grants.remove(id);
        }
    }

    /// Replaces one grant.
    pub fn put_grant(&self, grant: &ClientGrant) {
        let m = &mut *self.write();
        m.grants.insert(grant, &m.clients);
    }

    /// Removes one grant.
    pub fn remove_grant(&self, id: &str) {
        self.write().grants.remove(id);
    }

    /// The organization with this id.
    pub fn organization(&self, id: &str) -> Option<Arc<OrgEntry>> {
        self.read().orgs.get(id).cloned()
    }

    /// Replaces one organization's entry (with its associations).
    pub fn put_organization(&self, record: &OrganizationRecord) {
        self.write().orgs.insert(
            record.organization.id.clone(),
            Arc::new(OrgEntry::build(record)),
        );
    }

    /// Removes an organization.
    pub fn remove_organization(&self, id: &str) {
        self.write().orgs.remove(id);
    }

    /// Replaces the signing keys.
    pub fn put_keys(&self, keys: KeyRing) {
        self.write().keys = Arc::new(keys);
    }

    /// The tenant's `default_token_quota`.
    pub fn default_quotas(&self) -> DefaultQuotas {
        self.read().default_quotas
    }

    /// Replaces the tenant's settings.
    pub fn put_tenant_settings(&self, settings: &TenantSettings) {
        self.write().default_quotas = settings.default_quotas();
    }
}

fn build_model(snapshot: Snapshot, master_key: &MasterKey) -> Result<Model, String> {
    let mut clients = Map::with_capacity_and_hasher(snapshot.clients.len(), Default::default());
    let mut expiring = Expiring::default();
    for aggregate in snapshot.clients {
        add_client(&mut clients, &mut expiring, aggregate, master_key);
    }
    let mut grants = Grants::default();
    for grant in &snapshot.client_grants {
        grants.insert(grant, &clients);
    }
    finish_model(
        Snapshot {
            clients: Vec::new(),
            client_grants: Vec::new(),
            ..snapshot
        },
        clients,
        expiring,
        grants,
        master_key,
    )
}

/// Builds the model as the store hands over its clients and grants (see
/// [`Store::snapshot_into`]): the store's reader and this builder run side by side, and
/// each client's stored form is dropped as soon as its entry is built.
async fn build_model_from(store: &dyn Store, master_key: &MasterKey) -> StoreResult<Model> {
    let (sink, mut items) = SnapshotSink::channel();
    let build = async {
        let mut clients = Map::default();
        let mut expiring = Expiring::default();
        let mut grants = Grants::default();
        while let Some(batch) = items.recv().await {
            for item in batch {
                match item {
                    SnapshotItem::Restart => {
                        clients = Map::default();
                        expiring = Expiring::default();
                        grants = Grants::default();
                    }
                    SnapshotItem::Client(aggregate) => {
                        add_client(&mut clients, &mut expiring, *aggregate, master_key);
                    }
                    SnapshotItem::Grant(grant) => grants.insert(&grant, &clients),
                }
            }
        }
        (clients, expiring, grants)
    };
    let (rest, (clients, expiring, grants)) = tokio::join!(store.snapshot_into(sink), build);
    finish_model(rest?, clients, expiring, grants, master_key).map_err(StoreError::Internal)
}

fn add_client(
    clients: &mut Map<Arc<str>, Arc<ClientEntry>>,
    expiring: &mut Expiring,
    aggregate: ClientAggregate,
    master_key: &MasterKey,
) {
    let entry = Arc::new(ClientEntry::build(&aggregate, master_key));
    put_entry(clients, expiring, aggregate.client.client_id.into(), entry);
}

/// Puts a client's entry into the map and the expiry index, in place of the one it
/// replaces, if any (whose key, shared with the grants, stays).
fn put_entry(
    clients: &mut Map<Arc<str>, Arc<ClientEntry>>,
    expiring: &mut Expiring,
    id: Arc<str>,
    entry: Arc<ClientEntry>,
) {
    match clients.entry(id) {
        Entry::Occupied(mut slot) => {
            expiring.remove(slot.key(), slot.get());
            expiring.add(slot.key(), &entry);
            slot.insert(entry);
        }
        Entry::Vacant(slot) => {
            expiring.add(slot.key(), &entry);
            slot.insert(entry);
        }
    }
}

/// The model from its clients and grants and the rest of a snapshot.
fn finish_model(
    rest: Snapshot,
    clients: Map<Arc<str>, Arc<ClientEntry>>,
    expiring: Expiring,
    grants: Grants,
    master_key: &MasterKey,
) -> Result<Model, String> {
    let keys = KeyRing::build(&rest.signing_keys, master_key)?;
    let mut model = Model {
        clients,
        expiring,
        apis: Map::with_capacity_and_hasher(rest.resource_servers.len(), Default::default()),
        grants,
        orgs: rest
            .organizations
            .iter()
            .map(|o| (o.organization.id.clone(), Arc::new(OrgEntry::build(o))))
            .collect(),
        keys: Arc::new(keys),
        other_rsa_algs: 0,
        default_quotas: rest.tenant_settings.default_quotas(),
    };
    for rs in &rest.resource_servers {
        model.insert_api(ApiEntry::build(rs, master_key));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::bootstrap::new_signing_key;
    use crate::service::Issuer;

    fn snapshot(master_key: &MasterKey) -> Snapshot {
        let issuer = Issuer::new("https://clavis.test/", None);
        Snapshot {
            signing_keys: vec![
                new_signing_key(master_key, &issuer, KeyState::Current, Timestamp::now()).unwrap(),
            ],
            ..Snapshot::default()
        }
    }

    fn grant(id: &str) -> ClientGrant {
        ClientGrant {
            id: id.into(),
            client_id: "c".into(),
            audience: "urn:a".into(),
            scope: vec!["read".into()],
            extra: serde_json::Map::new(),
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    /// A `private_key_jwt` client with one key per expiry, the first `attached` of them
    /// attached.
    fn key_client(id: &str, expiries: &[Option<&str>], attached: usize) -> ClientAggregate {
        use crate::domain::client::{AuthMethods, Client, JwtConfiguration};
        let now = Timestamp::now();
        let credentials: Vec<Credential> = expiries
            .iter()
            .enumerate()
            .map(|(i, at)| Credential {
                id: format!("cred_{id}_{i}"),
                client_id: id.into(),
                credential_type: CredentialType::PublicKey,
                name: "key".into(),
                kid: Some(format!("kid_{id}_{i}")),
                alg: Some(JwsAlg::RS256),
                subject_dn: None,
                thumbprint_sha256: None,
                pem: Some("junk".into()),
                key_thumbprint: None,
                cert_not_after: None,
                created_at: now,
                updated_at: now,
                expires_at: at.map(|at| Timestamp::parse(at).unwrap()),
            })
            .collect();
        ClientAggregate {
            client: Client {
                client_id: id.into(),
                name: format!("client {id}"),
                description: None,
                app_type: Some("non_interactive".into()),
                is_first_party: true,
                grant_types: vec!["client_credentials".into()],
                token_endpoint_auth_method: None,
                client_authentication_methods: Some(AuthMethods {
                    kind: AuthMethodKind::PrivateKeyJwt,
                    credential_ids: credentials
                        .iter()
                        .take(attached)
                        .map(|c| c.id.clone())
                        .collect(),
                }),
                jwt_configuration: JwtConfiguration::default(),
                client_metadata: serde_json::Map::new(),
                extra: serde_json::Map::new(),
                created_at: now,
                updated_at: now,
            },
            sealed_secret: None,
            credentials,
        }
    }

    /// (expiry, credential id) of the credentials listed; (client id, soonest expiry).
    type Expected = (Vec<(String, String)>, Vec<(String, Timestamp)>);

    /// What the index must give: a pass over every client, as before it existed.
    fn every_client(model: &ReadModel, before: Option<Timestamp>) -> Expected {
        let m = model.read();
        let mut credentials = Vec::new();
        let mut soonest = Vec::new();
        for c in m.clients.values() {
            c.each_expiry(|id, at, _| {
                if before.is_none_or(|b| at < b) {
                    credentials.push((at.to_string(), id.to_string()));
                }
            });
            if let Some(at) = c.soonest_expiry() {
                soonest.push((c.client_id.clone(), at));
            }
        }
        credentials.sort();
        soonest.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        (credentials, soonest)
    }

    fn assert_index_agrees(model: &ReadModel) {
        for before in [
            None,
            Some("2030-02-01T00:00:00Z"),
            Some("2031-01-01T00:00:00Z"),
        ] {
            let before = before.map(|b| Timestamp::parse(b).unwrap());
            let (credentials, soonest) = every_client(model, before);
            let listed: Vec<(String, String)> = model
                .expiring_credentials(before)
                .into_iter()
                .map(|c| (c.expires_at.to_string(), c.credential_id))
                .collect();
            assert_eq!(listed, credentials, "before {before:?}");
            assert_eq!(
                model.soonest_credential_expiries(usize::MAX),
                (soonest.len(), soonest.clone())
            );
            let (count, first) = model.soonest_credential_expiries(1);
            assert_eq!(
                (count, &first[..]),
                (soonest.len(), &soonest[..soonest.len().min(1)])
            );
        }
    }

    #[test]
    fn the_expiry_index_follows_every_change_of_a_client() {
        let master_key = MasterKey::generate();
        let mut snap = snapshot(&master_key);
        snap.clients = vec![
            key_client(
                "a",
                &[Some("2030-03-01T00:00:00Z"), Some("2030-01-01T00:00:00Z")],
                2,
            ),
            // The expiring key is not attached: it authenticates nothing.
            key_client("b", &[None, Some("2030-01-15T00:00:00Z")], 1),
            key_client("c", &[Some("2030-06-01T00:00:00Z")], 1),
        ];
        let model = ReadModel::load(snap, &master_key).unwrap();
        assert_eq!(model.expiring_credentials(None).len(), 3);
        assert_index_agrees(&model);

        // Renewed: its soonest expiry moves.
        model.put_client(
            &key_client(
                "a",
                &[Some("2031-03-01T00:00:00Z"), Some("2030-12-01T00:00:00Z")],
                2,
            ),
            &master_key,
        );
        assert_index_agrees(&model);
        // Its expiring key attached.
        model.put_client(
            &key_client("b", &[None, Some("2030-01-15T00:00:00Z")], 2),
            &master_key,
        );
        assert_index_agrees(&model);
        // No expiry left.
        model.put_client(&key_client("c", &[None], 1), &master_key);
        assert_index_agrees(&model);
        // A new client, and a deleted one.
        model.put_client(
            &key_client("d", &[Some("2029-12-31T00:00:00Z")], 1),
            &master_key,
        );
        model.remove_client("a", &[]);
        assert_index_agrees(&model);
        let soonest: Vec<String> = model
            .soonest_credential_expiries(usize::MAX)
            .1
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(soonest, ["d", "b"]);
    }

    #[test]
    fn the_per_client_structures_stay_small() {
        // docs/design.md ("Memory at scale") reckons a million clients with these sizes.
        let sizes = [
            ("ClientEntry", std::mem::size_of::<ClientEntry>()),
            ("AttachedKey", std::mem::size_of::<AttachedKey>()),
            ("GrantEntry", std::mem::size_of::<GrantEntry>()),
            ("ClientAuth", std::mem::size_of::<ClientAuth>()),
        ];
        for (name, size) in sizes {
            let most = match name {
                "ClientEntry" => 160,
                "AttachedKey" => 112,
                "GrantEntry" => 64,
                _ => 40,
            };
            assert!(size <= most, "{name}: {size} bytes");
        }
    }

    #[test]
    fn an_attached_key_is_parsed_on_first_use_and_once() {
        let signer = clavis_crypto::jws::SigningKey::generate().unwrap();
        let pem = signer.self_signed_certificate_pem("k", 1).unwrap();
        let key = AttachedKey::new("cred_1".into(), "k".into(), JwsAlg::RS256, None, &pem);
        assert!(key.parsed.get().is_none());
        let parsed = key.key().unwrap();
        assert_eq!(parsed, signer.public_key());
        assert!(std::ptr::eq(parsed, key.key().unwrap()));

        // A stored PEM that does not parse (validation prevents it) verifies nothing.
        let broken = AttachedKey::new("cred_2".into(), "k".into(), JwsAlg::RS256, None, "junk");
        assert!(broken.key().is_none());
        assert!(broken.parsed.get().is_some());
    }

    #[test]
    fn a_late_removal_of_a_grant_keeps_its_successor() {
        let master_key = MasterKey::generate();
        let model = ReadModel::load(snapshot(&master_key), &master_key).unwrap();
        model.put_grant(&grant("cgr_old"));
        // Another node deleted the old grant and created a new one for the same client and
        // audience; this node hears of the deletion after it applied the creation.
        model.put_grant(&grant("cgr_new"));
        model.remove_grant("cgr_old");
        assert_eq!(model.grant("c", "urn:a").unwrap().id, "cgr_new");
        model.remove_grant("cgr_new");
        assert!(model.grant("c", "urn:a").is_none());
    }

    #[test]
    fn replace_all_swaps_everything_or_nothing() {
        let master_key = MasterKey::generate();
        let mut first = snapshot(&master_key);
        first.client_grants.push(grant("cgr_1"));
        let model = ReadModel::load(first.clone(), &master_key).unwrap();
        let kid = model.keys().current.kid().to_string();

        let second = snapshot(&master_key);
        model.replace_all(second, &master_key).unwrap();
        assert!(model.grant("c", "urn:a").is_none());
        assert_ne!(model.keys().current.kid(), kid);

        // A snapshot that cannot be loaded (no signing key) leaves the model as it was.
        let mut broken = first.clone();
        broken.signing_keys.clear();
        assert!(model.replace_all(broken, &master_key).is_err());
        assert!(model.grant("c", "urn:a").is_none());
    }

    #[test]
    fn a_remembered_credential_is_served_only_under_its_clients_current_entry() {
        use crate::domain::client::{CredentialLimits, NewClient};
        use crate::domain::credential::NewCredential;
        use crate::domain::validate::Body;

        let master_key = MasterKey::generate();
        let body = serde_json::json!({"name": "svc", "app_type": "non_interactive", "grant_types": ["client_credentials"]});
        let mut aggregate = NewClient::parse(Body::new(&body).unwrap())
            .unwrap()
            .build(None, CredentialLimits::default(), Timestamp::now())
            .unwrap();
        let client_id = aggregate.client.client_id.clone();
        let new = NewCredential::parse(
            Body::new(
                &serde_json::json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=a"}),
            )
            .unwrap(),
        )
        .unwrap();
        let credential = Arc::new(new.build(&client_id, Timestamp::now()).unwrap());
        let cred_id = credential.id.clone();

        // Off unless asked for (a store that other nodes write).
        let model = ReadModel::load(snapshot(&master_key), &master_key).unwrap();
        model.put_client(&aggregate, &master_key);
        assert_eq!(model.credential_version(&client_id), None);

        let model = ReadModel::load(snapshot(&master_key), &master_key)
            .unwrap()
            .with_credential_cache();
        assert_eq!(
            model.credential_version(&client_id),
            None,
            "no such client yet"
        );
        model.put_client(&aggregate, &master_key);
        let v1 = model.credential_version(&client_id).unwrap();
        assert!(model.cached_credential(v1, &client_id, &cred_id).is_none());
        model.remember_credential(v1, &credential);
        let hit = model.cached_credential(v1, &client_id, &cred_id).unwrap();
        assert!(Arc::ptr_eq(&hit, &credential));
        assert!(model.cached_credential(v1, "another", &cred_id).is_none());

        // A committed write replaces the entry: what was read before it is not served.
        aggregate.client.name = "renamed".into();
        model.put_client(&aggregate, &master_key);
        let v2 = model.credential_version(&client_id).unwrap();
        assert_ne!(v1, v2);
        assert!(model.cached_credential(v2, &client_id, &cred_id).is_none());
        // A reader that took v1 before the write and read the store after it may still
        // remember its result under v1; readers of v2 never see it.
        model.remember_credential(v1, &credential);
        assert!(model.cached_credential(v2, &client_id, &cred_id).is_none());

        model.remove_client(&client_id, &[]);
        assert_eq!(model.credential_version(&client_id), None);
    }
}

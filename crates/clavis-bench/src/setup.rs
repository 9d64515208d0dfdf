//! Creates the bench fixtures on a running Clavis through its Management API, and writes a
//! manifest that the other steps (assertions, the peer's configuration, management load)
//! read: an API, a `client_secret_post` client, `private_key_jwt` clients with their keys,
//! and unattached credentials to GET and PATCH.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use clavis_crypto::jws::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The audience the bench's tokens are for.
pub const API: &str = "https://api.bench/";
/// Its one scope.
pub const SCOPE: &str = "read:things";

/// A `private_key_jwt` client of the bench.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyClient {
    /// Client id.
    pub client_id: String,
    /// The credential's `kid` (also the assertion header's).
    pub kid: String,
    /// PKCS#8 DER of the private key, base64.
    pub pkcs8_b64: String,
    /// JWK `n` of the public key.
    pub n: String,
    /// JWK `e`.
    pub e: String,
}

impl KeyClient {
    /// The signing key, parsed.
    pub fn signing_key(&self) -> Result<SigningKey> {
        let der = base64::engine::general_purpose::STANDARD.decode(&self.pkcs8_b64)?;
        SigningKey::from_pkcs8_der(&self.kid, &der).map_err(|e| anyhow!("{e}"))
    }
}

/// A credential the management scenarios read and PATCH.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialRef {
    /// Its client.
    pub client_id: String,
    /// The credential id.
    pub credential_id: String,
}

/// What setup created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `https://127.0.0.1:port`
    pub base: String,
    /// The server's issuer (assertion `aud`).
    pub issuer: String,
    /// An admin Management API token.
    pub admin_token: String,
    /// `client_secret_post` client id.
    pub secret_client_id: String,
    /// Its secret.
    pub secret_client_secret: String,
    /// `private_key_jwt` clients.
    pub key_clients: Vec<KeyClient>,
    /// Credentials for GET / PATCH.
    pub credentials: Vec<CredentialRef>,
}

impl Manifest {
    /// Reads a manifest file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn pkcs1_pem(key: &SigningKey) -> Result<String> {
    der::pem::encode_string(
        "RSA PUBLIC KEY",
        der::pem::LineEnding::LF,
        key.public_key().pkcs1_der(),
    )
    .map_err(|e| anyhow!("{e}"))
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    /// `token_claims` of every grant, when set.
    token_claims: Option<Value>,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn client(&self, name: &str) -> Result<(String, String)> {
        let c = self
            .call(
                reqwest::Method::POST,
                "/api/v2/clients",
                json!({"name": name, "app_type": "non_interactive", "grant_types": ["client_credentials"]}),
            )
            .await?;
        let id = c["client_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no client_id"))?;
        let secret = c["client_secret"].as_str().unwrap_or_default();
        Ok((id.to_string(), secret.to_string()))
    }

    async fn grant(&self, client_id: &str) -> Result<()> {
        let mut body = json!({"client_id": client_id, "audience": API, "scope": [SCOPE]});
        if let Some(claims) = &self.token_claims {
            body["token_claims"] = claims.clone();
        }
        self.call(reqwest::Method::POST, "/api/v2/client-grants", body)
            .await?;
        Ok(())
    }

    async fn credential(&self, client_id: &str, key: &SigningKey) -> Result<String> {
        let c = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v2/clients/{client_id}/credentials"),
                json!({"credential_type": "public_key", "name": "bench", "pem": pkcs1_pem(key)?,
                       "alg": "RS256", "kid": key.kid()}),
            )
            .await?;
        Ok(c["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no credential id"))?
            .to_string())
    }
}

/// An admin token via `client_secret_post`.
pub async fn admin_token(
    http: &reqwest::Client,
    base: &str,
    issuer: &str,
    id: &str,
    secret: &str,
) -> Result<String> {
    let r = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", &format!("{issuer}api/v2/")),
        ])
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("admin token refused: {status} {body}"))
}

/// An HTTPS client trusting `ca_pem`.
pub fn http_client(ca_pem: &[u8]) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem)?)
        .build()?)
}

/// Creates the fixtures and returns the manifest; every grant carries `token_claims` when
/// given.
pub async fn run(
    base: &str,
    ca_pem: &[u8],
    admin_id: &str,
    admin_secret: &str,
    key_clients: usize,
    credential_clients: usize,
    token_claims: Option<Value>,
) -> Result<Manifest> {
    let http = http_client(ca_pem)?;
    let issuer = format!("{base}/");
    let token = admin_token(&http, base, &issuer, admin_id, admin_secret).await?;
    let api = Api {
        http,
        base: base.to_string(),
        token: token.clone(),
        token_claims,
    };
    api.call(
        reqwest::Method::POST,
        "/api/v2/resource-servers",
        json!({"name": "Bench API", "identifier": API, "scopes": [{"value": SCOPE}],
               "token_lifetime": 86400}),
    )
    .await?;
    let (secret_id, secret) = api.client("bench-secret").await?;
    api.grant(&secret_id).await?;

    let mut keys = Vec::with_capacity(key_clients.max(4));
    for _ in 0..key_clients.max(4) {
        keys.push(SigningKey::generate().map_err(|e| anyhow!("{e}"))?);
    }
    let mut out = Vec::with_capacity(key_clients);
    for (i, key) in keys.iter().enumerate().take(key_clients) {
        let (client_id, _) = api.client(&format!("bench-key-{i}")).await?;
        api.grant(&client_id).await?;
        let credential_id = api.credential(&client_id, key).await?;
        api.call(
            reqwest::Method::PATCH,
            &format!("/api/v2/clients/{client_id}"),
            json!({"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": credential_id}]}},
                   "token_endpoint_auth_method": null}),
        )
        .await?;
        out.push(KeyClient {
            client_id,
            kid: key.kid().to_string(),
            pkcs8_b64: base64::engine::general_purpose::STANDARD.encode(key.pkcs8_der()),
            n: key.public_key().jwk_n(),
            e: key.public_key().jwk_e(),
        });
    }
    let mut credentials = Vec::new();
    for i in 0..credential_clients {
        let (client_id, _) = api.client(&format!("bench-mgmt-{i}")).await?;
        for key in keys.iter().take(4) {
            let credential_id = api.credential(&client_id, key).await?;
            credentials.push(CredentialRef {
                client_id: client_id.clone(),
                credential_id,
            });
        }
    }
    Ok(Manifest {
        base: base.to_string(),
        issuer,
        admin_token: token,
        secret_client_id: secret_id,
        secret_client_secret: secret,
        key_clients: out,
        credentials,
    })
}

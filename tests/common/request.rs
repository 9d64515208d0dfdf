//! Requests as every test makes them, against any server (in process or child process):
//! token requests by client authentication method, Management calls with a Bearer token.

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

/// A server's HTTP side: a client that trusts its CA and its base URL (`https://host:port`).
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// How a client authenticates at `/oauth/token`.
pub enum Auth<'a> {
    /// `client_secret_post`: the secret in the form.
    SecretPost(&'a str),
    /// `client_secret_basic`: HTTP Basic.
    SecretBasic(&'a str),
    /// `private_key_jwt`: a signed assertion in the form (with `client_id` unless it is
    /// empty).
    Assertion(&'a str),
}

impl Api {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            http,
            base: base.into(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Management API's audience on this server's own URL.
    pub fn management_audience(&self) -> String {
        format!("{}/api/v2/", self.base)
    }

    /// `POST /oauth/token` with a form body.
    pub async fn token_form(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `POST /oauth/token` with a JSON body.
    pub async fn token_json(&self, body: Value) -> Response {
        self.http
            .post(self.url("/oauth/token"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A `client_credentials` request for `audience`, authenticated by `auth`.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        auth: Auth<'_>,
        audience: &str,
    ) -> Response {
        let mut form = vec![("grant_type", "client_credentials"), ("audience", audience)];
        let mut req = self.http.post(self.url("/oauth/token"));
        match auth {
            Auth::SecretPost(secret) => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret));
            }
            Auth::SecretBasic(secret) => req = req.basic_auth(client_id, Some(secret)),
            Auth::Assertion(jwt) => {
                if !client_id.is_empty() {
                    form.push(("client_id", client_id));
                }
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", jwt));
            }
        }
        req.form(&form).send().await.unwrap()
    }

    /// A `client_secret_post` token for `audience`; panics unless 200.
    pub async fn token_for(&self, client_id: &str, secret: &str, audience: &str) -> String {
        let r = self
            .client_credentials(client_id, Auth::SecretPost(secret), audience)
            .await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "token request for {client_id} failed"
        );
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The bootstrap admin's Management API token (audience `audience`).
    pub async fn admin_token_for(&self, audience: &str) -> String {
        self.token_for(super::ADMIN_ID, super::ADMIN_SECRET, audience)
            .await
    }

    /// The bootstrap admin's Management API token on this server's own URL.
    pub async fn admin_token(&self) -> String {
        self.admin_token_for(&self.management_audience()).await
    }

    /// A request with a Bearer token and an optional JSON body.
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }
}

/// The admin's Management API session on one server.
pub struct Admin {
    pub api: Api,
    pub token: String,
}

impl Admin {
    /// Gets the bootstrap admin's token.
    pub async fn connect(api: Api) -> Self {
        let token = api.admin_token().await;
        Self { api, token }
    }

    /// A Management call (`path` below `/api/v2`) that must succeed; its JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Value) -> Result<Value, String> {
        let r = self
            .api
            .http
            .request(method.clone(), self.api.url(&format!("/api/v2{path}")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{method} {path}: {status} {body}"))
        }
    }

    /// A `non_interactive` client named `name`, granted `scopes` of `audience`, that
    /// authenticates with `method` (`private_key_jwt`, `tls_client_auth`, ...) and one
    /// credential created from `credential`; (client id, credential).
    pub async fn credential_client(
        &self,
        name: &str,
        method: &str,
        credential: Value,
        audience: &str,
        scopes: &[&str],
    ) -> Result<(String, Value), String> {
        let client = self
            .send(
                Method::POST,
                "/clients",
                serde_json::json!({"name": name, "app_type": "non_interactive", "grant_types": ["client_credentials"]}),
            )
            .await?;
        let id = client["client_id"]
            .as_str()
            .ok_or("no client_id")?
            .to_string();
        self.send(
            Method::POST,
            "/client-grants",
            serde_json::json!({"client_id": id, "audience": audience, "scope": scopes}),
        )
        .await?;
        let cred = self
            .send(
                Method::POST,
                &format!("/clients/{id}/credentials"),
                credential,
            )
            .await?;
        self.send(
            Method::PATCH,
            &format!("/clients/{id}"),
            serde_json::json!({
                "client_authentication_methods": {method: {"credentials": [{"id": cred["id"]}]}},
                "token_endpoint_auth_method": null,
            }),
        )
        .await?;
        Ok((id, cred))
    }
}

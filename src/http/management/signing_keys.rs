//! `/api/v2/keys/signing` — list, get, rotate, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::path_param;
use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::http::{AppState, json_response};
use crate::store::{KeyState, SigningKeyRecord};

/// Auth0's signing-key object.
fn key_json(key: &SigningKeyRecord) -> Value {
    let der = clavis_crypto::x509::Certificate::from_pem(&key.cert_pem)
        .map(|c| c.der().to_vec())
        .unwrap_or_default();
    let sha1 = clavis_crypto::encoding::sha1_legacy_fingerprint(&der);
    let hex: Vec<String> = sha1.iter().map(|b| format!("{b:02X}")).collect();
    let mut m = Map::new();
    m.insert("kid".into(), json!(key.kid));
    m.insert("cert".into(), json!(key.cert_pem));
    m.insert("current".into(), json!(key.state == KeyState::Current));
    if key.state == KeyState::Next {
        m.insert("next".into(), json!(true));
    }
    if key.state == KeyState::Previous {
        m.insert("previous".into(), json!(true));
    }
    if let Some(t) = key.current_since {
        m.insert("current_since".into(), json!(t));
    }
    if let Some(t) = key.current_until {
        m.insert("current_until".into(), json!(t));
    }
    m.insert("fingerprint".into(), json!(hex.join(":")));
    m.insert("thumbprint".into(), json!(hex.concat()));
    if let Some(t) = key.revoked_at {
        m.insert("revoked".into(), json!(true));
        m.insert("revoked_at".into(), json!(t));
    }
    Value::Object(m)
}

fn cert_and_kid(key: &SigningKeyRecord) -> Value {
    json!({"cert": key.cert_pem, "kid": key.kid})
}

/// `GET /keys/signing`.
#[utoipa::path(
    get, path = "/api/v2/keys/signing", operation_id = "get_signing_keys", tag = "signing keys",
    responses((status = 200, description = "Every signing key: previous, current and next.")),
    security(("oAuth2ClientCredentials" = ["read:signing_keys"])),
)]
pub async fn list(State(app): State<AppState>) -> Result<Response, ApiError> {
    let keys = app.signing_keys().await?;
    let items: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(json_response(StatusCode::OK, &items))
}

/// `GET /keys/signing/{kid}`.
#[utoipa::path(
    get, path = "/api/v2/keys/signing/{kid}", operation_id = "get_signing_key", tag = "signing keys",
    params(("kid" = String, Path, description = "Key id of the key to retrieve.")),
    responses((status = 200, description = "The signing key.")),
    security(("oAuth2ClientCredentials" = ["read:signing_keys"])),
)]
pub async fn get(
    State(app): State<AppState>,
    Path(kid): Path<String>,
) -> Result<Response, ApiError> {
    let key = app.signing_key(path_param("kid", &kid)?).await?;
    Ok(json_response(StatusCode::OK, &key_json(&key)))
}

/// `GET /keys/signing/rotate`: Auth0's path reads `rotate` as a key id here, so the answer is
/// the key lookup's (no key has that id: 404), not a 405 for the POST-only path.
pub async fn get_rotate(State(app): State<AppState>) -> Result<Response, ApiError> {
    get(State(app), Path("rotate".into())).await
}

/// `POST /keys/signing/rotate`: 201 `{cert, kid}` of the key that signs from now on.
#[utoipa::path(
    post, path = "/api/v2/keys/signing/rotate", operation_id = "post_signing_keys", tag = "signing keys",
    responses((status = 201, description = "The key that signs from now on.")),
    security(("oAuth2ClientCredentials" = ["create:signing_keys", "update:signing_keys"])),
)]
pub async fn rotate(State(app): State<AppState>) -> Result<Response, ApiError> {
    let key = app.rotate_signing_keys().await?;
    Ok(json_response(StatusCode::CREATED, &cert_and_kid(&key)))
}

/// `PUT /keys/signing/{kid}/revoke`: `{cert, kid}` of the revoked key.
#[utoipa::path(
    put, path = "/api/v2/keys/signing/{kid}/revoke", operation_id = "put_signing_keys", tag = "signing keys",
    params(("kid" = String, Path, description = "Key id of the key to revoke.")),
    responses((status = 200, description = "The revoked key (it leaves the JWKS).")),
    security(("oAuth2ClientCredentials" = ["update:signing_keys"])),
)]
pub async fn revoke(
    State(app): State<AppState>,
    Path(kid): Path<String>,
) -> Result<Response, ApiError> {
    let key = app.revoke_signing_key(path_param("kid", &kid)?).await?;
    Ok(json_response(StatusCode::OK, &cert_and_kid(&key)))
}

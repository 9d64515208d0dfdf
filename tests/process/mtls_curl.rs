//! mTLS with a real client outside the Rust code: `curl --cert/--key` (OpenSSL) against a
//! running `clavis serve --mtls-ca`, for `tls_client_auth` (ECDSA certificate from a CA,
//! TLS 1.3) and `self_signed_tls_client_auth` (RSA self-signed certificate, TLS 1.2), on the
//! same port as a client without a certificate.

use std::path::Path;
use std::process::Command;

use crate::common::request::{Admin, Api};
use crate::common::server::Server;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize,
};
use serde_json::{Value, json};

const API: &str = "https://api.curl.test/";

fn e(context: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |err| format!("{context}: {err}")
}

fn params(cn: &str) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e("params"))?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "Clavis Tests");
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(30);
    Ok(p)
}

/// Writes `<name>.pem` and `<name>-key.pem`; returns (certificate PEM, thumbprint).
fn write_pair(
    dir: &Path,
    name: &str,
    cert: &rcgen::Certificate,
    key: &KeyPair,
) -> (String, String) {
    let _ = std::fs::write(dir.join(format!("{name}.pem")), cert.pem());
    let _ = std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.der());
    (
        cert.pem(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
    )
}

/// Runs curl against the token endpoint; (status, JSON body).
fn curl_token(
    server: &Server,
    dir: &Path,
    client_id: &str,
    identity: Option<&str>,
    tls: &[&str],
) -> Result<(u16, Value), String> {
    let body_path = dir.join("body.json");
    let mut cmd = Command::new("curl");
    cmd.arg("--silent")
        .arg("--show-error")
        .arg("--cacert")
        .arg(server.ca_path())
        .args(tls)
        .arg("--output")
        .arg(&body_path)
        .arg("--write-out")
        .arg("%{http_code}");
    if let Some(name) = identity {
        cmd.arg("--cert")
            .arg(dir.join(format!("{name}.pem")))
            .arg("--key")
            .arg(dir.join(format!("{name}-key.pem")));
    }
    cmd.args(["--data-urlencode", "grant_type=client_credentials"])
        .arg("--data-urlencode")
        .arg(format!("client_id={client_id}"))
        .arg("--data-urlencode")
        .arg(format!("audience={API}"))
        .arg(format!("https://{}/oauth/token", server.domain()));
    let out = cmd
        .output()
        .map_err(|err| format!("cannot run curl (is it installed?): {err}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "curl failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let status = stdout
        .trim()
        .parse()
        .map_err(|_| format!("unexpected curl output {stdout:?}"))?;
    let body = std::fs::read(&body_path).map_err(|err| err.to_string())?;
    let body = serde_json::from_slice(&body)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(&body)))?;
    Ok((status, body))
}

fn claims(token_response: &Value) -> Result<Value, String> {
    let token = token_response["access_token"]
        .as_str()
        .ok_or_else(|| format!("no access_token: {token_response}"))?;
    Ok(crate::common::jwt_claims(token))
}

#[test]
fn curl_gets_certificate_bound_tokens_with_both_mtls_methods() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
    let dir = dir.path();

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(e("CA key"))?;
    let mut ca_params = params("Clavis Curl Test CA")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(e("CA"))?;
    write_pair(dir, "ca", &ca_cert, &ca_key);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(e("leaf key"))?;
    let mut leaf_params = params("billing")?;
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .map_err(e("leaf"))?;
    let (_, leaf_thumbprint) = write_pair(dir, "leaf", &leaf, &leaf_key);

    let pinned_key =
        KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).map_err(e("RSA key"))?;
    let pinned = params("reporting")?
        .self_signed(&pinned_key)
        .map_err(e("self-signed"))?;
    let (pinned_pem, pinned_thumbprint) = write_pair(dir, "pinned", &pinned, &pinned_key);

    let server = Server::builder()
        .arg("--mtls-ca")
        .arg(dir.join("ca.pem").display().to_string())
        .start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    let (dn_client, pinned_client) = runtime.block_on(async {
        let admin = Admin::connect(Api::new(server.http_client()?, server.base())).await;
        admin
            .send(
                reqwest::Method::POST,
                "/resource-servers",
                json!({"name": "curl", "identifier": API, "scopes": [{"value": "read:things"}]}),
            )
            .await?;
        let dn_client = admin
            .credential_client("tls_client_auth", "tls_client_auth", json!({"credential_type": "cert_subject_dn", "subject_dn": "CN=billing,O=Clavis Tests"}), API, &["read:things"])
            .await?
            .0;
        let pinned_client = admin
            .credential_client("self_signed_tls_client_auth", "self_signed_tls_client_auth", json!({"credential_type": "x509_cert", "pem": pinned_pem}), API, &["read:things"])
            .await?
            .0;
        Ok::<_, String>((dn_client, pinned_client))
    })?;

    let tls13 = ["--tlsv1.3"];
    let tls12 = ["--tlsv1.2", "--tls-max", "1.2"];
    for (client, identity, thumbprint, tls) in [
        (&dn_client, "leaf", &leaf_thumbprint, &tls13[..]),
        (&pinned_client, "pinned", &pinned_thumbprint, &tls12[..]),
    ] {
        let (status, body) = curl_token(&server, dir, client, Some(identity), tls)?;
        if status != 200 {
            return Err(format!(
                "{identity}: {status} {body}\n--- server log ---\n{}",
                server.log_tail()
            ));
        }
        let claims = claims(&body)?;
        if claims["cnf"] != json!({"x5t#S256": thumbprint}) || claims["azp"] != json!(client) {
            return Err(format!("{identity}: unexpected claims {claims}"));
        }
        // The same client without its certificate, on the same port.
        let (status, body) = curl_token(&server, dir, client, None, tls)?;
        if status != 401 || body["error"] != "invalid_client" {
            return Err(format!("{identity} without a certificate: {status} {body}"));
        }
        // ...or with the other client's certificate.
        let other = if identity == "leaf" { "pinned" } else { "leaf" };
        let (status, _) = curl_token(&server, dir, client, Some(other), tls)?;
        if status != 401 {
            return Err(format!("{identity} with {other}'s certificate: {status}"));
        }
    }
    Ok(())
}

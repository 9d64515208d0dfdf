//! HTTPS: the generated local CA (first start) and the rustls server configuration.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clavis_crypto::local_ca::{LocalCa, certificate_san_names};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Files of the generated local CA and server certificate.
#[derive(Debug, Clone)]
pub struct LocalTls {
    /// CA certificate to trust (`NODE_EXTRA_CA_CERTS`, `SSL_CERT_FILE`).
    pub ca_cert: PathBuf,
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Ensures `<data-dir>/tls/` holds a CA and a server certificate covering `names`; creates
/// them on first start and re-issues the server certificate when the names changed.
pub fn ensure_local_tls(data_dir: &Path, names: &[String]) -> Result<LocalTls> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = LocalTls {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
    };
    let ca_key = dir.join("ca-key.pem");
    let ca = if files.ca_cert.exists() && ca_key.exists() {
        let cert = std::fs::read_to_string(&files.ca_cert)?;
        let key = std::fs::read_to_string(&ca_key)?;
        LocalCa::from_pem(&cert, &key).context("cannot load the local CA")?
    } else {
        let (ca, pems) =
            LocalCa::generate("Clavis Local CA").context("cannot create a local CA")?;
        write_private(&ca_key, pems.key_pem.as_bytes())?;
        write_private(&files.ca_cert, pems.cert_pem.as_bytes())?;
        ca
    };
    let covers = std::fs::read_to_string(&files.server_cert)
        .ok()
        .and_then(|pem| certificate_san_names(&pem).ok())
        .is_some_and(|sans| names.iter().all(|n| sans.contains(n)));
    if !covers || !files.server_key.exists() {
        let pems = ca
            .issue_server_certificate(names)
            .context("cannot issue the server certificate")?;
        write_private(&files.server_key, pems.key_pem.as_bytes())?;
        write_private(&files.server_cert, pems.cert_pem.as_bytes())?;
    }
    Ok(files)
}

/// A rustls server configuration from PEM files (HTTP/2 and HTTP/1.1). Client certificates
/// are requested, never required (see `mtls`).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad certificate in {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("bad private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_certificates = Arc::new(crate::mtls::RequestClientCertificate::new(&provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_certificates)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! Key material given to credential creation: PEM (SPKI, PKCS#1, X.509) and raw DER.
#![no_main]

use clavis_crypto::rsa::{RsaPublicKey, parse_public_key_pem};
use clavis_crypto::x509::Certificate;
use libfuzzer_sys::fuzz_target;

fn exercise(cert: &Certificate) {
    let _ = cert.subject().to_auth0_string();
    let _ = cert.subject().to_rfc4514_string();
    let _ = cert.issuer().to_rfc4514_string();
    let _ = cert.thumbprint_sha256();
    let _ = cert.san_names();
    let _ = cert.is_valid_at(cert.not_after());
    let _ = cert.not_before();
    if let Ok(key) = cert.rsa_public_key() {
        let _ = key.jwk_thumbprint();
        let _ = key.modulus_bits();
    }
    let _ = cert.to_pem();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(material) = parse_public_key_pem(&text) {
                let _ = format!("{material:?}");
            }
            if let Ok(cert) = Certificate::from_pem(&text) {
                exercise(&cert);
            }
        }
        1 => {
            if let Ok(cert) = Certificate::from_der(rest) {
                exercise(&cert);
            }
        }
        _ => {
            if let Ok(key) = RsaPublicKey::from_pkcs1_der(rest) {
                let _ = key.jwk_n();
                let _ = key.jwk_e();
                let _ = key.jwk_thumbprint();
            }
        }
    }
});

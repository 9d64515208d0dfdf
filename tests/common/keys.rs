//! RSA keys and client assertions made in tests (shared by tests/api and the process tests).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

/// An RSA key pair made in the test: (PKCS#8 private key PEM, SPKI public key PEM).
pub fn rsa_key(bits: usize) -> (String, String) {
    let size = match bits {
        2048 => rcgen::RsaKeySize::_2048,
        3072 => rcgen::RsaKeySize::_3072,
        4096 => rcgen::RsaKeySize::_4096,
        _ => panic!("unsupported size"),
    };
    let kp = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).unwrap();
    (kp.serialize_pem(), kp.public_key_pem())
}

/// An RSA key that signs client assertions in tests.
pub struct AssertionKey {
    pair: aws_lc_rs::signature::RsaKeyPair,
    /// SPKI PEM, for credential creation.
    pub public_pem: String,
    /// PKCS#8 PEM, for SDKs.
    pub private_pem: String,
}

impl AssertionKey {
    pub fn new(bits: usize) -> Self {
        let (private_pem, public_pem) = rsa_key(bits);
        let der = pem_body_der(&private_pem);
        let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        Self {
            pair,
            public_pem,
            private_pem,
        }
    }

    /// Signs `claims` with `header` (whose `alg` picks the padding/hash).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).unwrap()),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match header["alg"].as_str() {
            Some("RS384") => &aws_lc_rs::signature::RSA_PKCS1_SHA384,
            Some("PS256") => &aws_lc_rs::signature::RSA_PSS_SHA256,
            _ => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        };
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                padding,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64(&sig))
    }
}

fn pem_body_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A fresh random `jti`.
pub fn jti() -> String {
    clavis_crypto::random::string(clavis_crypto::random::ALPHANUMERIC, 24)
}

//! Client assertions (`private_key_jwt`): compact JWS parsing, claims, signature checks.
#![no_main]

use std::sync::OnceLock;

use clavis_crypto::jws::{CompactJws, JwsAlg, SigningKey};
use libfuzzer_sys::fuzz_target;

fn key() -> Option<&'static SigningKey> {
    static KEY: OnceLock<Option<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jws) = CompactJws::parse(text) else {
        return;
    };
    let _ = JwsAlg::parse(&jws.header.alg);
    let _ = jws.claims::<serde_json::Map<String, serde_json::Value>>();
    let _ = jws.claims::<serde_json::Value>();
    let _ = jws.payload();
    if let Some(key) = key() {
        for alg in [JwsAlg::RS256, JwsAlg::RS384, JwsAlg::PS256] {
            // A forged signature never verifies against a key the fuzzer does not have.
            assert!(jws.verify(key.public_key(), alg).is_err());
        }
    }
});

//! Subject DNs given to `cert_subject_dn` credentials (RFC 4514 and Auth0's newline form).
#![no_main]

use clavis_crypto::x509::DistinguishedName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(dn) = DistinguishedName::parse(text) {
        let auth0 = dn.to_auth0_string();
        let rfc = dn.to_rfc4514_string();
        let _ = dn.rdns();
        // What Clavis prints it must be able to read back.
        let _ = DistinguishedName::parse(&auth0);
        let _ = DistinguishedName::parse(&rfc);
    }
});

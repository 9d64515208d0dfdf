//! Custom claims of access tokens: the names no custom claim may take, and the limits on
//! what a client grant declares (`token_claims`) and what a token hook answers.
//!
//! One declaration: the grant validator, the token hook and the contract use these.

use serde_json::{Map, Value};

use super::DomainError;
use super::validate::payload_error;

/// Claim names no custom claim may take: Auth0's restricted claims ("OPENID standard claims
/// or claims used internally by Auth0 cannot be customized or modified",
/// auth0.com/docs/secure/tokens/json-web-tokens/create-custom-claims), plus the standard
/// claims Clavis itself puts in access tokens that Auth0's list leaves out (`scope`).
pub const RESTRICTED: &[&str] = &[
    "acr",
    "act",
    "active",
    "amr",
    "at_hash",
    "ath",
    "attest",
    "aud",
    "auth_time",
    "authorization_details",
    "azp",
    "c_hash",
    "client_id",
    "cnf",
    "cty",
    "dest",
    "entitlements",
    "events",
    "exp",
    "groups",
    "gty",
    "htm",
    "htu",
    "iat",
    "internalService",
    "iss",
    "jcard",
    "jku",
    "jti",
    "jwe",
    "jwk",
    "kid",
    "may_act",
    "mky",
    "nbf",
    "nonce",
    "object_id",
    "org_id",
    "org_name",
    "orig",
    "origid",
    "permissions",
    "roles",
    "rph",
    "s_hash",
    "sid",
    "sip_callid",
    "sip_cseq_num",
    "sip_date",
    "sip_from_tag",
    "sip_via_branch",
    "sub",
    "sub_jwk",
    "toe",
    "txn",
    "typ",
    "uuid",
    "vot",
    "vtm",
    "x5t#S256",
    // Clavis's own standard claims beyond Auth0's list.
    "scope",
];

/// Most claims one grant declares.
pub const MAX_DECLARED_CLAIMS: usize = 20;
/// Longest claim name (bytes).
pub const MAX_NAME_LENGTH: usize = 256;
/// Most bytes of a grant's declared claims, as compact JSON (every token of the grant
/// carries them).
pub const MAX_DECLARED_BYTES: usize = 16 * 1024;
/// Most bytes of all custom claims of one token, as compact JSON (Auth0: "Custom claims
/// payload is set to a maximum of 100KB").
pub const MAX_TOKEN_CLAIMS_BYTES: usize = 100 * 1024;

/// The grant property that declares claims (a Clavis extension).
pub const PROPERTY: &str = "token_claims";
const DESC: &str = "Claims added to every access token issued through this grant (a Clavis extension): names are not restricted claims, values are JSON";

/// Whether `name` is a restricted claim name.
pub fn is_restricted(name: &str) -> bool {
    RESTRICTED.contains(&name)
}

/// Whether `name` is a namespaced claim (an `http://` or `https://` URL), the only kind
/// Auth0 adds to tokens for its own Management API.
pub fn is_namespaced(name: &str) -> bool {
    name.starts_with("https://") || name.starts_with("http://")
}

/// Why a claim name cannot be used (`None` when it can), for tokens of an audience that is
/// the Management API when `management` is set.
pub fn name_problem(name: &str, management: bool) -> Option<String> {
    if name.is_empty() {
        Some("Claim names must not be empty".into())
    } else if name.len() > MAX_NAME_LENGTH {
        Some(format!(
            "Claim names must be at most {MAX_NAME_LENGTH} characters"
        ))
    } else if is_restricted(name) {
        Some(format!("Claim {name} is a restricted claim"))
    } else if management && !is_namespaced(name) {
        Some(format!(
            "Claim {name} is not namespaced: tokens for the Management API take only namespaced custom claims (https://...)"
        ))
    } else {
        None
    }
}

/// Checks a declared `token_claims` object (the JSON type is checked before): count, names,
/// size. `management`: the grant is for the Management API.
pub fn check_declared(claims: &Map<String, Value>, management: bool) -> Result<(), DomainError> {
    if claims.len() > MAX_DECLARED_CLAIMS {
        return Err(payload_error(
            &format!("Too many claims: at most {MAX_DECLARED_CLAIMS}"),
            PROPERTY,
            DESC,
        ));
    }
    for name in claims.keys() {
        if let Some(problem) = name_problem(name, management) {
            return Err(payload_error(&problem, PROPERTY, DESC));
        }
    }
    let size = serde_json::to_vec(claims)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_DECLARED_BYTES {
        return Err(payload_error(
            &format!("The claims take {size} bytes as JSON; at most {MAX_DECLARED_BYTES}"),
            PROPERTY,
            DESC,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn restricted_and_standard_names_are_refused() {
        for name in ["sub", "aud", "scope", "org_id", "x5t#S256", "permissions"] {
            let err = check_declared(&map(json!({ name: 1 })), false).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(check_declared(&map(json!({"tier": "gold", "https://x/y": [1]})), false).is_ok());
        assert!(check_declared(&map(json!({"tier": "gold"})), true).is_err());
        assert!(check_declared(&map(json!({"https://x/tier": "gold"})), true).is_ok());
        assert!(check_declared(&map(json!({"": 1})), false).is_err());
    }

    #[test]
    fn limits_hold() {
        let many: Map<String, Value> = (0..=MAX_DECLARED_CLAIMS)
            .map(|i| (format!("c{i}"), json!(i)))
            .collect();
        assert!(check_declared(&many, false).is_err());
        let big = map(json!({"big": "x".repeat(MAX_DECLARED_BYTES)}));
        assert!(check_declared(&big, false).is_err());
        let long = map(json!({ "n".repeat(MAX_NAME_LENGTH + 1): 1 }));
        assert!(check_declared(&long, false).is_err());
    }
}

//! Compact JWS: signing of access tokens (RS256, RS512, PS256 with the tenant's RSA key,
//! HS256 with an API's secret), and parsing/verification of client assertions (RS256,
//! RS384, PS256).

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_SHA256, RSA_PKCS1_SHA512, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
};

use crate::CryptoError;
use crate::encoding::{b64url, b64url_decode};
use crate::rsa::RsaPublicKey;

/// The JWS algorithms Clavis verifies.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (salt length 32).
    PS256,
}

impl JwsAlg {
    /// The JOSE name (`"RS256"`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::PS256 => "PS256",
        }
    }

    /// Parses a JOSE name, exactly and case-sensitively. Anything else
    /// (`"none"`, `"HS256"`, `"rs256"`, ...) gives `None`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::RS256),
            "RS384" => Some(Self::RS384),
            "PS256" => Some(Self::PS256),
            _ => None,
        }
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The algorithms access tokens are signed with using the tenant's RSA key.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RsaSigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[default]
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (salt length 32).
    PS256,
}

impl RsaSigningAlg {
    /// Every one, in the order of their precomputed headers.
    pub const ALL: [Self; 3] = [Self::RS256, Self::RS512, Self::PS256];

    /// The JOSE name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::RS256 => 0,
            Self::RS512 => 1,
            Self::PS256 => 2,
        }
    }

    fn encoding(self) -> &'static dyn RsaEncoding {
        match self {
            Self::RS256 => &RSA_PKCS1_SHA256,
            Self::RS512 => &RSA_PKCS1_SHA512,
            Self::PS256 => &RSA_PSS_SHA256,
        }
    }
}

/// The `typ` of a token's protected header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum JwtTyp {
    /// `"typ":"JWT"`.
    #[default]
    Jwt,
    /// `"typ":"at+jwt"` (RFC 9068 access tokens).
    AtJwt,
}

impl JwtTyp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "JWT",
            Self::AtJwt => "at+jwt",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Jwt => 0,
            Self::AtJwt => 1,
        }
    }
}

/// base64url of a protected header, followed by '.'.
fn header_b64_dot(header: &str) -> String {
    let mut b64 = b64url(header.as_bytes());
    b64.push('.');
    b64
}

/// `"<header b64>.<payload b64>"`, with room for a signature of `sig_len` bytes.
fn signing_input<T: serde::Serialize>(
    header_b64_dot: &str,
    claims: &T,
    sig_len: usize,
) -> Result<String, CryptoError> {
    let payload =
        serde_json::to_vec(claims).map_err(|_| key_error("unable to serialize JWT claims"))?;
    let payload_b64_len = payload.len().div_ceil(3) * 4;
    let mut token =
        String::with_capacity(header_b64_dot.len() + payload_b64_len + 1 + sig_len.div_ceil(3) * 4);
    token.push_str(header_b64_dot);
    base64::Engine::encode_string(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &payload,
        &mut token,
    );
    Ok(token)
}

fn push_signature(token: &mut String, signature: &[u8]) {
    token.push('.');
    base64::Engine::encode_string(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        signature,
        token,
    );
}

/// A signing key for access tokens: RSA, parsed once.
pub struct SigningKey {
    kid: String,
    key_pair: RsaKeyPair,
    public: RsaPublicKey,
    pkcs8: Vec<u8>,
    /// base64url of each protected header followed by '.', by [`RsaSigningAlg`] and
    /// [`JwtTyp`]: computed once, so signing builds no header.
    headers: [[String; 2]; 3],
}

fn key_error(msg: &str) -> CryptoError {
    CryptoError::Key(msg.to_owned())
}

impl SigningKey {
    /// Generates a new RSA 2048 key with a random 22-character base58 `kid`.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when key generation fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let key_pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| key_error("RSA key generation failed"))?;
        let pkcs8 = key_pair
            .as_der()
            .map_err(|_| key_error("RSA key serialization failed"))?
            .as_ref()
            .to_vec();
        let kid = crate::random::string(crate::random::BASE58, 22);
        Self::new(kid, key_pair, pkcs8)
    }

    /// Loads a key from its PKCS#8 DER (as returned by [`SigningKey::pkcs8_der`]).
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the DER is not an RSA private key;
    /// [`CryptoError::KeySize`] when it is not 2048 to 4096 bits.
    pub fn from_pkcs8_der(kid: &str, der: &[u8]) -> Result<Self, CryptoError> {
        let key_pair =
            RsaKeyPair::from_pkcs8(der).map_err(|_| key_error("invalid PKCS#8 RSA private key"))?;
        Self::new(kid.to_owned(), key_pair, der.to_vec())
    }

    fn new(kid: String, key_pair: RsaKeyPair, pkcs8: Vec<u8>) -> Result<Self, CryptoError> {
        let public =
            RsaPublicKey::from_pkcs1_der(key_pair.public_key().as_ref()).map_err(|e| match e {
                CryptoError::KeySize { bits } => CryptoError::KeySize { bits },
                _ => key_error("invalid RSA public key"),
            })?;
        let kid_json =
            serde_json::to_string(&kid).map_err(|_| key_error("invalid key identifier"))?;
        let headers = RsaSigningAlg::ALL.map(|alg| {
            [JwtTyp::Jwt, JwtTyp::AtJwt].map(|typ| {
                header_b64_dot(&format!(
                    r#"{{"alg":"{}","typ":"{}","kid":{kid_json}}}"#,
                    alg.as_str(),
                    typ.as_str()
                ))
            })
        });
        Ok(Self {
            headers,
            kid,
            key_pair,
            public,
            pkcs8,
        })
    }

    /// The PKCS#8 DER of the private key, to be sealed and stored by the caller.
    #[must_use]
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key identifier (`kid`).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key.
    #[must_use]
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    /// Signs `claims` as a compact JWS (JWT) with protected header exactly
    /// `{"alg":"RS256","typ":"JWT","kid":"<kid>"}` (in that key order), using
    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256). The header's base64url is
    /// computed once at construction.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the claims do not serialize or signing fails.
    pub fn sign_jwt<T: serde::Serialize>(&self, claims: &T) -> Result<String, CryptoError> {
        self.sign_token(RsaSigningAlg::RS256, JwtTyp::Jwt, claims)
    }

    /// [`sign_jwt`](Self::sign_jwt) with the header
    /// `{"alg":"RS256","typ":"at+jwt","kid":"<kid>"}` of an RFC 9068 access token.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the claims do not serialize or signing fails.
    pub fn sign_access_token_jwt<T: serde::Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, CryptoError> {
        self.sign_token(RsaSigningAlg::RS256, JwtTyp::AtJwt, claims)
    }

    /// Signs `claims` with `alg`, protected header exactly
    /// `{"alg":"<alg>","typ":"<typ>","kid":"<kid>"}` (in that key order), computed once at
    /// construction.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the claims do not serialize or signing fails.
    pub fn sign_token<T: serde::Serialize>(
        &self,
        alg: RsaSigningAlg,
        typ: JwtTyp,
        claims: &T,
    ) -> Result<String, CryptoError> {
        let sig_len = self.key_pair.public_modulus_len();
        let mut token = signing_input(&self.headers[alg.index()][typ.index()], claims, sig_len)?;
        let mut signature = vec![0u8; sig_len];
        self.key_pair
            .sign(
                alg.encoding(),
                &aws_lc_rs::rand::SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| key_error("signing failed"))?;
        push_signature(&mut token, &signature);
        Ok(token)
    }

    /// A self-signed X.509 certificate (PEM) for this key with subject
    /// `CN=<common_name>`, valid from now for `days` days, signed with
    /// SHA-256 — the form Auth0's signing-keys API returns for each key.
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the certificate cannot be built.
    pub fn self_signed_certificate_pem(
        &self,
        common_name: &str,
        days: u32,
    ) -> Result<String, CryptoError> {
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &self.pkcs8.as_slice().into(),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(|_| key_error("unable to load signing key"))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        params.not_after = now + time::Duration::days(i64::from(days));
        params.serial_number = Some(crate::local_ca::random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|_| key_error("unable to create certificate"))?;
        Ok(cert.pem())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}

/// An HS256 (HMAC-SHA256) key for the access tokens of an API with a `signing_secret`.
/// Its `Debug` shows nothing of the secret.
pub struct HmacSigningKey {
    key: hmac::Key,
    /// base64url of `{"alg":"HS256","typ":"<typ>"}` followed by '.', by [`JwtTyp`].
    headers: [String; 2],
}

impl HmacSigningKey {
    /// A key for `secret` (its UTF-8 bytes are the HMAC key, as JOSE libraries take a
    /// string secret).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            headers: [JwtTyp::Jwt, JwtTyp::AtJwt].map(|typ| {
                header_b64_dot(&format!(r#"{{"alg":"HS256","typ":"{}"}}"#, typ.as_str()))
            }),
        }
    }

    /// Signs `claims` with HS256, protected header exactly `{"alg":"HS256","typ":"<typ>"}`
    /// (no `kid`: the key is the API's, not one of the tenant's).
    ///
    /// # Errors
    /// [`CryptoError::Key`] when the claims do not serialize.
    pub fn sign_token<T: serde::Serialize>(
        &self,
        typ: JwtTyp,
        claims: &T,
    ) -> Result<String, CryptoError> {
        let mut token = signing_input(&self.headers[typ.index()], claims, 32)?;
        let tag = hmac::sign(&self.key, token.as_bytes());
        push_signature(&mut token, tag.as_ref());
        Ok(token)
    }
}

impl fmt::Debug for HmacSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSigningKey(..)")
    }
}

/// The protected header of a compact JWS. Members other than these are
/// ignored, except `crit`, which makes [`CompactJws::parse`] fail.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct JwsHeader {
    /// The `alg` member.
    pub alg: String,
    /// The `kid` member.
    #[serde(default)]
    pub kid: Option<String>,
    /// The `typ` member.
    #[serde(default)]
    pub typ: Option<String>,
}

/// What [`CompactJws::parse`] reads from the header: [`JwsHeader`] plus `crit`.
#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// A parsed compact JWS (JWT): split and decoded, not yet verified.
pub struct CompactJws {
    /// The decoded protected header.
    pub header: JwsHeader,
    /// `"<header b64>.<payload b64>"`, the signing input.
    signing_input: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn malformed(msg: &str) -> CryptoError {
    CryptoError::MalformedJws(msg.to_owned())
}

impl CompactJws {
    /// The longest token accepted, in bytes.
    pub const MAX_LEN: usize = 16 * 1024;

    /// Splits and decodes a compact JWS.
    ///
    /// Requires exactly three `.`-separated parts in strict base64url (no
    /// padding), a non-empty header that is a JSON object with a string `alg`
    /// and no `crit`, and a non-empty signature. Tokens longer than
    /// [`CompactJws::MAX_LEN`] are rejected. The payload may be empty.
    ///
    /// # Errors
    /// [`CryptoError::MalformedJws`] describing the first problem found.
    pub fn parse(token: &str) -> Result<Self, CryptoError> {
        if token.len() > Self::MAX_LEN {
            return Err(malformed("JWT is too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("JWT must have three parts"));
        };
        if h.is_empty() {
            return Err(malformed("JWT header is empty"));
        }
        if s.is_empty() {
            return Err(malformed("JWT signature is empty"));
        }
        let header_bytes =
            b64url_decode(h).map_err(|_| malformed("JWT header is not valid base64url"))?;
        let payload =
            b64url_decode(p).map_err(|_| malformed("JWT payload is not valid base64url"))?;
        let signature =
            b64url_decode(s).map_err(|_| malformed("JWT signature is not valid base64url"))?;
        let not_object = || malformed("JWT header is not a JSON object with a string alg");
        // Serde would also accept a JSON array for a struct: insist on an object.
        if header_bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(not_object());
        }
        let raw: RawHeader = serde_json::from_slice(&header_bytes).map_err(|_| not_object())?;
        if raw.crit.is_some() {
            return Err(malformed("JWT header has unsupported crit parameters"));
        }
        let header = JwsHeader {
            alg: raw.alg,
            kid: raw.kid,
            typ: raw.typ,
        };
        let signing_input = token.as_bytes()[..h.len() + 1 + p.len()].to_vec();
        Ok(Self {
            header,
            signing_input,
            payload,
            signature,
        })
    }

    /// Verifies the signature over `"<header>.<payload>"` with `key` and
    /// `alg`. The caller decides `alg` (typically after checking
    /// `header.alg` against what the key allows); the header's `alg` is not
    /// consulted here.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`] when the signature does not verify.
    pub fn verify(&self, key: &RsaPublicKey, alg: JwsAlg) -> Result<(), CryptoError> {
        key.verify(alg, &self.signing_input, &self.signature)
    }

    /// The decoded payload bytes.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Deserializes the payload as JSON.
    ///
    /// # Errors
    /// [`CryptoError::MalformedJws`] when the payload is not valid JSON for `T`.
    pub fn claims<T: serde::de::DeserializeOwned>(&self) -> Result<T, CryptoError> {
        serde_json::from_slice(&self.payload).map_err(|_| malformed("JWT claims are not valid"))
    }
}

impl fmt::Debug for CompactJws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactJws")
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate().unwrap())
    }

    fn other_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate().unwrap())
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Claims {
        iss: String,
        sub: String,
        exp: i64,
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://clavis.example/".to_owned(),
            sub: "client@clients".to_owned(),
            exp: 1_900_000_000,
        }
    }

    #[test]
    fn alg_names() {
        for alg in [JwsAlg::RS256, JwsAlg::RS384, JwsAlg::PS256] {
            assert_eq!(JwsAlg::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        for bad in ["none", "HS256", "rs256", "ES256", "RS512", "", " RS256"] {
            assert_eq!(JwsAlg::parse(bad), None);
        }
    }

    #[test]
    fn an_rfc9068_access_token_has_its_own_typ() {
        let key = key();
        let token = key.sign_access_token_jwt(&claims()).unwrap();
        assert_eq!(
            b64url_decode(token.split('.').next().unwrap()).unwrap(),
            format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}"}}"#, key.kid()).as_bytes()
        );
        let jws = CompactJws::parse(&token).unwrap();
        jws.verify(key.public_key(), JwsAlg::RS256).unwrap();
        assert_eq!(jws.claims::<Claims>().unwrap(), claims());
    }

    /// The header and signing input of `token`, and its signature.
    fn split(token: &str) -> (String, Vec<u8>, Vec<u8>) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let header = b64url_decode(input.split('.').next().unwrap()).unwrap();
        (
            String::from_utf8(header).unwrap(),
            input.as_bytes().to_vec(),
            b64url_decode(sig).unwrap(),
        )
    }

    #[test]
    fn every_rsa_algorithm_signs_with_its_own_header() {
        use aws_lc_rs::signature::{
            RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA512, RSA_PSS_2048_8192_SHA256,
            UnparsedPublicKey, VerificationAlgorithm,
        };
        let key = key();
        let cases: [(RsaSigningAlg, &'static dyn VerificationAlgorithm); 3] = [
            (RsaSigningAlg::RS256, &RSA_PKCS1_2048_8192_SHA256),
            (RsaSigningAlg::RS512, &RSA_PKCS1_2048_8192_SHA512),
            (RsaSigningAlg::PS256, &RSA_PSS_2048_8192_SHA256),
        ];
        for (alg, verification) in cases {
            for typ in [JwtTyp::Jwt, JwtTyp::AtJwt] {
                let token = key.sign_token(alg, typ, &claims()).unwrap();
                let (header, input, sig) = split(&token);
                assert_eq!(
                    header,
                    format!(
                        r#"{{"alg":"{}","typ":"{}","kid":"{}"}}"#,
                        alg.as_str(),
                        typ.as_str(),
                        key.kid()
                    )
                );
                let public = UnparsedPublicKey::new(verification, key.public_key().pkcs1_der());
                public.verify(&input, &sig).unwrap();
                // Not under another algorithm.
                for (other, v) in cases {
                    if other != alg {
                        let public = UnparsedPublicKey::new(v, key.public_key().pkcs1_der());
                        assert!(public.verify(&input, &sig).is_err(), "{alg:?} as {other:?}");
                    }
                }
            }
        }
        // The RS256 shorthands are the RS256 headers.
        assert_eq!(
            split(&key.sign_jwt(&claims()).unwrap()).0,
            split(
                &key.sign_token(RsaSigningAlg::RS256, JwtTyp::Jwt, &claims())
                    .unwrap()
            )
            .0
        );
    }

    #[test]
    fn hs256_signs_with_the_secret() {
        let secret = b"a secret of at least sixteen characters";
        let key = HmacSigningKey::new(secret);
        assert_eq!(format!("{key:?}"), "HmacSigningKey(..)");
        for typ in [JwtTyp::Jwt, JwtTyp::AtJwt] {
            let token = key.sign_token(typ, &claims()).unwrap();
            let (header, input, sig) = split(&token);
            assert_eq!(
                header,
                format!(r#"{{"alg":"HS256","typ":"{}"}}"#, typ.as_str())
            );
            let verify = hmac::Key::new(hmac::HMAC_SHA256, secret);
            hmac::verify(&verify, &input, &sig).unwrap();
            let wrong = hmac::Key::new(hmac::HMAC_SHA256, b"another secret, sixteen or more");
            assert!(hmac::verify(&wrong, &input, &sig).is_err());
            // Clavis's own verifier never takes it for an RSA token.
            let jws = CompactJws::parse(&token).unwrap();
            assert_eq!(JwsAlg::parse(&jws.header.alg), None);
        }
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let key = key();
        assert_eq!(key.kid().len(), 22);
        assert!(
            key.kid()
                .bytes()
                .all(|b| crate::random::BASE58.contains(&b))
        );
        assert_eq!(key.public_key().modulus_bits(), 2048);

        let token = key.sign_jwt(&claims()).unwrap();
        let header_b64 = token.split('.').next().unwrap();
        assert_eq!(
            b64url_decode(header_b64).unwrap(),
            format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, key.kid()).as_bytes()
        );
        let jws = CompactJws::parse(&token).unwrap();
        assert_eq!(jws.header.alg, "RS256");
        assert_eq!(jws.header.kid.as_deref(), Some(key.kid()));
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        jws.verify(key.public_key(), JwsAlg::RS256).unwrap();
        assert_eq!(jws.claims::<Claims>().unwrap(), claims());
        assert_eq!(jws.payload(), serde_json::to_vec(&claims()).unwrap());
        assert!(matches!(
            jws.claims::<Vec<u8>>(),
            Err(CryptoError::MalformedJws(_))
        ));

        // Wrong key, wrong algorithm.
        assert!(matches!(
            jws.verify(other_key().public_key(), JwsAlg::RS256),
            Err(CryptoError::BadSignature)
        ));
        assert!(jws.verify(key.public_key(), JwsAlg::RS384).is_err());
        assert!(jws.verify(key.public_key(), JwsAlg::PS256).is_err());

        // Tampered payload.
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = claims();
        evil.sub = "admin".to_owned();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64url(&serde_json::to_vec(&evil).unwrap()),
            parts[2]
        );
        assert!(matches!(
            CompactJws::parse(&tampered)
                .unwrap()
                .verify(key.public_key(), JwsAlg::RS256),
            Err(CryptoError::BadSignature)
        ));
    }

    #[test]
    fn pkcs8_round_trip() {
        let key = key();
        let loaded = SigningKey::from_pkcs8_der("kid-1", key.pkcs8_der()).unwrap();
        assert_eq!(loaded.kid(), "kid-1");
        assert_eq!(loaded.public_key(), key.public_key());
        let token = loaded.sign_jwt(&claims()).unwrap();
        CompactJws::parse(&token)
            .unwrap()
            .verify(key.public_key(), JwsAlg::RS256)
            .unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8_der("x", b"garbage"),
            Err(CryptoError::Key(_))
        ));
        let debug = format!("{loaded:?}");
        assert!(debug.contains("kid-1"));
        assert!(debug.len() < 200, "{debug}");
        // A kid needing JSON escaping still yields a valid header.
        let odd = SigningKey::from_pkcs8_der("a\"b", key.pkcs8_der()).unwrap();
        let jws = CompactJws::parse(&odd.sign_jwt(&claims()).unwrap()).unwrap();
        assert_eq!(jws.header.kid.as_deref(), Some("a\"b"));
    }

    #[test]
    fn rs384_and_ps256_verification() {
        let key_pair = RsaKeyPair::from_pkcs8(key().pkcs8_der()).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        for (alg, encoding) in [
            (
                JwsAlg::RS384,
                &aws_lc_rs::signature::RSA_PKCS1_SHA384
                    as &'static dyn aws_lc_rs::signature::RsaEncoding,
            ),
            (JwsAlg::PS256, &aws_lc_rs::signature::RSA_PSS_SHA256),
            (JwsAlg::RS256, &aws_lc_rs::signature::RSA_PKCS1_SHA256),
        ] {
            let header = b64url(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            let payload = b64url(br#"{"sub":"x"}"#);
            let input = format!("{header}.{payload}");
            let mut sig = vec![0u8; key_pair.public_modulus_len()];
            key_pair
                .sign(encoding, &rng, input.as_bytes(), &mut sig)
                .unwrap();
            let token = format!("{input}.{}", b64url(&sig));
            let jws = CompactJws::parse(&token).unwrap();
            assert_eq!(jws.header.alg, alg.as_str());
            assert!(jws.header.kid.is_none());
            jws.verify(key().public_key(), alg).unwrap();
            for wrong in [JwsAlg::RS256, JwsAlg::RS384, JwsAlg::PS256] {
                if wrong != alg {
                    assert!(
                        jws.verify(key().public_key(), wrong).is_err(),
                        "{alg} as {wrong}"
                    );
                }
            }
            assert!(jws.verify(other_key().public_key(), alg).is_err());
        }
    }

    #[test]
    fn parse_rejects_malformed_tokens() {
        let token = key().sign_jwt(&claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let h = parts[0];
        let p = parts[1];
        let s = parts[2];
        let json_header = |json: &str| b64url(json.as_bytes());
        let long = format!("{h}.{}.{s}", "A".repeat(CompactJws::MAX_LEN));
        let bad = [
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            h.to_owned(),
            format!(".{p}.{s}"),
            format!("{h}.{p}."),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}=.{s}"),
            format!("{h}.{p}.{s}="),
            format!("/{}.{p}.{s}", &h[1..]),
            format!("{h}.{p}.+{}", &s[1..]),
            format!("{}.{p}.{s}", json_header("not json")),
            format!("{}.{p}.{s}", json_header("[1,2]")),
            format!("{}.{p}.{s}", json_header(r#"["RS256"]"#)),
            format!("{}.{p}.{s}", json_header(r#"{"alg":"RS256","alg":"none"}"#)),
            format!("{}.{p}.{s}", json_header(r#"{"typ":"JWT"}"#)),
            format!("{}.{p}.{s}", json_header(r#"{"alg":5}"#)),
            format!(
                "{}.{p}.{s}",
                json_header(r#"{"alg":"RS256","crit":["exp"]}"#)
            ),
            long,
        ];
        for token in &bad {
            assert!(
                matches!(CompactJws::parse(token), Err(CryptoError::MalformedJws(_))),
                "{token}"
            );
        }
        // Unknown header members are ignored; an empty payload is allowed.
        let ok = format!(
            "{}..{s}",
            json_header(r#"{"alg":"RS256","x5t":"abc","jku":1}"#)
        );
        let jws = CompactJws::parse(&ok).unwrap();
        assert!(jws.payload().is_empty());
        assert!(jws.verify(key().public_key(), JwsAlg::RS256).is_err());
    }
}

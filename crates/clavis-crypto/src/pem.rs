//! A small, tolerant PEM reader (RFC 7468).

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::CryptoError;

/// Standard alphabet, padding optional.
const PEM_B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One decoded PEM block.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Vec<u8>,
}

fn invalid(msg: &str) -> CryptoError {
    CryptoError::InvalidPem(msg.to_owned())
}

/// Parses every PEM block in `input`.
///
/// Tolerates CRLF line endings, whitespace anywhere (including inside the
/// base64 body) and explanatory text outside blocks. Encapsulated headers
/// (e.g. `Proc-Type: 4,ENCRYPTED`) are rejected.
pub(crate) fn parse_all(input: &str) -> Result<Vec<PemBlock>, CryptoError> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    const DASHES: &str = "-----";

    let mut blocks = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let label_end = after_begin
            .find(DASHES)
            .ok_or_else(|| invalid("unable to parse PEM: malformed BEGIN line"))?;
        let label = &after_begin[..label_end];
        if label.contains(['\r', '\n']) {
            return Err(invalid("unable to parse PEM: malformed BEGIN line"));
        }
        let body_and_rest = &after_begin[label_end + DASHES.len()..];
        let end_marker = format!("{END}{label}{DASHES}");
        let body_end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| invalid("unable to parse PEM: missing END line"))?;
        let body = &body_and_rest[..body_end];
        if body.contains(':') {
            return Err(invalid("encrypted or annotated PEM is not supported"));
        }
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = PEM_B64
            .decode(b64.as_bytes())
            .map_err(|_| invalid("unable to parse PEM: invalid base64"))?;
        if der.is_empty() {
            return Err(invalid("unable to parse PEM: empty block"));
        }
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
        rest = &body_and_rest[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

/// Parses exactly one PEM block.
pub(crate) fn parse_one(input: &str) -> Result<PemBlock, CryptoError> {
    let mut blocks = parse_all(input)?;
    match blocks.len() {
        0 => Err(invalid("unable to parse PEM")),
        1 => blocks.pop().ok_or_else(|| invalid("unable to parse PEM")),
        _ => Err(invalid("expected exactly one PEM block")),
    }
}

/// Encodes `der` as a PEM block with LF line endings and 64-column lines.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so chunking on bytes stays on char boundaries.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tolerance() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("TEST", &der);
        let crlf = format!(
            "\r\n  explanatory text\r\n{}\r\n\r\n",
            pem.replace('\n', "\r\n")
        );
        for input in [pem.as_str(), crlf.as_str()] {
            let block = parse_one(input).unwrap();
            assert_eq!(block.label, "TEST");
            assert_eq!(block.der, der);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_one("").is_err());
        assert!(parse_one("hello").is_err());
        assert!(parse_one("-----BEGIN X-----\nAAAA\n").is_err());
        assert!(parse_one("-----BEGIN X-----\n!!!!\n-----END X-----").is_err());
        assert!(parse_one("-----BEGIN X-----\n\n-----END X-----").is_err());
        assert!(parse_one("-----BEGIN X-----\nAAAA\n-----END Y-----").is_err());
        let two = format!("{}{}", encode("A", b"a"), encode("B", b"b"));
        assert!(parse_one(&two).is_err());
        assert_eq!(parse_all(&two).unwrap().len(), 2);
    }
}

//! Random bytes and uniformly distributed random strings from the system CSPRNG.

/// The Bitcoin base58 alphabet (no `0`, `O`, `I`, `l`).
pub const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Digits, upper- and lower-case ASCII letters.
pub const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Lower-case hexadecimal digits.
pub const HEX_LOWER: &[u8] = b"0123456789abcdef";

/// Fills `buf` from the system CSPRNG.
///
/// aws-lc's `RAND_bytes` cannot fail in practice (it aborts internally on an
/// unrecoverable entropy failure); should it ever report an error we abort the
/// process rather than hand out predictable secrets.
pub(crate) fn fill(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        std::process::abort();
    }
}

/// `N` random bytes.
#[must_use]
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// A random string of `len` characters drawn uniformly from `alphabet`.
///
/// `alphabet` should be ASCII; each byte is one symbol (a non-ASCII byte is
/// mapped to the Latin-1 character of the same value). Sampling uses rejection
/// so there is no modulo bias. An empty alphabet yields an empty string. Only
/// the first 256 symbols of a longer alphabet are used.
#[must_use]
pub fn string(alphabet: &[u8], len: usize) -> String {
    let alphabet = &alphabet[..alphabet.len().min(256)];
    let mut out = String::with_capacity(len);
    if alphabet.is_empty() || len == 0 {
        return out;
    }
    // Largest multiple of the alphabet size that fits in a byte's range:
    // bytes at or above it are rejected.
    let size = alphabet.len();
    let limit = 256 - (256 % size);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        for &b in &buf {
            let b = usize::from(b);
            if b < limit {
                out.push(char::from(alphabet[b % size]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(BASE58.len(), 58);
        assert_eq!(ALPHANUMERIC.len(), 62);
        assert_eq!(HEX_LOWER.len(), 16);
    }

    #[test]
    fn string_uses_only_the_alphabet_and_has_the_length() {
        for (alphabet, len) in [
            (BASE58, 22),
            (ALPHANUMERIC, 100),
            (HEX_LOWER, 64),
            (b"ab".as_slice(), 1),
        ] {
            let s = string(alphabet, len);
            assert_eq!(s.len(), len);
            assert!(s.bytes().all(|c| alphabet.contains(&c)), "{s}");
        }
        assert_eq!(string(BASE58, 0), "");
        assert_eq!(string(b"", 5), "");
    }

    #[test]
    fn string_covers_the_alphabet() {
        let s = string(HEX_LOWER, 4096);
        for c in HEX_LOWER {
            assert!(s.as_bytes().contains(c));
        }
    }

    #[test]
    fn bytes_differ() {
        assert_ne!(bytes::<32>(), bytes::<32>());
    }
}

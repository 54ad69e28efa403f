//! AIP-158 paging: a page size within bounds and opaque page tokens.

use crate::{ServiceError, Violations};

pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// Page size from a request: 0 means the default; negative or above the maximum is an error.
pub fn page_size(violations: &mut Violations, field: &str, requested: i32) -> Option<i64> {
    match requested {
        0 => Some(DEFAULT_PAGE_SIZE),
        n => violations.in_range(field, i64::from(n), 1, MAX_PAGE_SIZE),
    }
}

/// Encodes a resume position as an opaque token. The hex encoding and the version prefix keep
/// clients from building tokens by hand and let the format change later.
pub fn encode_token(position: &str) -> String {
    let mut out = String::with_capacity(4 + position.len() * 2);
    out.push_str("v1.");
    for byte in position.as_bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Decodes a token made by [`encode_token`]; an empty token means the first page.
pub fn decode_token(field: &str, token: &str) -> Result<Option<String>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ServiceError::invalid(field, "is not a page token this service issued");
    let hex = token.strip_prefix("v1.").ok_or_else(bad)?.as_bytes();
    if hex.len() % 2 != 0 || hex.len() > 2048 {
        return Err(bad());
    }
    let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
    let bytes = hex
        .chunks_exact(2)
        .map(|pair| Ok(u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).unwrap_or(0)))
        .collect::<Result<Vec<u8>, ServiceError>>()?;
    String::from_utf8(bytes).map(Some).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = encode_token("2026-01-01|abc");
        assert_eq!(
            decode_token("page_token", &token).ok().flatten().as_deref(),
            Some("2026-01-01|abc")
        );
        assert_eq!(decode_token("page_token", "").ok(), Some(None));
    }

    #[test]
    fn forged_tokens_are_rejected() {
        assert!(decode_token("page_token", "garbage").is_err());
        assert!(decode_token("page_token", "v1.zz").is_err());
        assert!(decode_token("page_token", "v1.abc").is_err());
        // Multi-byte characters must be refused, not split.
        assert!(decode_token("page_token", "v1.a\u{e9}b").is_err());
        assert!(decode_token("page_token", "v1.\u{e9}\u{e9}").is_err());
    }

    #[test]
    fn page_size_bounds() {
        let mut v = Violations::new();
        assert_eq!(page_size(&mut v, "page_size", 0), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(&mut v, "page_size", 5), Some(5));
        assert!(v.is_empty());
        assert_eq!(page_size(&mut v, "page_size", -1), None);
        assert_eq!(page_size(&mut v, "page_size", 1001), None);
        assert!(v.finish().is_err());
    }
}

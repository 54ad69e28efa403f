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

/// Separates the filters a token was issued for from the position it resumes after.
const SEPARATOR: char = '\u{1f}';

/// Encodes a resume position, and the filters of the request it continues, as an opaque
/// token. The hex encoding and the version prefix keep clients from building tokens by hand
/// and let the format change later.
pub fn encode_token(filters: &str, position: &str) -> String {
    let content = format!("{filters}{SEPARATOR}{position}");
    let mut out = String::with_capacity(3 + content.len() * 2);
    out.push_str("v1.");
    for byte in content.as_bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Decodes a token made by [`encode_token`] into its position; an empty token means the
/// first page. A token issued for other filters is refused (AIP-158: the other fields of a
/// paged request must not change between pages).
pub fn decode_token(
    field: &str,
    token: &str,
    filters: &str,
) -> Result<Option<String>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ServiceError::invalid(field, "is not a page token this service issued");
    let hex = token.strip_prefix("v1.").ok_or_else(bad)?.as_bytes();
    if hex.len() % 2 != 0 || hex.len() > 4096 {
        return Err(bad());
    }
    let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
    let bytes = hex
        .chunks_exact(2)
        .map(|pair| Ok(u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).unwrap_or(0)))
        .collect::<Result<Vec<u8>, ServiceError>>()?;
    let content = String::from_utf8(bytes).map_err(|_| bad())?;
    let (issued_for, position) = content.rsplit_once(SEPARATOR).ok_or_else(bad)?;
    if issued_for != filters {
        return Err(ServiceError::invalid(
            field,
            "was issued for a request with other filters; keep them, or start without a page_token",
        ));
    }
    Ok(Some(position.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let token = encode_token("category=mugs", "2026-01-01|abc");
        assert_eq!(
            decode_token("page_token", &token, "category=mugs")
                .ok()
                .flatten()
                .as_deref(),
            Some("2026-01-01|abc")
        );
        assert_eq!(decode_token("page_token", "", "").ok(), Some(None));
    }

    #[test]
    fn a_token_only_continues_the_request_it_was_issued_for() {
        let token = encode_token("category=mugs", "42");
        assert!(decode_token("page_token", &token, "category=plates").is_err());
    }

    #[test]
    fn forged_tokens_are_rejected() {
        for forged in ["garbage", "v1.zz", "v1.abc", "v1.6e6f7065"] {
            assert!(decode_token("page_token", forged, "").is_err(), "{forged}");
        }
        // Multi-byte characters must be refused, not split.
        assert!(decode_token("page_token", "v1.a\u{e9}b", "").is_err());
        assert!(decode_token("page_token", "v1.\u{e9}\u{e9}", "").is_err());
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

//! AIP-158 paging: page sizes within bounds, and opaque page tokens that a client cannot forge.
//!
//! A token carries the position a page ended at and an HMAC-SHA256 (truncated to 128 bits) of
//! that position together with the request's other fields, under a per-deployment key. So a
//! client can neither move the cursor by editing a token nor reuse one with other filters
//! (AIP-158: the other fields of a paged request must not change between pages).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{ServiceError, Violations};

pub const DEFAULT_PAGE_SIZE: i64 = 100;
pub const MAX_PAGE_SIZE: i64 = 1000;

const VERSION: &str = "v2.";
const MAC_BYTES: usize = 16;
/// Longest token accepted; positions are a few ids or numbers.
const MAX_TOKEN_LEN: usize = 4096;

/// Issues and checks page tokens under one key; cheap to clone.
#[derive(Clone)]
pub struct PageTokens {
    key: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

/// One validated page request: how many items to return and where to resume.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Items the page holds at most.
    pub limit: i64,
    /// The position the previous page ended at, as the service wrote it; None for the first.
    pub after: Option<String>,
    /// The request's other fields, which the next token is bound to.
    filters: String,
}

impl PageRequest {
    /// How many items to fetch: one more than the page holds tells whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

impl PageTokens {
    /// `key` is the deployment's secret (at least 32 bytes of randomness).
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    /// Parses `page_size` and `page_token` of a list request whose other fields are described
    /// by `filters`; every bad field is named in one INVALID_ARGUMENT.
    pub fn request(
        &self,
        page_size: i32,
        page_token: &str,
        filters: impl Into<String>,
    ) -> Result<PageRequest, ServiceError> {
        let filters = filters.into();
        let mut v = Violations::new();
        let limit = match page_size {
            0 => Some(DEFAULT_PAGE_SIZE),
            n => v.in_range("page_size", i64::from(n), 1, MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let position = self.verify(page_token, &filters);
            if position.is_none() {
                v.add(
                    "page_token",
                    "is not a page token issued for this request; keep the other fields of the \
                     request that returned it, or start without a page_token",
                );
            }
            position
        };
        v.finish()?;
        Ok(PageRequest {
            limit: limit.unwrap_or(DEFAULT_PAGE_SIZE),
            after,
            filters,
        })
    }

    /// Keeps at most `request.limit` of `items` (fetched with [`PageRequest::fetch_limit`])
    /// and, when more follow, a token resuming after the last one kept.
    pub fn page<T>(
        &self,
        mut items: Vec<T>,
        request: &PageRequest,
        position: impl Fn(&T) -> String,
    ) -> (Vec<T>, String) {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        if items.len() <= limit {
            return (items, String::new());
        }
        items.truncate(limit);
        let next = items
            .last()
            .map(|last| self.issue(&request.filters, &position(last)))
            .unwrap_or_default();
        (items, next)
    }

    fn mac(&self, filters: &str, position: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&(filters.len() as u64).to_be_bytes());
        mac.update(filters.as_bytes());
        mac.update(position);
        mac
    }

    fn issue(&self, filters: &str, position: &str) -> String {
        let tag = self
            .mac(filters, position.as_bytes())
            .finalize()
            .into_bytes();
        format!(
            "{VERSION}{}.{}",
            hex(position.as_bytes()),
            hex(&tag[..MAC_BYTES])
        )
    }

    fn verify(&self, token: &str, filters: &str) -> Option<String> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (position, tag) = token.strip_prefix(VERSION)?.split_once('.')?;
        let position = unhex(position)?;
        let tag = unhex(tag)?;
        self.mac(filters, &position)
            .verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == MAC_BYTES)?;
        String::from_utf8(position).ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::new(b"a test key of thirty-two bytes!!")
    }

    fn token_after(position: &str, filters: &str) -> String {
        let tokens = tokens();
        let request = tokens.request(1, "", filters).expect("first page");
        let (_, next) = tokens.page(vec!["x", position], &request, |p| (*p).to_owned());
        next
    }

    #[test]
    fn a_token_resumes_after_the_last_item_of_its_page() {
        let token = token_after("42", "category=mugs");
        let request = tokens().request(0, &token, "category=mugs").expect("valid");
        assert_eq!(request.after.as_deref(), Some("x"));
        assert_eq!(request.limit, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn the_last_page_has_no_token() {
        let tokens = tokens();
        let request = tokens.request(2, "", "").expect("first page");
        let (items, next) = tokens.page(vec![1, 2], &request, i32::to_string);
        assert_eq!(items, [1, 2]);
        assert!(next.is_empty());
    }

    #[test]
    fn a_token_only_continues_the_request_it_was_issued_for() {
        let token = token_after("42", "category=mugs");
        assert!(tokens().request(0, &token, "category=plates").is_err());
    }

    #[test]
    fn an_edited_or_foreign_token_is_refused() {
        let token = token_after("42", "");
        // Move the cursor: change the first hex digit of the position.
        let edited = token.replacen("v2.7", "v2.6", 1);
        assert_ne!(edited, token);
        let other_key = PageTokens::new(b"another deployment's key, 32 b..");
        for forged in [
            edited.as_str(),
            "garbage",
            "v2.zz.00",
            "v2.ab",
            "v2.\u{e9}\u{e9}.00",
        ] {
            assert!(tokens().request(0, forged, "").is_err(), "{forged}");
        }
        assert!(other_key.request(0, &token, "").is_err());
    }

    #[test]
    fn page_size_bounds() {
        for size in [-1, 1001] {
            assert!(tokens().request(size, "", "").is_err(), "{size}");
        }
        assert_eq!(tokens().request(5, "", "").map(|r| r.limit).ok(), Some(5));
    }

    /// Page tokens fuzzed: no text but a token issued for the same request is accepted,
    /// whatever it holds, and an issued token resumes exactly where its page ended. Cases per
    /// run: `FUZZ_CASES` (256 by default); failures found are kept in `proptest-regressions/`
    /// and replayed first.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::fuzz_cases as cases;

        /// Text, often shaped like a token (`v2.<hex>.<hex>`) so the checks past the prefix
        /// are reached too.
        fn token_like() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                ("[0-9a-f]{0,40}", "[0-9a-fA-F]{0,40}").prop_map(|(p, m)| format!("v2.{p}.{m}")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

            #[test]
            fn no_text_but_an_issued_token_is_accepted(
                token in token_like(),
                filters in any::<String>(),
                page_size in any::<i32>(),
            ) {
                match tokens().request(page_size, &token, filters) {
                    Ok(request) => {
                        prop_assert!(token.is_empty(), "a forged token passed: {token:?}");
                        prop_assert!((1..=MAX_PAGE_SIZE).contains(&request.limit));
                    }
                    Err(error) => {
                        prop_assert!(matches!(error, ServiceError::InvalidArgument(_)), "{error:?}")
                    }
                }
            }

            #[test]
            fn an_issued_token_resumes_after_its_page_for_its_own_request_only(
                position in any::<String>(),
                filters in any::<String>(),
                other_filters in any::<String>(),
                flip in any::<prop::sample::Index>(),
            ) {
                let tokens = tokens();
                let first = tokens.request(1, "", filters.as_str()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let (_, token) = tokens.page(vec![position.clone(), String::new()], &first, Clone::clone);
                let next = tokens.request(1, &token, filters.as_str()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(next.after.as_deref(), Some(position.as_str()));
                if other_filters != filters {
                    prop_assert!(tokens.request(1, &token, other_filters).is_err());
                }
                // Any one character changed (within ASCII, as tokens are) is refused.
                let mut bytes = token.into_bytes();
                let at = flip.index(bytes.len());
                bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
                let tampered = String::from_utf8(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(tokens.request(1, &tampered, filters).is_err(), "{tampered}");
            }
        }
    }
}

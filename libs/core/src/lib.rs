//! Domain types every inventory service shares.
//!
//! - [`error`]: the one error type services return, and its single mapping to a gRPC status
//!   with google.rpc error details.
//! - [`validate`]: "parse, don't validate" helpers that turn request fields into domain values
//!   and collect every bad field into one INVALID_ARGUMENT.
//! - [`paging`]: AIP-158 page sizes and signed, opaque page tokens.
//! - [`field_mask`]: AIP-134 update masks.
//! - [`time`]: now at the database's precision, and protobuf timestamps.

pub mod error;
pub mod field_mask;
pub mod paging;
pub mod time;
pub mod validate;

pub use error::ServiceError;
pub use paging::{PageRequest, PageTokens};
pub use validate::Violations;

/// Cases per fuzz target: `FUZZ_CASES`, 256 by default; the one reading of it for every
/// crate's fuzz tests (the test kit's `fuzz::cases` too).
pub fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

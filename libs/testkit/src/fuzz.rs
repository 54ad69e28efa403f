//! Fuzzing what a service decodes and validates, on the stable toolchain: a valid request
//! (the seed) is encoded, its bytes are mutated (changed, inserted, deleted, cut short), and
//! whatever still decodes as the message goes to the service's validation, which must
//! answer without panicking: a parsed command, or a refusal that names its fields. The
//! seeds are each target's corpus; what proptest finds is kept in `proptest-regressions/`
//! beside the test and replayed first on every run.

use inventory_core::ServiceError;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message;

/// Cases per target: `FUZZ_CASES`, 256 by default (a long run sets more).
pub fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// `seed` with its encoding mutated, as whatever still decodes (the seed itself when
/// nothing does).
pub fn mutated<M: Message + Default + Clone + std::fmt::Debug + 'static>(
    seed: M,
) -> impl Strategy<Value = M> {
    let bytes = seed.encode_to_vec();
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0..4_u8);
    prop::collection::vec(edit, 0..8).prop_map(move |edits| {
        let mut b = bytes.clone();
        for (at, byte, op) in edits {
            let i = if b.is_empty() { 0 } else { at.index(b.len()) };
            match op {
                0 if !b.is_empty() => b[i] = byte,
                1 => b.insert(i, byte),
                2 if !b.is_empty() => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        M::decode(b.as_slice()).unwrap_or_else(|_| seed.clone())
    })
}

/// A validation's answer is fine: parsed, or refused as the caller's mistake with every
/// field named. (An INTERNAL here is a bug: bad input is never the server's fault.)
pub fn refusal_is_specific<T>(answer: &Result<T, ServiceError>) -> Result<(), TestCaseError> {
    match answer {
        Ok(_) => Ok(()),
        Err(ServiceError::InvalidArgument(violations)) => {
            prop_assert!(!violations.is_empty(), "INVALID_ARGUMENT naming nothing");
            for violation in violations {
                prop_assert!(!violation.field.is_empty(), "{violation:?}");
                prop_assert!(!violation.description.is_empty(), "{violation:?}");
            }
            Ok(())
        }
        Err(ServiceError::NotFound { .. }) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!(
            "not a specific refusal: {other:?}"
        ))),
    }
}

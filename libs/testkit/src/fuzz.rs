//! Fuzzing what a service decodes and validates, on the stable toolchain: a valid request
//! (the seed) is taken apart at the protobuf wire level and changed field by field (numbers
//! replaced by any value, edge values first; text by any text; fields dropped or repeated;
//! the same inside nested messages), so that what reaches the service's validation still
//! decodes and probes each field. The validation must answer without panicking: a parsed
//! command, or a refusal that names its fields. The seeds are each target's corpus; what
//! proptest finds is kept in `proptest-regressions/` beside the test and replayed first.

use inventory_core::ServiceError;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use prost::Message;

/// Cases per target: `FUZZ_CASES`, 256 by default (a long run sets more).
pub fn cases() -> u32 {
    inventory_core::fuzz_cases()
}

/// One field's value on the wire.
#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

/// A change to one field (`Index` picks among the fields it applies to).
#[derive(Debug, Clone)]
enum Change {
    /// A number (varint or fixed) becomes this one.
    Number(Index, u64),
    /// A text field becomes this text.
    Text(Index, String),
    Drop(Index),
    Repeat(Index),
}

/// A change, made inside the nested messages `path` leads to (as deep as there are any).
#[derive(Debug, Clone)]
struct Edit {
    path: Vec<Index>,
    change: Change,
}

fn edit() -> impl Strategy<Value = Edit> {
    let number = prop_oneof![
        Just(0_u64),
        Just(1),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(i64::MIN as u64),
        Just(i32::MAX as u64),
        Just(u64::from(u32::MAX)),
        any::<u64>(),
    ];
    let change = prop_oneof![
        (any::<Index>(), number).prop_map(|(at, n)| Change::Number(at, n)),
        (any::<Index>(), any::<String>()).prop_map(|(at, text)| Change::Text(at, text)),
        any::<Index>().prop_map(Change::Drop),
        any::<Index>().prop_map(Change::Repeat),
    ];
    (prop::collection::vec(any::<Index>(), 0..3), change)
        .prop_map(|(path, change)| Edit { path, change })
}

/// `seed` changed by a few edits, as whatever still decodes (the seed itself when nothing
/// does).
pub fn mutated<M>(seed: M) -> impl Strategy<Value = M>
where
    M: Message + Default + Clone + std::fmt::Debug + 'static,
{
    let bytes = seed.encode_to_vec();
    prop::collection::vec(edit(), 1..5).prop_map(move |edits| {
        let mut fields = fields(&bytes).unwrap_or_default();
        for edit in &edits {
            apply(&mut fields, &edit.path, &edit.change);
        }
        M::decode(encode(&fields).as_slice()).unwrap_or_else(|_| seed.clone())
    })
}

/// The fields among `fields` that `fits`, one picked by `at`.
fn pick(fields: &[(u64, Wire)], at: &Index, fits: impl Fn(&Wire) -> bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..fields.len()).filter(|&i| fits(&fields[i].1)).collect();
    (!candidates.is_empty()).then(|| candidates[at.index(candidates.len())])
}

fn holds_message(wire: &Wire) -> bool {
    matches!(wire, Wire::Bytes(bytes) if fields_of_message(bytes).is_some())
}

fn apply(fields: &mut Vec<(u64, Wire)>, path: &[Index], change: &Change) {
    if let Some((at, deeper)) = path.split_first()
        && let Some(i) = pick(fields, at, holds_message)
        && let Wire::Bytes(bytes) = &fields[i].1
        && let Some(mut nested) = fields_of_message(bytes)
    {
        apply(&mut nested, deeper, change);
        fields[i].1 = Wire::Bytes(encode(&nested));
        return;
    }
    match change {
        Change::Number(at, n) => {
            if let Some(i) = pick(fields, at, |w| !matches!(w, Wire::Bytes(_))) {
                fields[i].1 = match fields[i].1 {
                    Wire::Fixed64(_) => Wire::Fixed64(*n),
                    Wire::Fixed32(_) => Wire::Fixed32(*n as u32),
                    _ => Wire::Varint(*n),
                };
            }
        }
        Change::Text(at, text) => {
            let text_field = |w: &Wire| matches!(w, Wire::Bytes(_)) && !holds_message(w);
            if let Some(i) = pick(fields, at, text_field) {
                fields[i].1 = Wire::Bytes(text.as_bytes().to_vec());
            }
        }
        Change::Drop(at) => {
            if !fields.is_empty() {
                fields.remove(at.index(fields.len()));
            }
        }
        Change::Repeat(at) => {
            if !fields.is_empty() {
                let field = fields[at.index(fields.len())].clone();
                fields.push(field);
            }
        }
    }
}

/// The fields of a length-delimited value, if it reads as a message (not as text).
fn fields_of_message(bytes: &[u8]) -> Option<Vec<(u64, Wire)>> {
    fields(bytes).filter(|f| !f.is_empty())
}

/// The (field number, value) pairs of an encoded message; `None` if it is not one.
fn fields(mut bytes: &[u8]) -> Option<Vec<(u64, Wire)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (number, wire) = (key >> 3, key & 7);
        if number == 0 {
            return None;
        }
        let value = match wire {
            0 => Wire::Varint(varint(&mut bytes)?),
            1 => {
                let (head, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                Wire::Fixed64(u64::from_le_bytes(*head))
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                if len > bytes.len() {
                    return None;
                }
                let (head, rest) = bytes.split_at(len);
                bytes = rest;
                Wire::Bytes(head.to_vec())
            }
            5 => {
                let (head, rest) = bytes.split_first_chunk::<4>()?;
                bytes = rest;
                Wire::Fixed32(u32::from_le_bytes(*head))
            }
            _ => return None,
        };
        out.push((number, value));
    }
    Some(out)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn encode(fields: &[(u64, Wire)]) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, mut n: u64| {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    };
    for (number, value) in fields {
        match value {
            Wire::Varint(n) => {
                put(&mut out, number << 3);
                put(&mut out, *n);
            }
            Wire::Fixed64(n) => {
                put(&mut out, (number << 3) | 1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Wire::Bytes(b) => {
                put(&mut out, (number << 3) | 2);
                put(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Wire::Fixed32(n) => {
                put(&mut out, (number << 3) | 5);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    out
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

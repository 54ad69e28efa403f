//! Time at the database's precision, and protobuf timestamps to and from chrono.

use chrono::{DateTime, SubsecRound, Utc};

use crate::ServiceError;

/// Now, at PostgreSQL's precision (microseconds), so an answer and a later read agree.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A request's timestamp; out-of-range seconds or nanos are INVALID_ARGUMENT on `field`.
pub fn from_timestamp(
    field: &str,
    t: &prost_types::Timestamp,
) -> Result<DateTime<Utc>, ServiceError> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| ServiceError::invalid(field, "is not a valid timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let at = now();
        assert_eq!(from_timestamp("t", &timestamp(at)).ok(), Some(at));
    }

    #[test]
    fn impossible_timestamps_are_invalid() {
        for (seconds, nanos) in [(0, -1), (0, 1_000_000_000), (i64::MAX, 0)] {
            let t = prost_types::Timestamp { seconds, nanos };
            assert!(from_timestamp("t", &t).is_err(), "{seconds} {nanos}");
        }
    }
}

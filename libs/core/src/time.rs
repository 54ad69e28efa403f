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
    if !(TIMESTAMP_MIN_SECONDS..=TIMESTAMP_MAX_SECONDS).contains(&t.seconds) {
        return Err(ServiceError::invalid(
            field,
            format!(
                "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (the range of \
                 google.protobuf.Timestamp), got seconds = {}",
                t.seconds
            ),
        ));
    }
    u32::try_from(t.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| {
            ServiceError::invalid(
                field,
                format!("nanos must be 0 to 999999999, got {}", t.nanos),
            )
        })
}

/// google.protobuf.Timestamp's range, which PostgreSQL's timestamptz holds too:
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z as seconds since the epoch.
const TIMESTAMP_MIN_SECONDS: i64 = -62_135_596_800;
const TIMESTAMP_MAX_SECONDS: i64 = 253_402_300_799;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let at = now();
        assert_eq!(from_timestamp("t", &timestamp(at)).ok(), Some(at));
    }

    #[test]
    fn the_ends_of_the_timestamp_range_are_valid() {
        for seconds in [-62_135_596_800, 253_402_300_799] {
            let t = prost_types::Timestamp { seconds, nanos: 0 };
            assert!(from_timestamp("t", &t).is_ok(), "{seconds}");
        }
    }

    #[test]
    fn impossible_timestamps_are_invalid() {
        for (seconds, nanos) in [
            (0, -1),
            (0, 1_000_000_000),
            (i64::MAX, 0),
            (-1_099_511_627_776, 0),
            (-62_135_596_801, 0),
            (253_402_300_800, 0),
        ] {
            let t = prost_types::Timestamp { seconds, nanos };
            assert!(from_timestamp("t", &t).is_err(), "{seconds} {nanos}");
        }
    }
}

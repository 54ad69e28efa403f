//! Variance = physical count - system count, where the system count is the on-hand quantity at
//! the moment the shelf was counted, not when the count is applied: a shipment that leaves after
//! the shelf was counted must not look like a loss.
//!
//! The log says what on hand was at any moment: the `on_hand_after` of the last movement at or
//! before it. A movement logged so close to the count that the two cannot be ordered (clocks
//! of scanners and servers differ by a little) makes the count ambiguous: a recount is asked for
//! rather than a guess.

use chrono::{DateTime, Duration, Utc};

/// One movement of the counted (product, warehouse), from stock's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub sequence: i64,
    pub time: DateTime<Utc>,
    pub on_hand_after: i64,
}

/// What on hand was when the shelf was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemCount {
    /// On hand at the moment of counting; `as_of` is the sequence of the movement it follows
    /// (0 when none).
    Known { on_hand: i64, as_of: i64 },
    /// A movement too close to the count to tell whether the counter saw its effect.
    Ambiguous { sequence: i64 },
}

/// On hand at `counted_at`, from the pair's movements (any order) and the on hand before the
/// first of them (`opening`, 0 for a pair whose first movement is in the list). Movements
/// within `uncertainty` of the count make it ambiguous, unless they do not change on hand.
pub fn system_count_at(
    counted_at: DateTime<Utc>,
    movements: &[Movement],
    opening: i64,
    uncertainty: Duration,
) -> SystemCount {
    system_count_during(counted_at, counted_at, movements, opening, uncertainty)
}

/// Like [`system_count_at`] for a count made of several submissions from `first` to `last`:
/// a movement between them (or within `uncertainty` of either) changed the shelf while it was
/// being counted, so the sum cannot be trusted and the count is ambiguous.
pub fn system_count_during(
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    movements: &[Movement],
    opening: i64,
    uncertainty: Duration,
) -> SystemCount {
    let counted_at = last;
    let mut ordered: Vec<&Movement> = movements.iter().collect();
    ordered.sort_by_key(|m| m.sequence);
    let mut on_hand = opening;
    let mut as_of = 0;
    let mut previous = opening;
    for m in ordered {
        let close = m.time >= first - uncertainty && m.time <= last + uncertainty;
        if close && m.on_hand_after != previous {
            return SystemCount::Ambiguous {
                sequence: m.sequence,
            };
        }
        if m.time <= counted_at {
            on_hand = m.on_hand_after;
            as_of = m.sequence;
        }
        previous = m.on_hand_after;
    }
    SystemCount::Known { on_hand, as_of }
}

/// A counted line: what was found against what the system said, in units and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variance {
    pub physical: i64,
    pub system: i64,
    /// physical - system: positive is a gain, negative a loss.
    pub units: i64,
    /// |units| / system, in percent; None when the system said 0 (any find is "infinite").
    pub percent: Option<f64>,
    /// units x unit cost, in micros (0 without a cost).
    pub value_micros: i128,
}

pub fn variance(physical: i64, system: i64, unit_cost_micros: i64) -> Variance {
    let units = physical - system;
    let percent = (system > 0).then(|| units.unsigned_abs() as f64 * 100.0 / system as f64);
    Variance {
        physical,
        system,
        units,
        percent: if units == 0 { Some(0.0) } else { percent },
        value_micros: i128::from(units) * i128::from(unit_cost_micros.max(0)),
    }
}

/// Adds scanned quantities: several submissions for one product add up; a recount replaces
/// everything before it.
pub fn counted(submissions: &[(i64, bool)]) -> i64 {
    let start = submissions
        .iter()
        .rposition(|&(_, recount)| recount)
        .unwrap_or(0);
    submissions[start..].iter().map(|&(q, _)| q).sum()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + seconds, 0)
            .single()
            .unwrap_or_default()
    }

    fn moved(sequence: i64, seconds: i64, on_hand_after: i64) -> Movement {
        Movement {
            sequence,
            time: at(seconds),
            on_hand_after,
        }
    }

    #[test]
    fn a_shipment_after_the_count_is_not_a_variance() {
        // 100 on hand; the shelf is counted at t=60 (100 found); 30 ship at t=120.
        let log = [moved(1, 0, 100), moved(2, 120, 70)];
        let system = system_count_at(at(60), &log, 0, Duration::seconds(2));
        assert_eq!(
            system,
            SystemCount::Known {
                on_hand: 100,
                as_of: 1
            }
        );
        let v = variance(100, 100, 5_000_000);
        assert_eq!(v.units, 0);
    }

    #[test]
    fn a_movement_before_the_count_is_in_the_system_count() {
        let log = [moved(1, 0, 100), moved(2, 30, 70), moved(3, 300, 90)];
        assert_eq!(
            system_count_at(at(60), &log, 0, Duration::seconds(2)),
            SystemCount::Known {
                on_hand: 70,
                as_of: 2
            }
        );
    }

    #[test]
    fn a_movement_at_the_moment_of_counting_asks_for_a_recount() {
        let log = [moved(1, 0, 100), moved(2, 61, 70)];
        assert_eq!(
            system_count_at(at(60), &log, 0, Duration::seconds(2)),
            SystemCount::Ambiguous { sequence: 2 }
        );
        // One that does not change on hand (a reservation) is harmless.
        let reserved = [moved(1, 0, 100), moved(2, 61, 100)];
        assert!(matches!(
            system_count_at(at(60), &reserved, 0, Duration::seconds(2)),
            SystemCount::Known { on_hand: 100, .. }
        ));
    }

    #[test]
    fn no_movement_yet_means_the_opening_quantity() {
        assert_eq!(
            system_count_at(at(60), &[], 42, Duration::seconds(2)),
            SystemCount::Known {
                on_hand: 42,
                as_of: 0
            }
        );
    }

    #[test]
    fn variance_in_units_percent_and_value() {
        let loss = variance(97, 100, 2_500_000);
        assert_eq!(loss.units, -3);
        assert_eq!(loss.percent, Some(3.0));
        assert_eq!(loss.value_micros, -7_500_000);
        let found = variance(4, 0, 1_000_000);
        assert_eq!(found.units, 4);
        assert_eq!(found.percent, None, "against a system count of 0");
        assert_eq!(variance(0, 0, 1).percent, Some(0.0));
    }

    #[test]
    fn submissions_add_up_and_a_recount_replaces_them() {
        assert_eq!(counted(&[(10, false), (5, false)]), 15);
        assert_eq!(
            counted(&[(10, false), (5, false), (12, true), (1, false)]),
            13
        );
        assert_eq!(counted(&[]), 0);
    }
}

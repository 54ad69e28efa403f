//! One counted line judged: its system count at the moment of counting, its variance, and
//! whether it is adjusted at once, waits for a manager, or must be counted again.

use chrono::{DateTime, Duration, Utc};

use super::abc::Class;
use super::tolerance::{Decision, Tolerances, decide};
use super::variance::{Movement, SystemCount, Variance, system_count_during, variance};

/// What the counters found, and when (first and last submission since the last recount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub quantity: i64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// One entry of stock's log for a pair: (sequence, time, on_hand_delta, on_hand_after).
pub type LogEntry = (i64, DateTime<Utc>, i64, i64);

/// The pair's log from shortly before the count to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairLog {
    pub movements: Vec<Movement>,
    /// On hand before the first of `movements`.
    pub opening: i64,
    /// On hand now: after the last of `movements`, or `opening` when there are none.
    pub current: i64,
}

impl PairLog {
    /// From stock's log entries of one pair, and on hand as read when the log holds none.
    pub fn new(mut entries: Vec<LogEntry>, on_hand_now: i64) -> Self {
        entries.sort_by_key(|e| e.0);
        let opening = entries
            .first()
            .map_or(on_hand_now, |&(_, _, delta, after)| after - delta);
        let current = entries
            .last()
            .map_or(on_hand_now, |&(_, _, _, after)| after);
        let movements = entries
            .into_iter()
            .map(|(sequence, time, _, on_hand_after)| Movement {
                sequence,
                time,
                on_hand_after,
            })
            .collect();
        Self {
            movements,
            opening,
            current,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A movement at the moment of counting: the shelf must be counted again.
    Recount { sequence: i64 },
    Evaluated {
        variance: Variance,
        /// On hand now: the adjustment applies only if stock still says so.
        current: i64,
        decision: Decision,
    },
}

pub fn evaluate(
    counted: &Counted,
    log: &PairLog,
    unit_cost_micros: i64,
    class: Class,
    tolerances: &Tolerances,
    uncertainty: Duration,
) -> Outcome {
    match system_count_during(
        counted.first,
        counted.last,
        &log.movements,
        log.opening,
        uncertainty,
    ) {
        SystemCount::Ambiguous { sequence } => Outcome::Recount { sequence },
        SystemCount::Known { on_hand, .. } => {
            let variance = variance(counted.quantity, on_hand, unit_cost_micros);
            Outcome::Evaluated {
                decision: decide(&variance, class, tolerances),
                variance,
                current: log.current,
            }
        }
    }
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

    fn counted(quantity: i64, first: i64, last: i64) -> Counted {
        Counted {
            quantity,
            first: at(first),
            last: at(last),
        }
    }

    #[test]
    fn a_log_without_movements_reads_on_hand_now() {
        let log = PairLog::new(Vec::new(), 40);
        assert_eq!((log.opening, log.current), (40, 40));
        let outcome = evaluate(
            &counted(38, 0, 0),
            &log,
            1_000_000,
            // 5% short: beyond A's 1%.
            Class::A,
            &Tolerances::defaults(1_000_000_000),
            Duration::seconds(2),
        );
        let Outcome::Evaluated {
            variance,
            current,
            decision,
        } = outcome
        else {
            panic!("expected an evaluation, got {outcome:?}");
        };
        assert_eq!((variance.system, variance.units, current), (40, -2, 40));
        assert_eq!(
            decision,
            Decision::NeedsApproval(vec![super::super::tolerance::Exceeds::Percent])
        );
    }

    #[test]
    fn a_shipment_after_the_count_changes_current_not_the_variance() {
        // 100 before; counted 99 at t=10; 30 shipped at t=60 (log says delta -30, after 70).
        let log = PairLog::new(vec![(7, at(60), -30, 70)], 70);
        assert_eq!((log.opening, log.current), (100, 70));
        let outcome = evaluate(
            &counted(99, 10, 10),
            &log,
            0,
            Class::C,
            &Tolerances::defaults(1_000_000_000),
            Duration::seconds(2),
        );
        let Outcome::Evaluated {
            variance,
            current,
            decision,
        } = outcome
        else {
            panic!("expected an evaluation, got {outcome:?}");
        };
        assert_eq!((variance.system, variance.units, current), (100, -1, 70));
        assert_eq!(decision, Decision::AutoApproved);
    }

    #[test]
    fn a_movement_while_the_shelf_was_being_counted_asks_for_a_recount() {
        // Submissions at t=0 and t=100; 5 received at t=50.
        let log = PairLog::new(vec![(3, at(50), 5, 25)], 25);
        assert_eq!(
            evaluate(
                &counted(25, 0, 100),
                &log,
                0,
                Class::A,
                &Tolerances::defaults(0),
                Duration::seconds(2),
            ),
            Outcome::Recount { sequence: 3 }
        );
    }
}

//! Which variances a person must approve: outside the class's tolerance in percent or in value,
//! with separate limits for gains and losses. Defaults after common practice: +-1% for A,
//! +-3% for B, +-5% for C.

use super::abc::Class;
use super::variance::Variance;

/// The limits of one direction (gain or loss) for one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Largest variance, in percent of the system count, approved without a person.
    pub percent: f64,
    /// Largest variance value, in micros, approved without a person.
    pub value_micros: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassLimits {
    pub gain: Limit,
    pub loss: Limit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub a: ClassLimits,
    pub b: ClassLimits,
    pub c: ClassLimits,
}

impl Tolerances {
    /// +-1% / +-3% / +-5%, and `value_micros` either way for every class.
    pub fn defaults(value_micros: i64) -> Self {
        let limits = |percent| ClassLimits {
            gain: Limit {
                percent,
                value_micros,
            },
            loss: Limit {
                percent,
                value_micros,
            },
        };
        Self {
            a: limits(1.0),
            b: limits(3.0),
            c: limits(5.0),
        }
    }

    pub fn of(&self, class: Class) -> ClassLimits {
        match class {
            Class::A => self.a,
            Class::B => self.b,
            Class::C => self.c,
        }
    }
}

/// Why a variance needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeds {
    Percent,
    Value,
    /// Stock found where the system said none: no percent to judge by.
    NothingExpected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The count matches: nothing to adjust.
    NoAdjustment,
    /// Within tolerance: applied without a person.
    AutoApproved,
    NeedsApproval(Vec<Exceeds>),
}

pub fn decide(variance: &Variance, class: Class, tolerances: &Tolerances) -> Decision {
    if variance.units == 0 {
        return Decision::NoAdjustment;
    }
    let limits = tolerances.of(class);
    let limit = if variance.units > 0 {
        limits.gain
    } else {
        limits.loss
    };
    let mut exceeds = Vec::new();
    match variance.percent {
        Some(p) if p > limit.percent => exceeds.push(Exceeds::Percent),
        Some(_) => {}
        None => exceeds.push(Exceeds::NothingExpected),
    }
    if variance.value_micros.unsigned_abs() > u128::from(limit.value_micros.unsigned_abs()) {
        exceeds.push(Exceeds::Value);
    }
    if exceeds.is_empty() {
        Decision::AutoApproved
    } else {
        Decision::NeedsApproval(exceeds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::variance::variance;

    const LIMIT: i64 = 100_000_000;

    #[test]
    fn class_tolerances_in_percent() {
        let t = Tolerances::defaults(LIMIT);
        // 2 of 100 missing: 2% is within C (5%) and B (3%), outside A (1%).
        let v = variance(98, 100, 1_000_000);
        assert_eq!(decide(&v, Class::C, &t), Decision::AutoApproved);
        assert_eq!(decide(&v, Class::B, &t), Decision::AutoApproved);
        assert_eq!(
            decide(&v, Class::A, &t),
            Decision::NeedsApproval(vec![Exceeds::Percent])
        );
        // Exactly at the limit is within it.
        assert_eq!(
            decide(&variance(99, 100, 1), Class::A, &t),
            Decision::AutoApproved
        );
    }

    #[test]
    fn value_limits_catch_small_percentages_of_costly_stock() {
        let t = Tolerances::defaults(LIMIT);
        // 1 of 1000 (0.1%) but worth 500 against a limit of 100.
        let v = variance(999, 1_000, 500_000_000);
        assert_eq!(
            decide(&v, Class::C, &t),
            Decision::NeedsApproval(vec![Exceeds::Value])
        );
    }

    #[test]
    fn gains_and_losses_have_their_own_limits() {
        let mut t = Tolerances::defaults(LIMIT);
        t.c.loss.percent = 1.0;
        assert!(matches!(
            decide(&variance(96, 100, 1), Class::C, &t),
            Decision::NeedsApproval(_)
        ));
        assert_eq!(
            decide(&variance(104, 100, 1), Class::C, &t),
            Decision::AutoApproved
        );
    }

    #[test]
    fn a_match_adjusts_nothing_and_stock_where_none_was_expected_needs_a_person() {
        let t = Tolerances::defaults(LIMIT);
        assert_eq!(
            decide(&variance(50, 50, 1), Class::A, &t),
            Decision::NoAdjustment
        );
        assert_eq!(
            decide(&variance(3, 0, 1), Class::C, &t),
            Decision::NeedsApproval(vec![Exceeds::NothingExpected])
        );
    }
}

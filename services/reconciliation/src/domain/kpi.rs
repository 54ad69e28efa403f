//! The numbers counting produces: shrinkage, record accuracy, and how often and how much each
//! location is adjusted.
//!
//! Shrinkage rate = units lost (net negative adjustments) / units shipped over the same
//! period, and the same in value at cost where unit costs are known (NRF reports shrink as a
//! share of sales; retail typically sees 1-2%).

use std::collections::BTreeMap;

use super::abc::Class;

/// What moved over a period, in one place (or everywhere).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Period {
    pub shipped_units: i64,
    pub shipped_value_micros: i128,
    /// Net of every adjustment: negative is a loss.
    pub adjusted_units: i64,
    pub adjusted_value_micros: i128,
}

impl Period {
    pub fn add(&mut self, other: &Period) {
        self.shipped_units += other.shipped_units;
        self.shipped_value_micros += other.shipped_value_micros;
        self.adjusted_units += other.adjusted_units;
        self.adjusted_value_micros += other.adjusted_value_micros;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shrinkage {
    /// Units lost, net (0 when adjustments gained more than they lost).
    pub lost_units: i64,
    /// lost / shipped; None when nothing shipped.
    pub rate: Option<f64>,
    /// Value lost at cost, and its share of the value shipped.
    pub lost_value_micros: i128,
    pub value_rate: Option<f64>,
}

pub fn shrinkage(period: &Period) -> Shrinkage {
    let lost_units = (-period.adjusted_units).max(0);
    let lost_value_micros = (-period.adjusted_value_micros).max(0);
    Shrinkage {
        lost_units,
        rate: (period.shipped_units > 0).then(|| lost_units as f64 / period.shipped_units as f64),
        lost_value_micros,
        value_rate: (period.shipped_value_micros > 0)
            .then(|| lost_value_micros as f64 / period.shipped_value_micros as f64),
    }
}

/// How one counted line came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub class: Class,
    /// Physical equals system.
    pub exact: bool,
    /// Within the class's tolerance (an exact match is).
    pub within_tolerance: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    pub lines: u64,
    pub exact: f64,
    pub within_tolerance: f64,
}

/// Inventory record accuracy per class, and over all lines (key None).
pub fn accuracy(lines: &[Line]) -> BTreeMap<Option<Class>, Accuracy> {
    let mut counts: BTreeMap<Option<Class>, (u64, u64, u64)> = BTreeMap::new();
    for line in lines {
        for key in [Some(line.class), None] {
            let c = counts.entry(key).or_default();
            c.0 += 1;
            c.1 += u64::from(line.exact);
            c.2 += u64::from(line.exact || line.within_tolerance);
        }
    }
    counts
        .into_iter()
        .map(|(k, (n, exact, within))| {
            (
                k,
                Accuracy {
                    lines: n,
                    exact: exact as f64 / n as f64,
                    within_tolerance: within as f64 / n as f64,
                },
            )
        })
        .collect()
}

/// Adjustments of one location over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Adjustments {
    pub counted_lines: u64,
    pub adjusted_lines: u64,
    /// adjusted / counted.
    pub frequency: f64,
    pub net_units: i64,
    pub absolute_units: i64,
}

/// Per location: how many counted lines were adjusted, and by how much (`lines`: location,
/// units adjusted, 0 for a line that matched).
pub fn adjustments<K: Ord + Clone>(lines: &[(K, i64)]) -> BTreeMap<K, Adjustments> {
    let mut out: BTreeMap<K, Adjustments> = BTreeMap::new();
    for (location, units) in lines {
        let a = out.entry(location.clone()).or_default();
        a.counted_lines += 1;
        if *units != 0 {
            a.adjusted_lines += 1;
            a.net_units += units;
            a.absolute_units += units.abs();
        }
    }
    for a in out.values_mut() {
        a.frequency = a.adjusted_lines as f64 / a.counted_lines.max(1) as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinkage_is_net_loss_over_units_shipped() {
        // 10,000 shipped (at 2.00), adjustments -200 and +40: 160 lost, 1.6%.
        let period = Period {
            shipped_units: 10_000,
            shipped_value_micros: 20_000_000_000,
            adjusted_units: -160,
            adjusted_value_micros: -320_000_000,
        };
        let s = shrinkage(&period);
        assert_eq!(s.lost_units, 160);
        assert_eq!(s.rate, Some(0.016));
        assert_eq!(s.value_rate, Some(0.016));
    }

    #[test]
    fn gains_are_no_shrinkage_and_nothing_shipped_has_no_rate() {
        let gain = shrinkage(&Period {
            shipped_units: 100,
            adjusted_units: 5,
            ..Period::default()
        });
        assert_eq!((gain.lost_units, gain.rate), (0, Some(0.0)));
        assert_eq!(shrinkage(&Period::default()).rate, None);
    }

    #[test]
    fn accuracy_exact_and_within_tolerance_per_class() {
        let line = |class, exact, within_tolerance| Line {
            class,
            exact,
            within_tolerance,
        };
        let lines = [
            line(Class::A, true, true),
            line(Class::A, false, true),
            line(Class::A, false, false),
            line(Class::A, true, true),
            line(Class::C, false, true),
        ];
        let report = accuracy(&lines);
        let a = report[&Some(Class::A)];
        assert_eq!((a.lines, a.exact, a.within_tolerance), (4, 0.5, 0.75));
        let all = report[&None];
        assert_eq!((all.lines, all.exact, all.within_tolerance), (5, 0.4, 0.8));
        assert!(!report.contains_key(&Some(Class::B)));
    }

    #[test]
    fn adjustment_frequency_and_size_per_location() {
        let lines = [("A-01", 0), ("A-01", -3), ("A-01", 2), ("B-07", 0)];
        let report = adjustments(&lines);
        let a = report["A-01"];
        assert_eq!((a.counted_lines, a.adjusted_lines), (3, 2));
        assert!((a.frequency - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((a.net_units, a.absolute_units), (-1, 5));
        assert_eq!(report["B-07"].frequency, 0.0);
    }
}

//! What to count next: A items at least 4 times a year, B twice, C once; a location whose
//! counts keep finding variances is counted twice as often; anything never counted is due at
//! once. Each entry says why it is due.

use chrono::{Duration, NaiveDate};

use super::abc::Class;

/// Counts a year by class.
pub fn counts_per_year(class: Class) -> u32 {
    match class {
        Class::A => 4,
        Class::B => 2,
        Class::C => 1,
    }
}

/// Share of counted lines with a variance above which a location is counted twice as often.
pub const HIGH_VARIANCE: f64 = 0.10;

/// One stocked (product, location) as the schedule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<K> {
    pub key: K,
    pub class: Class,
    pub last_counted: Option<NaiveDate>,
    /// Share of the location's recent counted lines that had a variance.
    pub location_variance: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Due<K> {
    pub key: K,
    pub due: NaiveDate,
    pub counts_per_year: u32,
    pub reason: String,
}

/// Every item with its due date, soonest first (ties: A before B before C, then the
/// location with more variance); `today` is when never-counted items are due.
pub fn schedule<K: Clone>(items: &[Item<K>], today: NaiveDate) -> Vec<Due<K>> {
    let mut due: Vec<(Due<K>, Class, f64)> = items
        .iter()
        .map(|item| {
            let base = counts_per_year(item.class);
            let high = item.location_variance > HIGH_VARIANCE;
            let per_year = if high { base * 2 } else { base };
            let interval = Duration::days(365 / i64::from(per_year));
            let (date, why) = match item.last_counted {
                None => (today, "never counted".to_owned()),
                Some(last) => (last + interval, format!("last counted {last}")),
            };
            let mut reason = format!(
                "class {}: {per_year} counts a year; {why}",
                item.class.as_str()
            );
            if high {
                reason.push_str(&format!(
                    "; location had variances on {:.0}% of counted lines, so counted twice as often",
                    item.location_variance * 100.0
                ));
            }
            (
                Due {
                    key: item.key.clone(),
                    due: date,
                    counts_per_year: per_year,
                    reason,
                },
                item.class,
                item.location_variance,
            )
        })
        .collect();
    due.sort_by(|a, b| {
        a.0.due
            .cmp(&b.0.due)
            .then(a.1.cmp(&b.1))
            .then(b.2.total_cmp(&a.2))
    });
    due.into_iter().map(|(d, _, _)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap_or_default()
    }

    fn item(
        key: &'static str,
        class: Class,
        last: Option<NaiveDate>,
        variance: f64,
    ) -> Item<&'static str> {
        Item {
            key,
            class,
            last_counted: last,
            location_variance: variance,
        }
    }

    #[test]
    fn a_items_come_back_four_times_a_year_and_c_items_once() {
        let due = schedule(
            &[
                item("c", Class::C, Some(day(1, 1)), 0.0),
                item("a", Class::A, Some(day(1, 1)), 0.0),
                item("b", Class::B, Some(day(1, 1)), 0.0),
            ],
            day(6, 1),
        );
        let dates: Vec<(&str, NaiveDate, u32)> = due
            .iter()
            .map(|d| (d.key, d.due, d.counts_per_year))
            .collect();
        // 365/4 = 91 days, 365/2 = 182, 365.
        assert_eq!(
            dates,
            [
                ("a", day(4, 2), 4),
                ("b", day(7, 2), 2),
                (
                    "c",
                    NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default(),
                    1
                )
            ]
        );
        assert!(due[0].reason.contains("class A: 4 counts a year"));
    }

    #[test]
    fn a_high_variance_location_is_counted_earlier() {
        let due = schedule(
            &[
                item("calm", Class::B, Some(day(1, 1)), 0.02),
                item("noisy", Class::B, Some(day(1, 1)), 0.25),
            ],
            day(2, 1),
        );
        assert_eq!(due[0].key, "noisy");
        assert_eq!(due[0].counts_per_year, 4);
        assert!(due[0].reason.contains("25% of counted lines"));
        assert!(due[0].due < due[1].due);
    }

    #[test]
    fn never_counted_is_due_today_and_every_item_is_scheduled_within_a_year() {
        let items: Vec<Item<&str>> = vec![
            item("new", Class::C, None, 0.0),
            item("old", Class::C, Some(day(1, 1)), 0.0),
        ];
        let due = schedule(&items, day(3, 1));
        assert_eq!(due[0].key, "new");
        assert_eq!(due[0].due, day(3, 1));
        assert!(due[0].reason.contains("never counted"));
        for d in &due {
            assert!(d.counts_per_year >= 1);
        }
        assert!(due[1].due <= day(1, 1) + Duration::days(365));
    }
}

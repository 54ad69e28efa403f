//! ABC classification by movement: products ranked by what moved (units shipped times unit
//! cost, or units where no cost is known); A holds the first 80% of the total, B the next
//! 15%, C the rest and everything that did not move.

/// A product's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    A,
    B,
    C,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::A => "A",
            Class::B => "B",
            Class::C => "C",
        }
    }
}

/// Cumulative shares closing classes A and B.
pub const A_SHARE: f64 = 0.80;
pub const B_SHARE: f64 = 0.95;

/// Classes of `movement` (key, value moved), in the same order. A product is in the class
/// where its share of the total starts: the one that crosses 80% is still A.
pub fn classify<K: Clone>(movement: &[(K, f64)]) -> Vec<(K, Class)> {
    let total: f64 = movement.iter().map(|(_, v)| v.max(0.0)).sum();
    let mut order: Vec<usize> = (0..movement.len()).collect();
    order.sort_by(|&a, &b| movement[b].1.total_cmp(&movement[a].1));
    let mut classes = vec![Class::C; movement.len()];
    let mut before = 0.0;
    for i in order {
        let value = movement[i].1.max(0.0);
        if total <= 0.0 || value <= 0.0 {
            break;
        }
        let share = before / total;
        classes[i] = if share < A_SHARE {
            Class::A
        } else if share < B_SHARE {
            Class::B
        } else {
            Class::C
        };
        before += value;
    }
    movement
        .iter()
        .zip(classes)
        .map(|((k, _), c)| (k.clone(), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_few_that_move_most_are_a() {
        // Total 1000: p1 600 (0-60%) A, p2 250 (60-85%) A (starts below 80%),
        // p3 100 (85-95%) B, p4 40 (95-99%) C, p5 10 C, p6 0 C.
        let moved = [
            ("p4", 40.0),
            ("p1", 600.0),
            ("p6", 0.0),
            ("p3", 100.0),
            ("p2", 250.0),
            ("p5", 10.0),
        ];
        let classes = classify(&moved);
        let of = |k: &str| classes.iter().find(|(p, _)| *p == k).map(|(_, c)| *c);
        assert_eq!(of("p1"), Some(Class::A));
        assert_eq!(of("p2"), Some(Class::A));
        assert_eq!(of("p3"), Some(Class::B));
        assert_eq!(of("p4"), Some(Class::C));
        assert_eq!(of("p5"), Some(Class::C));
        assert_eq!(of("p6"), Some(Class::C));
        assert_eq!(classes[0].0, "p4", "same order as given");
    }

    #[test]
    fn nothing_moved_means_everything_is_c() {
        let classes = classify(&[("a", 0.0), ("b", 0.0)]);
        assert!(classes.iter().all(|(_, c)| *c == Class::C));
        assert!(classify::<&str>(&[]).is_empty());
    }
}

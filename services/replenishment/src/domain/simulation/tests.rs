//! The known failures of the textbook formula, kept as regression tests: under daily review
//! with Poisson demand, and with steady demand, the normal formula misses a 95% cycle service
//! target by far; the reorder point computed from the history does not.

use super::*;
use crate::domain::policy::{self, Defaults, Economics, LeadTime};

/// A seeded source of uniforms (xorshift64).
fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Cycle service level of (ours, textbook) pooled over `runs` seeded years, each policy
/// computed from its own year of history.
fn pooled_levels(demand: Demand, lead: Lead, runs: u64) -> (f64, f64) {
    let mut ours = Outcome::default();
    let mut textbook = Outcome::default();
    for run in 0..runs {
        let mut uniform = uniforms(0x5EED + run * 7919);
        let history: Vec<i64> = (0..365)
            .map(|_| draw_demand(&mut uniform, demand))
            .collect();
        let seen: Vec<u32> = (0..12).map(|_| draw_lead(&mut uniform, lead)).collect();
        let economics = Economics {
            service_level: 0.95,
            ordering_cost_micros: 5_000_000,
            holding_rate: 0.25,
            unit_cost_micros: 10_000_000,
            minimum_order: 1,
            pack_multiple: 1,
        };
        let computed = policy::compute(
            &history,
            &LeadTime::observed(&seen, 7),
            &economics,
            Defaults {
                reorder_point: 0,
                reorder_quantity: 1,
            },
        );
        let future: Vec<i64> = (0..365)
            .map(|_| draw_demand(&mut uniform, demand))
            .collect();
        let leads: Vec<u32> = (0..365).map(|_| draw_lead(&mut uniform, lead)).collect();
        let q = computed.reorder_quantity;
        for (total, point) in [
            (&mut ours, computed.reorder_point),
            (&mut textbook, computed.textbook_reorder_point),
        ] {
            let o = simulate(point, q, &future, &leads);
            total.cycles += o.cycles;
            total.stockout_cycles += o.stockout_cycles;
        }
    }
    (
        ours.cycle_service_level().unwrap_or(0.0),
        textbook.cycle_service_level().unwrap_or(0.0),
    )
}

#[test]
fn poisson_demand_under_daily_review_defeats_the_textbook_but_not_the_history() {
    let (ours, textbook) = pooled_levels(Demand::Poisson(2.0), Lead::Fixed(7), 30);
    assert!(textbook < 0.92, "textbook reached {textbook}");
    assert!(ours >= 0.93, "ours reached {ours}");
}

#[test]
fn steady_fast_demand_under_daily_review_defeats_the_textbook_but_not_the_history() {
    let demand = Demand::Normal {
        mean: 50.0,
        sd: 15.0,
    };
    let (ours, textbook) = pooled_levels(demand, Lead::Fixed(5), 30);
    assert!(textbook < 0.85, "textbook reached {textbook}");
    assert!((0.93..=0.97).contains(&ours), "ours reached {ours}");
}

#[test]
fn intermittent_demand_meets_the_target() {
    let demand = Demand::Intermittent { p: 0.2, extra: 4.0 };
    let (ours, _) = pooled_levels(demand, Lead::Fixed(7), 30);
    assert!(ours >= 0.93, "ours reached {ours}");
}

#[test]
fn a_po_arrives_after_its_lead_time_and_a_short_cycle_is_counted() {
    // Point 10, quantity 20, 4 a day, lead time 2: start 30; the end of day 5 leaves 6 (< 10),
    // a PO is placed and arrives before day 8's demand; days 6 and 7 need 8 of the 6 left.
    let demand = [4; 9];
    let outcome = simulate(10, 20, &demand, &[2]);
    assert_eq!(outcome.cycles, 1);
    assert_eq!(outcome.stockout_cycles, 1);
    assert_eq!(outcome.demanded, 36);
    assert_eq!(outcome.served, 34);
    assert_eq!(outcome.cycle_service_level(), Some(0.0));
}

#[test]
fn draws_follow_their_shapes() {
    let mut uniform = uniforms(42);
    let n = 20_000;
    let poisson_mean = (0..n)
        .map(|_| draw_demand(&mut uniform, Demand::Poisson(3.0)))
        .sum::<i64>() as f64
        / n as f64;
    assert!((poisson_mean - 3.0).abs() < 0.1, "{poisson_mean}");
    let zero_days = (0..n)
        .filter(|_| {
            draw_demand(
                &mut uniform,
                Demand::Intermittent {
                    p: 0.25,
                    extra: 1.0,
                },
            ) == 0
        })
        .count() as f64
        / n as f64;
    assert!((zero_days - 0.75).abs() < 0.02, "{zero_days}");
    let leads: Vec<u32> = (0..1000)
        .map(|_| draw_lead(&mut uniform, Lead::TwoPoint(5, 10)))
        .collect();
    assert!(leads.iter().all(|&l| l == 5 || l == 10));
    assert!(leads.contains(&5) && leads.contains(&10));
}

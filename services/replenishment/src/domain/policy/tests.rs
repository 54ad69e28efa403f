//! Values worked by hand (the arithmetic is in each test's comment).

use super::*;

fn economics() -> Economics {
    Economics {
        service_level: 0.95,
        ordering_cost_micros: 50_000_000,
        holding_rate: 0.25,
        unit_cost_micros: 10_000_000,
        minimum_order: 1,
        pack_multiple: 1,
    }
}

const DEFAULTS: Defaults = Defaults {
    reorder_point: 40,
    reorder_quantity: 100,
};

#[test]
fn inverse_normal_matches_the_tables() {
    assert!(inverse_normal(0.5).abs() < 1e-9);
    assert!((inverse_normal(0.95) - 1.644_853_6).abs() < 1e-6);
    assert!((inverse_normal(0.975) - 1.959_964).abs() < 1e-6);
    assert!((inverse_normal(0.01) + 2.326_347_9).abs() < 1e-6);
    assert!((normal_cdf(1.644_853_6) - 0.95).abs() < 1e-6);
}

#[test]
fn textbook_point_adds_z_sigma_to_the_mean_lead_time_demand() {
    // d = 10, sigma_d = 3, L = 4: sigma = sqrt(4 * 9) = 6; 40 + 1.6449 * 6 = 49.87 -> 50.
    let demand = DemandStats {
        days: 100,
        mean: 10.0,
        std_dev: 3.0,
        adi: 1.0,
        cv2: 0.09,
    };
    assert_eq!(textbook_reorder_point(&demand, 4.0, 0.0, 0.95), 50);
    // Lead time 5 or 10 days: mean 7.5, sd 3.5355; sigma = sqrt(7.5*9 + 100*12.5) = 36.30;
    // 75 + 1.6449 * 36.30 = 134.7 -> 135.
    let lead = LeadTime::observed(&[5, 10], 7);
    assert_eq!(
        textbook_reorder_point(&demand, lead.mean(), lead.std_dev(), 0.95),
        135
    );
}

#[test]
fn eoq_is_rounded_up_to_the_pack_and_the_minimum_order() {
    // D = 3650, K = 50, h = 10 * 0.25 = 2.5: sqrt(2 * 3650 * 50 / 2.5) = sqrt(146000) = 382.1.
    let e = economics();
    let q = eoq(3650.0, &e);
    assert!((q - 382.099).abs() < 0.01, "{q}");
    assert_eq!(round_order(q, &e), 383);
    let packs = Economics {
        pack_multiple: 12,
        ..e
    };
    assert_eq!(round_order(q, &packs), 384);
    let minimum = Economics {
        pack_multiple: 12,
        minimum_order: 500,
        ..e
    };
    assert_eq!(round_order(q, &minimum), 504);
}

#[test]
fn eoq_without_demand_or_cost_is_zero() {
    let e = economics();
    assert_eq!(eoq(0.0, &e), 0.0);
    let free = Economics {
        unit_cost_micros: 0,
        ..e
    };
    assert_eq!(eoq(1000.0, &free), 0.0);
}

#[test]
fn no_history_yet_uses_the_product_defaults() {
    let computed = compute(&[3; 10], &LeadTime::fixed(5), &economics(), DEFAULTS);
    assert_eq!(computed.method, Method::ProductDefaults);
    assert_eq!(computed.reorder_point, 40);
    assert_eq!(computed.reorder_quantity, 100);
    let none = compute(&[], &LeadTime::fixed(5), &economics(), DEFAULTS);
    assert_eq!(none.method, Method::ProductDefaults);
    assert_eq!(none.demand.mean, 0.0);
}

#[test]
fn zero_variability_covers_the_undershoot_the_textbook_forgets() {
    // 5 a day, lead time 3: every window is 15. Undershoot below the point is 0..4, each
    // 1/5. P(15 + U <= x) >= 0.95 first at x = 19, so the point is 20: the scan orders with
    // 15..19 left, enough for 15. The textbook says 15 and runs out in every cycle.
    let computed = compute(&[5; 60], &LeadTime::fixed(3), &economics(), DEFAULTS);
    assert_eq!(computed.method, Method::Bootstrap);
    assert_eq!(computed.reorder_point, 20);
    assert_eq!(computed.textbook_reorder_point, 15);
    assert_eq!(computed.safety_stock, 5);
    assert_eq!(computed.demand.std_dev, 0.0);
}

#[test]
fn lead_time_zero_needs_only_the_undershoot() {
    // Goods arrive the day they are ordered: only the day's overshoot below the point counts.
    let computed = compute(&[5; 60], &LeadTime::fixed(0), &economics(), DEFAULTS);
    assert_eq!(computed.reorder_point, 5);
    assert_eq!(computed.textbook_reorder_point, 0);
}

#[test]
fn intermittent_demand_takes_the_quantile_of_the_bootstrapped_lead_time_demand() {
    // 10 units every 4th day for 100 days: ADI 4, P(D = 10) = 1/4. Two days' demand W is 0,
    // 10 or 20 with 9/16, 6/16, 1/16. Undershoot: P(D > k) = 1/4 for k < 10, E[D] = 2.5, so U
    // is uniform on 0..9. At a 93% target: P(W + U <= 18) = 9/16 + 6/16 * 0.9 = 0.9;
    // P(W + U <= 19) = 9/16 + 6/16 = 0.9375: the point is 20.
    let daily: Vec<i64> = (0..100).map(|i| if i % 4 == 0 { 10 } else { 0 }).collect();
    let target = Economics {
        service_level: 0.93,
        ..economics()
    };
    let computed = compute(&daily, &LeadTime::fixed(2), &target, DEFAULTS);
    assert!(computed.demand.is_intermittent());
    assert_eq!(computed.demand.adi, 4.0);
    assert_eq!(computed.method, Method::Bootstrap);
    assert_eq!(computed.reorder_point, 20);
}

#[test]
fn a_two_point_lead_time_weighs_both_lead_times_equally() {
    // 10 a day, lead time 5 or 10: windows 50 (56 of them) and 100 (51), resampled to 56
    // each, so W is 50 or 100 with 1/2 each; U uniform on 0..9. P(W + U <= 107) = 0.9,
    // P(W + U <= 108) = 0.95: the point is 109.
    let computed = compute(
        &[10; 60],
        &LeadTime::observed(&[5, 10], 7),
        &economics(),
        DEFAULTS,
    );
    assert_eq!(computed.method, Method::Bootstrap);
    assert_eq!(computed.reorder_point, 109);
    assert_eq!(computed.lead_time_days, 7.5);
}

#[test]
fn four_weeks_of_history_are_enough_for_a_long_lead_time() {
    // 28 days against a 10-day lead time: the bootstrap draws 10 of the 28 days, where
    // disjoint 10-day windows would be 2. Mean 10, so lead-time demand 100 plus safety.
    let daily: Vec<i64> = (0..28).map(|i| 8 + (i % 5)).collect();
    let computed = compute(&daily, &LeadTime::fixed(10), &economics(), DEFAULTS);
    assert_eq!(computed.method, Method::Bootstrap);
    assert!(computed.reorder_point > 100);
    assert!((computed.reorder_point - computed.textbook_reorder_point).abs() <= 12);
}

#[test]
fn a_fast_mover_is_grouped_into_bins_without_moving_the_point_much() {
    // 2,000 a day, sd about 577 (uniform 1,000..3,000), lead time 30: grouped into bins of
    // 47 units. The normal formula is a fair reference here: lead-time demand is a sum of 30
    // independent days (mean 60,000, sd 3,162).
    let daily: Vec<i64> = (0..365).map(|i| 1_000 + (i * 7_919 % 2_001)).collect();
    let computed = compute(&daily, &LeadTime::fixed(30), &economics(), DEFAULTS);
    let stats = computed.demand;
    let sigma = (30.0 * stats.std_dev.powi(2)).sqrt();
    let normal = stats.mean * 30.0 + 1.644_85 * sigma;
    // Ours adds the undershoot (here about 1,100 units on average).
    let gap = computed.reorder_point as f64 - normal;
    assert!(
        (0.0..2_500.0).contains(&gap),
        "point {} normal {normal}",
        computed.reorder_point
    );
}

#[test]
fn a_higher_target_never_lowers_the_point() {
    let daily: Vec<i64> = (0..200).map(|i| (i * 7919 % 13) as i64).collect();
    let mut last = 0;
    for level in [0.5, 0.8, 0.9, 0.95, 0.99, 0.999] {
        let e = Economics {
            service_level: level,
            ..economics()
        };
        let point = compute(&daily, &LeadTime::fixed(4), &e, DEFAULTS).reorder_point;
        assert!(point >= last, "{level}: {point} < {last}");
        last = point;
    }
}

#[test]
fn demand_stats_of_a_series() {
    let stats = DemandStats::of(&[0, 4, 0, 8]);
    assert_eq!(stats.mean, 3.0);
    // sample variance: (9 + 1 + 9 + 25) / 3 = 14.667
    assert!((stats.std_dev - 14.666_667_f64.sqrt()).abs() < 1e-6);
    assert_eq!(stats.adi, 2.0);
    // non-zero demands 4 and 8: mean 6, variance 4, cv^2 = 4 / 36
    assert!((stats.cv2 - 4.0 / 36.0).abs() < 1e-12);
}

#[test]
fn the_reorder_quantity_covers_at_least_the_reorder_point() {
    // 50 a day for a year, lead time 5: the point is above 250. Ordering is cheap (K = 1), so
    // EOQ is sqrt(2 * 18250 * 1 / 2.5) = 121: one such PO would arrive to a position still
    // below the point. The quantity is raised to the point.
    let cheap = Economics {
        ordering_cost_micros: 1_000_000,
        ..economics()
    };
    let computed = compute(&[50; 365], &LeadTime::fixed(5), &cheap, DEFAULTS);
    assert!((computed.eoq - 120.83).abs() < 0.01, "{}", computed.eoq);
    assert!(computed.reorder_point > 250);
    assert_eq!(computed.reorder_quantity, computed.reorder_point);
}

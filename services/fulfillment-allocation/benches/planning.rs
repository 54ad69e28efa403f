//! How long planning alone takes (criterion): a 20-line order over 500 warehouses, in the
//! two shapes that matter: one warehouse can ship it all (the common case), and none can
//! (pairs, then a greedy cover).
//!
//!   cargo bench -p fulfillment-allocation-service --bench planning

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use fulfillment_allocation_service::domain::geo::GeoPoint;
use fulfillment_allocation_service::domain::planner::{
    self, CostModel, Line, Options, Problem, Site,
};
use uuid::Uuid;

/// A seeded linear congruential sequence in [0, 1): enough to scatter warehouses.
struct Scatter(u64);

impl Scatter {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 500 warehouses over Europe, 20 lines; each warehouse holds each product with
/// probability `density` (a full house on the nearest one when `one_can_ship_all`).
fn problem(density: f64, one_can_ship_all: bool) -> Problem {
    let mut scatter = Scatter(7);
    let sites: Vec<Site> = (0..500)
        .map(|i| Site {
            warehouse_id: Uuid::from_u128(i + 1),
            location: Some(GeoPoint {
                latitude: 40.0 + 20.0 * scatter.unit(),
                longitude: -5.0 + 30.0 * scatter.unit(),
            }),
            paused: false,
            capacity: Some(1_000),
            workload: (scatter.unit() * 900.0) as i64,
        })
        .collect();
    let lines: Vec<Line> = (0..20)
        .map(|i| Line {
            line_id: i.to_string(),
            product_id: Uuid::from_u128(10_000 + i),
            quantity: 2,
        })
        .collect();
    let mut available = BTreeMap::new();
    for (s, site) in sites.iter().enumerate() {
        for line in &lines {
            if scatter.unit() < density || (one_can_ship_all && s == 250) {
                available.insert((line.product_id, site.warehouse_id), 5);
            }
        }
    }
    Problem {
        destination: GeoPoint {
            latitude: 50.0,
            longitude: 10.0,
        },
        lines,
        sites,
        available,
        options: Options::default(),
        costs: CostModel::default(),
    }
}

fn planning(c: &mut Criterion) {
    let single = problem(0.3, true);
    c.bench_function("plan 20 lines over 500 warehouses, one can ship all", |b| {
        b.iter(|| planner::plan(std::hint::black_box(&single)))
    });
    let split = problem(0.3, false);
    c.bench_function(
        "plan 20 lines over 500 warehouses, none can ship all",
        |b| b.iter(|| planner::plan(std::hint::black_box(&split))),
    );
}

criterion_group!(benches, planning);
criterion_main!(benches);

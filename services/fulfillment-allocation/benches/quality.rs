//! Decision quality of the allocation planner, against an exact solver, on a seeded stream of
//! random orders (several lines, warehouses with capacities, paused ones and gaps in stock):
//!
//!   cargo bench -p fulfillment-allocation-service --bench quality -- [--orders N] [--seed S]
//!
//! For every order it runs the heuristic alone, the production planner (exact for small
//! orders), the exact solver and the nearest-warehouse-per-line baseline; checks every plan
//! against stock, capacity and pauses (a violation exits non-zero); and reports the cost gap
//! to the exact optimum, how often each is exactly optimal, and how often each splits.

use std::collections::BTreeMap;
use std::process::ExitCode;

use fulfillment_allocation_service::domain::geo::GeoPoint;
use fulfillment_allocation_service::domain::planner::{
    self, CostModel, EXACT_NODE_LIMIT, Line, Options, Plan, Problem, Site,
};
use uuid::Uuid;

/// SplitMix64: a small, seeded, reproducible generator.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
}

/// A point in a box the size of central Europe.
fn somewhere(random: &mut Random) -> GeoPoint {
    GeoPoint {
        latitude: 44.0 + 12.0 * random.unit(),
        longitude: -2.0 + 22.0 * random.unit(),
    }
}

fn instance(random: &mut Random) -> Problem {
    let warehouses = random.range(3, 10) as usize;
    let sites: Vec<Site> = (0..warehouses)
        .map(|_| {
            let capacity = random.chance(0.5).then(|| random.range(5, 30));
            Site {
                warehouse_id: random.uuid(),
                location: Some(somewhere(random)),
                paused: random.chance(0.08),
                capacity,
                workload: capacity.map_or(random.range(0, 50), |c| random.range(0, c)),
            }
        })
        .collect();
    let lines: Vec<Line> = (0..random.range(1, 6))
        .map(|i| Line {
            line_id: i.to_string(),
            product_id: random.uuid(),
            quantity: random.range(1, 5),
        })
        .collect();
    let mut available = BTreeMap::new();
    for line in &lines {
        for site in &sites {
            if random.chance(0.55) {
                available.insert((line.product_id, site.warehouse_id), random.range(0, 12));
            }
        }
    }
    Problem {
        destination: somewhere(random),
        lines,
        sites,
        available,
        options: Options::default(),
        costs: CostModel::default(),
    }
}

/// Stock, capacity and pauses respected; returns what was violated.
fn violations(problem: &Problem, plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used: BTreeMap<(Uuid, Uuid), i64> = BTreeMap::new();
    let mut lines_at: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for part in &plan.parts {
        let site = &problem.sites[part.site];
        let product = problem.lines[part.line].product_id;
        *used.entry((product, site.warehouse_id)).or_default() += part.quantity;
        let lines = lines_at.entry(part.site).or_default();
        if !lines.contains(&part.line) {
            lines.push(part.line);
        }
        if site.paused {
            problems.push(format!("paused warehouse {} ships", part.site));
        }
    }
    for (key, units) in &used {
        let available = problem.available.get(key).copied().unwrap_or(0);
        if *units > available {
            problems.push(format!(
                "{units} units taken where {available} are available"
            ));
        }
    }
    for (site, lines) in &lines_at {
        let s = &problem.sites[*site];
        if let Some(capacity) = s.capacity
            && s.workload + lines.len() as i64 > capacity
        {
            problems.push(format!("warehouse {site} over capacity"));
        }
    }
    for (line, l) in problem.lines.iter().enumerate() {
        let shipped: i64 = plan
            .parts
            .iter()
            .filter(|p| p.line == line)
            .map(|p| p.quantity)
            .sum();
        if shipped > l.quantity {
            problems.push(format!("line {line} over-shipped"));
        }
    }
    problems
}

#[derive(Default)]
struct Tally {
    gaps: Vec<f64>,
    /// Gap on distance and workload alone, where the shipment counts are equal.
    variable_gaps: Vec<f64>,
    optimal: usize,
    splits: usize,
    extra_shipments: usize,
}

impl Tally {
    fn add(&mut self, plan: &Plan, best: &Plan, per_shipment: f64) {
        let gap = (plan.cost - best.cost) / best.cost;
        self.gaps.push(gap.max(0.0));
        if gap.abs() < 1e-9 {
            self.optimal += 1;
        }
        let (n, m) = (plan.shipments().len(), best.shipments().len());
        if n > 1 {
            self.splits += 1;
        }
        if n > m {
            self.extra_shipments += 1;
        }
        if n == m {
            let variable = |p: &Plan| p.cost - per_shipment * p.shipments().len() as f64;
            let base = variable(best).max(1e-9);
            self.variable_gaps
                .push(((variable(plan) - variable(best)) / base).max(0.0));
        }
    }

    fn row(&mut self, name: &str, total: usize) {
        let pct = |n: usize| 100.0 * n as f64 / total.max(1) as f64;
        let mean = |v: &[f64]| 100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64;
        let p95 = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(((v.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
                .map_or(0.0, |g| 100.0 * g)
        };
        println!(
            "{name:<22} {:>8.2} {:>8.2} {:>9.1} {:>9.1} {:>12.2} {:>12.2} {:>9.1}",
            mean(&self.gaps),
            p95(&mut self.gaps),
            pct(self.optimal),
            pct(self.splits),
            mean(&self.variable_gaps),
            p95(&mut self.variable_gaps),
            pct(self.extra_shipments),
        );
    }
}

fn main() -> ExitCode {
    let mut orders = 2000_usize;
    let mut seed = 2026_u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--orders" => orders = args.next().and_then(|v| v.parse().ok()).unwrap_or(orders),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            _ => {} // cargo bench passes --bench
        }
    }
    let mut random = Random(seed);
    let (mut heuristic, mut production, mut nearest, mut exact_tally) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    let (mut compared, mut unsolvable, mut single_possible, mut violated) = (0, 0, 0, 0);
    let mut generated = 0;
    while compared < orders {
        generated += 1;
        let problem = instance(&mut random);
        let Some(best) = planner::exact(&problem, EXACT_NODE_LIMIT * 10) else {
            // No plan ships every line whole: the exact solver has nothing to compare with.
            unsolvable += 1;
            continue;
        };
        compared += 1;
        let plans = [
            planner::heuristic(&problem),
            planner::plan(&problem),
            planner::nearest_per_line(&problem),
        ];
        for plan in plans.iter().chain(std::iter::once(&best)) {
            let found = violations(&problem, plan);
            if !found.is_empty() {
                eprintln!("violation ({:?}): {found:?}", plan.method);
                violated += 1;
            }
        }
        if best.shipments().len() == 1 {
            single_possible += 1;
            for plan in &plans[..2] {
                if plan.shipments().len() != 1 {
                    eprintln!("split although one warehouse can ship everything");
                    violated += 1;
                }
            }
        }
        let per_shipment = problem.costs.per_shipment;
        heuristic.add(&plans[0], &best, per_shipment);
        production.add(&plans[1], &best, per_shipment);
        nearest.add(&plans[2], &best, per_shipment);
        exact_tally.add(&best, &best, per_shipment);
    }
    println!(
        "orders compared: {compared} (seed {seed}; {generated} generated, {unsolvable} with a line no warehouse holds whole, left out); one warehouse could ship all: {single_possible}"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "planner", "gap %", "p95 %", "optimal%", "split %", "var gap %", "var p95 %", "extra %"
    );
    heuristic.row("heuristic alone", compared);
    production.row("planner (exact <= 8)", compared);
    nearest.row("nearest per line", compared);
    exact_tally.row("exact", compared);
    println!("violations: {violated}");
    if violated > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

//! Decision quality of the reorder point: our policy (the quantile of the lead-time demand the
//! history shows, plus the undershoot) beside the textbook normal formula, simulated.
//!
//! ```sh
//! cargo bench -p replenishment-service --bench simulation -- --json target/simulation.json
//! ```
//!
//! Per demand shape, each of `--replications` (30) seeded runs draws a year of history, computes
//! both policies from it (same reorder quantity, EOQ), then simulates the next 365 days with the
//! same demand and lead times for both: demand is served from on hand (what cannot be served
//! is lost: stock never goes negative), and at the end of each day, if no PO is open and
//! available is below the reorder point, a PO for the reorder quantity is placed; it arrives L
//! days later, before the next day's demand. A cycle (placement to arrival) is a stockout
//! cycle when any demand in it went unserved.
//!
//! Reported per shape and policy: cycle service level (mean of the runs, 95% confidence
//! interval), fill rate (units served / demanded), average on hand, cycles. The bar (see
//! ../shared/guide/quality-targets.md): fast movers within +-2 points of the 95% target, slow
//! movers between the target and 5 points above it. Exits non-zero when our policy misses it.

use std::time::Instant;

use inventory_benchkit::{Rng, workspace_path};
use replenishment_service::domain::policy::{self, Defaults, Economics, LeadTime};
use replenishment_service::domain::simulation::{
    Demand, Lead, Outcome, draw_demand, draw_lead, simulate,
};

const TARGET: f64 = 0.95;
const HISTORY_DAYS: usize = 365;
const SIMULATED_DAYS: usize = 365;
/// Lead times a supplier has shown before the simulated year (random lead-time shapes).
const OBSERVED_LEAD_TIMES: usize = 12;

#[derive(Clone, Copy, PartialEq)]
enum Mover {
    Fast,
    Slow,
}

struct Shape {
    name: &'static str,
    mover: Mover,
    demand: Demand,
    lead: Lead,
    ordering_cost_micros: i64,
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "steady normal (50/day, sd 15, L 5)",
            mover: Mover::Fast,
            demand: Demand::Normal {
                mean: 50.0,
                sd: 15.0,
            },
            lead: Lead::Fixed(5),
            ordering_cost_micros: 20_000_000,
        },
        Shape {
            name: "Poisson fast (20/day, L 4)",
            mover: Mover::Fast,
            demand: Demand::Poisson(20.0),
            lead: Lead::Fixed(4),
            ordering_cost_micros: 10_000_000,
        },
        Shape {
            name: "random lead time (30/day, sd 9, L 5 or 10)",
            mover: Mover::Fast,
            demand: Demand::Normal {
                mean: 30.0,
                sd: 9.0,
            },
            lead: Lead::TwoPoint(5, 10),
            ordering_cost_micros: 20_000_000,
        },
        Shape {
            name: "Poisson slow (2/day, L 7)",
            mover: Mover::Slow,
            demand: Demand::Poisson(2.0),
            lead: Lead::Fixed(7),
            ordering_cost_micros: 5_000_000,
        },
        Shape {
            name: "Poisson slow (0.5/day, L 10)",
            mover: Mover::Slow,
            demand: Demand::Poisson(0.5),
            lead: Lead::Fixed(10),
            ordering_cost_micros: 2_000_000,
        },
        Shape {
            name: "intermittent (1 day in 5, 1+Poisson(4), L 7)",
            mover: Mover::Slow,
            demand: Demand::Intermittent { p: 0.2, extra: 4.0 },
            lead: Lead::Fixed(7),
            ordering_cost_micros: 5_000_000,
        },
    ]
}

#[derive(Default)]
struct Summary {
    levels: Vec<f64>,
    demanded: i64,
    served: i64,
    on_hand_days: f64,
    days: usize,
    cycles: u64,
}

impl Summary {
    fn add(&mut self, o: Outcome) {
        if o.cycles > 0 {
            self.levels
                .push(1.0 - o.stockout_cycles as f64 / o.cycles as f64);
        }
        self.demanded += o.demanded;
        self.served += o.served;
        self.on_hand_days += o.on_hand_days;
        self.days += SIMULATED_DAYS;
        self.cycles += o.cycles;
    }

    /// Mean cycle service level of the runs and the half-width of its 95% interval.
    fn level(&self) -> (f64, f64) {
        let n = self.levels.len() as f64;
        if n == 0.0 {
            return (f64::NAN, f64::NAN);
        }
        let mean = self.levels.iter().sum::<f64>() / n;
        let var = self.levels.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        (mean, 1.96 * (var / n).sqrt())
    }

    fn fill_rate(&self) -> f64 {
        self.served as f64 / self.demanded.max(1) as f64
    }

    fn average_on_hand(&self) -> f64 {
        self.on_hand_days / self.days.max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        let (level, half) = self.level();
        serde_json::json!({
            "cycle_service_level": level,
            "ci95_half_width": half,
            "fill_rate": self.fill_rate(),
            "average_on_hand": self.average_on_hand(),
            "cycles": self.cycles,
        })
    }
}

fn main() {
    let mut replications = 30_usize;
    let mut seed = 20_261_127_u64;
    let mut json_path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--replications" => {
                replications = args.next().and_then(|v| v.parse().ok()).unwrap_or(30);
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--json" => {
                json_path = args
                    .next()
                    .map(|v| workspace_path(env!("CARGO_MANIFEST_DIR"), &v));
            }
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let started = Instant::now();
    let mut report = Vec::new();
    let mut missed = Vec::new();
    println!(
        "{:<46} {:>9} {:>16} {:>7} {:>9} {:>16} {:>7} {:>9} {:>6}",
        "shape", "bar", "ours CSL", "fill", "on hand", "textbook CSL", "fill", "on hand", "meets"
    );
    for (s, shape) in shapes().iter().enumerate() {
        let mut ours = Summary::default();
        let mut textbook = Summary::default();
        let progress = inventory_benchkit::Progress::new(shape.name, replications);
        for r in 0..replications {
            let mut rng = Rng(seed
                ^ ((s as u64 + 1) << 32)
                ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut uniform = || rng.unit();
            let history: Vec<i64> = (0..HISTORY_DAYS)
                .map(|_| draw_demand(&mut uniform, shape.demand))
                .collect();
            let lead_time = match shape.lead {
                Lead::Fixed(l) => LeadTime::fixed(l),
                lead @ Lead::TwoPoint(..) => {
                    let seen: Vec<u32> = (0..OBSERVED_LEAD_TIMES)
                        .map(|_| draw_lead(&mut uniform, lead))
                        .collect();
                    LeadTime::observed(&seen, 7)
                }
            };
            let economics = Economics {
                service_level: TARGET,
                ordering_cost_micros: shape.ordering_cost_micros,
                holding_rate: 0.25,
                unit_cost_micros: 10_000_000,
                minimum_order: 1,
                pack_multiple: 1,
            };
            let computed = policy::compute(
                &history,
                &lead_time,
                &economics,
                Defaults {
                    reorder_point: 0,
                    reorder_quantity: 1,
                },
            );
            let future: Vec<i64> = (0..SIMULATED_DAYS)
                .map(|_| draw_demand(&mut uniform, shape.demand))
                .collect();
            let leads: Vec<u32> = (0..SIMULATED_DAYS)
                .map(|_| draw_lead(&mut uniform, shape.lead))
                .collect();
            let q = computed.reorder_quantity;
            ours.add(simulate(computed.reorder_point, q, &future, &leads));
            textbook.add(simulate(
                computed.textbook_reorder_point,
                q,
                &future,
                &leads,
            ));
            progress.step();
        }
        progress.finish();
        let (level, half) = ours.level();
        let (low, high) = match shape.mover {
            Mover::Fast => (TARGET - 0.02, TARGET + 0.02),
            Mover::Slow => (TARGET, TARGET + 0.05),
        };
        let meets = level >= low && level <= high;
        if !meets {
            missed.push(shape.name);
        }
        let (t_level, t_half) = textbook.level();
        println!(
            "{:<46} {:>4.0}-{:<4.0} {:>8.1} +-{:<5.1} {:>6.1}% {:>9.1} {:>8.1} +-{:<5.1} {:>6.1}% {:>9.1} {:>6}",
            shape.name,
            low * 100.0,
            high * 100.0,
            level * 100.0,
            half * 100.0,
            ours.fill_rate() * 100.0,
            ours.average_on_hand(),
            t_level * 100.0,
            t_half * 100.0,
            textbook.fill_rate() * 100.0,
            textbook.average_on_hand(),
            if meets { "yes" } else { "NO" }
        );
        report.push(serde_json::json!({
            "shape": shape.name,
            "mover": if shape.mover == Mover::Fast { "fast" } else { "slow" },
            "bar": [low, high],
            "ours": ours.json(),
            "textbook": textbook.json(),
            "meets_bar": meets,
        }));
    }
    println!(
        "{} replications of {} days per shape, target {:.0}%, {:.1} s",
        replications,
        SIMULATED_DAYS,
        TARGET * 100.0,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = json_path {
        let doc = serde_json::json!({
            "target": TARGET,
            "replications": replications,
            "days": SIMULATED_DAYS,
            "seed": seed,
            "shapes": report,
        });
        if let Err(e) = std::fs::write(&path, format!("{doc:#}\n")) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
    if !missed.is_empty() {
        eprintln!("our policy misses the bar on: {}", missed.join(", "));
        std::process::exit(1);
    }
}

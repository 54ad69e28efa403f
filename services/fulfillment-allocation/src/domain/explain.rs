//! Why each line ships from where it does, and why closer warehouses do not ship it: so a
//! router or a support person can read the decision.

use super::geo::{MAX_DISTANCE_KM, great_circle_km};
use super::planner::{Plan, Problem};

/// Why a warehouse closer than the chosen one does not ship a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOver {
    NoStock {
        available: i64,
    },
    AtCapacity,
    Paused,
    NoCoordinates,
    /// It could, but the order ships from fewer warehouses without it.
    Consolidation,
    /// It could, but it is near capacity and another costs less overall.
    Workload,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Passed {
    /// Index into `Problem::sites`.
    pub site: usize,
    /// None when the warehouse has no coordinates.
    pub distance_km: Option<f64>,
    pub why: PassOver,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub reason: String,
    pub passed_over: Vec<Passed>,
}

/// The distance from the destination to `site`, if it has coordinates.
pub fn distance_km(problem: &Problem, site: usize) -> Option<f64> {
    problem.sites[site]
        .location
        .map(|at| great_circle_km(problem.destination, at))
}

/// One explanation per line of `problem`, in order.
pub fn explain(problem: &Problem, plan: &Plan) -> Vec<Explanation> {
    let shipments = plan.shipments().len();
    (0..problem.lines.len())
        .map(|line| {
            let l = &problem.lines[line];
            let sources: Vec<usize> = plan
                .parts
                .iter()
                .filter(|p| p.line == line)
                .map(|p| p.site)
                .collect();
            let available = |site: usize| {
                problem
                    .available
                    .get(&(l.product_id, problem.sites[site].warehouse_id))
                    .copied()
                    .unwrap_or(0)
            };
            let far = |site: usize| distance_km(problem, site).unwrap_or(MAX_DISTANCE_KM);
            let Some(nearest_source) = sources
                .iter()
                .copied()
                .min_by(|a, b| far(*a).total_cmp(&far(*b)))
            else {
                return Explanation {
                    reason: format!(
                        "not allocated: no warehouse the order may use holds {} units",
                        l.quantity
                    ),
                    passed_over: Vec::new(),
                };
            };
            let chosen = far(nearest_source);
            let passed_over: Vec<Passed> = (0..problem.sites.len())
                .filter(|s| !sources.contains(s))
                .filter(|s| {
                    let site = &problem.sites[*s];
                    // Closer ones, and ones with no coordinates that could have shipped it.
                    far(*s) < chosen || (site.location.is_none() && available(*s) >= l.quantity)
                })
                .map(|s| {
                    let site = &problem.sites[s];
                    let why = if site.paused {
                        PassOver::Paused
                    } else if site.location.is_none() {
                        PassOver::NoCoordinates
                    } else if available(s) < l.quantity {
                        PassOver::NoStock {
                            available: available(s),
                        }
                    } else if site.capacity.is_some_and(|c| site.workload >= c) {
                        PassOver::AtCapacity
                    } else if site.capacity.is_some_and(|c| {
                        (site.workload + 1) as f64 / c.max(1) as f64 > problem.costs.workload_from
                    }) {
                        PassOver::Workload
                    } else {
                        PassOver::Consolidation
                    };
                    Passed {
                        site: s,
                        distance_km: distance_km(problem, s),
                        why,
                    }
                })
                .collect();
            let at = match distance_km(problem, nearest_source) {
                Some(km) => format!("{km:.0} km away"),
                None => "no coordinates known".to_owned(),
            };
            let reason = if sources.len() > 1 {
                format!(
                    "no warehouse the order may use holds all {} units: split across {} warehouses, nearest {at}",
                    l.quantity,
                    sources.len()
                )
            } else if passed_over.iter().all(|p| !matches!(p.why, PassOver::Consolidation | PassOver::Workload)) {
                format!("nearest warehouse that can ship all {} units ({at})", l.quantity)
            } else if shipments == 1 {
                format!("ships with the whole order from one warehouse ({at}): one shipment instead of several")
            } else {
                format!("ships with other lines of the order ({at}): fewer shipments")
            };
            Explanation {
                reason,
                passed_over,
            }
        })
        .collect()
}

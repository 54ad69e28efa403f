//! A reorder policy played forward over a year of demand, for the decision-quality tool and
//! the regression tests of the cases where the textbook formula fails.
//!
//! Each day: a PO due today arrives first; demand is served from on hand (what cannot be
//! served is lost: stock never goes negative); at the end of the day, if no PO is open and on
//! hand is below the reorder point, a PO for the reorder quantity is placed, arriving L days
//! later before that day's demand. A cycle (placement to arrival) is a stockout cycle when
//! any demand in it went unserved.
//!
//! Randomness comes from the caller as a source of uniforms in [0, 1), so the same seed gives
//! the same year everywhere.

/// How a day's demand is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Demand {
    Normal {
        mean: f64,
        sd: f64,
    },
    Poisson(f64),
    /// Demand on a day with probability `p`, of size 1 + Poisson(`extra`).
    Intermittent {
        p: f64,
        extra: f64,
    },
}

/// How a PO's lead time is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lead {
    Fixed(u32),
    /// One of two lead times, each with probability 1/2.
    TwoPoint(u32, u32),
}

/// Poisson by Knuth's product of uniforms (fine for the small means simulated here).
pub fn poisson(uniform: &mut impl FnMut() -> f64, lambda: f64) -> i64 {
    let limit = (-lambda).exp();
    let mut product = uniform();
    let mut k = 0;
    while product > limit {
        k += 1;
        product *= uniform();
    }
    k
}

/// Standard normal by Box-Muller.
pub fn standard_normal(uniform: &mut impl FnMut() -> f64) -> f64 {
    let u1 = uniform().max(1e-300);
    let u2 = uniform();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub fn draw_demand(uniform: &mut impl FnMut() -> f64, demand: Demand) -> i64 {
    match demand {
        Demand::Normal { mean, sd } => {
            (mean + sd * standard_normal(uniform)).round().max(0.0) as i64
        }
        Demand::Poisson(lambda) => poisson(uniform, lambda),
        Demand::Intermittent { p, extra } => {
            if uniform() < p {
                1 + poisson(uniform, extra)
            } else {
                0
            }
        }
    }
}

pub fn draw_lead(uniform: &mut impl FnMut() -> f64, lead: Lead) -> u32 {
    match lead {
        Lead::Fixed(l) => l,
        Lead::TwoPoint(a, b) => {
            if uniform() < 0.5 {
                a
            } else {
                b
            }
        }
    }
}

/// What one policy did over one simulated period.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub cycles: u64,
    pub stockout_cycles: u64,
    pub demanded: i64,
    pub served: i64,
    /// Sum over days of the end-of-day on hand.
    pub on_hand_days: f64,
}

impl Outcome {
    /// Share of completed cycles without a stockout (None before the first arrival).
    pub fn cycle_service_level(&self) -> Option<f64> {
        (self.cycles > 0).then(|| 1.0 - self.stockout_cycles as f64 / self.cycles as f64)
    }
}

/// Plays `(reorder_point, quantity)` over `demand` (one element per day), drawing lead times
/// from `leads` in turn; starts with `reorder_point + quantity` on hand.
pub fn simulate(reorder_point: i64, quantity: i64, demand: &[i64], leads: &[u32]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut on_hand = reorder_point + quantity;
    // The open PO: arrival day, quantity, whether its cycle ran short.
    let mut open: Option<(usize, i64, bool)> = None;
    let mut next_lead = leads.iter().cycle();
    for (day, &wanted) in demand.iter().enumerate() {
        if let Some((arrival, q, short)) = open
            && arrival == day
        {
            on_hand += q;
            outcome.cycles += 1;
            outcome.stockout_cycles += u64::from(short);
            open = None;
        }
        let served = wanted.min(on_hand);
        on_hand -= served;
        outcome.demanded += wanted;
        outcome.served += served;
        if served < wanted
            && let Some((_, _, short)) = open.as_mut()
        {
            *short = true;
        }
        if open.is_none() && on_hand < reorder_point {
            let lead = next_lead.next().copied().unwrap_or(0) as usize;
            open = Some((day + lead + 1, quantity, false));
        }
        outcome.on_hand_days += on_hand as f64;
    }
    outcome
}

#[cfg(test)]
mod tests;

//! When and how much to reorder one (product, warehouse): the reorder point and the reorder
//! quantity, from the demand the history shows and the supplier's lead time.
//!
//! The seed's rule is `reorder point = average daily demand x lead time + safety stock`. The
//! textbook safety stock, `z x sqrt(L sigma_d^2 + d^2 sigma_L^2)`, assumes normal lead-time
//! demand and an order placed exactly at the reorder point; both fail often (Poisson slow
//! movers, intermittent demand, a two-point lead time) and a 95% target lands near 86%. So the
//! reorder point here is a quantile of what the history actually shows:
//!
//! - lead-time demand, bootstrapped: the sum of L days each drawn from the days of the history
//!   (every day counts, not only the few disjoint L-day windows a year holds), for each lead
//!   time the supplier has shown (or the offer's fixed one), weighted by how often it showed;
//! - undershoot: the scan orders once available has dropped *below* the point, and a day's
//!   demand can take it well below. Stationary undershoot of a lattice renewal process has
//!   `P(U = k) = P(D > k) / E[D]` (D: one day's demand);
//! - no stockout in a cycle when `lead-time demand + U <= reorder point - 1`, so the point is
//!   `1 + quantile(target)` of that sum.
//!
//! Reorder quantity: EOQ = sqrt(2 D K / h) (D annual demand, K ordering cost, h holding cost
//! per unit-year), at least the reorder point (one PO is open at a time, so a smaller one would
//! leave every cycle short), rounded up to the pack multiple and at least the minimum order.

/// The largest point or quantity a policy holds (stock's bound on any quantity).
pub const MAX_UNITS: i64 = 1_000_000_000_000;
/// Days of history below which the product's own defaults are used.
pub const MIN_HISTORY_DAYS: usize = 28;

/// Summary of a daily demand series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandStats {
    pub days: usize,
    pub mean: f64,
    pub std_dev: f64,
    /// Average interval between days with demand (1.0: demand every day); infinite when no
    /// day had demand.
    pub adi: f64,
    /// Squared coefficient of variation of the non-zero demands.
    pub cv2: f64,
}

impl DemandStats {
    pub fn of(daily: &[i64]) -> Self {
        let days = daily.len();
        if days == 0 {
            return Self {
                days,
                mean: 0.0,
                std_dev: 0.0,
                adi: f64::INFINITY,
                cv2: 0.0,
            };
        }
        let n = days as f64;
        let mean = daily.iter().map(|&d| d as f64).sum::<f64>() / n;
        let variance = if days > 1 {
            daily
                .iter()
                .map(|&d| (d as f64 - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0)
        } else {
            0.0
        };
        let demands: Vec<f64> = daily
            .iter()
            .filter(|&&d| d > 0)
            .map(|&d| d as f64)
            .collect();
        let (adi, cv2) = if demands.is_empty() {
            (f64::INFINITY, 0.0)
        } else {
            let k = demands.len() as f64;
            let m = demands.iter().sum::<f64>() / k;
            let v = demands.iter().map(|d| (d - m).powi(2)).sum::<f64>() / k;
            (n / k, v / (m * m))
        };
        Self {
            days,
            mean,
            std_dev: variance.sqrt(),
            adi,
            cv2,
        }
    }

    /// Syntetos-Boylan-Croston: intermittent or lumpy when demand days are rare
    /// (ADI > 1.32).
    pub fn is_intermittent(&self) -> bool {
        self.adi > 1.32
    }
}

/// The supplier's lead time: observed values when POs have been received, else the offer's.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadTime {
    /// Lead times in days, each an equally likely outcome; never empty.
    pub samples: Vec<u32>,
}

impl LeadTime {
    pub fn fixed(days: u32) -> Self {
        Self {
            samples: vec![days],
        }
    }

    /// Observed lead times, or `fallback` when there are none.
    pub fn observed(samples: &[u32], fallback: u32) -> Self {
        if samples.is_empty() {
            Self::fixed(fallback)
        } else {
            Self {
                samples: samples.to_vec(),
            }
        }
    }

    pub fn mean(&self) -> f64 {
        self.samples.iter().map(|&l| f64::from(l)).sum::<f64>() / self.samples.len().max(1) as f64
    }

    pub fn std_dev(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let mean = self.mean();
        let variance = self
            .samples
            .iter()
            .map(|&l| (f64::from(l) - mean).powi(2))
            .sum::<f64>()
            / (n as f64 - 1.0);
        variance.sqrt()
    }
}

/// What a computed policy needs besides the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Economics {
    /// Target cycle service level: the share of replenishment cycles without a stockout.
    pub service_level: f64,
    /// Cost of placing one order, in micros.
    pub ordering_cost_micros: i64,
    /// Holding cost per unit-year as a share of the unit cost (0.25: 25% a year).
    pub holding_rate: f64,
    pub unit_cost_micros: i64,
    pub minimum_order: i64,
    pub pack_multiple: i64,
}

/// The product's defaults in stock, used until there is enough history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub reorder_point: i64,
    pub reorder_quantity: i64,
}

/// How a reorder point was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Quantile of the lead-time demand bootstrapped from the history, plus the undershoot.
    Bootstrap,
    /// Too little history: the product's defaults from stock.
    ProductDefaults,
}

/// A computed policy and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub method: Method,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub demand: DemandStats,
    pub lead_time_days: f64,
    pub lead_time_std_dev: f64,
    /// Reorder point minus the mean lead-time demand.
    pub safety_stock: i64,
    /// The unrounded economic order quantity (0 without demand or costs).
    pub eoq: f64,
    /// What the textbook normal formula would say, for comparison.
    pub textbook_reorder_point: i64,
}

/// Computes the policy of one (product, warehouse) from its daily demand (oldest first, one
/// element per day including days without demand).
pub fn compute(
    daily: &[i64],
    lead_time: &LeadTime,
    economics: &Economics,
    defaults: Defaults,
) -> Computed {
    let demand = DemandStats::of(daily);
    let lead_mean = lead_time.mean();
    let lead_sd = lead_time.std_dev();
    let textbook = textbook_reorder_point(&demand, lead_mean, lead_sd, economics.service_level);
    let eoq = eoq(demand.mean * 365.0, economics);
    let (method, reorder_point, reorder_quantity) = if daily.len() < MIN_HISTORY_DAYS {
        (
            Method::ProductDefaults,
            defaults.reorder_point,
            round_order(defaults.reorder_quantity.max(1) as f64, economics),
        )
    } else {
        let width = bin_width(daily, lead_time);
        let undershoot = undershoot(daily, width);
        let lead_demand = lead_time_demand(daily, lead_time, width);
        let point = 1 + quantile_of_sum(&lead_demand, &undershoot, economics.service_level);
        // At most one PO is open per (product, warehouse): one smaller than the reorder point
        // would arrive to a position still below it, and every later cycle would start short.
        let quantity = if demand.mean > 0.0 {
            round_order(eoq.max(point as f64), economics)
        } else {
            round_order(defaults.reorder_quantity.max(1) as f64, economics)
        };
        (Method::Bootstrap, point, quantity)
    };
    // Within what the store and stock accept, however extreme the history.
    let reorder_point = reorder_point.min(MAX_UNITS);
    let reorder_quantity = reorder_quantity.min(MAX_UNITS);
    let mean_lead_demand = (demand.mean * lead_mean).round() as i64;
    Computed {
        method,
        reorder_point,
        reorder_quantity,
        demand,
        lead_time_days: lead_mean,
        lead_time_std_dev: lead_sd,
        safety_stock: reorder_point.saturating_sub(mean_lead_demand),
        eoq,
        textbook_reorder_point: textbook,
    }
}

/// `d L + z sqrt(L sigma_d^2 + d^2 sigma_L^2)`, rounded up.
pub fn textbook_reorder_point(
    demand: &DemandStats,
    lead_mean: f64,
    lead_sd: f64,
    service_level: f64,
) -> i64 {
    let z = inverse_normal(service_level);
    let sigma = (lead_mean * demand.std_dev.powi(2) + demand.mean.powi(2) * lead_sd.powi(2)).sqrt();
    to_units((demand.mean * lead_mean + z * sigma).ceil())
}

/// sqrt(2 D K / h); 0 when there is no demand or no holding cost.
pub fn eoq(annual_demand: f64, economics: &Economics) -> f64 {
    let holding = economics.unit_cost_micros as f64 * economics.holding_rate;
    if annual_demand <= 0.0 || holding <= 0.0 || economics.ordering_cost_micros <= 0 {
        return 0.0;
    }
    (2.0 * annual_demand * economics.ordering_cost_micros as f64 / holding).sqrt()
}

/// Up to the pack multiple, and at least the minimum order (itself rounded up to a pack).
pub fn round_order(quantity: f64, economics: &Economics) -> i64 {
    let pack = economics.pack_multiple.max(1);
    let wanted = to_units(quantity.ceil())
        .max(economics.minimum_order)
        .max(1);
    let packs = wanted / pack + i64::from(wanted % pack != 0);
    packs.saturating_mul(pack)
}

/// Most bins a lead-time demand distribution is kept in; a fast mover's units are grouped so
/// the convolutions stay small.
const MAX_BINS: usize = 20_000;
/// Most bins one day's demand is grouped into.
const DAY_BINS: i64 = 64;

/// Lead-time demand as a distribution over bins of `width` units: P(W in bin i) = mass[i].
#[derive(Debug, Clone, PartialEq)]
struct Binned {
    width: i64,
    mass: Vec<f64>,
}

impl Binned {
    /// P(W <= units), counting a bin by its value `i * width`.
    fn cdf(&self, prefix: &[f64], units: i64) -> f64 {
        if units < 0 {
            return 0.0;
        }
        let bin = usize::try_from(units / self.width).unwrap_or(usize::MAX);
        prefix[bin.min(prefix.len() - 1)]
    }
}

/// Lead-time demand by bootstrap: the sum of L days each drawn from the days of the history
/// (so it uses every day, not only the ~days/L disjoint windows), for each lead time the
/// supplier has shown, weighted by how often it showed it.
fn lead_time_demand(daily: &[i64], lead_time: &LeadTime, width: i64) -> Binned {
    let largest_day = daily.iter().copied().max().unwrap_or(0).max(0);
    let mut day = vec![0.0; usize::try_from(largest_day / width).unwrap_or(0) + 2];
    for &d in daily {
        // Nearest bin: unbiased, so grouping does not move the mean.
        let bin = (d.max(0) + width / 2) / width;
        day[usize::try_from(bin).unwrap_or(0)] += 1.0 / daily.len().max(1) as f64;
    }
    let mut mixture: Vec<f64> = vec![0.0];
    let weight = 1.0 / lead_time.samples.len().max(1) as f64;
    let mut sorted = lead_time.samples.clone();
    sorted.sort_unstable();
    // Convolve day by day, adding each lead time's distribution as the count reaches it.
    let mut current = vec![1.0];
    let mut days_done = 0_u32;
    for &lead in &sorted {
        while days_done < lead {
            current = convolve(&current, &day);
            days_done += 1;
        }
        if mixture.len() < current.len() {
            mixture.resize(current.len(), 0.0);
        }
        for (m, c) in mixture.iter_mut().zip(&current) {
            *m += weight * c;
        }
    }
    Binned {
        width,
        mass: mixture,
    }
}

fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, &x) in a.iter().enumerate() {
        if x == 0.0 {
            continue;
        }
        for (j, &y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    // Drop the far tail that carries no probability worth keeping.
    while out.len() > 1 && out.last().is_some_and(|&p| p < 1e-15) {
        out.pop();
    }
    out
}

/// Units per bin: a day's demand spans at most [`DAY_BINS`] bins, and the longest lead time's
/// sum at most [`MAX_BINS`], so a fast mover (or one huge day) costs no more than a slow one.
fn bin_width(daily: &[i64], lead_time: &LeadTime) -> i64 {
    let largest_lead = lead_time.samples.iter().copied().max().unwrap_or(0).max(1) as i64;
    let largest_day = daily.iter().copied().max().unwrap_or(0).max(0);
    let bins_per_day = (MAX_BINS as i64 / largest_lead).clamp(1, DAY_BINS);
    (largest_day / bins_per_day + i64::from(largest_day % bins_per_day != 0)).max(1)
}

/// The undershoot distribution `P(U = k) = P(D > k) / E[D]`, grouped into bins of `width`
/// units (bin j holds k in [j*width, (j+1)*width)); empty (no undershoot) when there was no
/// demand. A day of demand d adds 1/(n E[D]) to every k below d.
fn undershoot(daily: &[i64], width: i64) -> Vec<f64> {
    let n = daily.len() as f64;
    let total: i64 = daily.iter().map(|&d| d.max(0)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mean = total as f64 / n;
    let largest = daily.iter().copied().max().unwrap_or(0).max(0);
    let bins = usize::try_from(largest / width + 1).unwrap_or(1);
    let mut mass = vec![0.0; bins];
    for &d in daily {
        for (j, m) in mass.iter_mut().enumerate() {
            let start = j as i64 * width;
            let covered = (d.max(0) - start).clamp(0, width);
            if covered == 0 {
                break;
            }
            *m += covered as f64 / n / mean;
        }
    }
    while mass.len() > 1 && mass.last() == Some(&0.0) {
        mass.pop();
    }
    mass
}

/// The smallest x with `P(W + U <= x) >= level`.
fn quantile_of_sum(demand: &Binned, undershoot: &[f64], level: f64) -> i64 {
    let mut prefix = Vec::with_capacity(demand.mass.len());
    let mut running = 0.0;
    for &m in &demand.mass {
        running += m;
        prefix.push(running);
    }
    // Undershoot bin j counts as j*width units, like the demand bins.
    let cdf = |x: i64| -> f64 {
        if undershoot.is_empty() {
            return demand.cdf(&prefix, x);
        }
        undershoot
            .iter()
            .enumerate()
            .map(|(j, p)| p * demand.cdf(&prefix, x - j as i64 * demand.width))
            .sum()
    };
    // The total mass is 1 up to rounding: search below the top, and never for more.
    let level = level.min(running - 1e-12);
    let (mut low, mut high) = (
        0_i64,
        (demand.mass.len() + undershoot.len()) as i64 * demand.width,
    );
    while low < high {
        let mid = low + (high - low) / 2;
        if cdf(mid) >= level {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

fn to_units(value: f64) -> i64 {
    if value.is_nan() || value <= 0.0 {
        0
    } else if value >= i64::MAX as f64 {
        i64::MAX
    } else {
        value as i64
    }
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26 on erf, error below 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error
/// below 1.2e-9), for levels strictly between 0 and 1; clamped outside.
pub fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let low = 0.024_25;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

#[cfg(test)]
mod tests;

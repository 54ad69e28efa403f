//! Which warehouses ship an order: the seed's four rules as one cost, solved exactly for
//! small orders and by a fast heuristic for large ones.
//!
//! The cost of a plan is, per shipment (one warehouse shipping some lines):
//! `per_shipment + distance_km + workload_penalty`. The fixed part is larger than any distance
//! plus any penalty, so fewer shipments always win (rule 3: consolidate, even past a closer
//! warehouse for one line); among plans with as many shipments, the nearer wins (rule 2); a
//! warehouse filling up costs more as its open lines approach its capacity, and one at
//! capacity or paused is never chosen (rule 4). Stock is what `BatchGetAvailability` said is
//! available (rule 1).
//!
//! Lines are shipped whole from one warehouse when any warehouse can: a line is split across
//! warehouses only when none holds all of it.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::geo::{GeoPoint, MAX_DISTANCE_KM, great_circle_km};

/// One order line to ship.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub line_id: String,
    pub product_id: Uuid,
    pub quantity: i64,
}

/// A warehouse as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub warehouse_id: Uuid,
    /// None: stock knows no coordinates for it; it is never "nearest" (treated as the
    /// farthest possible) and is used only when nothing else can serve.
    pub location: Option<GeoPoint>,
    /// Paused warehouses take no new work.
    pub paused: bool,
    /// Open order lines it can hold at once; None: no limit.
    pub capacity: Option<i64>,
    /// Open order lines it holds now (allocated, not yet shipped).
    pub workload: i64,
}

/// What the caller allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Ship from several warehouses when no one can ship everything.
    pub allow_split: bool,
    /// Most shipments (warehouses) one order may use.
    pub max_shipments: usize,
    /// Allocate what can be served and report the rest, instead of refusing the order.
    pub allow_partial: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            allow_split: true,
            max_shipments: 5,
            allow_partial: false,
        }
    }
}

/// The weights of the cost, in km-equivalents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Fixed cost of each shipment; above the longest distance plus the largest penalty.
    pub per_shipment: f64,
    /// Utilisation (open lines / capacity) above which a warehouse starts to cost more.
    pub workload_from: f64,
    /// The extra cost of a shipment from a warehouse this order would fill to capacity.
    pub workload_penalty: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            per_shipment: 50_000.0,
            workload_from: 0.8,
            workload_penalty: 10_000.0,
        }
    }
}

/// Everything one planning decision needs.
#[derive(Debug, Clone)]
pub struct Problem {
    pub destination: GeoPoint,
    pub lines: Vec<Line>,
    pub sites: Vec<Site>,
    /// Units available per (product, warehouse); absent means none.
    pub available: BTreeMap<(Uuid, Uuid), i64>,
    pub options: Options,
    pub costs: CostModel,
}

/// Units of one line shipped from one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Index into `Problem::lines`.
    pub line: usize,
    /// Index into `Problem::sites`.
    pub site: usize,
    pub quantity: i64,
}

/// A line (or its rest) that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub line: usize,
    pub requested: i64,
    pub allocated: i64,
}

/// How a plan was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One warehouse ships everything: the cheapest such.
    Single,
    /// Proven optimal by exhaustive search.
    Exact,
    Heuristic,
    /// The baseline the quality report compares with.
    NearestPerLine,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub parts: Vec<Part>,
    pub shortfalls: Vec<Shortfall>,
    pub cost: f64,
    pub method: Method,
}

impl Plan {
    /// The sites that ship, in order of first use.
    pub fn shipments(&self) -> Vec<usize> {
        let mut sites: Vec<usize> = Vec::new();
        for part in &self.parts {
            if !sites.contains(&part.site) {
                sites.push(part.site);
            }
        }
        sites
    }

    pub fn is_complete(&self) -> bool {
        self.shortfalls.is_empty()
    }

    /// Whether some line is shipped from more than one site.
    pub fn splits_a_line(&self) -> bool {
        let mut seen = BTreeMap::new();
        self.parts
            .iter()
            .any(|p| *seen.entry(p.line).or_insert(p.site) != p.site)
    }
}

/// Orders up to this many lines are solved exactly.
pub const EXACT_MAX_LINES: usize = 8;
/// Search nodes the exact solver may visit before it gives the decision to the heuristic.
pub const EXACT_NODE_LIMIT: usize = 200_000;

/// The plan to use: exact for small orders when the search finishes, the heuristic otherwise.
pub fn plan(problem: &Problem) -> Plan {
    let heuristic = heuristic(problem);
    if heuristic.method == Method::Single || problem.lines.len() > EXACT_MAX_LINES {
        return heuristic;
    }
    match exact(problem, EXACT_NODE_LIMIT) {
        Some(exact) if exact.cost < heuristic.cost || !heuristic.is_complete() => exact,
        _ => heuristic,
    }
}

/// The planner's view of a problem: distances, stock per (product, site) and which sites may
/// take work, computed once.
struct Model<'a> {
    problem: &'a Problem,
    distance: Vec<f64>,
    /// Product index of each line.
    product: Vec<usize>,
    /// Stock per product index x site index.
    stock: Vec<i64>,
    /// Not paused and with room for at least one more line.
    open: Vec<bool>,
}

impl<'a> Model<'a> {
    fn new(problem: &'a Problem) -> Self {
        let mut ids: Vec<Uuid> = problem.lines.iter().map(|l| l.product_id).collect();
        ids.sort();
        ids.dedup();
        let product: Vec<usize> = problem
            .lines
            .iter()
            .map(|l| ids.binary_search(&l.product_id).unwrap_or(0))
            .collect();
        let sites = problem.sites.len();
        let site_index: HashMap<Uuid, usize> = problem
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.warehouse_id, i))
            .collect();
        let mut stock = vec![0; ids.len() * sites];
        for ((product, warehouse), units) in &problem.available {
            if let (Ok(p), Some(s)) = (ids.binary_search(product), site_index.get(warehouse)) {
                stock[p * sites + s] = (*units).max(0);
            }
        }
        let distance = problem
            .sites
            .iter()
            .map(|s| {
                s.location.map_or(MAX_DISTANCE_KM, |at| {
                    great_circle_km(problem.destination, at)
                })
            })
            .collect();
        let open = problem
            .sites
            .iter()
            .map(|s| !s.paused && s.capacity.is_none_or(|c| s.workload < c))
            .collect();
        Self {
            problem,
            distance,
            product,
            stock,
            open,
        }
    }

    fn sites(&self) -> usize {
        self.problem.sites.len()
    }

    fn lines(&self) -> usize {
        self.problem.lines.len()
    }

    fn quantity(&self, line: usize) -> i64 {
        self.problem.lines[line].quantity
    }

    fn stock_at(&self, line: usize, site: usize) -> i64 {
        self.stock[self.product[line] * self.sites() + site]
    }

    /// Whether `site` may ship `lines` lines of this order.
    fn has_room(&self, site: usize, lines: usize) -> bool {
        let s = &self.problem.sites[site];
        self.open[site] && s.capacity.is_none_or(|c| s.workload + lines as i64 <= c)
    }

    fn penalty(&self, site: usize, lines: usize) -> f64 {
        let s = &self.problem.sites[site];
        let costs = &self.problem.costs;
        match s.capacity {
            Some(capacity) if capacity > 0 => {
                let used = (s.workload + lines as i64) as f64 / capacity as f64;
                let ramp = (used - costs.workload_from) / (1.0 - costs.workload_from).max(1e-9);
                ramp.clamp(0.0, 1.0) * costs.workload_penalty
            }
            _ => 0.0,
        }
    }

    /// The cost of one shipment of `lines` lines from `site`.
    fn shipment_cost(&self, site: usize, lines: usize) -> f64 {
        self.problem.costs.per_shipment + self.distance[site] + self.penalty(site, lines)
    }

    fn cost(&self, parts: &[Part]) -> f64 {
        let mut lines_per_site: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for part in parts {
            let lines = lines_per_site.entry(part.site).or_default();
            if !lines.contains(&part.line) {
                lines.push(part.line);
            }
        }
        lines_per_site
            .iter()
            .map(|(site, lines)| self.shipment_cost(*site, lines.len()))
            .sum()
    }

    fn finish(&self, parts: Vec<Part>, method: Method) -> Plan {
        let shortfalls = (0..self.lines())
            .filter_map(|line| {
                let allocated: i64 = parts
                    .iter()
                    .filter(|p| p.line == line)
                    .map(|p| p.quantity)
                    .sum();
                let requested = self.quantity(line);
                (allocated < requested).then_some(Shortfall {
                    line,
                    requested,
                    allocated,
                })
            })
            .collect();
        Plan {
            cost: self.cost(&parts),
            parts,
            shortfalls,
            method,
        }
    }
}

/// What a plan being built has taken: units per (product, site) and lines per site. Sparse,
/// since a plan touches few warehouses: cheap to create and to copy.
#[derive(Clone, Default)]
struct Ledger {
    /// (product index, site index, units taken).
    taken: Vec<(usize, usize, i64)>,
    /// (site index, lines it ships).
    lines: Vec<(usize, usize)>,
}

impl Ledger {
    fn lines_at(&self, site: usize) -> usize {
        self.lines
            .iter()
            .find(|(s, _)| *s == site)
            .map_or(0, |(_, n)| *n)
    }

    fn left(&self, model: &Model, line: usize, site: usize) -> i64 {
        let product = model.product[line];
        let taken: i64 = self
            .taken
            .iter()
            .filter(|(p, s, _)| *p == product && *s == site)
            .map(|(_, _, units)| units)
            .sum();
        model.stock_at(line, site) - taken
    }

    /// Whether `site` can ship all of `line` given what is already planned there.
    fn can_take(&self, model: &Model, line: usize, site: usize) -> bool {
        model.has_room(site, self.lines_at(site) + 1)
            && self.left(model, line, site) >= model.quantity(line)
    }

    fn take(&mut self, model: &Model, line: usize, site: usize, quantity: i64) -> Part {
        self.taken.push((model.product[line], site, quantity));
        match self.lines.iter_mut().find(|(s, _)| *s == site) {
            Some((_, n)) => *n += 1,
            None => self.lines.push((site, 1)),
        }
        Part {
            line,
            site,
            quantity,
        }
    }

    /// Undoes the last [`Ledger::take`] (the exact search backtracks with it).
    fn untake(&mut self, site: usize) {
        self.taken.pop();
        if let Some(i) = self.lines.iter().position(|(s, _)| *s == site) {
            self.lines[i].1 -= 1;
            if self.lines[i].1 == 0 {
                self.lines.swap_remove(i);
            }
        }
    }
}

/// Assigns every line whole to one of `sites`, the cheapest marginal cost first (opening a
/// shipment costs its fixed part and distance); None when some line fits none of them.
fn assign_whole(model: &Model, sites: &[usize]) -> Option<Vec<Part>> {
    let lines: Vec<usize> = (0..model.lines()).collect();
    assign_lines(model, sites, &lines, |ledger, s| {
        let n = ledger.lines_at(s);
        let opening = if n == 0 {
            model.problem.costs.per_shipment + model.distance[s]
        } else {
            0.0
        };
        (
            false,
            opening + model.penalty(s, n + 1) - model.penalty(s, n),
        )
    })
}

/// Assigns each of `lines` whole to one of `sites`, the lines with fewest choices first, each
/// to the site with the smallest `key` (a flag compared first, then a cost); None when some
/// line fits none of them.
fn assign_lines(
    model: &Model,
    sites: &[usize],
    lines: &[usize],
    key: impl Fn(&Ledger, usize) -> (bool, f64),
) -> Option<Vec<Part>> {
    let mut order = lines.to_vec();
    order.sort_by_key(|line| {
        sites
            .iter()
            .filter(|s| model.stock_at(*line, **s) >= model.quantity(*line))
            .count()
    });
    let mut ledger = Ledger::default();
    let mut parts = Vec::with_capacity(lines.len());
    for line in order {
        let site = sites
            .iter()
            .copied()
            .filter(|s| ledger.can_take(model, line, *s))
            .min_by(|a, b| {
                let (ka, kb) = (key(&ledger, *a), key(&ledger, *b));
                ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
            })?;
        parts.push(ledger.take(model, line, site, model.quantity(line)));
    }
    Some(parts)
}

/// Sites ordered by how many lines they could ship whole, then by distance.
fn by_coverage(model: &Model) -> Vec<(usize, usize)> {
    let mut sites: Vec<(usize, usize)> = (0..model.sites())
        .filter(|s| model.open[*s])
        .map(|s| {
            let covers = (0..model.lines())
                .filter(|l| model.stock_at(*l, s) >= model.quantity(*l))
                .count();
            (s, covers)
        })
        .filter(|(_, covers)| *covers > 0)
        .collect();
    sites.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(model.distance[a.0].total_cmp(&model.distance[b.0]))
    });
    sites
}

/// How many of the best-covering sites the pair search looks at.
const PAIR_CANDIDATES: usize = 24;

/// The fast planner: one warehouse if any can ship everything; else the best pair among the
/// best-covering warehouses; else a greedy cover improved by dropping warehouses, with lines
/// split only where no warehouse holds one whole.
pub fn heuristic(problem: &Problem) -> Plan {
    let model = Model::new(problem);
    let n = model.lines();
    let covering = by_coverage(&model);
    // One warehouse for everything.
    let single = covering
        .iter()
        .filter(|(_, covers)| *covers == n)
        .filter_map(|(s, _)| assign_whole(&model, &[*s]))
        .map(|parts| model.finish(parts, Method::Single))
        .min_by(|a, b| a.cost.total_cmp(&b.cost));
    if let Some(single) = single {
        return single;
    }
    let options = problem.options;
    if !options.allow_split || options.max_shipments < 2 {
        return best_single_partial(&model, &covering);
    }
    // The best pair.
    let top: Vec<usize> = covering
        .iter()
        .take(PAIR_CANDIDATES)
        .map(|(s, _)| *s)
        .collect();
    let mut best: Option<Plan> = None;
    for (i, a) in top.iter().enumerate() {
        for b in &top[i + 1..] {
            if let Some(parts) = assign_whole(&model, &[*a, *b]) {
                let plan = model.finish(parts, Method::Heuristic);
                if best.as_ref().is_none_or(|p| plan.cost < p.cost) {
                    best = Some(plan);
                }
            }
        }
    }
    if let Some(best) = best {
        return best;
    }
    let plan = greedy_cover(&model, &covering);
    cap_shipments(&model, plan)
}

/// Without splitting: the one warehouse that ships the most units, the rest reported short.
fn best_single_partial(model: &Model, covering: &[(usize, usize)]) -> Plan {
    let mut best: Option<Plan> = None;
    for (site, _) in covering {
        let mut ledger = Ledger::default();
        let mut parts = Vec::new();
        for line in 0..model.lines() {
            if ledger.can_take(model, line, *site) {
                parts.push(ledger.take(model, line, *site, model.quantity(line)));
            }
        }
        let plan = model.finish(parts, Method::Heuristic);
        let units = |p: &Plan| p.parts.iter().map(|x| x.quantity).sum::<i64>();
        if best.as_ref().is_none_or(|b| {
            units(&plan) > units(b) || (units(&plan) == units(b) && plan.cost < b.cost)
        }) {
            best = Some(plan);
        }
    }
    best.unwrap_or_else(|| model.finish(Vec::new(), Method::Heuristic))
}

/// Greedy set cover: take the warehouse that ships the most remaining lines whole (nearer on
/// a tie), until none ships any; then try to drop each warehouse by moving its lines to the
/// others; then split the lines no warehouse holds whole, nearest first.
fn greedy_cover(model: &Model, covering: &[(usize, usize)]) -> Plan {
    let mut chosen: Vec<usize> = Vec::new();
    let mut ledger = Ledger::default();
    let mut covered = vec![false; model.lines()];
    loop {
        let pick = covering
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| !chosen.contains(s))
            .map(|s| {
                let mut trial = ledger.clone();
                let count = (0..model.lines())
                    .filter(|l| !covered[*l])
                    .filter(|l| {
                        let ok = trial.can_take(model, *l, s);
                        if ok {
                            trial.take(model, *l, s, model.quantity(*l));
                        }
                        ok
                    })
                    .count();
                (s, count)
            })
            .filter(|(_, count)| *count > 0)
            .max_by(|a, b| {
                a.1.cmp(&b.1)
                    .then(model.distance[b.0].total_cmp(&model.distance[a.0]))
            });
        let Some((site, _)) = pick else { break };
        chosen.push(site);
        for (line, covered) in covered.iter_mut().enumerate() {
            if !*covered && ledger.can_take(model, line, site) {
                ledger.take(model, line, site, model.quantity(line));
                *covered = true;
            }
        }
    }
    // Drop warehouses whose lines the others can take.
    let whole: Vec<usize> = (0..model.lines()).filter(|l| covered[*l]).collect();
    // Lines go to a warehouse already shipping first, then to the nearest.
    let sub = |sites: &[usize]| {
        assign_lines(model, sites, &whole, |ledger, s| {
            (ledger.lines_at(s) == 0, model.distance[s])
        })
    };
    let mut parts = sub(&chosen).unwrap_or_default();
    let mut improved = true;
    while improved {
        improved = false;
        for i in 0..chosen.len() {
            let mut fewer = chosen.clone();
            fewer.remove(i);
            if let Some(p) = sub(&fewer)
                && model.cost(&p) < model.cost(&parts)
            {
                chosen = fewer;
                parts = p;
                improved = true;
                break;
            }
        }
    }
    // Split what no warehouse holds whole: from warehouses already shipping first, then the
    // nearest others.
    let mut ledger = Ledger::default();
    for part in &parts {
        ledger.take(model, part.line, part.site, part.quantity);
    }
    for line in (0..model.lines()).filter(|l| !covered[*l]) {
        let mut sources: Vec<usize> = (0..model.sites()).filter(|s| model.open[*s]).collect();
        sources.sort_by(|a, b| {
            let shipping = |s: &usize| !chosen.contains(s);
            shipping(a)
                .cmp(&shipping(b))
                .then(model.distance[*a].total_cmp(&model.distance[*b]))
        });
        let mut missing = model.quantity(line);
        for site in sources {
            if missing == 0 {
                break;
            }
            let take = ledger.left(model, line, site).min(missing);
            if take > 0 && model.has_room(site, ledger.lines_at(site) + 1) {
                parts.push(ledger.take(model, line, site, take));
                missing -= take;
                if !chosen.contains(&site) {
                    chosen.push(site);
                }
            }
        }
    }
    model.finish(parts, Method::Heuristic)
}

/// Keeps at most `max_shipments` warehouses (those shipping the most units); what the others
/// would have shipped becomes a shortfall.
fn cap_shipments(model: &Model, plan: Plan) -> Plan {
    let max = model.problem.options.max_shipments.max(1);
    let shipments = plan.shipments();
    if shipments.len() <= max {
        return plan;
    }
    let mut units: Vec<(usize, i64)> = shipments
        .iter()
        .map(|s| {
            let sum = plan
                .parts
                .iter()
                .filter(|p| p.site == *s)
                .map(|p| p.quantity)
                .sum();
            (*s, sum)
        })
        .collect();
    units.sort_by_key(|(_, units)| std::cmp::Reverse(*units));
    let keep: Vec<usize> = units.iter().take(max).map(|(s, _)| *s).collect();
    let parts = plan
        .parts
        .into_iter()
        .filter(|p| keep.contains(&p.site))
        .collect();
    model.finish(parts, plan.method)
}

/// The optimal plan shipping every line whole, by depth-first search with the cost so far
/// as the bound. None when some line fits no warehouse whole, or the search would visit more
/// than `node_limit` nodes.
pub fn exact(problem: &Problem, node_limit: usize) -> Option<Plan> {
    let model = Model::new(problem);
    let max_sites = if problem.options.allow_split {
        problem.options.max_shipments.max(1)
    } else {
        1
    };
    let mut order: Vec<usize> = (0..model.lines()).collect();
    let candidates: Vec<Vec<usize>> = (0..model.lines())
        .map(|line| {
            let mut sites: Vec<usize> = (0..model.sites())
                .filter(|s| model.open[*s] && model.stock_at(line, *s) >= model.quantity(line))
                .collect();
            sites.sort_by(|a, b| model.distance[*a].total_cmp(&model.distance[*b]));
            sites
        })
        .collect();
    if candidates.iter().any(Vec::is_empty) {
        return None;
    }
    order.sort_by_key(|l| candidates[*l].len());
    let mut search = Search {
        model: &model,
        order,
        candidates,
        max_sites,
        node_limit,
        nodes: 0,
        ledger: Ledger::default(),
        parts: Vec::new(),
        best: None,
        best_cost: f64::INFINITY,
    };
    search.visit(0, 0.0, 0);
    if search.nodes > node_limit {
        return None;
    }
    search.best.map(|parts| model.finish(parts, Method::Exact))
}

struct Search<'m, 'p> {
    model: &'m Model<'p>,
    order: Vec<usize>,
    candidates: Vec<Vec<usize>>,
    max_sites: usize,
    node_limit: usize,
    nodes: usize,
    ledger: Ledger,
    parts: Vec<Part>,
    best: Option<Vec<Part>>,
    best_cost: f64,
}

impl Search<'_, '_> {
    fn visit(&mut self, depth: usize, cost: f64, sites_used: usize) {
        self.nodes += 1;
        if self.nodes > self.node_limit || cost >= self.best_cost {
            return;
        }
        if depth == self.order.len() {
            self.best_cost = cost;
            self.best = Some(self.parts.clone());
            return;
        }
        let line = self.order[depth];
        let model = self.model;
        // Warehouses already shipping first: they add no fixed cost.
        let mut sites = self.candidates[line].clone();
        sites.sort_by_key(|s| self.ledger.lines_at(*s) == 0);
        for site in sites {
            if !self.ledger.can_take(model, line, site) {
                continue;
            }
            let n = self.ledger.lines_at(site);
            let opens = n == 0;
            if opens && sites_used == self.max_sites {
                continue;
            }
            let added = if opens {
                model.shipment_cost(site, 1)
            } else {
                model.penalty(site, n + 1) - model.penalty(site, n)
            };
            self.parts
                .push(self.ledger.take(model, line, site, model.quantity(line)));
            self.visit(depth + 1, cost + added, sites_used + usize::from(opens));
            self.parts.pop();
            self.ledger.untake(site);
        }
    }
}

/// The baseline: each line from the nearest warehouse holding all of it, split nearest first
/// when none does.
pub fn nearest_per_line(problem: &Problem) -> Plan {
    let model = Model::new(problem);
    let mut ledger = Ledger::default();
    let mut by_distance: Vec<usize> = (0..model.sites()).filter(|s| model.open[*s]).collect();
    by_distance.sort_by(|a, b| model.distance[*a].total_cmp(&model.distance[*b]));
    let mut parts = Vec::new();
    for line in 0..model.lines() {
        if let Some(site) = by_distance
            .iter()
            .copied()
            .find(|s| ledger.can_take(&model, line, *s))
        {
            parts.push(ledger.take(&model, line, site, model.quantity(line)));
            continue;
        }
        let mut missing = model.quantity(line);
        for site in &by_distance {
            let take = ledger.left(&model, line, *site).min(missing);
            if take > 0 && model.has_room(*site, ledger.lines_at(*site) + 1) {
                parts.push(ledger.take(&model, line, *site, take));
                missing -= take;
            }
            if missing == 0 {
                break;
            }
        }
    }
    model.finish(parts, Method::NearestPerLine)
}

#[cfg(test)]
mod tests;

//! The planner's rules, each on a small hand-made map (no database, no network).

use super::*;

const DESTINATION: GeoPoint = GeoPoint {
    latitude: 52.52,
    longitude: 13.40,
};

/// A warehouse `km` kilometres (roughly) due east of the destination.
fn site(km: f64) -> Site {
    Site {
        warehouse_id: Uuid::now_v7(),
        location: Some(GeoPoint {
            latitude: DESTINATION.latitude,
            longitude: DESTINATION.longitude + km / 67.8,
        }),
        paused: false,
        capacity: None,
        workload: 0,
    }
}

fn line(product: Uuid, quantity: i64) -> Line {
    Line {
        line_id: Uuid::now_v7().to_string(),
        product_id: product,
        quantity,
    }
}

struct Map {
    problem: Problem,
}

impl Map {
    fn new(sites: Vec<Site>, lines: Vec<Line>) -> Self {
        Self {
            problem: Problem {
                destination: DESTINATION,
                lines,
                sites,
                available: BTreeMap::new(),
                options: Options::default(),
                costs: CostModel::default(),
            },
        }
    }

    fn stock(mut self, product: Uuid, site: usize, units: i64) -> Self {
        let warehouse = self.problem.sites[site].warehouse_id;
        self.problem.available.insert((product, warehouse), units);
        self
    }

    fn options(mut self, options: Options) -> Self {
        self.problem.options = options;
        self
    }

    /// Where each line ships from: (line index, site index, quantity), sorted.
    fn decide(&self) -> (Vec<(usize, usize, i64)>, Plan) {
        let plan = plan(&self.problem);
        let mut parts: Vec<_> = plan
            .parts
            .iter()
            .map(|p| (p.line, p.site, p.quantity))
            .collect();
        parts.sort();
        (parts, plan)
    }
}

#[test]
fn the_nearest_warehouse_with_the_full_quantity_wins() {
    let mug = Uuid::now_v7();
    let map = Map::new(vec![site(300.0), site(20.0), site(5.0)], vec![line(mug, 4)])
        .stock(mug, 0, 10)
        .stock(mug, 1, 10)
        .stock(mug, 2, 3);
    let (parts, plan) = map.decide();
    assert_eq!(
        parts,
        [(0, 1, 4)],
        "the nearest with all 4 units, not the nearest with 3"
    );
    assert_eq!(plan.method, Method::Single);
}

#[test]
fn one_warehouse_for_the_whole_order_beats_a_closer_split() {
    let (mug, plate) = (Uuid::now_v7(), Uuid::now_v7());
    let map = Map::new(
        vec![site(10.0), site(400.0)],
        vec![line(mug, 1), line(plate, 1)],
    )
    .stock(mug, 0, 5)
    .stock(mug, 1, 5)
    .stock(plate, 1, 5);
    let (parts, plan) = map.decide();
    assert_eq!(
        parts,
        [(0, 1, 1), (1, 1, 1)],
        "both lines from the farther warehouse"
    );
    assert_eq!(plan.shipments().len(), 1);
}

#[test]
fn a_warehouse_at_capacity_is_never_chosen() {
    let mug = Uuid::now_v7();
    let full = Site {
        capacity: Some(10),
        workload: 10,
        ..site(5.0)
    };
    let map = Map::new(vec![full, site(900.0)], vec![line(mug, 1)])
        .stock(mug, 0, 5)
        .stock(mug, 1, 5);
    assert_eq!(map.decide().0, [(0, 1, 1)]);
}

#[test]
fn a_warehouse_near_capacity_is_chosen_only_when_the_alternative_is_much_farther() {
    let mug = Uuid::now_v7();
    let busy = Site {
        capacity: Some(10),
        workload: 9,
        ..site(5.0)
    };
    let near_alternative = Map::new(vec![busy.clone(), site(50.0)], vec![line(mug, 1)])
        .stock(mug, 0, 5)
        .stock(mug, 1, 5);
    assert_eq!(
        near_alternative.decide().0,
        [(0, 1, 1)],
        "a little farther beats nearly full"
    );
    let only_choice = Map::new(vec![busy], vec![line(mug, 1)]).stock(mug, 0, 5);
    assert_eq!(
        only_choice.decide().0,
        [(0, 0, 1)],
        "nearly full, but the only one"
    );
}

#[test]
fn a_paused_warehouse_is_skipped() {
    let mug = Uuid::now_v7();
    let paused = Site {
        paused: true,
        ..site(5.0)
    };
    let map = Map::new(vec![paused, site(700.0)], vec![line(mug, 2)])
        .stock(mug, 0, 5)
        .stock(mug, 1, 5);
    assert_eq!(map.decide().0, [(0, 1, 2)]);
}

#[test]
fn a_warehouse_without_coordinates_ships_only_when_no_located_one_can() {
    let mug = Uuid::now_v7();
    let unknown = Site {
        location: None,
        ..site(0.0)
    };
    let map = Map::new(vec![unknown.clone(), site(5_000.0)], vec![line(mug, 1)])
        .stock(mug, 0, 5)
        .stock(mug, 1, 5);
    assert_eq!(map.decide().0, [(0, 1, 1)]);
    let only = Map::new(vec![unknown], vec![line(mug, 1)]).stock(mug, 0, 5);
    assert_eq!(only.decide().0, [(0, 0, 1)]);
}

#[test]
fn when_no_warehouse_holds_the_order_it_ships_from_the_fewest() {
    let (mug, plate, bowl) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let map = Map::new(
        vec![site(10.0), site(20.0), site(30.0)],
        vec![line(mug, 1), line(plate, 1), line(bowl, 1)],
    )
    .stock(mug, 0, 1)
    .stock(plate, 1, 1)
    .stock(bowl, 1, 1)
    .stock(mug, 2, 1)
    .stock(plate, 2, 1);
    let (parts, plan) = map.decide();
    assert_eq!(plan.shipments().len(), 2);
    assert!(plan.is_complete());
    assert!(!plan.splits_a_line());
    assert!(
        parts.contains(&(2, 1, 1)),
        "only warehouse 1 has bowls: {parts:?}"
    );
}

#[test]
fn a_line_no_warehouse_holds_whole_is_split_nearest_first() {
    let mug = Uuid::now_v7();
    let map = Map::new(vec![site(10.0), site(20.0), site(30.0)], vec![line(mug, 8)])
        .stock(mug, 0, 3)
        .stock(mug, 1, 2)
        .stock(mug, 2, 10);
    // Warehouse 2 holds all 8: no split.
    assert_eq!(map.decide().0, [(0, 2, 8)]);
    let map = Map::new(vec![site(10.0), site(20.0), site(30.0)], vec![line(mug, 8)])
        .stock(mug, 0, 3)
        .stock(mug, 1, 2)
        .stock(mug, 2, 4);
    let (parts, plan) = map.decide();
    assert!(plan.is_complete());
    assert_eq!(parts, [(0, 0, 3), (0, 1, 2), (0, 2, 3)]);
}

#[test]
fn the_maximum_number_of_shipments_is_honoured() {
    let (mug, plate) = (Uuid::now_v7(), Uuid::now_v7());
    let map = Map::new(
        vec![site(10.0), site(20.0)],
        vec![line(mug, 1), line(plate, 1)],
    )
    .stock(mug, 0, 1)
    .stock(plate, 1, 1)
    .options(Options {
        max_shipments: 1,
        allow_partial: true,
        ..Options::default()
    });
    let (parts, plan) = map.decide();
    assert_eq!(plan.shipments().len(), 1);
    assert_eq!(parts.len(), 1);
    assert_eq!(plan.shortfalls.len(), 1);
}

#[test]
fn without_splits_only_one_warehouse_ships() {
    let (mug, plate) = (Uuid::now_v7(), Uuid::now_v7());
    let map = Map::new(
        vec![site(10.0), site(20.0)],
        vec![line(mug, 1), line(plate, 1)],
    )
    .stock(mug, 0, 1)
    .stock(plate, 1, 1)
    .options(Options {
        allow_split: false,
        ..Options::default()
    });
    let (_, plan) = map.decide();
    assert!(plan.shipments().len() <= 1);
    assert!(!plan.is_complete());
}

#[test]
fn an_order_nothing_can_serve_reports_the_shortfall_of_each_line() {
    let (mug, plate) = (Uuid::now_v7(), Uuid::now_v7());
    let map = Map::new(
        vec![site(10.0), site(20.0)],
        vec![line(mug, 5), line(plate, 2)],
    )
    .stock(mug, 0, 2)
    .stock(mug, 1, 1)
    .stock(plate, 1, 2);
    let (_, plan) = map.decide();
    assert_eq!(
        plan.shortfalls,
        [Shortfall {
            line: 0,
            requested: 5,
            allocated: 3
        }]
    );
}

#[test]
fn exact_and_heuristic_agree_where_the_heuristic_is_optimal() {
    let products: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let sites = vec![site(10.0), site(40.0), site(80.0), site(160.0)];
    let lines: Vec<Line> = products.iter().map(|p| line(*p, 2)).collect();
    let map = Map::new(sites, lines)
        .stock(products[0], 0, 5)
        .stock(products[1], 0, 5)
        .stock(products[2], 1, 5)
        .stock(products[3], 1, 5)
        .stock(products[0], 3, 5)
        .stock(products[1], 3, 5)
        .stock(products[2], 3, 5);
    let heuristic = heuristic(&map.problem);
    let exact = exact(&map.problem, EXACT_NODE_LIMIT).expect("small enough");
    assert_eq!(heuristic.shipments().len(), 2);
    assert!(
        (heuristic.cost - exact.cost).abs() < 1e-9,
        "{} vs {}",
        heuristic.cost,
        exact.cost
    );
    assert_eq!(exact.method, Method::Exact);
}

#[test]
fn stock_shared_by_two_lines_of_one_product_is_not_counted_twice() {
    let mug = Uuid::now_v7();
    let map = Map::new(
        vec![site(10.0), site(50.0)],
        vec![line(mug, 3), line(mug, 3)],
    )
    .stock(mug, 0, 4)
    .stock(mug, 1, 6);
    let (parts, plan) = map.decide();
    assert_eq!(parts, [(0, 1, 3), (1, 1, 3)], "only warehouse 1 holds 6");
    assert_eq!(plan.shipments().len(), 1);
}

//! AllocateOrder: plan with fresh numbers, reserve the plan in stock in one all-or-nothing
//! call, record it; re-plan (a bounded number of times) when stock or a warehouse's room
//! moved in between.
//!
//! Retry safety: the whole RPC runs once per request id (the platform's idempotency, whose
//! transaction stays open across the stock calls, so a concurrent duplicate waits and then
//! replays). Each stock reservation carries a request id derived from ours and the attempt
//! number. If the service dies after stock reserved but before the allocation was stored, the
//! retry finds the order's reservations in stock and adopts them instead of reserving again
//! (within the warehouses' capacity: where the room is gone, it releases them and plans anew).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use inventory_core::ServiceError;
use inventory_core::time::{now, timestamp};
use inventory_proto::allocation::v1 as pb;
use inventory_runtime::{RequestKey, Tx, db_error, failpoint, idempotency};
use inventory_stock_client::{StockError, pb as stock};
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::Batched;
use super::lifecycle::release_order;
use super::parse::Allocate;
use super::{AllocationApi, DOMAIN, convert, parse};
use crate::domain::explain::{distance_km, explain};
use crate::domain::geo::GeoPoint;
use crate::domain::planner::{self, Plan, Problem, Site};
use crate::store::{self, AllocatedLine, Profile, Shortfall, Status};

/// Pairs per BatchGetAvailability call (stock's limit).
const AVAILABILITY_BATCH: usize = 1000;
/// Lines one ReserveOrder takes (stock's limit).
pub(super) const MAX_RESERVATION_LINES: usize = 500;

impl AllocationApi {
    pub(super) async fn allocate(
        &self,
        req: pb::AllocateOrderRequest,
    ) -> Result<pb::AllocateOrderResponse, ServiceError> {
        let cmd = parse::allocate(&req)?;
        let key = RequestKey::new("AllocateOrder", &cmd.request_id, &req);
        if cmd.expire_time.is_some_and(|at| at <= chrono::Utc::now()) {
            let refusal =
                ServiceError::invalid("options.reservation_expire_time", "must be in the future");
            return idempotency::replay_or(&self.pool, &key, refusal).await;
        }
        let (cmd, key) = match &self.batcher {
            Some(batcher) => match batcher.submit(cmd, key).await {
                Batched::Done(answer) => return answer,
                Batched::Alone(cmd, key) => (*cmd, key),
            },
            None => (cmd, key),
        };
        self.allocate_alone(cmd, key).await
    }

    /// One order in its own transaction: the path a batch hands back what it cannot finish
    /// (retries, an order stock already holds, stock moving under the plan, any failure).
    async fn allocate_alone(
        &self,
        cmd: Allocate,
        key: RequestKey,
    ) -> Result<pb::AllocateOrderResponse, ServiceError> {
        // The numbers to plan with are read before any transaction opens, so the slowest of
        // stock's reads does not hold a pooled connection (what stock holds for the order is
        // asked inside, under the order's lock). Only a re-plan reads again inside. A failed
        // read matters only if there is something to plan.
        let first_look = async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            self.problem(&mut conn, &cmd).await
        }
        .await;
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            store::lock_order(&mut tx, &cmd.order_id).await?;
            if store::get_allocation(&mut tx, &cmd.order_id)
                .await?
                .is_some()
            {
                return Err(ServiceError::AlreadyExists {
                    resource: "allocation of order",
                    id: cmd.order_id.clone(),
                });
            }
            // What stock already holds for the order, asked under its lock: the holds of an
            // attempt that held and then rolled back (or died) are adopted, not reserved again
            // (or released and the order planned anew where their warehouse filled up since).
            // (A hold stock commits after its caller gave up on it, a deadline say, can still
            // land after this look.)
            let held = self.active_holds(vec![cmd.order_id.clone()]).await?;
            let allocation = if held.is_empty() {
                self.plan_and_reserve(&mut tx, &cmd, first_look?).await?
            } else if let Some(adopted) = self.adopt(&mut tx, &cmd, held).await? {
                adopted
            } else {
                // Released: the first look predates the release.
                let fresh = self.problem(&mut tx, &cmd).await?;
                self.plan_and_reserve(&mut tx, &cmd, fresh).await?
            };
            store::insert_allocation(&mut tx, &allocation).await?;
            let names = self.names().await;
            let response = pb::AllocateOrderResponse {
                allocation: Some(convert::allocation(&allocation, &names)),
            };
            Ok((tx, response))
        })
        .await
    }

    async fn plan_and_reserve(
        &self,
        tx: &mut Tx,
        cmd: &Allocate,
        first_look: Problem,
    ) -> Result<store::Allocation, ServiceError> {
        let mut look = Some(first_look);
        for attempt in 1..=self.replans {
            let problem = match look.take() {
                Some(problem) => problem,
                None => self.problem(tx, cmd).await?,
            };
            let plan = planner::plan(&problem);
            if plan.parts.is_empty() || (!plan.is_complete() && !cmd.options.allow_partial) {
                return Err(not_servable(&problem, &plan));
            }
            if plan.parts.len() > MAX_RESERVATION_LINES {
                return Err(ServiceError::FailedPrecondition {
                    reason: "TOO_MANY_SOURCES",
                    domain: DOMAIN,
                    message: format!(
                        "the order would ship as {} (line, warehouse) parts, more than the {MAX_RESERVATION_LINES} one reservation holds; split the order",
                        plan.parts.len()
                    ),
                    metadata: vec![("parts", plan.parts.len().to_string())],
                });
            }
            // First the room the plan counts on, inside a savepoint: capped warehouses' rows
            // stay locked until the allocation commits, and if the room is gone (another order
            // took it since the plan) nothing has been asked of stock yet.
            let mut claim = sqlx::Connection::begin(&mut **tx).await.map_err(db_error)?;
            store::lock_warehouses_shared(&mut claim, &shipping(&problem, &plan)).await?;
            if !store::add_open_lines(&mut claim, &workload(&problem, &plan), true).await? {
                claim.rollback().await.map_err(db_error)?;
                tracing::info!(order_id = %cmd.order_id, attempt, "a warehouse filled up since the plan; planning again");
                continue;
            }
            // A fresh id per attempt: a stock request that failed, or one a crashed run made,
            // never answers for another plan. Holds a crashed run left are found by `adopt`.
            let reservation_id =
                super::stock_request_id(&cmd.request_id, &format!("reserve:{}", Uuid::now_v7()));
            failpoint("allocation.before_reserve").await;
            match self
                .stock
                .reserve_order(reservation(cmd, &problem, &plan, &reservation_id))
                .await
            {
                Ok(_) => {
                    failpoint("allocation.after_reserve").await;
                    claim.commit().await.map_err(db_error)?;
                    return Ok(record(cmd, &problem, &plan, reservation_id));
                }
                Err(StockError::InsufficientStock { .. }) => {
                    claim.rollback().await.map_err(db_error)?;
                    tracing::info!(order_id = %cmd.order_id, attempt, "stock moved since the plan; planning again");
                }
                Err(StockError::InvalidArgument { fields, .. })
                    if fields.iter().any(|(f, _)| f == "expire_time") =>
                {
                    let why = fields
                        .into_iter()
                        .find(|(f, _)| f == "expire_time")
                        .map(|(_, d)| d)
                        .unwrap_or_default();
                    return Err(ServiceError::invalid(
                        "options.reservation_expire_time",
                        why,
                    ));
                }
                Err(other) => {
                    claim.rollback().await.map_err(db_error)?;
                    if super::lifecycle::outcome_unknown(&other) {
                        super::lifecycle::release_given_up(
                            &*self.stock,
                            &cmd.order_id,
                            &cmd.request_id,
                        )
                        .await;
                    }
                    return Err(other.into());
                }
            }
        }
        Err(ServiceError::Aborted(
            "stock kept changing while the order was planned; retry".to_owned(),
        ))
    }

    /// What stock holds for these orders now.
    pub(super) async fn active_holds(
        &self,
        order_ids: Vec<String>,
    ) -> Result<Vec<stock::Reservation>, ServiceError> {
        Ok(self
            .stock
            .list_reservations(order_ids)
            .await?
            .into_iter()
            .filter(|r| r.status == stock::ReservationStatus::Active as i32)
            .collect())
    }

    /// What stock already holds for this order, left by an earlier attempt that died or
    /// rolled back after reserving: adopted as the allocation, so nothing is reserved twice.
    /// If a warehouse it is held in has no room left for its lines (other orders filled it
    /// since), the holds are released instead and `None` says to plan the order afresh.
    async fn adopt(
        &self,
        tx: &mut Tx,
        cmd: &Allocate,
        held: Vec<stock::Reservation>,
    ) -> Result<Option<store::Allocation>, ServiceError> {
        let warehouses = self.directory.warehouses().await?;
        let located: HashMap<Uuid, GeoPoint> = warehouses
            .iter()
            .filter_map(|w| Some((Uuid::parse_str(&w.warehouse_id).ok()?, location(w)?)))
            .collect();
        let mut lines = Vec::with_capacity(held.len());
        for reservation in &held {
            let line = cmd
                .lines
                .iter()
                .find(|l| l.line_id == reservation.order_line_id)
                .filter(|l| l.product_id.to_string() == reservation.product_id);
            let (Some(line), Ok(warehouse_id)) = (line, Uuid::parse_str(&reservation.warehouse_id))
            else {
                return Err(ServiceError::FailedPrecondition {
                    reason: "ORDER_ALREADY_HELD",
                    domain: DOMAIN,
                    message: format!(
                        "stock already holds other lines for order {}; cancel them or use another order id",
                        cmd.order_id
                    ),
                    metadata: vec![("order_id", cmd.order_id.clone())],
                });
            };
            lines.push(AllocatedLine {
                order_line_id: line.line_id.clone(),
                warehouse_id,
                product_id: line.product_id,
                line_quantity: line.quantity,
                quantity: reservation.quantity_held,
                quantity_shipped: 0,
                distance_km: located
                    .get(&warehouse_id)
                    .map(|at| crate::domain::geo::great_circle_km(cmd.destination.point, *at)),
                reason: "held in stock by an earlier attempt for this order, adopted".to_owned(),
                passed_over: Vec::new(),
            });
        }
        let mut per_warehouse: BTreeMap<Uuid, i64> = BTreeMap::new();
        for line in &lines {
            *per_warehouse.entry(line.warehouse_id).or_default() += 1;
        }
        let workload: Vec<(Uuid, i64)> = per_warehouse.into_iter().collect();
        let warehouses: Vec<Uuid> = workload.iter().map(|(w, _)| *w).collect();
        // In a savepoint, as a plan's claim is: if the room is gone, the warehouses' rows are
        // let go at once, not held through the release and the new plan.
        let mut claim = sqlx::Connection::begin(&mut **tx).await.map_err(db_error)?;
        store::lock_warehouses_shared(&mut claim, &warehouses).await?;
        if !store::add_open_lines(&mut claim, &workload, true).await? {
            claim.rollback().await.map_err(db_error)?;
            // Nothing was counted; what the holds took goes back to stock.
            release_order(
                &*self.stock,
                &cmd.order_id,
                super::stock_request_id(&cmd.request_id, &format!("release:{}", Uuid::now_v7())),
                "held by an interrupted attempt in a warehouse that filled up since",
                crate::app::SPEC.binary,
            )
            .await?;
            tracing::warn!(order_id = %cmd.order_id, "released the holds an interrupted attempt left in a warehouse that filled up since; planning again");
            return Ok(None);
        }
        claim.commit().await.map_err(db_error)?;
        tracing::warn!(order_id = %cmd.order_id, lines = lines.len(), "adopted reservations an interrupted attempt left in stock");
        let allocated = |id: &str| -> i64 {
            lines
                .iter()
                .filter(|l| l.order_line_id == id)
                .map(|l| l.quantity)
                .sum()
        };
        let shortfalls = cmd
            .lines
            .iter()
            .filter(|l| allocated(&l.line_id) < l.quantity)
            .map(|l| Shortfall {
                order_line_id: l.line_id.clone(),
                requested: l.quantity,
                allocated: allocated(&l.line_id),
            })
            .collect();
        let at = now();
        Ok(Some(store::Allocation {
            order_id: cmd.order_id.clone(),
            status: Status::Allocated,
            latitude: cmd.destination.point.latitude,
            longitude: cmd.destination.point.longitude,
            postal_code: cmd.destination.postal_code.clone(),
            country: cmd.destination.country.clone(),
            // The run that made these holds died before recording its stock request id.
            reservation_request_id: super::stock_request_id(&cmd.request_id, "adopted"),
            lines,
            shortfalls,
            create_time: at,
            update_time: at,
        }))
    }

    /// The planner's input, fresh: warehouses from stock (cached), profiles from here, and
    /// what stock has available for every (product, warehouse) pair, in batched calls.
    async fn problem(
        &self,
        conn: &mut PgConnection,
        cmd: &Allocate,
    ) -> Result<Problem, ServiceError> {
        let warehouses = self.directory.warehouses().await?;
        let sites = sites(&warehouses, &store::profiles(conn).await?);
        let products: BTreeSet<Uuid> = cmd.lines.iter().map(|l| l.product_id).collect();
        let ids: Vec<Uuid> = sites.iter().map(|s| s.warehouse_id).collect();
        let available = match self.availability(&products, &ids).await {
            Ok(available) => available,
            Err(StockError::NotFound(message)) => {
                // A product stock does not know; name the line that asked for it.
                let line = cmd
                    .lines
                    .iter()
                    .position(|l| message.contains(&l.product_id.to_string()));
                return Err(match line {
                    Some(i) => ServiceError::NotFound {
                        resource: "product",
                        id: format!("{} (lines[{i}].product_id)", cmd.lines[i].product_id),
                    },
                    None => ServiceError::NotFound {
                        resource: "product or warehouse",
                        id: message,
                    },
                });
            }
            Err(other) => return Err(other.into()),
        };
        Ok(Problem {
            destination: cmd.destination.point,
            lines: cmd.lines.clone(),
            sites,
            available,
            options: cmd.options,
            costs: self.costs,
        })
    }

    /// What stock has available for every pair of these products and warehouses, in calls
    /// of stock's batch size.
    pub(super) async fn availability(
        &self,
        products: &BTreeSet<Uuid>,
        warehouses: &[Uuid],
    ) -> Result<BTreeMap<(Uuid, Uuid), i64>, StockError> {
        let keys: Vec<stock::InventoryKey> = products
            .iter()
            .flat_map(|p| {
                warehouses.iter().map(move |w| stock::InventoryKey {
                    product_id: p.to_string(),
                    warehouse_id: w.to_string(),
                })
            })
            .collect();
        let mut available = BTreeMap::new();
        for chunk in keys.chunks(AVAILABILITY_BATCH) {
            for a in self.stock.batch_get_availability(chunk.to_vec()).await? {
                if let (Ok(p), Ok(w)) = (
                    Uuid::parse_str(&a.product_id),
                    Uuid::parse_str(&a.warehouse_id),
                ) {
                    available.insert((p, w), a.quantity_available);
                }
            }
        }
        Ok(available)
    }
}

/// Stock's warehouses as the planner sees them, with this service's profiles.
pub(super) fn sites(warehouses: &[stock::Warehouse], profiles: &[Profile]) -> Vec<Site> {
    let profiles: HashMap<Uuid, &Profile> = profiles.iter().map(|p| (p.warehouse_id, p)).collect();
    warehouses
        .iter()
        .filter_map(|w| {
            let id = Uuid::parse_str(&w.warehouse_id).ok()?;
            let profile = profiles.get(&id);
            Some(Site {
                warehouse_id: id,
                location: location(w),
                paused: profile.is_some_and(|p| p.paused),
                capacity: profile.and_then(|p| p.capacity_lines),
                workload: profile.map_or(0, |p| p.open_lines),
            })
        })
        .collect()
}

/// The warehouses a plan ships from.
pub(super) fn shipping(problem: &Problem, plan: &Plan) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = plan
        .parts
        .iter()
        .map(|p| problem.sites[p.site].warehouse_id)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Where stock says a warehouse is, if it knows.
fn location(warehouse: &stock::Warehouse) -> Option<GeoPoint> {
    warehouse.location.as_ref().map(|at| GeoPoint {
        latitude: at.latitude,
        longitude: at.longitude,
    })
}

/// Lines each shipping warehouse takes on. All of them, not only those capped when the plan
/// was made: a capacity set since then must count this order too.
pub(super) fn workload(problem: &Problem, plan: &Plan) -> Vec<(Uuid, i64)> {
    let mut per_site: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for part in &plan.parts {
        per_site.entry(part.site).or_default().insert(part.line);
    }
    per_site
        .into_iter()
        .map(|(site, lines)| (problem.sites[site].warehouse_id, lines.len() as i64))
        .collect()
}

pub(super) fn reservation(
    cmd: &Allocate,
    problem: &Problem,
    plan: &Plan,
    request_id: &str,
) -> stock::ReserveOrderRequest {
    stock::ReserveOrderRequest {
        request_id: request_id.to_owned(),
        order_id: cmd.order_id.clone(),
        lines: plan
            .parts
            .iter()
            .map(|p| stock::ReservationLine {
                order_line_id: problem.lines[p.line].line_id.clone(),
                product_id: problem.lines[p.line].product_id.to_string(),
                warehouse_id: problem.sites[p.site].warehouse_id.to_string(),
                quantity: p.quantity,
            })
            .collect(),
        expire_time: cmd.expire_time.map(timestamp),
        actor: if cmd.actor.is_empty() {
            "fulfillment-allocation".to_owned()
        } else {
            cmd.actor.clone()
        },
    }
}

pub(super) fn record(
    cmd: &Allocate,
    problem: &Problem,
    plan: &Plan,
    request_id: String,
) -> store::Allocation {
    let explanations = explain(problem, plan);
    let warehouse_ids: Vec<Uuid> = problem.sites.iter().map(|s| s.warehouse_id).collect();
    let lines = plan
        .parts
        .iter()
        .map(|p| {
            let line = &problem.lines[p.line];
            AllocatedLine {
                order_line_id: line.line_id.clone(),
                warehouse_id: warehouse_ids[p.site],
                product_id: line.product_id,
                line_quantity: line.quantity,
                quantity: p.quantity,
                quantity_shipped: 0,
                distance_km: distance_km(problem, p.site),
                reason: explanations[p.line].reason.clone(),
                passed_over: convert::passed_over(
                    &explanations[p.line].passed_over,
                    &warehouse_ids,
                ),
            }
        })
        .collect();
    let at = now();
    store::Allocation {
        order_id: cmd.order_id.clone(),
        status: Status::Allocated,
        latitude: cmd.destination.point.latitude,
        longitude: cmd.destination.point.longitude,
        postal_code: cmd.destination.postal_code.clone(),
        country: cmd.destination.country.clone(),
        reservation_request_id: request_id,
        lines,
        shortfalls: plan
            .shortfalls
            .iter()
            .map(|s| Shortfall {
                order_line_id: problem.lines[s.line].line_id.clone(),
                requested: s.requested,
                allocated: s.allocated,
            })
            .collect(),
        create_time: at,
        update_time: at,
    }
}

/// FAILED_PRECONDITION naming every line the best plan leaves short.
pub(super) fn not_servable(problem: &Problem, plan: &Plan) -> ServiceError {
    let subjects: Vec<(String, String)> = plan
        .shortfalls
        .iter()
        .map(|s| {
            let line = &problem.lines[s.line];
            (
                format!("lines[{}]", s.line),
                format!(
                    "order line {} of product {}: requested {}, at most {} can be allocated",
                    line.line_id, line.product_id, s.requested, s.allocated
                ),
            )
        })
        .collect();
    ServiceError::PreconditionsFailed {
        reason: "ORDER_NOT_SERVABLE",
        domain: DOMAIN,
        message: format!(
            "no plan ships the whole order: {} of {} lines short",
            subjects.len(),
            problem.lines.len()
        ),
        metadata: vec![
            ("lines_short", subjects.len().to_string()),
            ("lines", problem.lines.len().to_string()),
        ],
        subjects,
    }
}

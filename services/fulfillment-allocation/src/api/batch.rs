//! Allocation batches: concurrent AllocateOrder calls are gathered and a lane worker plans,
//! reserves and records everything waiting in one transaction. Stock is asked once per batch
//! for what it holds and has available; orders are planned one after another in arrival
//! order, each on what the ones before it left; they are held in stock by one
//! BatchReserveOrders call (each order all or nothing on its own); the allocations, their
//! answers and the workload are written in a handful of statements and one commit.
//!
//! A lane is a pipeline: while batches are in their transactions (up to `in_flight` of
//! them), the next is read from stock and its transaction opened, and it starts once the
//! youngest of them has planned, so it holds in stock while those before it still hold,
//! record or commit. Its read may have come before their holds or after, so it plans on the
//! lower of what stock said and what they left by their own count, and on the higher of the
//! workload it read and what they claimed. A warehouse's room is claimed after the holds (a
//! batch before may still be claiming the same rows); when it is gone, the batch lets go of
//! its holds and rolls back. A batch smaller than the ones before it waits up to a
//! millisecond for callers on their way back.
//!
//! A batch finishes only what it can finish cleanly: granted orders, the refusals it can
//! decide (an order already allocated, one no plan can serve), and a stock error that leaves
//! unknown whether stock holds the order (returned, as on the one-request path, so the retry
//! adopts it). Everything else goes back to the one-request path, which has the full story: a
//! retry (replayed there), an order stock already holds (adopted there, or released where
//! the room is gone), stock refusing the
//! plan (planned again there, as is an order refused on what such a plan took), any failure.
//! Any error of the batch itself rolls it back and sends every order there; holds it made in
//! stock are released, or found and adopted by that path, as after a crash.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use inventory_core::ServiceError;
use inventory_proto::allocation::v1 as pb;
use inventory_runtime::{RequestKey, Tx, db_error, failpoint, idempotency};
use inventory_stock_client::{StockError, pb as stock};
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use super::allocate::{
    MAX_RESERVATION_LINES, not_servable, record, reservation, shipping, sites, workload,
};
use super::lifecycle::release_order;
use super::parse::Allocate;
use super::{AllocationApi, convert};
use crate::domain::planner::{self, Plan, Problem, Site};
use crate::store;

/// Requests queued per lane before callers wait for room.
const LANE_QUEUE: usize = 4096;
/// Most orders in a batch: stock lists the holds of at most 1,000 orders per call.
const MAX_BATCH: usize = 1000;
/// Most batches of a lane in their transactions at once: each holds a database connection.
const MAX_IN_FLIGHT: usize = 8;
/// Most lines in one BatchReserveOrders call (stock's limit).
const MAX_HOLD_LINES: usize = 10_000;
/// How long a batch smaller than the ones before it waits for more: callers answered a
/// moment ago are usually on their way back, and one batch costs less than two.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// What a caller gets back.
pub enum Batched {
    Done(Result<pb::AllocateOrderResponse, ServiceError>),
    /// Run it on the one-request path.
    Alone(Box<Allocate>, RequestKey),
}

struct Pending {
    cmd: Allocate,
    key: RequestKey,
    /// The request's span: its order's stock calls are traced under it.
    span: tracing::Span,
    reply: oneshot::Sender<Batched>,
}

/// How a batch ends for one of its orders.
#[allow(clippy::large_enum_variant)] // one per order of a batch, moved once
enum Outcome {
    Done(Result<pb::AllocateOrderResponse, ServiceError>),
    Alone,
}

/// How AllocateOrder calls are batched.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    /// Lane workers; orders are spread over them by order id.
    pub lanes: usize,
    /// Most orders in one batch.
    pub max_batch: usize,
    /// Most batches of a lane in their transactions at once: the next one holds in stock
    /// while the one before still holds, records or commits.
    pub in_flight: usize,
}

impl Default for Batches {
    fn default() -> Self {
        Self {
            lanes: 1,
            max_batch: 64,
            in_flight: 2,
        }
    }
}

#[derive(Clone)]
pub struct Batcher {
    lanes: Arc<Vec<mpsc::Sender<Pending>>>,
}

impl Batcher {
    /// Starts the lane workers on `api` (one without a batcher of its own).
    pub fn start(api: AllocationApi, batches: Batches) -> Self {
        let senders = (0..batches.lanes.max(1))
            .map(|_| {
                let (sender, receiver) = mpsc::channel(LANE_QUEUE);
                let batches = Batches {
                    max_batch: batches.max_batch.clamp(1, MAX_BATCH),
                    in_flight: batches.in_flight.clamp(1, MAX_IN_FLIGHT),
                    ..batches
                };
                tokio::spawn(inventory_telemetry::in_service(
                    crate::app::SPEC.binary,
                    run_lane(api.clone(), receiver, batches),
                ));
                sender
            })
            .collect();
        Self {
            lanes: Arc::new(senders),
        }
    }

    pub async fn submit(&self, cmd: Allocate, key: RequestKey) -> Batched {
        // By order: two requests for one order meet in one lane.
        let mut hasher = DefaultHasher::new();
        cmd.order_id.hash(&mut hasher);
        let lane = usize::try_from(hasher.finish() % self.lanes.len() as u64).unwrap_or(0);
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        if let Err(mpsc::error::SendError(pending)) = self.lanes[lane]
            .send(Pending {
                cmd,
                key,
                span,
                reply,
            })
            .await
        {
            return Batched::Alone(Box::new(pending.cmd), pending.key);
        }
        // A lane that went away (shutdown) answers nothing: unavailable, the caller retries.
        answer.await.unwrap_or_else(|_| {
            Batched::Done(Err(ServiceError::Unavailable(
                "the service is stopping".to_owned(),
            )))
        })
    }
}

/// A batch in its transaction.
struct Flight {
    orders: HashSet<String>,
    /// What it left in stock and in the warehouses by its own count, once it has planned.
    left: watch::Receiver<Option<Arc<Left>>>,
    running: JoinHandle<()>,
}

async fn run_lane(api: AllocationApi, mut receiver: mpsc::Receiver<Pending>, batches: Batches) {
    let max_batch = batches.max_batch;
    let mut batch = Vec::with_capacity(max_batch);
    // The batches in their transactions, oldest first: the next batch is read from stock and
    // its transaction opened meanwhile, and it plans once a place is free and every batch it
    // may have read before has planned.
    let mut in_flight: Vec<Flight> = Vec::new();
    let mut usual = 0;
    loop {
        let received = tokio::select! {
            received = receiver.recv_many(&mut batch, max_batch) => received,
            () = one_ended(&mut in_flight) => continue,
        };
        if received == 0 {
            while !in_flight.is_empty() {
                one_ended(&mut in_flight).await;
            }
            return;
        }
        linger(&mut receiver, &mut batch, usual.min(max_batch)).await;
        // The size of recent batches: the last one's, or a slowly falling memory of more.
        usual = batch.len().max(usual - usual.div_ceil(8));
        // A caller that gave up (deadline, disconnect) is dropped before it costs anything.
        batch.retain(|p: &Pending| !p.reply.is_closed());
        // A request id or order seen earlier in the batch, or an order of a batch in flight,
        // goes alone once this batch has ended, or at once when nothing else is waiting
        // (there the order's lock and the request's claim wait for the other, then it is
        // replayed or refused as already allocated).
        let (mut requests, mut orders) = (HashSet::new(), HashSet::new());
        let (work, later): (Vec<Pending>, Vec<Pending>) = batch.drain(..).partition(|p| {
            !in_flight.iter().any(|f| f.orders.contains(&p.cmd.order_id))
                && requests.insert(p.key.request_id.clone())
                && orders.insert(p.cmd.order_id.clone())
        });
        // Stock's read below may come before the holds of any batch in flight now.
        let before: Vec<_> = in_flight.iter().map(|f| f.left.clone()).collect();
        if work.is_empty() {
            later.into_iter().for_each(Pending::go_alone);
            continue;
        }
        // Read, and its transaction opened, while the batches before are in theirs.
        let mut prepared = match api.prepare(&work).await {
            Ok(prepared) => prepared,
            Err(error) => {
                failed(&error, work.len());
                work.into_iter().chain(later).for_each(Pending::go_alone);
                continue;
            }
        };
        while in_flight.len() >= batches.in_flight {
            one_ended(&mut in_flight).await;
        }
        // Planned once every batch it may have read before has planned.
        for left in before {
            prepared.view.before.push(planned(left).await);
        }
        let orders = work.iter().map(|p| p.cmd.order_id.clone()).collect();
        let (leaving, left) = watch::channel(None);
        let api = api.clone();
        let running = tokio::spawn(inventory_telemetry::in_service(
            crate::app::SPEC.binary,
            async move {
                let outcomes = match api.allocate_batch(&work, prepared, &leaving).await {
                    Ok(outcomes) => outcomes,
                    Err(error) => {
                        failed(&error, work.len());
                        work.iter().map(|_| Outcome::Alone).collect()
                    }
                };
                for (pending, outcome) in work.into_iter().zip(outcomes) {
                    match outcome {
                        Outcome::Done(answer) => {
                            let _ = pending.reply.send(Batched::Done(answer));
                        }
                        Outcome::Alone => pending.go_alone(),
                    }
                }
                for pending in later {
                    pending.go_alone();
                }
            },
        ));
        in_flight.push(Flight {
            orders,
            left,
            running,
        });
    }
}

/// Waits for any batch in flight to end (forever when none is), and drops it.
async fn one_ended(in_flight: &mut Vec<Flight>) {
    let (index, ran) = std::future::poll_fn(|cx| {
        for (index, flight) in in_flight.iter_mut().enumerate() {
            if let Poll::Ready(ran) = Pin::new(&mut flight.running).poll(cx) {
                return Poll::Ready((index, ran));
            }
        }
        Poll::Pending
    })
    .await;
    ended(ran);
    in_flight.remove(index);
}

/// What a batch left once it has planned; nothing if it ended before planning (it holds
/// nothing then).
async fn planned(mut left: watch::Receiver<Option<Arc<Left>>>) -> Arc<Left> {
    let _ = left.wait_for(Option::is_some).await;
    let left = left.borrow().clone();
    left.unwrap_or_default()
}

fn failed(error: &ServiceError, size: usize) {
    tracing::warn!(%error, size, "allocation batch failed; each order goes alone");
}

/// Logs a batch's task that panicked: its callers' replies were dropped (they answer
/// UNAVAILABLE).
fn ended(ran: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ran {
        tracing::error!(%error, "allocation batch task ended without answering");
    }
}

/// Waits up to [`LINGER`] for the batch to reach `size`.
async fn linger(receiver: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>, size: usize) {
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < size {
        let room = size - batch.len();
        match tokio::time::timeout_at(deadline, receiver.recv_many(batch, room)).await {
            Ok(received) if received > 0 => {}
            _ => return,
        }
    }
}

impl Pending {
    fn go_alone(self) {
        let _ = self
            .reply
            .send(Batched::Alone(Box::new(self.cmd), self.key));
    }
}

/// What stock told a batch, read beside the opening of its transaction: what it has
/// available.
struct StockView {
    warehouses: Arc<Vec<stock::Warehouse>>,
    available: BTreeMap<(Uuid, Uuid), i64>,
    /// What stock said, before the lane's own count lowered some rows.
    read: BTreeMap<(Uuid, Uuid), i64>,
    /// Rows whose number is the lane's own count, lower than what stock said.
    capped: HashSet<(Uuid, Uuid)>,
    /// What the batches in flight when stock was read left, oldest first.
    before: Vec<Arc<Left>>,
    read_us: u64,
}

/// What a batch left by its own count once it has planned, for the batches read while it
/// is in its transaction: their reads cannot tell whether they came before its holds and
/// claims or after, so they count the worse of the two.
#[derive(Default)]
struct Left {
    /// Per (product, warehouse) row it planned on: what stock said there, and what its plans
    /// left. A later batch takes the lower of that and stock's number, plus whatever stock
    /// has gained since (a receipt, a release).
    stock: BTreeMap<(Uuid, Uuid), (i64, i64)>,
    /// Per warehouse with a capacity whose count it raised (by the batches before it) or
    /// added lines to: the open lines it read, and what it counted after its plans. A later batch takes the higher of that and what it read itself, less
    /// whatever shipped since.
    workload: BTreeMap<Uuid, (i64, i64)>,
}

/// A batch ready for its transaction: stock's view, and the transaction already holding
/// the batch's claims and its orders' locks.
struct Prepared {
    view: StockView,
    tx: Tx,
    /// Per order of the batch, whether this batch claimed its request id.
    claimed: Vec<bool>,
    /// Its orders allocated already.
    allocated: HashSet<String>,
    /// Its orders stock holds already (left by an attempt that died after reserving, or that
    /// rolled back after holding: adopted alone). Asked under the orders' locks, so such an
    /// attempt has ended by then.
    held: HashSet<String>,
}

impl StockView {
    /// Lowers rows the batches before planned on to what they left there (plus what stock
    /// gained since their reads), and marks them.
    fn cap(&mut self) {
        for left in &self.before {
            for (key, &(then, units)) in &left.stock {
                if let (Some(available), Some(now)) =
                    (self.available.get_mut(key), self.read.get(key))
                {
                    let counted = units + (now - then).max(0);
                    if counted < *available {
                        *available = counted;
                        self.capped.insert(*key);
                    }
                }
            }
        }
    }
}

/// Raises the workload of warehouses the batches before added lines to, to what they left
/// there (less what shipped since their reads), and says which were raised.
fn raise_workload(sites: &mut [Site], before: &[Arc<Left>]) -> HashSet<Uuid> {
    let mut raised = HashSet::new();
    for site in sites {
        let read = site.workload;
        for left in before {
            if let Some(&(then, lines)) = left.workload.get(&site.warehouse_id) {
                let counted = lines + (read - then).min(0);
                if counted > site.workload {
                    site.workload = counted;
                    raised.insert(site.warehouse_id);
                }
            }
        }
    }
    raised
}

/// An order of the batch on its way: its place in the batch, what it was planned on, the
/// plan, and the stock request that holds it.
struct Planned {
    index: usize,
    problem: Problem,
    plan: Plan,
    reservation_id: String,
}

impl AllocationApi {
    /// Stock's view for `work`.
    async fn read_stock(&self, work: &[Pending]) -> Result<StockView, ServiceError> {
        let started = std::time::Instant::now();
        let warehouses = self.directory.warehouses().await?;
        let products: BTreeSet<Uuid> = work
            .iter()
            .flat_map(|p| p.cmd.lines.iter().map(|l| l.product_id))
            .collect();
        let ids: Vec<Uuid> = warehouses
            .iter()
            .filter_map(|w| Uuid::parse_str(&w.warehouse_id).ok())
            .collect();
        // Traced under the request that opened the batch (the others' traces show their
        // own ReserveOrder).
        let available = self
            .availability(&products, &ids)
            .instrument(work[0].span.clone())
            .await?;
        Ok(StockView {
            warehouses,
            read: available.clone(),
            available,
            capped: HashSet::new(),
            before: Vec::new(),
            read_us: micros(started),
        })
    }

    /// Gets `work` ready for its transaction: stock's view and, meanwhile, the transaction
    /// opened with the batch's claims and its orders' locks, as the one-request path takes
    /// them, and then what stock holds for those orders already. All of it runs while the
    /// batches before are in their own transactions.
    async fn prepare(&self, work: &[Pending]) -> Result<Prepared, ServiceError> {
        let open = async {
            let mut tx = inventory_runtime::begin(&self.pool).await?;
            let keys: Vec<&RequestKey> = work.iter().map(|p| &p.key).collect();
            let claimed = idempotency::claim_many(&mut tx, &keys).await?;
            let order_ids: Vec<String> = work
                .iter()
                .zip(&claimed)
                .filter(|(_, claimed)| **claimed)
                .map(|(p, _)| p.cmd.order_id.clone())
                .collect();
            store::lock_orders(&mut tx, &order_ids).await?;
            let allocated = store::allocated_orders(&mut tx, &order_ids).await?;
            let held = self
                .active_holds(order_ids)
                .instrument(work[0].span.clone())
                .await?;
            let held = held.into_iter().map(|r| r.order_id).collect();
            Ok::<_, ServiceError>((tx, claimed, allocated, held))
        };
        let (view, opened) = tokio::join!(self.read_stock(work), open);
        let (tx, claimed, allocated, held) = opened?;
        Ok(Prepared {
            view: view?,
            tx,
            claimed,
            allocated,
            held,
        })
    }

    /// One outcome per order of `work`, in its order; what the batch leaves is sent on
    /// `leaving` once it has planned. An error leaves nothing done here (the transaction
    /// rolls back, what stock holds for it is released) and every order goes alone.
    async fn allocate_batch(
        &self,
        work: &[Pending],
        prepared: Prepared,
        leaving: &watch::Sender<Option<Arc<Left>>>,
    ) -> Result<Vec<Outcome>, ServiceError> {
        let started = std::time::Instant::now();
        let Prepared {
            mut view,
            mut tx,
            claimed,
            allocated,
            held,
        } = prepared;
        let mut outcomes: Vec<Option<Outcome>> = work.iter().map(|_| None).collect();
        let mut unclaimed: Vec<&str> = Vec::new();
        let mut mine: Vec<usize> = Vec::with_capacity(work.len());
        for (i, (pending, claimed)) in work.iter().zip(claimed).enumerate() {
            let cmd = &pending.cmd;
            if !claimed {
                // Seen before: replayed alone once this batch is over.
                outcomes[i] = Some(Outcome::Alone);
                continue;
            }
            if held.contains(&cmd.order_id) {
                // Left by an attempt that died or rolled back after reserving: adopted alone.
                outcomes[i] = Some(Outcome::Alone);
            } else if allocated.contains(&cmd.order_id) {
                outcomes[i] = Some(Outcome::Done(Err(ServiceError::AlreadyExists {
                    resource: "allocation of order",
                    id: cmd.order_id.clone(),
                })));
            } else {
                mine.push(i);
                continue;
            }
            unclaimed.push(&cmd.request_id);
        }
        if mine.is_empty() {
            // Nothing to store: the claims go with the transaction.
            leaving.send_replace(Some(Arc::default()));
            tx.rollback().await.map_err(db_error)?;
            return Ok(finish(outcomes));
        }
        let done = async {
            let plans = self
                .plan(
                    &mut tx,
                    work,
                    &mine,
                    &mut view,
                    &mut outcomes,
                    &mut unclaimed,
                )
                .await;
            let Plans {
                planned,
                refused,
                left,
            } = match plans {
                Ok(plans) => plans,
                Err(error) => {
                    leaving.send_replace(Some(Arc::default()));
                    return Err(error);
                }
            };
            leaving.send_replace(Some(Arc::new(left)));
            self.reserve_record(&mut tx, work, &planned, refused, &mut outcomes, unclaimed)
                .await
        }
        .await;
        match done {
            Ok(Ending::RollBack) => {
                tx.rollback().await.map_err(db_error)?;
                Ok(finish(outcomes))
            }
            Ok(Ending::Commit) => {
                inventory_runtime::commit(tx).await?;
                tracing::debug!(
                    size = work.len(),
                    read_us = view.read_us,
                    total_us = micros(started),
                    "allocation batch committed"
                );
                Ok(finish(outcomes))
            }
            Err(error) => {
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// Plans the orders the batch claimed (`mine`), in arrival order, each on the stock and
    /// workload the ones before it left: fills `outcomes` for those it cannot plan here.
    async fn plan<'w>(
        &self,
        tx: &mut Tx,
        work: &'w [Pending],
        mine: &[usize],
        view: &mut StockView,
        outcomes: &mut [Option<Outcome>],
        unclaimed: &mut Vec<&'w str>,
    ) -> Result<Plans, ServiceError> {
        view.cap();
        let available = &mut view.available;
        let mut sites = sites(&view.warehouses, &store::profiles(tx).await?);
        let read: BTreeMap<Uuid, i64> =
            sites.iter().map(|s| (s.warehouse_id, s.workload)).collect();
        let raised = raise_workload(&mut sites, &view.before);
        let mut plans = Plans::default();
        for &i in mine {
            let cmd = &work[i].cmd;
            let problem = Problem {
                destination: cmd.destination.point,
                lines: cmd.lines.clone(),
                sites: sites.clone(),
                available: cmd
                    .lines
                    .iter()
                    .flat_map(|l| sites.iter().map(move |s| (l.product_id, s.warehouse_id)))
                    .filter_map(|k| available.get(&k).map(|units| (k, *units)))
                    .collect(),
                options: cmd.options,
                costs: self.costs,
            };
            let plan = planner::plan(&problem);
            if !plan.is_complete()
                && problem
                    .available
                    .keys()
                    .any(|k| view.capped.contains(k) || raised.contains(&k.1))
            {
                // Short on the lane's own count of a row or a warehouse: decided again
                // alone, on stock's and the database's.
                outcomes[i] = Some(Outcome::Alone);
                unclaimed.push(&cmd.request_id);
                continue;
            }
            if plan.parts.is_empty() || (!plan.is_complete() && !cmd.options.allow_partial) {
                outcomes[i] = Some(Outcome::Done(Err(not_servable(&problem, &plan))));
                unclaimed.push(&cmd.request_id);
                plans.refused.push(i);
                continue;
            }
            if plan.parts.len() > MAX_RESERVATION_LINES {
                // Refused alone, with the count in its answer.
                outcomes[i] = Some(Outcome::Alone);
                unclaimed.push(&cmd.request_id);
                continue;
            }
            for (key, quantity) in rows(&problem, &plan) {
                if let Some(units) = available.get_mut(&key) {
                    *units -= quantity;
                }
            }
            for (warehouse_id, lines) in workload(&problem, &plan) {
                if let Some(site) = sites.iter_mut().find(|s| s.warehouse_id == warehouse_id) {
                    site.workload += lines;
                }
            }
            plans.planned.push(Planned {
                index: i,
                reservation_id: super::stock_request_id(
                    &cmd.request_id,
                    &format!("reserve:{}", Uuid::now_v7()),
                ),
                problem,
                plan,
            });
        }
        // What the plans leave (as if stock holds them all), for the batches read meanwhile.
        plans.left.stock = plans
            .planned
            .iter()
            .flat_map(|p| rows(&p.problem, &p.plan))
            .filter_map(|(key, _)| Some((key, (*view.read.get(&key)?, *available.get(&key)?))))
            .collect();
        plans.left.workload = sites
            .iter()
            .filter(|s| s.capacity.is_some())
            .filter_map(|s| {
                let then = *read.get(&s.warehouse_id)?;
                (s.workload > then).then_some((s.warehouse_id, (then, s.workload)))
            })
            .collect();
        Ok(plans)
    }

    /// The batch's transaction from its plans up to its commit: holds the plans in stock,
    /// records them, claims their room, and fills `outcomes` for them.
    async fn reserve_record<'w>(
        &self,
        tx: &mut Tx,
        work: &'w [Pending],
        planned: &[Planned],
        refused: Vec<usize>,
        outcomes: &mut [Option<Outcome>],
        mut unclaimed: Vec<&'w str>,
    ) -> Result<Ending, ServiceError> {
        // Every plan held in stock in one call (one stock transaction, mostly), each order
        // all or nothing on its own; traced under the request that opened the batch.
        // Meanwhile every plan is recorded with its answer, as if held: the few stock does
        // not hold are taken out again below, before the commit.
        let allocations: Vec<store::Allocation> = planned
            .iter()
            .map(|p| {
                record(
                    &work[p.index].cmd,
                    &p.problem,
                    &p.plan,
                    p.reservation_id.clone(),
                )
            })
            .collect();
        let names = self.names().await;
        let responses: Vec<pb::AllocateOrderResponse> = allocations
            .iter()
            .map(|allocation| pb::AllocateOrderResponse {
                allocation: Some(convert::allocation(allocation, &names)),
            })
            .collect();
        let answers: Vec<(&str, Vec<u8>)> = planned
            .iter()
            .zip(&responses)
            .map(|(p, response)| {
                (
                    work[p.index].cmd.request_id.as_str(),
                    response.encode_to_vec(),
                )
            })
            .collect();
        failpoint("allocation.before_reserve").await;
        let reserving = std::time::Instant::now();
        let requests = planned
            .iter()
            .map(|p| reservation(&work[p.index].cmd, &p.problem, &p.plan, &p.reservation_id))
            .collect();
        let (results, recorded) = tokio::join!(
            self.hold(requests).instrument(work[0].span.clone()),
            async {
                store::insert_allocations(tx, &allocations).await?;
                idempotency::answer_many(tx, &answers).await
            }
        );
        let results: Vec<Hold> = results;
        failpoint("allocation.after_reserve").await;
        tracing::debug!(
            orders = planned.len(),
            reserve_us = micros(reserving),
            "allocation batch held in stock"
        );
        let room = match recorded {
            Ok(()) => self.claim_room(tx, planned, &results).await,
            Err(error) => Err(error),
        };
        if let Err(error) = room {
            // Nothing of the batch is kept: what stock holds for it is let go first, while
            // its orders are still locked, and they are planned again alone.
            tracing::info!(%error, orders = planned.len(), "allocation batch rolls back after holding; its holds are let go");
            let ended = self.let_go(work, planned, results).await;
            for (p, outcome) in planned.iter().zip(ended) {
                outcomes[p.index] = Some(outcome);
            }
            for i in refused {
                outcomes[i] = Some(Outcome::Alone);
            }
            return Ok(Ending::RollBack);
        }

        // Orders stock did not hold (it moved since the plan; anything else) go alone or are
        // answered with stock's error, their records taken out; the rest are answered.
        let mut missed: Vec<&str> = Vec::new();
        for ((p, result), response) in planned.iter().zip(results).zip(responses) {
            let cmd = &work[p.index].cmd;
            outcomes[p.index] = Some(match result {
                Hold::Held => Outcome::Done(Ok(response)),
                Hold::Again(error) => {
                    tracing::info!(order_id = %cmd.order_id, %error, "not held in the batch; the order goes alone");
                    Outcome::Alone
                }
                Hold::Failed(error) => {
                    if super::lifecycle::outcome_unknown(&error) {
                        // Still under the order's lock: no other attempt holds for it now.
                        super::lifecycle::release_given_up(
                            &*self.stock,
                            &cmd.order_id,
                            &cmd.request_id,
                        )
                        .await;
                    }
                    Outcome::Done(Err(error.into()))
                }
            });
            if !matches!(outcomes[p.index], Some(Outcome::Done(Ok(_)))) {
                missed.push(&cmd.order_id);
                unclaimed.push(&cmd.request_id);
            }
        }
        if !missed.is_empty() {
            store::delete_allocations(tx, &missed).await?;
            // Refused on what the missed ones would have taken: decided again alone.
            for i in refused {
                outcomes[i] = Some(Outcome::Alone);
            }
        }
        idempotency::unclaim(tx, &unclaimed).await?;
        Ok(Ending::Commit)
    }

    /// The room the held plans take, all at once, once stock holds them: another batch of the
    /// lane may be claiming the same warehouses, and this one waits for its commit here, not
    /// before holding. Gone (another batch, lane or replica took it since the plans):
    /// ABORTED, and the batch lets go of its holds and rolls back.
    async fn claim_room(
        &self,
        tx: &mut Tx,
        planned: &[Planned],
        results: &[Hold],
    ) -> Result<(), ServiceError> {
        let holding: Vec<&Planned> = planned
            .iter()
            .zip(results)
            .filter(|(_, result)| matches!(result, Hold::Held))
            .map(|(p, _)| p)
            .collect();
        let shipping: BTreeSet<Uuid> = holding
            .iter()
            .flat_map(|p| shipping(&p.problem, &p.plan))
            .collect();
        store::lock_warehouses_shared(tx, &shipping.into_iter().collect::<Vec<_>>()).await?;
        if store::add_open_lines(tx, &total_workload(holding.into_iter()), true).await? {
            Ok(())
        } else {
            tracing::info!(
                orders = planned.len(),
                "a warehouse filled up since the plans; each order goes alone"
            );
            Err(ServiceError::Aborted(
                "a warehouse filled up since the plans".to_owned(),
            ))
        }
    }

    /// Lets go of what stock holds for a batch that rolls back, all orders at once: an
    /// order released (or holding nothing) goes alone; one whose hold or release answer left
    /// unknown what stock holds gets that error, as on the one-request path, and its retry
    /// adopts what stock holds.
    async fn let_go(
        &self,
        work: &[Pending],
        planned: &[Planned],
        results: Vec<Hold>,
    ) -> Vec<Outcome> {
        let mut ended: Vec<Outcome> = Vec::with_capacity(planned.len());
        let mut releases = tokio::task::JoinSet::new();
        for (slot, (p, result)) in planned.iter().zip(results).enumerate() {
            ended.push(match result {
                Hold::Again(_) => Outcome::Alone,
                Hold::Failed(error) => Outcome::Done(Err(error.into())),
                Hold::Held => {
                    let (stock, pending) = (self.stock.clone(), &work[p.index]);
                    let (order_id, request_id) = (
                        pending.cmd.order_id.clone(),
                        format!("{}:release", p.reservation_id),
                    );
                    releases.spawn(
                        async move {
                            let released = release_order(
                                &*stock,
                                &order_id,
                                request_id,
                                "allocation batch rolled back",
                                crate::app::SPEC.binary,
                            )
                            .await;
                            (slot, released)
                        }
                        .instrument(pending.span.clone()),
                    );
                    Outcome::Alone
                }
            });
        }
        while let Some(joined) = releases.join_next().await {
            let Ok((slot, released)) = joined else {
                continue;
            };
            match released {
                Ok(()) => {}
                Err(error) => {
                    let order_id = &work[planned[slot].index].cmd.order_id;
                    tracing::warn!(%order_id, %error, "a rolled-back batch's hold was not released; the order's retry adopts it");
                    ended[slot] = Outcome::Done(Err(error.into()));
                }
            }
        }
        ended
    }
}

/// How a batch's transaction ends once its orders are held.
enum Ending {
    Commit,
    /// Nothing of it is kept; its orders' outcomes are decided without it.
    RollBack,
}

/// A batch's plans: the orders it will hold, those refused on what earlier orders of the
/// batch took (decided again alone if one of those then goes unheld), and what the plans
/// leave.
#[derive(Default)]
struct Plans {
    planned: Vec<Planned>,
    refused: Vec<usize>,
    left: Left,
}

impl AllocationApi {
    /// Holds `orders` in stock: one answer each, in calls within stock's limits (none asked,
    /// no call).
    async fn hold(&self, orders: Vec<stock::ReserveOrderRequest>) -> Vec<Hold> {
        let mut holds = Vec::with_capacity(orders.len());
        for call in within_limits(orders) {
            let asked = call.len();
            match self.stock.batch_reserve_orders(call).await {
                Ok(answers) => holds.extend(answers.into_iter().map(Hold::from)),
                // Refused whole (an older stock without the call, mid-upgrade; a limit):
                // nothing held.
                Err(
                    error @ (StockError::Other {
                        code: tonic::Code::Unimplemented,
                        ..
                    }
                    | StockError::InvalidArgument { .. }),
                ) => holds.extend((0..asked).map(|_| Hold::Again(error.clone()))),
                // Stock may hold any of them (a deadline passed, say): each caller gets the
                // error, as on the one-order path, and its retry adopts what stock holds.
                Err(error) => holds.extend((0..asked).map(|_| Hold::Failed(error.clone()))),
            }
        }
        holds
    }
}

/// `orders` in consecutive calls of at most [`MAX_BATCH`] orders and [`MAX_HOLD_LINES`]
/// lines (an order alone over the lines limit is a call of its own, which stock refuses).
fn within_limits(orders: Vec<stock::ReserveOrderRequest>) -> Vec<Vec<stock::ReserveOrderRequest>> {
    let mut calls = Vec::new();
    let mut rest = orders.into_iter().peekable();
    while rest.peek().is_some() {
        let (mut call, mut lines) = (Vec::new(), 0);
        while let Some(order) = rest.next_if(|next| {
            call.is_empty()
                || (call.len() < MAX_BATCH && lines + next.lines.len() <= MAX_HOLD_LINES)
        }) {
            lines += order.lines.len();
            call.push(order);
        }
        calls.push(call);
    }
    calls
}

/// Stock's answer for one order of a batch.
enum Hold {
    Held,
    /// Stock holds nothing for it: refused on the plan (stock moved since), or its own
    /// transaction aborted. Planned again alone, on fresh numbers, where the stock call
    /// retries and what stock might hold is adopted. (UNAVAILABLE may come from a commit
    /// whose outcome is unknown: returned, and the caller's retry adopts what stock holds.)
    Again(StockError),
    /// Answered with this error, as the one-order path would answer it.
    Failed(StockError),
}

impl From<Result<stock::ReserveOrderResponse, StockError>> for Hold {
    fn from(answer: Result<stock::ReserveOrderResponse, StockError>) -> Self {
        match answer {
            Ok(_) => Self::Held,
            Err(
                error @ (StockError::InsufficientStock { .. }
                | StockError::InvalidArgument { .. }
                | StockError::Aborted(_)),
            ) => Self::Again(error),
            Err(error) => Self::Failed(error),
        }
    }
}

/// The (product, warehouse) rows a plan holds, with the units of each part.
fn rows<'a>(
    problem: &'a Problem,
    plan: &'a Plan,
) -> impl Iterator<Item = ((Uuid, Uuid), i64)> + 'a {
    plan.parts.iter().map(|part| {
        (
            (
                problem.lines[part.line].product_id,
                problem.sites[part.site].warehouse_id,
            ),
            part.quantity,
        )
    })
}

/// Lines each warehouse takes on from these plans together.
fn total_workload<'a>(planned: impl Iterator<Item = &'a Planned>) -> Vec<(Uuid, i64)> {
    let mut total: BTreeMap<Uuid, i64> = BTreeMap::new();
    for p in planned {
        for (warehouse_id, lines) in workload(&p.problem, &p.plan) {
            *total.entry(warehouse_id).or_default() += lines;
        }
    }
    total.into_iter().collect()
}

/// Every order's outcome; one the batch did not reach goes alone.
fn finish(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Alone))
        .collect()
}

fn micros(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(lines: usize) -> stock::ReserveOrderRequest {
        stock::ReserveOrderRequest {
            lines: vec![stock::ReservationLine::default(); lines],
            ..Default::default()
        }
    }

    fn shape(calls: &[Vec<stock::ReserveOrderRequest>]) -> Vec<Vec<usize>> {
        calls
            .iter()
            .map(|call| call.iter().map(|o| o.lines.len()).collect())
            .collect()
    }

    #[test]
    fn a_row_the_batches_before_held_reads_as_they_left_it_plus_what_stock_gained_since() {
        let (held, untouched, received, other, twice) = (
            (Uuid::now_v7(), Uuid::now_v7()),
            (Uuid::now_v7(), Uuid::now_v7()),
            (Uuid::now_v7(), Uuid::now_v7()),
            (Uuid::now_v7(), Uuid::now_v7()),
            (Uuid::now_v7(), Uuid::now_v7()),
        );
        // Stock says: 10 where a batch before read 10 and left 7 (its holds not seen yet);
        // 4 where it left 7 (another buyer took more): stock's is lower; 110 where it read 10
        // and left 7 (100 received since); 8 where the older batch read 10 and left 8 (its
        // hold seen) and the younger read 8 and left 5 (its hold not seen yet).
        let available: BTreeMap<_, _> = [
            (held, 10),
            (other, 4),
            (received, 110),
            (untouched, 5),
            (twice, 8),
        ]
        .into_iter()
        .collect();
        let older = Left {
            stock: [(held, (10, 7)), (other, (10, 7)), (twice, (10, 8))]
                .into_iter()
                .collect(),
            workload: BTreeMap::new(),
        };
        let younger = Left {
            stock: [(received, (10, 7)), (twice, (8, 5))].into_iter().collect(),
            workload: BTreeMap::new(),
        };
        let mut view = StockView {
            warehouses: Arc::new(Vec::new()),
            read: available.clone(),
            available,
            capped: HashSet::new(),
            before: vec![Arc::new(older), Arc::new(younger)],
            read_us: 0,
        };
        view.cap();
        assert_eq!(view.available[&held], 7);
        assert_eq!(view.available[&other], 4);
        assert_eq!(view.available[&received], 107);
        assert_eq!(view.available[&untouched], 5);
        assert_eq!(view.available[&twice], 5);
        assert_eq!(view.capped, [held, received, twice].into_iter().collect());
    }

    #[test]
    fn a_warehouse_the_batches_before_added_lines_to_counts_them_less_what_shipped_since() {
        let site = |workload| Site {
            warehouse_id: Uuid::now_v7(),
            location: None,
            paused: false,
            capacity: Some(100),
            workload,
        };
        // Read here: 10 where a batch before read 10 and made it 13 (not committed yet);
        // 13 where it did the same and committed; 8 where it read 10 and made it 13, and
        // 2 lines shipped since; 20 where nothing was added.
        let mut sites = vec![site(10), site(13), site(8), site(20)];
        let ids: Vec<Uuid> = sites.iter().map(|s| s.warehouse_id).collect();
        let left = Left {
            stock: BTreeMap::new(),
            workload: ids[..3].iter().map(|&id| (id, (10, 13))).collect(),
        };
        let raised = raise_workload(&mut sites, &[Arc::new(left)]);
        let workload: Vec<i64> = sites.iter().map(|s| s.workload).collect();
        assert_eq!(workload, [13, 13, 11, 20]);
        assert_eq!(raised, [ids[0], ids[2]].into_iter().collect());
    }

    #[test]
    fn holds_are_sent_in_calls_within_stocks_limits_and_in_order() {
        assert!(within_limits(Vec::new()).is_empty());
        let lines = [4000, 4000, 3000, 500, 10_000, 1];
        let calls = within_limits(lines.iter().map(|&n| order(n)).collect());
        assert_eq!(
            shape(&calls),
            [vec![4000, 4000], vec![3000, 500], vec![10_000], vec![1]]
        );
        let calls = within_limits((0..2500).map(|_| order(3)).collect());
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(
            shape(&within_limits(vec![order(12_000), order(2)])),
            [vec![12_000], vec![2]]
        );
    }
}

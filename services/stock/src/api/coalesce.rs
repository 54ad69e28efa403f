//! Request coalescing for reservations: concurrent ReserveStock and ReserveOrder calls are
//! queued and a lane worker applies everything waiting in one database transaction. On a hot
//! product this turns thousands of transactions contending for one row lock into a few
//! hundred transactions that each serve many buyers; for orders over many products it turns
//! a transaction per order into one per batch.
//!
//! Fairness: a lane takes requests in arrival order and a batch holds whatever was waiting
//! when the previous one finished (up to a cap), so no request waits longer than the batches
//! ahead of it. Rows are spread over lanes by key, so one hot row never blocks another lane.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use inventory_core::ServiceError;
use inventory_proto::stock::v1 as pb;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prost::Message;
use tokio::sync::{Notify, mpsc, oneshot};

use super::convert;
use crate::domain::movement::InventoryKey;
use crate::domain::reservation::Reservation;
use crate::store::{BatchOutcome, BatchRequest, BatchResult, InventoryRow, Rows, Store};

/// Requests queued per lane before callers wait for room.
const LANE_QUEUE: usize = 4096;

/// The answer to a coalesced request, as its RPC returns it.
pub enum Answer {
    One(Box<pb::ReserveStockResponse>),
    Order(pb::ReserveOrderResponse),
}

impl Answer {
    /// The answer to `request` (ReserveStock or ReserveOrder, by its method) whose lines
    /// were granted, with each line's row right after its grant.
    fn of(request: &BatchRequest, granted: &[(Reservation, InventoryRow)]) -> Self {
        match granted {
            [(reservation, row)] if request.method == "ReserveStock" => {
                Answer::One(Box::new(response(reservation, row)))
            }
            _ => Answer::Order(pb::ReserveOrderResponse {
                reservations: granted
                    .iter()
                    .map(|(r, _)| convert::reservation(r))
                    .collect(),
            }),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Answer::One(answer) => answer.encode_to_vec(),
            Answer::Order(answer) => answer.encode_to_vec(),
        }
    }
}

/// The stored answer of a granted request, `rows` being each line's row right after its
/// grant: what a retry of it replays.
pub fn encode_answer(request: &BatchRequest, rows: &[InventoryRow]) -> Vec<u8> {
    let granted: Vec<(Reservation, InventoryRow)> = request
        .lines
        .iter()
        .cloned()
        .zip(rows.iter().cloned())
        .collect();
    Answer::of(request, &granted).encode()
}

/// What a caller gets back.
pub enum Coalesced {
    Done(Answer),
    Refused(ServiceError),
    /// Run it on the one-request path (retries, unknown rows, a failed batch).
    Single,
}

struct Pending {
    request: BatchRequest,
    reply: oneshot::Sender<Coalesced>,
}

#[derive(Clone)]
pub struct Coalescer {
    lanes: Arc<Vec<mpsc::Sender<Pending>>>,
}

impl Coalescer {
    /// Starts `lanes` lanes, each applying up to `max_batch` requests per statement.
    pub fn start(store: Store, lanes: usize, max_batch: usize, log_appended: Arc<Notify>) -> Self {
        let senders = (0..lanes.max(1))
            .map(|_| {
                let (sender, receiver) = mpsc::channel(LANE_QUEUE);
                // The lane's batches are stock's work, whichever request woke them.
                tokio::spawn(inventory_telemetry::in_service(
                    crate::app::SPEC.binary,
                    run_lane(
                        store.clone(),
                        receiver,
                        max_batch.max(1),
                        log_appended.clone(),
                    ),
                ));
                sender
            })
            .collect();
        Self {
            lanes: Arc::new(senders),
        }
    }

    pub async fn submit(&self, request: BatchRequest) -> Coalesced {
        let mut hasher = DefaultHasher::new();
        // By the first line's row: a hot product's single-line requests share a lane.
        request.lines.first().map(|r| r.key).hash(&mut hasher);
        let lane = usize::try_from(hasher.finish() % self.lanes.len() as u64).unwrap_or(0);
        let (reply, answer) = oneshot::channel();
        if self.lanes[lane]
            .send(Pending { request, reply })
            .await
            .is_err()
        {
            return Coalesced::Single;
        }
        answer.await.unwrap_or(Coalesced::Single)
    }
}

pub fn response(reservation: &Reservation, row: &InventoryRow) -> pb::ReserveStockResponse {
    pb::ReserveStockResponse {
        reservation: Some(convert::reservation(reservation)),
        inventory: Some(convert::inventory(row)),
    }
}

/// Rows a lane remembers before it starts afresh; a lane sees only its share of the rows.
const REMEMBERED_ROWS: usize = 65_536;

/// Reads, without locking, the rows of `requests` the lane does not remember yet. A row that
/// does not exist stays unknown, and its request goes to the one-request path.
async fn remember(
    store: &Store,
    requests: &[BatchRequest],
    remembered: &mut Rows,
) -> Result<(), ServiceError> {
    let missing: Vec<InventoryKey> = requests
        .iter()
        .flat_map(|r| r.lines.iter().map(|l| l.key))
        .filter(|k| !remembered.contains_key(k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        if remembered.len() + missing.len() > REMEMBERED_ROWS {
            remembered.clear();
        }
        for row in store.get_inventory_many(&missing).await? {
            remembered.insert(row.key(), row);
        }
    }
    Ok(())
}

/// How big the coalesced batches are and how they end, in the process's metrics.
struct BatchMetrics {
    sizes: Histogram,
    batches: Family<BatchLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    /// `remembered` (one statement on rows it knew) or `locked` (under row locks).
    path: &'static str,
    /// `committed`, or `failed` (then retried one by one).
    outcome: &'static str,
}

/// Registered once per process, however many stock services it runs (tests run many).
fn batch_metrics() -> &'static BatchMetrics {
    static METRICS: OnceLock<BatchMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let sizes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let batches = Family::<BatchLabels, Counter>::default();
        let registry = inventory_telemetry::metrics();
        registry.register(
            "stock_reserve_batch_size",
            "Reservations applied by one coalesced transaction",
            sizes.clone(),
        );
        registry.register(
            "stock_reserve_batches",
            "Coalesced reservation transactions by path and outcome",
            batches.clone(),
        );
        BatchMetrics { sizes, batches }
    })
}

impl BatchMetrics {
    fn record(&self, size: usize, locked: bool, committed: bool) {
        self.sizes.observe(size as f64);
        self.batches
            .get_or_create(&BatchLabels {
                path: if locked { "locked" } else { "remembered" },
                outcome: if committed { "committed" } else { "failed" },
            })
            .inc();
    }
}

/// One lane: takes everything waiting (in arrival order, up to `max_batch`) and applies it.
/// It remembers the rows its batches left behind (and reads, without locks, those it has not
/// seen), so a batch is one statement that checks its rows did not move; a batch that must
/// refuse, find a retry, or lost a race to another writer runs under row locks instead.
async fn run_lane(
    store: Store,
    mut receiver: mpsc::Receiver<Pending>,
    max_batch: usize,
    log_appended: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut remembered = Rows::new();
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        // A caller that gave up (deadline, disconnect) is dropped before it costs a row.
        batch.retain(|p: &Pending| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (requests, replies): (Vec<BatchRequest>, Vec<oneshot::Sender<Coalesced>>) =
            batch.drain(..).map(|p| (p.request, p.reply)).unzip();
        let started = std::time::Instant::now();
        let fast = match remember(&store, &requests, &mut remembered).await {
            Ok(()) => {
                store
                    .reserve_batch_on(&requests, &remembered, encode_answer)
                    .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = &fast {
            tracing::debug!(%error, "batch on remembered rows did not apply");
        }
        let locked = matches!(fast, Ok(None) | Err(ServiceError::Aborted(_)));
        let result = match fast {
            Ok(Some(result)) => Ok(result),
            Ok(None) | Err(ServiceError::Aborted(_)) => {
                store.reserve_batch_locked(&requests, encode_answer).await
            }
            Err(error) => Err(error),
        };
        batch_metrics().record(requests.len(), locked, result.is_ok());
        tracing::debug!(
            size = requests.len(),
            locked,
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "reservation batch"
        );
        match result {
            Ok(BatchResult { outcomes, rows }) => {
                remembered.extend(rows);
                if outcomes
                    .iter()
                    .any(|o| matches!(o, BatchOutcome::Granted(..)))
                {
                    log_appended.notify_waiters();
                }
                for ((outcome, reply), request) in outcomes.into_iter().zip(replies).zip(&requests)
                {
                    let answer = match outcome {
                        BatchOutcome::Granted(granted) => {
                            Coalesced::Done(Answer::of(request, &granted))
                        }
                        BatchOutcome::Refused(error) => Coalesced::Refused(error),
                        BatchOutcome::Single => Coalesced::Single,
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                for line in requests.iter().flat_map(|r| &r.lines) {
                    remembered.remove(&line.key);
                }
                tracing::warn!(%error, size = requests.len(), "reservation batch failed; retrying one by one");
                for reply in replies {
                    let _ = reply.send(Coalesced::Single);
                }
            }
        }
    }
}

//! Request coalescing for reservations: concurrent ReserveStock and ReserveOrder calls are
//! queued and a lane worker applies everything waiting in one database transaction. On a hot
//! product this turns thousands of transactions contending for one row lock into a few
//! hundred transactions that each serve many buyers; for orders over many products it turns
//! a transaction per order into one per batch.
//!
//! Fairness: a lane takes requests in arrival order and a batch holds whatever was waiting
//! when the previous one finished (up to a cap; when few were, what arrives within a short
//! bounded wait, see [`gather_wait`]), so no request waits longer than the batches ahead of
//! it and that wait. Rows are spread over lanes by key, so one hot row never blocks another lane.
//!
//! The lanes share one memory of the rows as their batches left them: an order's lines fall
//! in rows another lane also writes, and a lane that only knew its own writes would decide
//! on rows that moved since (the batch then fails its check and runs again under locks).
//! For the same reason a lane whose batch takes a row another lane's batch is writing first
//! waits for a batch of another lane to finish (with two lanes, that one), and decides on
//! what it left.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use inventory_core::ServiceError;
use inventory_proto::stock::v1 as pb;
use inventory_runtime::db_error;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prost::Message;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
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

impl Coalesced {
    /// The answer or refusal, or `None` for the one-request path.
    pub fn into_answer(self) -> Option<Result<Answer, ServiceError>> {
        match self {
            Coalesced::Done(answer) => Some(Ok(answer)),
            Coalesced::Refused(error) => Some(Err(error)),
            Coalesced::Single => None,
        }
    }
}

struct Pending {
    request: BatchRequest,
    reply: oneshot::Sender<Coalesced>,
    /// The request's deadline: past it, its work must not be committed.
    deadline: Option<tokio::time::Instant>,
}

impl Pending {
    /// Whether its caller gave up (hung up) or its deadline has passed.
    fn abandoned(&self, now: tokio::time::Instant) -> bool {
        self.reply.is_closed() || self.deadline.is_some_and(|deadline| now >= deadline)
    }
}

#[derive(Clone)]
pub struct Coalescer {
    /// Each message is a group of requests that go into one batch together.
    lanes: Arc<Vec<mpsc::Sender<Vec<Pending>>>>,
}

impl Coalescer {
    /// Starts `lanes` lanes, each applying up to `max_batch` requests per statement.
    pub fn start(store: Store, lanes: usize, max_batch: usize, log_appended: Arc<Notify>) -> Self {
        let lanes = lanes.max(1);
        let memory = Arc::new(Memory::new(REMEMBERED_ROWS_PER_LANE * lanes));
        let senders = (0..lanes)
            .map(|_| {
                let (sender, receiver) = mpsc::channel(LANE_QUEUE);
                // The lane's batches are stock's work, whichever request woke them.
                tokio::spawn(inventory_telemetry::in_service(
                    crate::app::SPEC.binary,
                    run_lane(
                        store.clone(),
                        memory.clone(),
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
        let mut answers = self.submit_together(vec![request]).await;
        answers.pop().unwrap_or(Coalesced::Single)
    }

    /// `requests`, each in the lane of its first line's row, together with the others of that
    /// lane (and whatever else is waiting there): the lanes' batches run side by side, on
    /// their own connections. One answer each, in their order.
    pub async fn submit_together(&self, requests: Vec<BatchRequest>) -> Vec<Coalesced> {
        let mut groups: Vec<Vec<Pending>> = (0..self.lanes.len()).map(|_| Vec::new()).collect();
        let deadline = inventory_runtime::request_deadline();
        let answers: Vec<oneshot::Receiver<Coalesced>> = requests
            .into_iter()
            .map(|request| {
                let lane = self.lane_of(&request);
                let (reply, answer) = oneshot::channel();
                groups[lane].push(Pending {
                    request,
                    reply,
                    deadline,
                });
                answer
            })
            .collect();
        for (lane, group) in groups.into_iter().enumerate() {
            if !group.is_empty() {
                // A lane that has stopped drops the group: its requests answer Single.
                let _ = self.lanes[lane].send(group).await;
            }
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(answer.await.unwrap_or(Coalesced::Single));
        }
        out
    }

    /// By the first line's row: a hot product's single-line requests share a lane.
    fn lane_of(&self, request: &BatchRequest) -> usize {
        let mut hasher = DefaultHasher::new();
        request.lines.first().map(|line| line.key).hash(&mut hasher);
        usize::try_from(hasher.finish() % self.lanes.len() as u64).unwrap_or(0)
    }
}

pub fn response(reservation: &Reservation, row: &InventoryRow) -> pb::ReserveStockResponse {
    pb::ReserveStockResponse {
        reservation: Some(convert::reservation(reservation)),
        inventory: Some(convert::inventory(row)),
    }
}

/// Rows remembered per lane before the memory starts afresh.
const REMEMBERED_ROWS_PER_LANE: usize = 65_536;

/// The rows as the lanes' batches last left them (or as last read), shared by the lanes,
/// and the rows a lane's batch is writing now.
struct Memory {
    state: Mutex<Remembered>,
    /// Woken whenever a batch has finished with its rows.
    finished: Notify,
    capacity: usize,
}

#[derive(Default)]
struct Remembered {
    rows: Rows,
    /// Rows batches are writing now, with how many batches are.
    writing: HashMap<InventoryKey, u32>,
}

impl Memory {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(Remembered::default()),
            finished: Notify::new(),
            capacity,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // A lane that panicked mid-update leaves at worst a stale row, which a batch's check
        // catches.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `keys` as written by a batch. If another lane's batch is writing one of them,
    /// first waits once for a batch of another lane to finish (with two lanes, that one; a
    /// lane never waits long behind a busy row):
    /// deciding on a row while another statement changes it would fail its check and cost a
    /// second, locked statement. A lane holding marks never waits, so lanes cannot wait on
    /// each other in a cycle.
    /// The marks go when the returned guard is dropped, a panicking lane's too.
    async fn start_writing(&self, keys: BTreeSet<InventoryKey>) -> Writing<'_> {
        let finished = self.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        let conflict = {
            let mut state = self.state();
            let conflict = keys.iter().any(|k| state.writing.contains_key(k));
            if !conflict {
                state.mark(&keys);
            }
            conflict
        };
        if conflict {
            finished.await;
            self.state().mark(&keys);
        }
        Writing { memory: self, keys }
    }

    /// Unmarks `keys` (after the batch's rows are remembered) and wakes waiting lanes.
    fn finish_writing(&self, keys: &BTreeSet<InventoryKey>) {
        {
            let mut state = self.state();
            for key in keys {
                if let Some(n) = state.writing.get_mut(key) {
                    *n -= 1;
                    if *n == 0 {
                        state.writing.remove(key);
                    }
                }
            }
        }
        self.finished.notify_waiters();
    }

    /// The rows of `keys` as remembered, reading without locks (on the lane's connection)
    /// those not remembered yet. A row that does not exist stays unknown, and its request
    /// goes to the one-request path.
    async fn rows_of(
        &self,
        store: &Store,
        conn: &mut PgConnection,
        keys: &BTreeSet<InventoryKey>,
    ) -> Result<Rows, ServiceError> {
        let mut known = Rows::new();
        let missing: Vec<InventoryKey> = {
            let state = self.state();
            keys.iter()
                .filter(|k| match state.rows.get(k) {
                    Some(row) => {
                        known.insert(**k, row.clone());
                        false
                    }
                    None => true,
                })
                .copied()
                .collect()
        };
        if !missing.is_empty() {
            let read = store.get_inventory_many_on(conn, &missing).await?;
            let mut state = self.state();
            if state.rows.len() + read.len() > self.capacity {
                state.rows.clear();
            }
            for row in read {
                known.insert(row.key(), row.clone());
                state.rows.insert(row.key(), row);
            }
        }
        Ok(known)
    }

    fn update(&self, rows: Rows) {
        self.state().rows.extend(rows);
    }

    fn forget(&self, keys: &BTreeSet<InventoryKey>) {
        let mut state = self.state();
        for key in keys {
            state.rows.remove(key);
        }
    }
}

/// A batch's rows marked as being written, until dropped.
struct Writing<'a> {
    memory: &'a Memory,
    keys: BTreeSet<InventoryKey>,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.memory.finish_writing(&self.keys);
    }
}

impl Remembered {
    fn mark(&mut self, keys: &BTreeSet<InventoryKey>) {
        for key in keys {
            *self.writing.entry(*key).or_default() += 1;
        }
    }
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
/// The lanes remember the rows their batches left behind (and read, without locks, those not
/// seen yet), so a batch is one statement that checks its rows did not move; a batch that must
/// refuse, find a retry, or lost a race to another writer runs under row locks instead.
async fn run_lane(
    store: Store,
    memory: Arc<Memory>,
    mut receiver: mpsc::Receiver<Vec<Pending>>,
    max_batch: usize,
    log_appended: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    // The lane's own connection, kept from batch to batch while requests keep coming: the
    // pool tests a connection when it is handed out (a round trip on the lane's path) and
    // when it is given back. One that failed is given back and another taken for the next
    // batch.
    let mut connection: Option<LaneConnection> = None;
    // The size and duration of the lane's last batch.
    let mut answered_last = 0;
    let mut last_elapsed = Duration::ZERO;
    loop {
        let group = match receiver.try_recv() {
            Ok(group) => group,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                // A closed loop's next request is usually a round trip away: the connection
                // waits a moment for it, then goes back, so an idle lane (or a service
                // stopping) holds none.
                match tokio::time::timeout(LANE_IDLE, receiver.recv()).await {
                    Ok(Some(group)) => group,
                    Ok(None) => break,
                    Err(_) => {
                        give_back(&mut connection).await;
                        match receiver.recv().await {
                            Some(group) => group,
                            None => break,
                        }
                    }
                }
            }
        };
        batch.extend(group);
        // Whatever else is waiting, up to `max_batch` requests (a group is never split).
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(group) => batch.extend(group),
                Err(_) => break,
            }
        }
        if let Some(wait) = gather_wait(batch.len(), answered_last, last_elapsed) {
            let deadline = tokio::time::Instant::now() + wait;
            while batch.len() < answered_last.min(max_batch) {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(group)) => batch.extend(group),
                    _ => break,
                }
            }
        }
        // A caller that gave up (deadline, disconnect) by now is dropped before it costs a row;
        // it answers on the one-request path, which refuses past the deadline. (The batch on
        // remembered rows is one statement, committed as it ends: this is its check before
        // commit. The locked path checks again before its commit, below.)
        let now = tokio::time::Instant::now();
        batch.retain(|p: &Pending| !p.abandoned(now));
        let earliest_deadline = batch.iter().filter_map(|p| p.deadline).min();
        if batch.is_empty() {
            continue;
        }
        let (requests, replies): (Vec<BatchRequest>, Vec<oneshot::Sender<Coalesced>>) =
            batch.drain(..).map(|p| (p.request, p.reply)).unzip();
        let started = Instant::now();
        let keys: BTreeSet<InventoryKey> = requests
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| l.key))
            .collect();
        let writing = memory.start_writing(keys).await;
        let keys = &writing.keys;
        // The wait for other lanes' rows may have outlasted a caller's deadline: the batch on
        // remembered rows commits as its statement ends, so it does not start then.
        let expired = earliest_deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        let fast = if expired {
            Err(ServiceError::DeadlineExceeded(
                "a caller's deadline passed before the batch".to_owned(),
            ))
        } else {
            match lane_connection(&store, &mut connection).await {
                Ok(conn) => match memory.rows_of(&store, conn, keys).await {
                    Ok(rows) => {
                        store
                            .reserve_batch_on(conn, &requests, &rows, encode_answer)
                            .await
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            }
        };
        // A batch that did not apply gives the connection back: a failed one may be broken,
        // and the locked path takes its own transaction (one connection per lane at a time).
        // One held for a while goes back too, so the pool's lifetime and health checks
        // still reach it under constant load.
        if !matches!(fast, Ok(Some(_)))
            || connection
                .as_ref()
                .is_some_and(|c| c.taken.elapsed() >= LANE_CONNECTION_TURN)
        {
            give_back(&mut connection).await;
        }
        if let Err(error) = &fast {
            tracing::debug!(%error, "batch on remembered rows did not apply");
        }
        let locked = matches!(fast, Ok(None) | Err(ServiceError::Aborted(_)));
        let result = match fast {
            Ok(Some(result)) => Ok(result),
            Ok(None) | Err(ServiceError::Aborted(_)) => {
                // Its lock waits may outlast a caller's deadline: it commits only while every
                // caller's deadline is ahead, else it rolls back and each goes alone.
                let locked = store.reserve_batch_locked(&requests, encode_answer);
                match earliest_deadline {
                    Some(deadline) => {
                        inventory_runtime::deadline::with_deadline(deadline, locked).await
                    }
                    None => locked.await,
                }
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
                memory.update(rows);
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
            Err(ServiceError::DeadlineExceeded(_)) => {
                memory.forget(keys);
                tracing::debug!(
                    size = requests.len(),
                    "a caller's deadline passed before the batch committed; each goes alone"
                );
                for reply in replies {
                    let _ = reply.send(Coalesced::Single);
                }
            }
            Err(error) => {
                memory.forget(keys);
                tracing::warn!(%error, size = requests.len(), "reservation batch failed; retrying one by one");
                for reply in replies {
                    let _ = reply.send(Coalesced::Single);
                }
            }
        }
        drop(writing);
        answered_last = requests.len();
        last_elapsed = started.elapsed();
    }
}

/// How long a lane holding `waiting` requests waits for more before its batch, if at all.
/// Callers in a closed loop (a checkout flow, a router) ask again about a round trip after
/// their answer: when the last batch answered more than twice what is waiting now, most of
/// them are on their way. Running the few alone costs a statement's fixed cost and leaves
/// the rest for the next one, so the lanes settled into a big batch and a small one in turn
/// (on the hot product at 64 clients, about 40% of batches held fewer than 8). Waiting as long
/// as the last batch took, at most [`GATHER_WAIT`], lets them join, as PostgreSQL's
/// commit_delay lets commits share a flush. A lane with all its callers waiting never waits.
fn gather_wait(waiting: usize, answered_last: usize, last_elapsed: Duration) -> Option<Duration> {
    (waiting * 2 < answered_last).then(|| last_elapsed.min(GATHER_WAIT))
}

/// The longest a lane waits for answered callers to ask again (one tick of tokio's timer).
const GATHER_WAIT: Duration = Duration::from_millis(1);

/// How long an idle lane keeps its connection: longer than a client's round trip between
/// one answer and its next request, short enough that a stopping service does not wait.
const LANE_IDLE: Duration = Duration::from_millis(50);

/// How long a lane keeps one connection under constant load before giving it back.
const LANE_CONNECTION_TURN: Duration = Duration::from_secs(30);

/// How long a batch on remembered rows waits for a row lock another transaction holds
/// before it goes to the locked path, which waits as long as LOCK_TIMEOUT_MS allows but
/// commits only while its callers' deadlines are ahead. The batch on remembered rows is one
/// statement, committed as it ends: bounding its wait keeps it from committing a hold long
/// after a caller's deadline.
const LANE_LOCK_TIMEOUT_SET: &str = "SET lock_timeout = '20ms'";

/// A connection a lane holds, and since when. Its lock waits are bounded by
/// [`LANE_LOCK_TIMEOUT_SET`] while the lane holds it: set when taken, reset when given back with
/// [`give_back`]; one dropped otherwise (a lane that panicked) is closed, not pooled.
struct LaneConnection {
    conn: PoolConnection<Postgres>,
    taken: Instant,
    /// Whether the session's lock timeout is the pool's again.
    reset: bool,
}

impl Drop for LaneConnection {
    fn drop(&mut self) {
        if !self.reset {
            self.conn.close_on_drop();
        }
    }
}

/// The lane's connection, taken from the pool if it has none.
async fn lane_connection<'c>(
    store: &Store,
    connection: &'c mut Option<LaneConnection>,
) -> Result<&'c mut PgConnection, ServiceError> {
    let held = match connection.take() {
        Some(held) => held,
        None => {
            let mut held = LaneConnection {
                conn: store.pool().acquire().await.map_err(db_error)?,
                taken: Instant::now(),
                reset: false,
            };
            sqlx::query(LANE_LOCK_TIMEOUT_SET)
                .execute(&mut *held.conn)
                .await
                .map_err(db_error)?;
            held
        }
    };
    Ok(&mut *connection.insert(held).conn)
}

/// Gives the lane's connection back to the pool with the pool's lock timeout (or closes it,
/// if that cannot be restored).
async fn give_back(connection: &mut Option<LaneConnection>) {
    if let Some(mut held) = connection.take() {
        held.reset = sqlx::query("RESET lock_timeout")
            .execute(&mut *held.conn)
            .await
            .is_ok();
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn keys(products: &[u128]) -> BTreeSet<InventoryKey> {
        products
            .iter()
            .map(|p| InventoryKey {
                product_id: Uuid::from_u128(*p),
                warehouse_id: Uuid::from_u128(0),
            })
            .collect()
    }

    #[test]
    fn a_lane_waits_for_answered_callers_only_when_few_are_waiting_and_never_past_the_bound() {
        let last = Duration::from_micros(300);
        assert_eq!(
            gather_wait(3, 40, last),
            Some(last),
            "few waiting: as long as the last took"
        );
        assert_eq!(
            gather_wait(3, 40, Duration::from_secs(1)),
            Some(GATHER_WAIT)
        );
        assert_eq!(gather_wait(20, 40, last), None, "half are waiting already");
        assert_eq!(
            gather_wait(1, 1, last),
            None,
            "one caller: never waits for itself"
        );
        assert_eq!(gather_wait(1, 0, last), None, "the first batch");
    }

    #[tokio::test]
    async fn a_lane_takes_a_row_another_lanes_batch_is_writing_only_once_that_batch_finishes() {
        let memory = Arc::new(Memory::new(16));
        let first = memory.start_writing(keys(&[1, 2])).await;
        let _third = tokio::time::timeout(Duration::from_secs(5), memory.start_writing(keys(&[3])))
            .await
            .expect("a row no batch writes is taken at once");

        let (marked, marked_rx) = oneshot::channel();
        let waiting = tokio::spawn({
            let memory = memory.clone();
            async move {
                let _second = memory.start_writing(keys(&[2, 4])).await;
                let writing = marked_writing(&memory);
                let _ = marked.send(writing);
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "row 2 is being written by the first batch"
        );
        drop(first);
        let while_second = tokio::time::timeout(Duration::from_secs(5), marked_rx)
            .await
            .expect("taken once the first batch finished")
            .expect("sent");
        assert_eq!(while_second, [(2, 1), (3, 1), (4, 1)]);
        waiting.await.expect("join");
        assert_eq!(
            marked_writing(&memory),
            [(3, 1)],
            "the second batch's marks gone"
        );
    }

    #[tokio::test]
    async fn a_lane_that_panics_while_writing_leaves_no_row_marked() {
        let memory = Arc::new(Memory::new(16));
        let panicked = tokio::spawn({
            let memory = memory.clone();
            async move {
                let _writing = memory.start_writing(keys(&[1])).await;
                panic!("a lane's bug");
            }
        })
        .await;
        assert!(panicked.is_err());
        assert_eq!(marked_writing(&memory), []);
        tokio::time::timeout(Duration::from_secs(5), memory.start_writing(keys(&[1])))
            .await
            .expect("the row is taken at once");
    }

    fn marked_writing(memory: &Memory) -> Vec<(u128, u32)> {
        let mut writing: Vec<(u128, u32)> = memory
            .state()
            .writing
            .iter()
            .map(|(k, n)| (k.product_id.as_u128(), *n))
            .collect();
        writing.sort();
        writing
    }
}

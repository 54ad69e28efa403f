//! The work between this service and stock: unit costs and ABC classes, each counted line
//! judged against stock's log, and approved lines applied as ADJUST transactions.
//!
//! Applying is exactly-once without a two-phase commit: the ADJUST's request id is derived
//! from the line, and the request (variance and `expected_on_hand`) is stored before it is
//! sent, so a retry or a restart sends the same request and stock answers it from its
//! idempotency record. The request changes only after stock refused it (ON_HAND_CHANGED,
//! which stores nothing there): the line is judged again against the fresh log first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, Utc};
use inventory_core::ServiceError;
use inventory_core::time::{from_timestamp, timestamp};
use inventory_proto::stock::v1 as stock;
use inventory_runtime::{db_error, failpoint};
use inventory_stock_client::{StockClient, StockError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::abc::{Class, classify};
use crate::domain::evaluate::{Counted, LogEntry, Outcome, PairLog, evaluate};
use crate::domain::tolerance::{Decision, Exceeds, Tolerances};
use crate::store::{self, Evaluation, Line};

/// Who decided a line approved within tolerance.
pub const AUTO_APPROVER: &str = "reconciliation-service";
/// Stock's limit per batched call.
const STOCK_BATCH: usize = 1000;
/// How long a unit cost read from stock is trusted.
const COST_FRESH_FOR: Duration = Duration::hours(1);
/// Lines one transaction holds while their ADJUSTs are sent.
const APPLY_CHUNK: usize = 256;
/// Times a line is judged again after stock moved under it, per apply.
const REEVALUATIONS: usize = 3;

/// What an applier does about a line another applier is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contention {
    /// Waits for it (a caller who wants to answer with the outcome).
    Wait,
    /// Leaves it (the background retry).
    Skip,
}

/// What this deployment decided about counting.
#[derive(Debug, Clone, Copy)]
pub struct CountRules {
    pub tolerances: Tolerances,
    /// How far apart a scanner's clock and stock's may be: a movement closer than this to a
    /// count cannot be ordered against it.
    pub uncertainty: Duration,
    /// ADJUST calls in flight at once.
    pub apply_concurrency: usize,
}

#[derive(Clone)]
pub struct Counting {
    pool: PgPool,
    stock: Arc<dyn StockClient>,
    pub rules: CountRules,
}

impl Counting {
    pub fn new(pool: PgPool, stock: Arc<dyn StockClient>, rules: CountRules) -> Self {
        Self { pool, stock, rules }
    }

    pub fn stock(&self) -> &Arc<dyn StockClient> {
        &self.stock
    }

    /// Unit costs of `products`: from the cache when fresh, else from stock (NOT_FOUND for a
    /// product stock does not know).
    pub async fn costs(&self, products: &[Uuid]) -> Result<HashMap<Uuid, i64>, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let mut known = store::costs(&mut conn, products, Utc::now() - COST_FRESH_FOR).await?;
        let missing: Vec<Uuid> = products
            .iter()
            .filter(|p| !known.contains_key(p))
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for chunk in missing.chunks(STOCK_BATCH) {
            let found = self
                .stock
                .batch_get_products(chunk.iter().map(Uuid::to_string).collect())
                .await
                .map_err(ServiceError::from)?;
            answered_all("BatchGetProducts", chunk.len(), found.len())?;
            let fetched: Vec<(Uuid, i64)> = chunk
                .iter()
                .zip(&found)
                .map(|(id, p)| (*id, p.unit_cost_micros.max(0)))
                .collect();
            store::save_costs(&mut conn, &fetched).await?;
            known.extend(fetched);
        }
        Ok(known)
    }

    /// ABC class of every product that shipped in the last year (the rest are C).
    pub async fn classes(&self) -> Result<HashMap<Uuid, Class>, ServiceError> {
        let since = Utc::now().date_naive() - Duration::days(365);
        let shipped = {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            store::shipped_by_product(&mut conn, since).await?
        };
        let ids: Vec<Uuid> = shipped.iter().map(|(p, _)| *p).collect();
        let costs = self.costs(&ids).await?;
        let moved: Vec<(Uuid, f64)> = shipped
            .into_iter()
            .map(|(p, units)| {
                let cost = costs.get(&p).copied().unwrap_or(0);
                let value = if cost > 0 {
                    units as f64 * cost as f64
                } else {
                    units as f64
                };
                (p, value)
            })
            .collect();
        Ok(classify(&moved).into_iter().collect())
    }

    /// Each line's pair as stock's log tells it, from `uncertainty` before its first count to
    /// now. On hand is read before the log, so the log's last entry is never older.
    async fn pair_logs(
        &self,
        warehouse_id: Uuid,
        lines: &[&Line],
    ) -> Result<HashMap<Uuid, PairLog>, ServiceError> {
        let mut on_hand: HashMap<Uuid, i64> = HashMap::new();
        for chunk in lines.chunks(STOCK_BATCH) {
            let keys = chunk
                .iter()
                .map(|l| stock::InventoryKey {
                    product_id: l.product_id.to_string(),
                    warehouse_id: warehouse_id.to_string(),
                })
                .collect();
            let levels = self
                .stock
                .batch_get_availability(keys)
                .await
                .map_err(ServiceError::from)?;
            answered_all("BatchGetAvailability", chunk.len(), levels.len())?;
            for (line, level) in chunk.iter().zip(levels) {
                on_hand.insert(line.product_id, level.quantity_on_hand);
            }
        }
        let Some(since) = lines.iter().filter_map(|l| l.first_count_time).min() else {
            return Ok(HashMap::new());
        };
        // One product: its own log; several: the warehouse's, once.
        let product_filter = match lines {
            [only] => only.product_id.to_string(),
            _ => String::new(),
        };
        let mut entries: HashMap<Uuid, Vec<LogEntry>> = HashMap::new();
        let log = self
            .transactions(stock::ListTransactionsRequest {
                product_id: product_filter,
                warehouse_id: warehouse_id.to_string(),
                start_time: Some(timestamp(since - self.rules.uncertainty)),
                ..Default::default()
            })
            .await?;
        for t in log {
            let (Ok(product), Some(time)) = (
                t.product_id.parse::<Uuid>(),
                t.create_time
                    .as_ref()
                    .and_then(|c| from_timestamp("", c).ok()),
            ) else {
                continue;
            };
            if on_hand.contains_key(&product) {
                entries.entry(product).or_default().push((
                    t.sequence,
                    time,
                    t.on_hand_delta,
                    t.on_hand_after,
                ));
            }
        }
        Ok(on_hand
            .into_iter()
            .map(|(product, now)| {
                let log = PairLog::new(entries.remove(&product).unwrap_or_default(), now);
                (product, log)
            })
            .collect())
    }

    /// Judges `lines` (all counted, all of `warehouse_id`): what each should become.
    pub async fn evaluate(
        &self,
        warehouse_id: Uuid,
        lines: &[&Line],
    ) -> Result<Vec<Evaluation>, ServiceError> {
        let products: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let costs = self.costs(&products).await?;
        let classes = self.classes().await?;
        let logs = self.pair_logs(warehouse_id, lines).await?;
        Ok(lines
            .iter()
            .filter_map(|line| {
                let log = logs.get(&line.product_id)?;
                let cost = costs.get(&line.product_id).copied().unwrap_or(0);
                let class = classes.get(&line.product_id).copied().unwrap_or(Class::C);
                judge(line, log, cost, class, &self.rules)
            })
            .collect())
    }

    /// Applies approved `lines` in stock; returns how many failed for now (they stay
    /// approved, and the background retry sends them again).
    ///
    /// In chunks: one transaction holds a chunk's lines (as [`Counting::apply`] holds one)
    /// while their ADJUSTs go to stock `apply_concurrency` at a time, and records every
    /// outcome with one commit. A line stock answers ON_HAND_CHANGED, or anything unusual, is
    /// left to [`Counting::apply`] on its own once the chunk is committed.
    pub async fn apply_all(&self, lines: Vec<Line>, contention: Contention) -> usize {
        let ids: Vec<Uuid> = lines.iter().map(|l| l.line_id).collect();
        let mut failed = 0;
        for chunk in ids.chunks(APPLY_CHUNK) {
            let alone = match self.apply_chunk(chunk, contention).await {
                Ok(alone) => alone,
                Err(error) => {
                    tracing::warn!(%error, "adjustments not applied yet");
                    failed += chunk.len();
                    continue;
                }
            };
            for line_id in alone {
                if let Err(error) = self.apply(line_id, contention).await {
                    tracing::warn!(%line_id, %error, "adjustment not applied yet");
                    failed += 1;
                }
            }
        }
        failed
    }

    /// One chunk of [`Counting::apply_all`]: the lines to apply on their own.
    async fn apply_chunk(
        &self,
        ids: &[Uuid],
        contention: Contention,
    ) -> Result<Vec<Uuid>, ServiceError> {
        let mut tx = inventory_runtime::begin(&self.pool).await?;
        let lines =
            store::claim_approved_many(&mut tx, ids, contention == Contention::Skip).await?;
        let requests: Vec<(Uuid, stock::AdjustStockRequest)> = lines
            .iter()
            .filter_map(|l| Some((l.line_id, adjust_request(l)?)))
            .collect();
        let next = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(requests);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.rules.apply_concurrency.clamp(1, requests.len().max(1)) {
            let (stock, requests, next) = (self.stock.clone(), requests.clone(), next.clone());
            workers.spawn(async move {
                let mut answers = Vec::new();
                while let Some((line_id, request)) =
                    requests.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    answers.push((*line_id, stock.adjust(request.clone()).await));
                }
                answers
            });
        }
        let mut applied = Vec::new();
        let mut alone = Vec::new();
        while let Some(answers) = workers.join_next().await {
            let answers = answers.map_err(|e| ServiceError::Internal(format!("applier: {e}")))?;
            for (line_id, answer) in answers {
                match answer {
                    Ok(done) => {
                        let txn = done.transaction.unwrap_or_default();
                        match txn.txn_id.parse::<Uuid>() {
                            Ok(txn_id) => applied.push((line_id, txn_id, txn.sequence)),
                            Err(_) => alone.push(line_id),
                        }
                    }
                    Err(
                        StockError::Unavailable(_)
                        | StockError::DeadlineExceeded(_)
                        | StockError::Aborted(_),
                    ) => {}
                    Err(_) => alone.push(line_id),
                }
            }
        }
        store::mark_applied(&mut tx, &applied).await?;
        inventory_runtime::commit(tx).await?;
        Ok(alone)
    }

    /// Approved lines of any task still not in stock (a crash or an outage in between).
    /// Every page of them, so lines that keep failing never hide the ones behind them.
    pub async fn apply_pending(&self) -> Result<usize, ServiceError> {
        let mut after = None;
        let mut count = 0;
        loop {
            let lines = {
                let mut conn = self.pool.acquire().await.map_err(db_error)?;
                store::approved_lines(&mut conn, None, after, 1000).await?
            };
            let Some(last) = lines.last().map(|l| l.line_id) else {
                return Ok(count);
            };
            count += lines.len();
            after = Some(last);
            self.apply_all(lines, Contention::Skip).await;
        }
    }

    /// Applies one approved line in stock. The applier holds the line's row lock while it
    /// calls stock, so two appliers (a completion, an approval, the background retry) never
    /// send it at once: the background retry skips a line another holds, a caller waits for
    /// it (and then finds it applied).
    pub async fn apply(&self, line_id: Uuid, contention: Contention) -> Result<(), ServiceError> {
        let skip_locked = contention == Contention::Skip;
        for _ in 0..=REEVALUATIONS {
            let mut tx = inventory_runtime::begin(&self.pool).await?;
            let Some(line) = store::claim_approved(&mut tx, line_id, skip_locked).await? else {
                return Ok(());
            };
            let Some(request) = adjust_request(&line) else {
                return Err(ServiceError::Internal(format!(
                    "approved line {line_id} has no variance"
                )));
            };
            failpoint("reconciliation.before_adjust").await;
            match self.stock.adjust(request).await {
                Ok(done) => {
                    failpoint("reconciliation.after_adjust").await;
                    let txn = done.transaction.unwrap_or_default();
                    return self.applied(tx, line_id, &txn).await;
                }
                Err(StockError::OnHandChanged { .. }) => {
                    // Stock stored nothing for this request. The lock (and its connection)
                    // is let go while stock is asked again, then taken back.
                    drop(tx);
                    // An earlier request of the line may be in the log anyway (its record
                    // here lost, and stock's replay purged since): that was the adjustment.
                    let logged = self.logged_adjustment(&line).await?;
                    let evaluation = match logged {
                        Some(_) => None,
                        None => self.evaluate(line.warehouse_id, &[&line]).await?.pop(),
                    };
                    let mut tx = inventory_runtime::begin(&self.pool).await?;
                    match store::claim_approved(&mut tx, line_id, skip_locked).await? {
                        Some(current) if current == line => {}
                        // Another applier or a person got to it meanwhile: look again.
                        Some(_) => continue,
                        None => return Ok(()),
                    }
                    if let Some(txn) = logged {
                        return self.applied(tx, line_id, &txn).await;
                    }
                    // Judged again and committed before anything is sent again, so a crash
                    // never leaves stock holding a request this service does not know.
                    rejudge(&mut tx, &line, evaluation).await?;
                    inventory_runtime::commit(tx).await?;
                }
                Err(
                    refused @ (StockError::Refused { .. }
                    | StockError::InvalidArgument { .. }
                    | StockError::NotFound(_)),
                ) => {
                    // A request id stock knows with other numbers means it applied the line
                    // already (never while this lock is held; a safeguard all the same).
                    if let Some(txn) = self.logged_adjustment(&line).await? {
                        return self.applied(tx, line_id, &txn).await;
                    }
                    store::mark_blocked(&mut tx, line_id, &refused.to_string()).await?;
                    return inventory_runtime::commit(tx).await;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(ServiceError::Aborted(format!(
            "stock kept moving under line {line_id}; retried later"
        )))
    }

    async fn applied(
        &self,
        mut tx: inventory_runtime::Tx,
        line_id: Uuid,
        txn: &stock::InventoryTransaction,
    ) -> Result<(), ServiceError> {
        let txn_id = txn.txn_id.parse::<Uuid>().map_err(|_| {
            ServiceError::Internal(format!("stock answered txn id {:?}", txn.txn_id))
        })?;
        store::mark_applied(&mut tx, &[(line_id, txn_id, txn.sequence)]).await?;
        inventory_runtime::commit(tx).await
    }

    /// The line's ADJUST in stock's log, found by its request id, if stock has one.
    async fn logged_adjustment(
        &self,
        line: &Line,
    ) -> Result<Option<stock::InventoryTransaction>, ServiceError> {
        let wanted = adjust_request_id(line.line_id);
        let logged = self
            .transactions(stock::ListTransactionsRequest {
                product_id: line.product_id.to_string(),
                warehouse_id: line.warehouse_id.to_string(),
                txn_type: stock::TransactionType::Adjust.into(),
                reference_id: line.task_id.to_string(),
                ..Default::default()
            })
            .await?;
        Ok(logged.into_iter().find(|t| t.request_id == wanted))
    }

    /// Every page of stock's log that `filter` selects.
    async fn transactions(
        &self,
        filter: stock::ListTransactionsRequest,
    ) -> Result<Vec<stock::InventoryTransaction>, ServiceError> {
        let mut all = Vec::new();
        let mut request = stock::ListTransactionsRequest {
            page_size: 1000,
            ..filter
        };
        loop {
            let page = self
                .stock
                .list_transactions(request.clone())
                .await
                .map_err(ServiceError::from)?;
            all.extend(page.transactions);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            request.page_token = page.next_page_token;
        }
    }
}

/// Stores `evaluation`, a fresh judgement of the approved `line` (locked by `tx`) after stock
/// moved under it: the same variance stays approved against the new on hand (a manager's
/// approval stands for the variance they saw), another goes back to a person, an ambiguous
/// one to a recount.
async fn rejudge(
    tx: &mut inventory_runtime::Tx,
    line: &Line,
    evaluation: Option<Evaluation>,
) -> Result<(), ServiceError> {
    match evaluation {
        Some(e) if e.status == "RECOUNT_REQUIRED" => store::require_recount(tx, line).await,
        Some(mut e) => {
            let by_manager = line.decided_by.as_deref() != Some(AUTO_APPROVER);
            if by_manager && e.variance == line.variance {
                e.status = "APPROVED";
                e.decided_by = line.decided_by.clone();
                e.decision_comment = line.decision_comment.clone();
            } else if by_manager && e.status == "APPROVED" {
                e.status = "PENDING_APPROVAL";
                e.decided_by = None;
                e.decision_comment = None;
            }
            store::store_evaluations(tx, &[e], &["APPROVED"]).await?;
            Ok(())
        }
        None => Ok(()),
    }
}

/// Stock answers one entry per key asked; anything else is a fault to report, not to guess
/// around.
pub fn answered_all(call: &str, asked: usize, answered: usize) -> Result<(), ServiceError> {
    if asked == answered {
        Ok(())
    } else {
        Err(ServiceError::Internal(format!(
            "stock's {call} answered {answered} entries for {asked} asked"
        )))
    }
}

/// The ADJUST of an approved line: its variance, against on hand when it was judged, by who
/// approved it, referencing the count; None for a line without a judgement.
fn adjust_request(line: &Line) -> Option<stock::AdjustStockRequest> {
    Some(stock::AdjustStockRequest {
        request_id: adjust_request_id(line.line_id),
        product_id: line.product_id.to_string(),
        warehouse_id: line.warehouse_id.to_string(),
        quantity_delta: line.variance?,
        reason: "cycle count".into(),
        reference_id: line.task_id.to_string(),
        expected_on_hand: Some(line.on_hand_at_evaluation?),
        actor: line.decided_by.clone().unwrap_or_default(),
    })
}

/// The request id of a line's ADJUST: the same for every attempt, so stock applies it once.
fn adjust_request_id(line_id: Uuid) -> String {
    format!("count-line:{line_id}")
}

/// One counted line against its pair's log: the evaluation to store.
fn judge(
    line: &Line,
    log: &PairLog,
    unit_cost_micros: i64,
    class: Class,
    rules: &CountRules,
) -> Option<Evaluation> {
    let counted = Counted {
        quantity: line.counted_quantity?,
        first: line.first_count_time?,
        last: line.count_time?,
    };
    let mut e = Evaluation {
        line_id: line.line_id,
        counted_quantity: counted.quantity,
        first_count_time: counted.first,
        count_time: counted.last,
        status: "RECOUNT_REQUIRED",
        system_quantity: None,
        on_hand_at_evaluation: None,
        variance: None,
        variance_value_micros: None,
        variance_percent: None,
        unit_cost_micros,
        abc_class: class.as_str(),
        exceeded: String::new(),
        decided_by: None,
        decision_comment: None,
    };
    let outcome = evaluate(
        &counted,
        log,
        unit_cost_micros,
        class,
        &rules.tolerances,
        rules.uncertainty,
    );
    if let Outcome::Evaluated {
        variance,
        current,
        decision,
    } = outcome
    {
        e.system_quantity = Some(variance.system);
        e.on_hand_at_evaluation = Some(current);
        e.variance = Some(variance.units);
        e.variance_value_micros = Some(saturate(variance.value_micros));
        e.variance_percent = variance.percent;
        match decision {
            Decision::NoAdjustment => e.status = "MATCHED",
            Decision::AutoApproved => {
                e.status = "APPROVED";
                e.decided_by = Some(AUTO_APPROVER.into());
                e.decision_comment = Some(format!("within the class {} tolerance", class.as_str()));
            }
            Decision::NeedsApproval(exceeded) => {
                e.status = "PENDING_APPROVAL";
                e.exceeded = exceeded
                    .iter()
                    .map(|x| match x {
                        Exceeds::Percent => "PERCENT",
                        Exceeds::Value => "VALUE",
                        Exceeds::NothingExpected => "NOTHING_EXPECTED",
                    })
                    .collect::<Vec<_>>()
                    .join(",");
            }
        }
    }
    Some(e)
}

/// A sum in micros as an int64, saturating instead of failing.
pub fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

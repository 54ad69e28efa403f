//! Count tasks: created from stock's levels, counted, completed into decisions, or cancelled.

use std::collections::{HashMap, HashSet};

use inventory_core::ServiceError;
use inventory_core::time::now;
use inventory_core::validate::{optional_uuid_field, uuid_field};
use inventory_proto::reconciliation::v1 as pb;
use inventory_proto::stock::v1 as stock;
use inventory_runtime::idempotency::{self, RequestKey};
use inventory_runtime::{Tx, db_error};
use uuid::Uuid;

use super::parse::{self, MAX_LINES};
use super::{DOMAIN, ReconciliationApi, convert, refused};
use crate::counting::{Contention, answered_all};
use crate::store::{self, Line, NewTask, Submission};

/// Statuses a line accepts counts in.
const COUNTABLE: [&str; 3] = ["UNCOUNTED", "COUNTED", "RECOUNT_REQUIRED"];

fn not_open(task_id: Uuid, status: &str) -> ServiceError {
    ServiceError::FailedPrecondition {
        reason: "TASK_CLOSED",
        domain: DOMAIN,
        message: format!("count task {task_id} is {status}: it takes no more counts"),
        metadata: vec![("status", status.to_owned())],
    }
}

impl ReconciliationApi {
    pub(super) async fn create_task(
        &self,
        req: pb::CreateCountTaskRequest,
    ) -> Result<pb::CreateCountTaskResponse, ServiceError> {
        let cmd = parse::create_task(&req)?;
        let key = RequestKey::new("CreateCountTask", &cmd.request_id, &req);
        // Reads from stock before anything is written. If they fail (the warehouse emptied
        // since, say), a retry of a task already created still gets its first answer.
        let (levels, costs) = match self.levels_to_count(&cmd).await {
            Ok(read) => read,
            Err(refusal) => return idempotency::replay_or(&self.pool, &key, refusal).await,
        };
        let task_id = Uuid::now_v7();
        let new = NewTask {
            task_id,
            warehouse_id: cmd.warehouse_id,
            location: &cmd.location,
            blind: cmd.blind,
            created_by: &cmd.actor,
            lines: levels
                .iter()
                .map(|&(p, on_hand)| {
                    let cost = costs.get(&p).copied().unwrap_or(0);
                    (Uuid::now_v7(), p, on_hand.max(0), cost)
                })
                .collect(),
        };
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            store::insert_task(&mut tx, &new).await?;
            let task = store::task(&mut tx, task_id).await?;
            Ok((
                tx,
                pb::CreateCountTaskResponse {
                    task: Some(convert::task(&task)),
                },
            ))
        })
        .await
    }

    /// The warehouse checked, what to count with on hand now (shown to counters unless the
    /// task is blind), and unit costs.
    async fn levels_to_count(
        &self,
        cmd: &parse::CreateTask,
    ) -> Result<(Vec<(Uuid, i64)>, HashMap<Uuid, i64>), ServiceError> {
        let stock = self.counting.stock();
        let warehouse = cmd.warehouse_id.to_string();
        stock
            .get_warehouse(warehouse.clone())
            .await
            .map_err(|e| match e {
                inventory_stock_client::StockError::NotFound(_) => {
                    ServiceError::not_found("warehouse", cmd.warehouse_id)
                }
                other => other.into(),
            })?;
        let levels: Vec<(Uuid, i64)> = if cmd.product_ids.is_empty() {
            self.stocked_in(&warehouse).await?
        } else {
            let mut levels = Vec::with_capacity(cmd.product_ids.len());
            for chunk in cmd.product_ids.chunks(1000) {
                let keys = chunk
                    .iter()
                    .map(|p| stock::InventoryKey {
                        product_id: p.to_string(),
                        warehouse_id: warehouse.clone(),
                    })
                    .collect();
                let found = stock.batch_get_availability(keys).await?;
                answered_all("BatchGetAvailability", chunk.len(), found.len())?;
                levels.extend(
                    chunk
                        .iter()
                        .zip(found)
                        .map(|(p, a)| (*p, a.quantity_on_hand)),
                );
            }
            levels
        };
        let products: Vec<Uuid> = levels.iter().map(|(p, _)| *p).collect();
        let costs = self.counting.costs(&products).await?;
        Ok((levels, costs))
    }

    /// Every product with stock on hand in the warehouse, from stock's inventory.
    async fn stocked_in(&self, warehouse: &str) -> Result<Vec<(Uuid, i64)>, ServiceError> {
        let mut levels = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .counting
                .stock()
                .list_inventory(stock::ListInventoryRequest {
                    page_size: 1000,
                    page_token,
                    warehouse_id: warehouse.to_owned(),
                    ..Default::default()
                })
                .await?;
            for row in page.inventory {
                if row.quantity_on_hand > 0
                    && let Ok(p) = row.product_id.parse::<Uuid>()
                {
                    levels.push((p, row.quantity_on_hand));
                }
            }
            if levels.len() > MAX_LINES {
                return Err(refused(
                    "TOO_MANY_PRODUCTS",
                    format!(
                        "warehouse {warehouse} stocks more than {MAX_LINES} products: name the \
                         products to count"
                    ),
                ));
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        if levels.is_empty() {
            return Err(refused(
                "NOTHING_STOCKED",
                format!("warehouse {warehouse} has nothing on hand to count"),
            ));
        }
        Ok(levels)
    }

    pub(super) async fn get_task(
        &self,
        req: pb::GetCountTaskRequest,
    ) -> Result<pb::GetCountTaskResponse, ServiceError> {
        let task_id = uuid_field("task_id", &req.task_id)?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let task = store::task(&mut conn, task_id).await?;
        Ok(pb::GetCountTaskResponse {
            task: Some(convert::task(&task)),
        })
    }

    pub(super) async fn list_tasks(
        &self,
        req: pb::ListCountTasksRequest,
    ) -> Result<pb::ListCountTasksResponse, ServiceError> {
        let warehouse = optional_uuid_field("warehouse_id", &req.warehouse_id)?;
        let status = parse::task_status(req.status)?;
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!("{}|{}", req.warehouse_id, req.status),
        )?;
        let before = page.after.as_deref().and_then(|a| a.parse::<Uuid>().ok());
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let tasks =
            store::list_tasks(&mut conn, warehouse, status, before, page.fetch_limit()).await?;
        let (tasks, next_page_token) = self.pages.page(tasks, &page, |t| t.task_id.to_string());
        Ok(pb::ListCountTasksResponse {
            tasks: tasks.iter().map(convert::task).collect(),
            next_page_token,
        })
    }

    pub(super) async fn list_lines(
        &self,
        req: pb::ListCountLinesRequest,
    ) -> Result<pb::ListCountLinesResponse, ServiceError> {
        let task_id = uuid_field("task_id", &req.task_id)?;
        let status = parse::line_status(req.status)?;
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!("{}|{}", req.task_id, req.status),
        )?;
        let after = page.after.as_deref().and_then(|a| a.parse::<Uuid>().ok());
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let task = store::task(&mut conn, task_id).await?;
        let lines =
            store::list_lines(&mut conn, task_id, status, after, page.fetch_limit()).await?;
        let (lines, next_page_token) = self.pages.page(lines, &page, |l| l.product_id.to_string());
        let hide = hides_system(&task.status, task.blind);
        Ok(pb::ListCountLinesResponse {
            lines: lines.iter().map(|l| convert::line(l, hide)).collect(),
            next_page_token,
        })
    }

    pub(super) async fn submit(
        &self,
        req: pb::SubmitCountsRequest,
    ) -> Result<pb::SubmitCountsResponse, ServiceError> {
        let cmd = parse::submit(&req, now())?;
        let key = RequestKey::new("SubmitCounts", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let status = store::lock_task(&mut tx, cmd.task_id).await?;
            if status != "OPEN" {
                return Err(not_open(cmd.task_id, &status));
            }
            let task = store::task(&mut tx, cmd.task_id).await?;
            let products: Vec<Uuid> = cmd.entries.iter().map(|e| e.product_id).collect();
            let lines: HashMap<Uuid, Line> = store::lock_lines_of(&mut tx, cmd.task_id, &products)
                .await?
                .into_iter()
                .map(|l| (l.product_id, l))
                .collect();
            let mut bad = inventory_core::validate::Violations::new();
            let mut blocked: Vec<(String, String)> = Vec::new();
            let mut recounted = HashSet::new();
            let mut submissions = Vec::with_capacity(cmd.entries.len());
            let mut order = Vec::new();
            for (i, e) in cmd.entries.iter().enumerate() {
                let Some(line) = lines.get(&e.product_id) else {
                    bad.add(
                        format!("entries[{i}].product_id"),
                        format!("product {} is not counted by this task", e.product_id),
                    );
                    continue;
                };
                if e.count_time < task.create_time {
                    bad.add(
                        format!("entries[{i}].count_time"),
                        "is before the task was created",
                    );
                    continue;
                }
                if !COUNTABLE.contains(&line.status.as_str()) {
                    blocked.push((
                        format!("entries[{i}].product_id"),
                        format!("line of product {} is {}", e.product_id, line.status),
                    ));
                    continue;
                }
                if e.recount {
                    recounted.insert(e.product_id);
                }
                if line.status == "RECOUNT_REQUIRED" && !recounted.contains(&e.product_id) {
                    blocked.push((
                        format!("entries[{i}].recount"),
                        format!(
                            "product {} must be counted again from zero: set recount",
                            e.product_id
                        ),
                    ));
                    continue;
                }
                if !order.contains(&e.product_id) {
                    order.push(e.product_id);
                }
                submissions.push(Submission {
                    line_id: line.line_id,
                    quantity: e.quantity,
                    recount: e.recount,
                    count_time: e.count_time,
                });
            }
            bad.finish()?;
            if !blocked.is_empty() {
                return Err(ServiceError::PreconditionsFailed {
                    reason: "LINES_NOT_COUNTABLE",
                    domain: DOMAIN,
                    message: format!(
                        "{} entries cannot be counted: {}",
                        blocked.len(),
                        blocked[0].1
                    ),
                    metadata: Vec::new(),
                    subjects: blocked,
                });
            }
            store::record_submissions(&mut tx, &submissions, &cmd.counted_by, &cmd.request_id)
                .await?;
            let after: HashMap<Uuid, Line> = store::lock_lines_of(&mut tx, cmd.task_id, &order)
                .await?
                .into_iter()
                .map(|l| (l.product_id, l))
                .collect();
            let hide = hides_system("OPEN", task.blind);
            let lines = order
                .iter()
                .filter_map(|p| after.get(p))
                .map(|l| convert::line(l, hide))
                .collect();
            Ok((tx, pb::SubmitCountsResponse { lines }))
        })
        .await
    }

    pub(super) async fn complete(
        &self,
        req: pb::CompleteCountTaskRequest,
    ) -> Result<pb::CompleteCountTaskResponse, ServiceError> {
        let cmd = parse::act(
            &req.request_id,
            ("task_id", &req.task_id),
            ("actor", &req.actor),
            ("", ""),
            false,
        )?;
        let key = RequestKey::new("CompleteCountTask", &cmd.request_id, &req);
        // Judged before the transaction (stock is asked), stored under the task's lock only
        // if no count arrived in between.
        let (task, lines) = {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let task = store::task(&mut conn, cmd.id).await?;
            let lines = store::lines_of_task(&mut conn, cmd.id).await?;
            (task, lines)
        };
        let mut evaluations = Vec::new();
        if task.status == "OPEN" {
            let waiting: Vec<(String, String)> = lines
                .iter()
                .filter(|l| l.status == "UNCOUNTED" || l.status == "RECOUNT_REQUIRED")
                .map(|l| {
                    (
                        format!("product {}", l.product_id),
                        format!("is {}", l.status),
                    )
                })
                .collect();
            if !waiting.is_empty() {
                let refusal = ServiceError::PreconditionsFailed {
                    reason: "LINES_NOT_COUNTED",
                    domain: DOMAIN,
                    message: format!(
                        "{} of {} products are not counted yet (or need a recount)",
                        waiting.len(),
                        lines.len()
                    ),
                    metadata: vec![("uncounted", waiting.len().to_string())],
                    subjects: waiting,
                };
                idempotency::replay_or::<pb::CompleteCountTaskResponse>(&self.pool, &key, refusal)
                    .await?;
                return self.completion(cmd.id).await;
            }
            let counted: Vec<&Line> = lines.iter().filter(|l| l.status == "COUNTED").collect();
            evaluations = self.counting.evaluate(task.warehouse_id, &counted).await?;
        }
        let actor = cmd.actor.clone();
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let status = store::lock_task(&mut tx, cmd.id).await?;
            if status != "OPEN" {
                return Err(not_open(cmd.id, &status));
            }
            // A line counted again since it was judged is not stored here; `finish` finds it
            // still COUNTED and refuses.
            store::store_evaluations(&mut tx, &evaluations, &["COUNTED"]).await?;
            let response = finish(&mut tx, cmd.id, &actor).await?;
            Ok((tx, response))
        })
        .await?;
        // Within tolerance goes to stock now; what fails stays approved and is retried.
        let approved = {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            store::approved_lines(&mut conn, Some(cmd.id), None, MAX_LINES as i64).await?
        };
        self.counting.apply_all(approved, Contention::Wait).await;
        self.completion(cmd.id).await
    }

    /// The task and how its lines came out, as they stand now.
    async fn completion(
        &self,
        task_id: Uuid,
    ) -> Result<pb::CompleteCountTaskResponse, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let task = store::task(&mut conn, task_id).await?;
        let lines = store::lines_of_task(&mut conn, task_id).await?;
        let count = |status: &str| lines.iter().filter(|l| l.status == status).count() as i64;
        Ok(pb::CompleteCountTaskResponse {
            task: Some(convert::task(&task)),
            matched: count("MATCHED"),
            applied: count("APPLIED"),
            pending_approval: count("PENDING_APPROVAL"),
            recount_required: count("RECOUNT_REQUIRED"),
            blocked: count("BLOCKED"),
        })
    }

    pub(super) async fn cancel(
        &self,
        req: pb::CancelCountTaskRequest,
    ) -> Result<pb::CancelCountTaskResponse, ServiceError> {
        let cmd = parse::act(
            &req.request_id,
            ("task_id", &req.task_id),
            ("actor", &req.actor),
            ("reason", &req.reason),
            false,
        )?;
        let key = RequestKey::new("CancelCountTask", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let status = store::lock_task(&mut tx, cmd.id).await?;
            if status != "OPEN" {
                return Err(not_open(cmd.id, &status));
            }
            // Lines judged before (a reopened task) keep their state: what waits for a
            // manager can still be decided. The rest is never adjusted.
            store::cancel_task(&mut tx, cmd.id, &cmd.actor, &cmd.note).await?;
            let task = store::task(&mut tx, cmd.id).await?;
            Ok((
                tx,
                pb::CancelCountTaskResponse {
                    task: Some(convert::task(&task)),
                },
            ))
        })
        .await
    }
}

/// After evaluating: the task completes unless a line must be counted again.
async fn finish(
    tx: &mut Tx,
    task_id: Uuid,
    actor: &str,
) -> Result<pb::CompleteCountTaskResponse, ServiceError> {
    if store::lines_in_status(tx, task_id, "COUNTED").await? > 0 {
        return Err(ServiceError::Aborted(
            "counts arrived while the task was being completed; complete it again".into(),
        ));
    }
    let task = store::task(tx, task_id).await?;
    if task.lines_recount_required == 0 && task.lines_uncounted == 0 {
        store::complete_task(tx, task_id, actor).await?;
    }
    let task = store::task(tx, task_id).await?;
    Ok(pb::CompleteCountTaskResponse {
        task: Some(convert::task(&task)),
        ..Default::default()
    })
}

/// A blind task shows no system numbers until it is completed.
pub(super) fn hides_system(task_status: &str, blind: bool) -> bool {
    blind && task_status == "OPEN"
}

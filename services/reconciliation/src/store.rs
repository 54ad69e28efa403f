//! PostgreSQL: count tasks, lines, submissions, unit costs, and what stock's feed says (on
//! hand per pair and daily movement). Every statement is here; the handlers decide.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use inventory_core::ServiceError;
use inventory_runtime::{Tx, db_error};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Task {
    pub task_id: Uuid,
    pub warehouse_id: Uuid,
    pub location: String,
    pub blind: bool,
    pub status: String,
    pub created_by: String,
    pub create_time: DateTime<Utc>,
    pub completed_by: Option<String>,
    pub complete_time: Option<DateTime<Utc>>,
    pub cancelled_by: Option<String>,
    pub cancel_reason: Option<String>,
    pub cancel_time: Option<DateTime<Utc>>,
    pub lines: i64,
    pub lines_uncounted: i64,
    pub lines_recount_required: i64,
    pub lines_pending_approval: i64,
    pub lines_applied: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Line {
    pub line_id: Uuid,
    pub task_id: Uuid,
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub location: String,
    pub status: String,
    pub expected_quantity: i64,
    pub counted_quantity: Option<i64>,
    pub first_count_time: Option<DateTime<Utc>>,
    pub count_time: Option<DateTime<Utc>>,
    pub counted_by: Option<String>,
    pub system_quantity: Option<i64>,
    pub on_hand_at_evaluation: Option<i64>,
    pub variance: Option<i64>,
    pub variance_value_micros: Option<i64>,
    pub variance_percent: Option<f64>,
    pub unit_cost_micros: i64,
    pub abc_class: Option<String>,
    pub exceeded: Vec<String>,
    pub decided_by: Option<String>,
    pub decide_time: Option<DateTime<Utc>>,
    pub decision_comment: Option<String>,
    pub stock_txn_id: Option<Uuid>,
    pub stock_sequence: Option<i64>,
    pub apply_time: Option<DateTime<Utc>>,
    pub blocked_reason: Option<String>,
}

const TASK_SELECT: &str = "
    SELECT t.task_id, t.warehouse_id, t.location, t.blind, t.status, t.created_by, t.create_time,
           t.completed_by, t.complete_time, t.cancelled_by, t.cancel_reason, t.cancel_time,
           c.lines, c.lines_uncounted, c.lines_recount_required, c.lines_pending_approval,
           c.lines_applied
      FROM count_tasks t
      CROSS JOIN LATERAL (
        SELECT count(*) AS lines,
               count(*) FILTER (WHERE l.status = 'UNCOUNTED') AS lines_uncounted,
               count(*) FILTER (WHERE l.status = 'RECOUNT_REQUIRED') AS lines_recount_required,
               count(*) FILTER (WHERE l.status = 'PENDING_APPROVAL') AS lines_pending_approval,
               count(*) FILTER (WHERE l.status = 'APPLIED') AS lines_applied
          FROM count_lines l WHERE l.task_id = t.task_id) c";

const LINE_COLUMNS: &str = "line_id, task_id, product_id, warehouse_id, location, status,
    expected_quantity, counted_quantity, first_count_time, count_time, counted_by,
    system_quantity, on_hand_at_evaluation, variance, variance_value_micros, variance_percent,
    unit_cost_micros, abc_class, exceeded, decided_by, decide_time, decision_comment,
    stock_txn_id, stock_sequence, apply_time, blocked_reason";

/// A line counted again forgets its last judgement: it is judged afresh.
const CLEAR_JUDGEMENT: &str = "system_quantity = NULL, on_hand_at_evaluation = NULL,
    variance = NULL, variance_value_micros = NULL, variance_percent = NULL, exceeded = '{}',
    decided_by = NULL, decide_time = NULL, decision_comment = NULL";

/// A new task and its lines: (line id, product, on hand now, unit cost).
pub struct NewTask<'a> {
    pub task_id: Uuid,
    pub warehouse_id: Uuid,
    pub location: &'a str,
    pub blind: bool,
    pub created_by: &'a str,
    pub lines: Vec<(Uuid, Uuid, i64, i64)>,
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_task(tx: &mut Tx, task: &NewTask<'_>) -> Result<(), ServiceError> {
    sqlx::query(
        "INSERT INTO count_tasks (task_id, warehouse_id, location, blind, status, created_by)
         VALUES ($1, $2, $3, $4, 'OPEN', $5)",
    )
    .bind(task.task_id)
    .bind(task.warehouse_id)
    .bind(task.location)
    .bind(task.blind)
    .bind(task.created_by)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let (ids, products, expected, costs) = unzip4(&task.lines);
    sqlx::query(
        "INSERT INTO count_lines (line_id, task_id, product_id, warehouse_id, location, status,
                                  expected_quantity, unit_cost_micros)
         SELECT l, $2, p, $3, $4, 'UNCOUNTED', e, c
           FROM unnest($1::uuid[], $5::uuid[], $6::bigint[], $7::bigint[]) AS x(l, p, e, c)",
    )
    .bind(&ids)
    .bind(task.task_id)
    .bind(task.warehouse_id)
    .bind(task.location)
    .bind(&products)
    .bind(&expected)
    .bind(&costs)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

fn unzip4<A: Copy, B: Copy, C: Copy, D: Copy>(
    rows: &[(A, B, C, D)],
) -> (Vec<A>, Vec<B>, Vec<C>, Vec<D>) {
    let mut out = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for &(a, b, c, d) in rows {
        out.0.push(a);
        out.1.push(b);
        out.2.push(c);
        out.3.push(d);
    }
    out
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn task(conn: &mut PgConnection, task_id: Uuid) -> Result<Task, ServiceError> {
    sqlx::query_as::<_, Task>(&format!("{TASK_SELECT} WHERE t.task_id = $1"))
        .bind(task_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ServiceError::not_found("count task", task_id))
}

/// The task's status, its row locked until the transaction ends.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_task(tx: &mut Tx, task_id: Uuid) -> Result<String, ServiceError> {
    sqlx::query_scalar("SELECT status FROM count_tasks WHERE task_id = $1 FOR UPDATE")
        .bind(task_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ServiceError::not_found("count task", task_id))
}

/// Newest first (task ids are UUIDv7), before `before`.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_tasks(
    conn: &mut PgConnection,
    warehouse_id: Option<Uuid>,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Task>, ServiceError> {
    sqlx::query_as::<_, Task>(&format!(
        "{TASK_SELECT}
          WHERE ($1::uuid IS NULL OR t.warehouse_id = $1) AND ($2::text IS NULL OR t.status = $2)
            AND ($3::uuid IS NULL OR t.task_id < $3)
          ORDER BY t.task_id DESC LIMIT $4"
    ))
    .bind(warehouse_id)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn complete_task(tx: &mut Tx, task_id: Uuid, actor: &str) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE count_tasks SET status = 'COMPLETED', completed_by = $2, complete_time = now()
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(actor)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn cancel_task(
    tx: &mut Tx,
    task_id: Uuid,
    actor: &str,
    reason: &str,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE count_tasks SET status = 'CANCELLED', cancelled_by = $2, cancel_reason = $3,
                cancel_time = now()
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(actor)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// A task whose count must be repeated for a line goes back to counting.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn reopen_task(tx: &mut Tx, task_id: Uuid) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE count_tasks SET status = 'OPEN', completed_by = NULL, complete_time = NULL
          WHERE task_id = $1 AND status = 'COMPLETED'",
    )
    .bind(task_id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Lines of a task in product order after `after`, of one status if asked.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_lines(
    conn: &mut PgConnection,
    task_id: Uuid,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Line>, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines
          WHERE task_id = $1 AND ($2::text IS NULL OR status = $2)
            AND ($3::uuid IS NULL OR product_id > $3)
          ORDER BY product_id LIMIT $4"
    ))
    .bind(task_id)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// The task's lines of `products` (those it has), locked, in product order.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_lines_of(
    tx: &mut Tx,
    task_id: Uuid,
    products: &[Uuid],
) -> Result<Vec<Line>, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines
          WHERE task_id = $1 AND product_id = ANY($2) ORDER BY product_id FOR UPDATE"
    ))
    .bind(task_id)
    .bind(products)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lines_of_task(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Vec<Line>, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines WHERE task_id = $1 ORDER BY product_id"
    ))
    .bind(task_id)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Whether `person` submitted any count of the line.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn counted_by(
    conn: &mut PgConnection,
    line_id: Uuid,
    person: &str,
) -> Result<bool, ServiceError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM count_submissions WHERE line_id = $1 AND counted_by = $2)",
    )
    .bind(line_id)
    .bind(person)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lines_in_status(
    conn: &mut PgConnection,
    task_id: Uuid,
    status: &str,
) -> Result<i64, ServiceError> {
    sqlx::query_scalar("SELECT count(*) FROM count_lines WHERE task_id = $1 AND status = $2")
        .bind(task_id)
        .bind(status)
        .fetch_one(conn)
        .await
        .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn line(conn: &mut PgConnection, line_id: Uuid) -> Result<Line, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines WHERE line_id = $1"
    ))
    .bind(line_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?
    .ok_or_else(|| ServiceError::not_found("adjustment", line_id))
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_line(tx: &mut Tx, line_id: Uuid) -> Result<Line, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines WHERE line_id = $1 FOR UPDATE"
    ))
    .bind(line_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?
    .ok_or_else(|| ServiceError::not_found("adjustment", line_id))
}

/// Lines with a variance (or asked to be recounted), newest line first.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_adjustments(
    conn: &mut PgConnection,
    status: Option<&str>,
    warehouse_id: Option<Uuid>,
    task_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Line>, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines
          WHERE variance <> 0
            AND ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR warehouse_id = $2)
            AND ($3::uuid IS NULL OR task_id = $3) AND ($4::uuid IS NULL OR line_id < $4)
          ORDER BY line_id DESC LIMIT $5"
    ))
    .bind(status)
    .bind(warehouse_id)
    .bind(task_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// One submission, and the line as it stands after it.
pub struct Submission {
    pub line_id: Uuid,
    pub quantity: i64,
    pub recount: bool,
    pub count_time: DateTime<Utc>,
}

/// Appends `submissions` (in order) and sets each touched line's sum and times, from the
/// submissions since its last recount.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn record_submissions(
    tx: &mut Tx,
    submissions: &[Submission],
    counted_by: &str,
    request_id: &str,
) -> Result<(), ServiceError> {
    let lines: Vec<Uuid> = submissions.iter().map(|s| s.line_id).collect();
    // Each touched line once: per line, not per entry, the statements below look up where
    // it stands (an entry-sized list in `= ANY` made one submission of 10,000 entries on
    // one line cost 10,000 x 10,000 comparisons).
    let touched: Vec<Uuid> = lines
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<Uuid>>()
        .into_iter()
        .collect();
    let ordinals: Vec<i32> = (0..submissions.len())
        .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    let quantities: Vec<i64> = submissions.iter().map(|s| s.quantity).collect();
    let recounts: Vec<bool> = submissions.iter().map(|s| s.recount).collect();
    let times: Vec<DateTime<Utc>> = submissions.iter().map(|s| s.count_time).collect();
    sqlx::query(
        "INSERT INTO count_submissions
                (line_id, submission, quantity, recount, count_time, counted_by, request_id)
         SELECT x.l, coalesce(m.last, 0) + row_number() OVER (PARTITION BY x.l ORDER BY x.o),
                x.q, x.r, x.t, $6, $7
           FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bool[], $5::timestamptz[])
                AS x(l, o, q, r, t)
           LEFT JOIN (SELECT t.line_id,
                             (SELECT max(s.submission) FROM count_submissions s
                               WHERE s.line_id = t.line_id) AS last
                        FROM unnest($8::uuid[]) AS t(line_id)) m ON m.line_id = x.l",
    )
    .bind(&lines)
    .bind(&ordinals)
    .bind(&quantities)
    .bind(&recounts)
    .bind(&times)
    .bind(counted_by)
    .bind(request_id)
    .bind(&touched)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    // The sum since the last recount (or since the first submission): the last recount is
    // found once per line (a partial index of recounts), then the submissions since it are
    // read once. Linear in the submissions since the last recount.
    sqlx::query(&format!(
        "UPDATE count_lines l
            SET status = 'COUNTED', counted_quantity = s.total, first_count_time = s.first,
                count_time = s.last, counted_by = $2, {CLEAR_JUDGEMENT}
           FROM (SELECT s.line_id, sum(s.quantity) AS total, min(s.count_time) AS first,
                        max(s.count_time) AS last
                   FROM (SELECT t.line_id,
                                (SELECT max(r.submission) FROM count_submissions r
                                  WHERE r.line_id = t.line_id AND r.recount) AS since
                           FROM unnest($1::uuid[]) AS t(line_id)) t
                   JOIN count_submissions s
                     ON s.line_id = t.line_id AND s.submission >= coalesce(t.since, 0)
                  GROUP BY s.line_id) s
          WHERE l.line_id = s.line_id"
    ))
    .bind(&touched)
    .bind(counted_by)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// What evaluating a line decided.
pub struct Evaluation {
    pub line_id: Uuid,
    /// The count it judged: a submission since then makes the evaluation stale.
    pub counted_quantity: i64,
    pub first_count_time: DateTime<Utc>,
    pub count_time: DateTime<Utc>,
    pub status: &'static str,
    pub system_quantity: Option<i64>,
    pub on_hand_at_evaluation: Option<i64>,
    pub variance: Option<i64>,
    pub variance_value_micros: Option<i64>,
    pub variance_percent: Option<f64>,
    pub unit_cost_micros: i64,
    pub abc_class: &'static str,
    /// Comma-separated reasons a person must decide.
    pub exceeded: String,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
}

/// Stores evaluations of lines still counted as judged; returns how many were stored (fewer
/// means a submission or decision raced the evaluation).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn store_evaluations(
    tx: &mut Tx,
    evaluations: &[Evaluation],
    from_statuses: &[&str],
) -> Result<u64, ServiceError> {
    let mut ids = Vec::new();
    let mut counted = Vec::new();
    let mut times = Vec::new();
    let mut firsts = Vec::new();
    let mut statuses = Vec::new();
    let mut systems = Vec::new();
    let mut on_hands = Vec::new();
    let mut variances = Vec::new();
    let mut values = Vec::new();
    let mut percents = Vec::new();
    let mut costs = Vec::new();
    let mut classes = Vec::new();
    let mut exceeded = Vec::new();
    let mut decided = Vec::new();
    let mut comments = Vec::new();
    for e in evaluations {
        ids.push(e.line_id);
        counted.push(e.counted_quantity);
        times.push(e.count_time);
        firsts.push(e.first_count_time);
        statuses.push(e.status);
        systems.push(e.system_quantity);
        on_hands.push(e.on_hand_at_evaluation);
        variances.push(e.variance);
        values.push(e.variance_value_micros);
        percents.push(e.variance_percent);
        costs.push(e.unit_cost_micros);
        classes.push(e.abc_class);
        exceeded.push(e.exceeded.as_str());
        decided.push(e.decided_by.as_deref());
        comments.push(e.decision_comment.as_deref());
    }
    let statuses_from: Vec<&str> = from_statuses.to_vec();
    let done = sqlx::query(
        "UPDATE count_lines l
            SET status = x.status, system_quantity = x.sys, on_hand_at_evaluation = x.now,
                variance = x.var, variance_value_micros = x.val, variance_percent = x.pct,
                unit_cost_micros = x.cost, abc_class = x.class,
                exceeded = CASE WHEN x.exc = '' THEN '{}'::text[]
                                ELSE string_to_array(x.exc, ',') END,
                decided_by = x.by, decision_comment = x.comment,
                decide_time = CASE WHEN x.by IS NULL THEN NULL
                                   WHEN x.by = l.decided_by THEN l.decide_time
                                   ELSE now() END
           FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::bigint[],
                       $6::bigint[], $7::bigint[], $8::bigint[], $9::float8[], $10::bigint[],
                       $11::text[], $12::text[], $13::text[], $14::text[],
                       $16::timestamptz[])
                AS x(id, counted, t, status, sys, now, var, val, pct, cost, class, exc, by, comment,
                     first)
          WHERE l.line_id = x.id AND l.counted_quantity = x.counted AND l.count_time = x.t
            AND l.first_count_time = x.first AND l.status = ANY($15)",
    )
    .bind(&ids)
    .bind(&counted)
    .bind(&times)
    .bind(&statuses)
    .bind(&systems)
    .bind(&on_hands)
    .bind(&variances)
    .bind(&values)
    .bind(&percents)
    .bind(&costs)
    .bind(&classes)
    .bind(&exceeded)
    .bind(&decided)
    .bind(&comments)
    .bind(&statuses_from)
    .bind(&firsts)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}

/// A manager's decision on a line waiting for one.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn decide_line(
    tx: &mut Tx,
    line_id: Uuid,
    status: &str,
    manager: &str,
    comment: &str,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE count_lines SET status = $2, decided_by = $3, decision_comment = $4,
                decide_time = now()
          WHERE line_id = $1",
    )
    .bind(line_id)
    .bind(status)
    .bind(manager)
    .bind(comment)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Approved lines not yet in stock: of one task, or the oldest of any.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn approved_lines(
    conn: &mut PgConnection,
    task_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Line>, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines
          WHERE status = 'APPROVED' AND ($1::uuid IS NULL OR task_id = $1)
            AND ($2::uuid IS NULL OR line_id > $2)
          ORDER BY line_id LIMIT $3"
    ))
    .bind(task_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// An approved line, locked for applying; None when it is no longer approved, or (with
/// `skip_locked`) when another applier holds it. Without it, waits for that applier.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn claim_approved(
    tx: &mut Tx,
    line_id: Uuid,
    skip_locked: bool,
) -> Result<Option<Line>, ServiceError> {
    Ok(claim_approved_many(tx, &[line_id], skip_locked)
        .await?
        .pop())
}

/// [`claim_approved`] for many lines, locked in id order (so two claimers never deadlock).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn claim_approved_many(
    tx: &mut Tx,
    line_ids: &[Uuid],
    skip_locked: bool,
) -> Result<Vec<Line>, ServiceError> {
    let skip = if skip_locked { "SKIP LOCKED" } else { "" };
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines
          WHERE line_id = ANY($1) AND status = 'APPROVED' ORDER BY line_id FOR UPDATE {skip}"
    ))
    .bind(line_ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)
}

/// The ADJUSTs are in stock: records which transaction applied each line (line, stock
/// transaction, its sequence).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_applied(
    conn: &mut PgConnection,
    applied: &[(Uuid, Uuid, i64)],
) -> Result<(), ServiceError> {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for &(line, txn, sequence) in applied {
        columns.0.push(line);
        columns.1.push(txn);
        columns.2.push(sequence);
    }
    sqlx::query(
        "UPDATE count_lines l SET status = 'APPLIED', stock_txn_id = x.txn,
                stock_sequence = x.seq, apply_time = now()
           FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS x(id, txn, seq)
          WHERE l.line_id = x.id AND l.status = 'APPROVED'",
    )
    .bind(&columns.0)
    .bind(&columns.1)
    .bind(&columns.2)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_blocked(
    conn: &mut PgConnection,
    line_id: Uuid,
    reason: &str,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE count_lines SET status = 'BLOCKED', blocked_reason = $2
          WHERE line_id = $1 AND status = 'APPROVED'",
    )
    .bind(line_id)
    .bind(reason)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Stock changed the pair since the line was judged: the line asks for a recount and its
/// task reopens.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn require_recount(tx: &mut Tx, line: &Line) -> Result<(), ServiceError> {
    sqlx::query(&format!(
        "UPDATE count_lines SET status = 'RECOUNT_REQUIRED', {CLEAR_JUDGEMENT}
          WHERE line_id = $1 AND status = 'APPROVED'"
    ))
    .bind(line.line_id)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    reopen_task(tx, line.task_id).await
}

/// Unit costs known here, by product.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn costs(
    conn: &mut PgConnection,
    products: &[Uuid],
    fresh_since: DateTime<Utc>,
) -> Result<HashMap<Uuid, i64>, ServiceError> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT product_id, unit_cost_micros FROM product_costs
          WHERE product_id = ANY($1) AND refresh_time >= $2",
    )
    .bind(products)
    .bind(fresh_since)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().collect())
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn save_costs(
    conn: &mut PgConnection,
    costs: &[(Uuid, i64)],
) -> Result<(), ServiceError> {
    let (ids, values): (Vec<Uuid>, Vec<i64>) = costs.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO product_costs (product_id, unit_cost_micros)
         SELECT * FROM unnest($1::uuid[], $2::bigint[])
         ON CONFLICT (product_id) DO UPDATE
            SET unit_cost_micros = excluded.unit_cost_micros, refresh_time = now()",
    )
    .bind(&ids)
    .bind(&values)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// From one batch of stock's feed: the latest on hand per pair, and per pair and day the
/// units shipped and the net adjustment.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn apply_feed(
    tx: &mut Tx,
    positions: &[(Uuid, Uuid, i64, i64)],
    daily: &[(Uuid, Uuid, NaiveDate, i64, i64)],
) -> Result<(), ServiceError> {
    let (products, warehouses, on_hand, sequence) = unzip4(positions);
    sqlx::query(
        "INSERT INTO stock_positions (product_id, warehouse_id, on_hand, sequence)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[])
         ON CONFLICT (product_id, warehouse_id) DO UPDATE
            SET on_hand = excluded.on_hand, sequence = excluded.sequence
          WHERE stock_positions.sequence < excluded.sequence",
    )
    .bind(&products)
    .bind(&warehouses)
    .bind(&on_hand)
    .bind(&sequence)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &(p, w, d, shipped, adjusted) in daily {
        columns.0.push(p);
        columns.1.push(w);
        columns.2.push(d);
        columns.3.push(shipped);
        columns.4.push(adjusted);
    }
    sqlx::query(
        "INSERT INTO movement_daily (product_id, warehouse_id, day, shipped, adjusted)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::bigint[], $5::bigint[])
         ON CONFLICT (product_id, warehouse_id, day) DO UPDATE
            SET shipped = movement_daily.shipped + excluded.shipped,
                adjusted = movement_daily.adjusted + excluded.adjusted",
    )
    .bind(&columns.0)
    .bind(&columns.1)
    .bind(&columns.2)
    .bind(&columns.3)
    .bind(&columns.4)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Units shipped per product since `since` (what ABC ranks by).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn shipped_by_product(
    conn: &mut PgConnection,
    since: NaiveDate,
) -> Result<Vec<(Uuid, i64)>, ServiceError> {
    sqlx::query_as(
        "SELECT product_id, sum(shipped)::bigint FROM movement_daily
          WHERE day >= $1 GROUP BY product_id HAVING sum(shipped) > 0",
    )
    .bind(since)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Per (warehouse, product), units shipped and net adjustment over [from, to] (days).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn movement_between(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
    warehouse_id: Option<Uuid>,
) -> Result<Vec<(Uuid, Uuid, i64, i64)>, ServiceError> {
    sqlx::query_as(
        "SELECT warehouse_id, product_id, sum(shipped)::bigint, sum(adjusted)::bigint
           FROM movement_daily
          WHERE day BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR warehouse_id = $3)
          GROUP BY warehouse_id, product_id",
    )
    .bind(from)
    .bind(to)
    .bind(warehouse_id)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Evaluated lines counted in [from, to): what the counting report is made of.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn evaluated_lines(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    warehouse_id: Option<Uuid>,
) -> Result<Vec<Line>, ServiceError> {
    sqlx::query_as::<_, Line>(&format!(
        "SELECT {LINE_COLUMNS} FROM count_lines
          WHERE system_quantity IS NOT NULL AND count_time >= $1 AND count_time < $2
            AND ($3::uuid IS NULL OR warehouse_id = $3)"
    ))
    .bind(from)
    .bind(to)
    .bind(warehouse_id)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// One stocked pair as the schedule sees it: its last evaluated count (day and location) and
/// the share of that location's lines with a variance since `since`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stocked {
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub last_counted: Option<DateTime<Utc>>,
    pub location: Option<String>,
    pub location_variance: Option<f64>,
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn stocked_pairs(
    conn: &mut PgConnection,
    warehouse_id: Option<Uuid>,
    since: DateTime<Utc>,
) -> Result<Vec<Stocked>, ServiceError> {
    sqlx::query_as::<_, Stocked>(
        "WITH evaluated AS (
             SELECT warehouse_id, location, product_id, count_time, variance
               FROM count_lines
              WHERE system_quantity IS NOT NULL AND ($1::uuid IS NULL OR warehouse_id = $1)),
         by_location AS (
             SELECT warehouse_id, location,
                    avg(CASE WHEN variance <> 0 THEN 1.0 ELSE 0.0 END)::float8 AS share
               FROM evaluated WHERE count_time >= $2 GROUP BY warehouse_id, location),
         last_count AS (
             SELECT DISTINCT ON (product_id, warehouse_id) product_id, warehouse_id, location,
                    count_time
               FROM evaluated ORDER BY product_id, warehouse_id, count_time DESC)
         SELECT p.product_id, p.warehouse_id, c.count_time AS last_counted, c.location,
                b.share AS location_variance
           FROM stock_positions p
           LEFT JOIN last_count c USING (product_id, warehouse_id)
           LEFT JOIN by_location b ON b.warehouse_id = p.warehouse_id
                                  AND b.location = c.location
          WHERE p.on_hand > 0 AND ($1::uuid IS NULL OR p.warehouse_id = $1)",
    )
    .bind(warehouse_id)
    .bind(since)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

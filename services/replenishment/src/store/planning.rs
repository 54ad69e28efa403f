//! What the reorder scan decides from (stock positions and daily demand, derived from stock's
//! feed; reorder policies) and the scan itself.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use inventory_core::ServiceError;
use inventory_proto::stock::v1 as stock;
use inventory_runtime::{Tx, db_error};
use sqlx::PgConnection;
use uuid::Uuid;

/// Applies a batch of stock's log: each pair's available as of its last transaction here, and
/// SHIP quantities added to their day. Two statements whatever the batch size.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn apply_feed(
    tx: &mut Tx,
    events: &[stock::InventoryTransaction],
) -> Result<(), ServiceError> {
    let mut positions: BTreeMap<(Uuid, Uuid), (i64, i64)> = BTreeMap::new();
    let mut shipped: BTreeMap<(Uuid, Uuid, NaiveDate), i64> = BTreeMap::new();
    for event in events {
        let (Ok(product), Ok(warehouse)) = (
            Uuid::parse_str(&event.product_id),
            Uuid::parse_str(&event.warehouse_id),
        ) else {
            return Err(ServiceError::Internal(format!(
                "transaction {} names no valid pair",
                event.sequence
            )));
        };
        // The feed is not in sequence order, but a row's movements draw their sequences
        // under its lock, in commit order: the highest sequence is its latest state.
        let position = (event.on_hand_after - event.reserved_after, event.sequence);
        let latest = positions.entry((product, warehouse)).or_insert(position);
        if position.1 > latest.1 {
            *latest = position;
        }
        if event.txn_type() == stock::TransactionType::Ship {
            let day = event
                .create_time
                .as_ref()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
                .unwrap_or_else(Utc::now)
                .date_naive();
            *shipped.entry((product, warehouse, day)).or_default() += event.quantity;
        }
    }
    if !positions.is_empty() {
        let (keys, values): (Vec<_>, Vec<_>) = positions.into_iter().unzip();
        sqlx::query(
            "INSERT INTO stock_positions (product_id, warehouse_id, quantity_available,
                                          last_sequence, reorder_point)
             SELECT t.*, p.reorder_point
               FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::int8[]) AS t(pr, wh, a, s)
               LEFT JOIN reorder_policies p ON p.product_id = t.pr AND p.warehouse_id = t.wh
             ON CONFLICT (product_id, warehouse_id) DO UPDATE
                SET quantity_available = EXCLUDED.quantity_available,
                    last_sequence = EXCLUDED.last_sequence
              WHERE stock_positions.last_sequence < EXCLUDED.last_sequence",
        )
        .bind(keys.iter().map(|k: &(Uuid, Uuid)| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(values.iter().map(|v: &(i64, i64)| v.0).collect::<Vec<_>>())
        .bind(values.iter().map(|v| v.1).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    if !shipped.is_empty() {
        let (keys, quantities): (Vec<_>, Vec<i64>) = shipped.into_iter().unzip();
        sqlx::query(
            "INSERT INTO demand_daily (product_id, warehouse_id, day, quantity)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::int8[])
             ON CONFLICT (product_id, warehouse_id, day) DO UPDATE
                SET quantity = demand_daily.quantity + EXCLUDED.quantity",
        )
        .bind(
            keys.iter()
                .map(|k: &(Uuid, Uuid, NaiveDate)| k.0)
                .collect::<Vec<_>>(),
        )
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .bind(quantities)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Available per the feed, None before the feed saw the pair.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn position(
    conn: &mut PgConnection,
    product_id: Uuid,
    warehouse_id: Uuid,
) -> Result<Option<i64>, ServiceError> {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT quantity_available FROM stock_positions WHERE product_id = $1 AND warehouse_id = $2",
    )
    .bind(product_id)
    .bind(warehouse_id)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
    .map_err(db_error)
}

/// Daily demand from `since` to `until` (inclusive), one element per day, 0 on days without
/// shipments.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn daily_demand(
    conn: &mut PgConnection,
    product_id: Uuid,
    warehouse_id: Uuid,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<Vec<i64>, ServiceError> {
    let rows: Vec<(NaiveDate, i64)> = sqlx::query_as(
        "SELECT day, quantity FROM demand_daily
          WHERE product_id = $1 AND warehouse_id = $2 AND day BETWEEN $3 AND $4",
    )
    .bind(product_id)
    .bind(warehouse_id)
    .bind(since)
    .bind(until)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    let days = usize::try_from((until - since).num_days() + 1).unwrap_or(0);
    let mut daily = vec![0; days];
    for (day, quantity) in rows {
        if let Ok(i) = usize::try_from((day - since).num_days())
            && let Some(slot) = daily.get_mut(i)
        {
            *slot += quantity;
        }
    }
    Ok(daily)
}

/// The first day with demand recorded for the pair.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn first_demand_day(
    conn: &mut PgConnection,
    product_id: Uuid,
    warehouse_id: Uuid,
) -> Result<Option<NaiveDate>, ServiceError> {
    sqlx::query_scalar(
        "SELECT min(day) FROM demand_daily WHERE product_id = $1 AND warehouse_id = $2",
    )
    .bind(product_id)
    .bind(warehouse_id)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

/// Lead times the pair's suppliers have shown: days from sending to the receipt that
/// completed the PO, for its last 12 complete POs.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn observed_lead_times(
    conn: &mut PgConnection,
    product_id: Uuid,
    warehouse_id: Uuid,
) -> Result<Vec<u32>, ServiceError> {
    let days: Vec<i32> = sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM (r.last - po.send_time)) / 86400)::int4
           FROM purchase_orders po
           JOIN LATERAL (SELECT max(create_time) AS last FROM po_receipts
                          WHERE po_id = po.po_id) r ON true
          WHERE po.product_id = $1 AND po.warehouse_id = $2 AND po.status = 'COMPLETE'
          ORDER BY po.po_number DESC LIMIT 12",
    )
    .bind(product_id)
    .bind(warehouse_id)
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    Ok(days
        .into_iter()
        .filter_map(|d| u32::try_from(d).ok())
        .collect())
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Policy {
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub source: String,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub service_level: f64,
    pub method: String,
    pub average_daily_demand: f64,
    pub demand_std_dev: f64,
    pub history_days: i32,
    pub lead_time_days: f64,
    pub lead_time_std_dev: f64,
    pub safety_stock: i64,
    pub eoq: f64,
    pub textbook_reorder_point: i64,
    pub computed_time: Option<DateTime<Utc>>,
    pub updated_by: String,
    pub update_time: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn policy(
    conn: &mut PgConnection,
    product_id: Uuid,
    warehouse_id: Uuid,
) -> Result<Option<Policy>, ServiceError> {
    sqlx::query_as("SELECT * FROM reorder_policies WHERE product_id = $1 AND warehouse_id = $2")
        .bind(product_id)
        .bind(warehouse_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)
}

/// When a stored policy gives way to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Always (a person set it).
    Always,
    /// Only when there is none (a default for a new pair).
    IfAbsent,
    /// Only a computed one (the daily recomputation never overwrites fixed numbers).
    IfComputed,
}

/// Stores a policy (as `replace` allows) and copies its reorder point to the pair's stock
/// position (creating it, availability unknown, when the feed has not seen the pair), in one
/// statement. Returns the policy as it stands.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn upsert_policy(
    conn: &mut PgConnection,
    p: &Policy,
    replace: Replace,
) -> Result<Policy, ServiceError> {
    let conflict = match replace {
        Replace::IfAbsent => "DO NOTHING",
        Replace::Always | Replace::IfComputed => {
            "DO UPDATE
            SET source = EXCLUDED.source, reorder_point = EXCLUDED.reorder_point,
                reorder_quantity = EXCLUDED.reorder_quantity,
                service_level = EXCLUDED.service_level, method = EXCLUDED.method,
                average_daily_demand = EXCLUDED.average_daily_demand,
                demand_std_dev = EXCLUDED.demand_std_dev, history_days = EXCLUDED.history_days,
                lead_time_days = EXCLUDED.lead_time_days,
                lead_time_std_dev = EXCLUDED.lead_time_std_dev,
                safety_stock = EXCLUDED.safety_stock, eoq = EXCLUDED.eoq,
                textbook_reorder_point = EXCLUDED.textbook_reorder_point,
                computed_time = EXCLUDED.computed_time, updated_by = EXCLUDED.updated_by,
                update_time = EXCLUDED.update_time"
        }
    };
    let only_computed = if replace == Replace::IfComputed {
        "WHERE reorder_policies.source = 'COMPUTED'"
    } else {
        ""
    };
    sqlx::query(&format!(
        "WITH stored AS (
             INSERT INTO reorder_policies (product_id, warehouse_id, source, reorder_point,
                 reorder_quantity, service_level, method, average_daily_demand, demand_std_dev,
                 history_days, lead_time_days, lead_time_std_dev, safety_stock, eoq,
                 textbook_reorder_point, computed_time, updated_by, update_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18)
             ON CONFLICT (product_id, warehouse_id) {conflict} {only_computed}
             RETURNING reorder_point)
         INSERT INTO stock_positions (product_id, warehouse_id, quantity_available,
                                      last_sequence, reorder_point)
         SELECT $1, $2, NULL, 0, reorder_point FROM stored
         ON CONFLICT (product_id, warehouse_id)
            DO UPDATE SET reorder_point = EXCLUDED.reorder_point"
    ))
    .bind(p.product_id)
    .bind(p.warehouse_id)
    .bind(&p.source)
    .bind(p.reorder_point)
    .bind(p.reorder_quantity)
    .bind(p.service_level)
    .bind(&p.method)
    .bind(p.average_daily_demand)
    .bind(p.demand_std_dev)
    .bind(p.history_days)
    .bind(p.lead_time_days)
    .bind(p.lead_time_std_dev)
    .bind(p.safety_stock)
    .bind(p.eoq)
    .bind(p.textbook_reorder_point)
    .bind(p.computed_time)
    .bind(&p.updated_by)
    .bind(p.update_time)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    policy(conn, p.product_id, p.warehouse_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("policy missing right after storing it".into()))
}

/// Pairs the feed has seen that have no policy yet, in key order after `after`.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn pairs_without_policy(
    conn: &mut PgConnection,
    after: Option<(Uuid, Uuid)>,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, ServiceError> {
    sqlx::query_as(
        "SELECT product_id, warehouse_id FROM stock_positions
          WHERE reorder_point IS NULL
            AND ($1::uuid IS NULL OR (product_id, warehouse_id) > ($1, $2))
          ORDER BY 1, 2 LIMIT $3",
    )
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Computed policies, after `after`, in key order: the daily recomputation walks them.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn computed_policies(
    conn: &mut PgConnection,
    after: Option<(Uuid, Uuid)>,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, f64)>, ServiceError> {
    sqlx::query_as(
        "SELECT product_id, warehouse_id, service_level FROM reorder_policies
          WHERE source = 'COMPUTED' AND ($1::uuid IS NULL OR (product_id, warehouse_id) > ($1, $2))
          ORDER BY product_id, warehouse_id LIMIT $3",
    )
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// One (product, warehouse) below its point, and what the scan did or would do about it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Decision {
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub quantity_available: i64,
    pub reorder_point: i64,
    /// None: no supplier offers the product.
    pub supplier_id: Option<Uuid>,
    pub unit_cost_micros: Option<i64>,
    pub quantity: Option<i64>,
    /// Set when drafted.
    pub po_id: Option<Uuid>,
    pub status: Option<String>,
}

/// Pairs below their point with no open PO, with the best offer for each (lowest unit cost,
/// then shortest lead time) and the order quantity rounded to its pack and minimum.
const PLANNED: &str = "
    due AS (
        SELECT p.product_id, p.warehouse_id, s.quantity_available, p.reorder_point,
               p.reorder_quantity
          FROM stock_positions s JOIN reorder_policies p USING (product_id, warehouse_id)
         WHERE s.quantity_available - s.reorder_point < 0
           AND s.quantity_available < p.reorder_point
           AND NOT EXISTS (
               SELECT 1 FROM purchase_orders o
                WHERE o.product_id = p.product_id AND o.warehouse_id = p.warehouse_id
                  AND o.status IN ('DRAFT', 'PENDING_APPROVAL', 'APPROVED', 'SENT', 'PARTIAL'))),
    best AS (
        SELECT DISTINCT ON (o.product_id) o.product_id, o.supplier_id, o.unit_cost_micros,
               o.minimum_order_quantity, o.pack_multiple, o.supplier_part_number,
               CASE WHEN o.lead_time_days = 0 THEN s.default_lead_time_days
                    ELSE o.lead_time_days END AS lead_time_days
          FROM supplier_offers o JOIN suppliers s USING (supplier_id)
         WHERE o.product_id IN (SELECT product_id FROM due)
         ORDER BY o.product_id, o.unit_cost_micros,
                  CASE WHEN o.lead_time_days = 0 THEN s.default_lead_time_days
                       ELSE o.lead_time_days END,
                  o.supplier_id),
    planned AS (
        SELECT d.product_id, d.warehouse_id, d.quantity_available, d.reorder_point,
               b.supplier_id, b.unit_cost_micros, b.lead_time_days, b.supplier_part_number,
               (greatest(d.reorder_quantity, b.minimum_order_quantity) + b.pack_multiple - 1)
                   / b.pack_multiple * b.pack_multiple AS quantity
          FROM due d LEFT JOIN best b USING (product_id))";

/// What a scan would draft, changing nothing.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn plan_scan(conn: &mut PgConnection) -> Result<Vec<Decision>, ServiceError> {
    sqlx::query_as(&format!(
        "WITH {PLANNED}
         SELECT product_id, warehouse_id, quantity_available, reorder_point, supplier_id,
                unit_cost_micros, quantity, NULL::uuid AS po_id, NULL::text AS status
           FROM planned ORDER BY product_id, warehouse_id"
    ))
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Drafts every planned PO in one statement: approved (with its control number, queued for
/// sending) when its total is under `auto_approve_below_micros`, else pending approval. A pair
/// that got an open PO meanwhile (another replica's scan, a person) is skipped by the
/// one-open-PO index, so concurrent scans draft each PO once.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn run_scan(
    tx: &mut Tx,
    auto_approve_below_micros: i64,
    at: DateTime<Utc>,
) -> Result<Vec<Decision>, ServiceError> {
    sqlx::query_as(&format!(
        "WITH {PLANNED},
         priced AS (
             SELECT *, quantity::numeric * unit_cost_micros < $1 AS approved
               FROM planned
              WHERE supplier_id IS NOT NULL AND quantity <= 1000000000000),
         inserted AS (
             INSERT INTO purchase_orders (po_id, supplier_id, product_id, warehouse_id,
                 ordered_qty, status, unit_cost_micros, lead_time_days, expected_delivery,
                 supplier_part_number, created_by, create_time, decided_by, decide_time,
                 decision_note, control_number, update_time)
             SELECT gen_random_uuid(), supplier_id, product_id, warehouse_id, quantity,
                    CASE WHEN approved THEN 'APPROVED' ELSE 'PENDING_APPROVAL' END,
                    unit_cost_micros, lead_time_days, $2 + make_interval(days => lead_time_days),
                    supplier_part_number, 'reorder-scan', $2,
                    CASE WHEN approved THEN 'auto-approval' ELSE '' END,
                    CASE WHEN approved THEN $2::timestamptz END,
                    CASE WHEN approved THEN 'total under the auto-approval threshold' ELSE '' END,
                    CASE WHEN approved THEN nextval('x12_control_numbers') END, $2
               FROM priced
             ON CONFLICT DO NOTHING
             RETURNING po_id, product_id, warehouse_id, status),
         -- Runs to completion though nothing reads it (PostgreSQL runs every
         -- data-modifying WITH exactly once).
         queued AS (
             INSERT INTO po_outbox (po_id)
             SELECT po_id FROM inserted WHERE status = 'APPROVED'
             RETURNING 1)
         SELECT p.product_id, p.warehouse_id, p.quantity_available, p.reorder_point,
                p.supplier_id, p.unit_cost_micros, p.quantity, i.po_id, i.status
           FROM planned p LEFT JOIN inserted i USING (product_id, warehouse_id)
          ORDER BY p.product_id, p.warehouse_id"
    ))
    .bind(auto_approve_below_micros)
    .bind(at)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)
}

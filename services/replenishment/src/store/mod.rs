//! PostgreSQL: suppliers, offers, purchase orders, receipts and the outbox here; stock
//! positions, demand, policies and the scan in [`planning`]. Every statement is in this
//! module; the handlers decide, it reads and writes.

pub mod planning;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use inventory_runtime::{Tx, db_error, violated_constraint};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::purchase_order::Status;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Supplier {
    pub supplier_id: Uuid,
    pub name: String,
    pub channel: String,
    pub edi_qualifier: String,
    pub edi_id: String,
    pub api_endpoint: String,
    pub default_lead_time_days: i32,
    pub create_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Offer {
    pub supplier_id: Uuid,
    pub product_id: Uuid,
    pub unit_cost_micros: i64,
    pub minimum_order_quantity: i64,
    pub pack_multiple: i64,
    pub lead_time_days: i32,
    pub supplier_part_number: String,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PurchaseOrder {
    pub po_id: Uuid,
    pub po_number: i64,
    pub supplier_id: Uuid,
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub ordered_qty: i64,
    pub received_qty: i64,
    pub status: String,
    pub unit_cost_micros: i64,
    pub lead_time_days: i32,
    pub expected_delivery: DateTime<Utc>,
    pub supplier_part_number: String,
    pub created_by: String,
    pub create_time: DateTime<Utc>,
    pub decided_by: String,
    pub decide_time: Option<DateTime<Utc>>,
    pub decision_note: String,
    pub cancelled_by: String,
    pub cancel_time: Option<DateTime<Utc>>,
    pub cancel_reason: String,
    pub control_number: Option<i64>,
    pub send_time: Option<DateTime<Utc>>,
    pub update_time: DateTime<Utc>,
}

impl PurchaseOrder {
    pub fn status(&self) -> Result<Status, ServiceError> {
        Status::parse(&self.status)
            .ok_or_else(|| ServiceError::Internal(format!("unknown PO status {}", self.status)))
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Receipt {
    pub receipt_id: String,
    pub po_id: Uuid,
    pub quantity: i64,
    pub lot: String,
    pub stock_transaction_id: Uuid,
    pub actor: String,
    pub create_time: DateTime<Utc>,
}

const PO_COLUMNS: &str = "po_id, po_number, supplier_id, product_id, warehouse_id, ordered_qty,
    received_qty, status, unit_cost_micros, lead_time_days, expected_delivery,
    supplier_part_number, created_by, create_time, decided_by, decide_time,
    decision_note, cancelled_by, cancel_time, cancel_reason, control_number, send_time,
    update_time";

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_supplier(tx: &mut Tx, s: &Supplier) -> Result<Supplier, ServiceError> {
    sqlx::query_as(
        "INSERT INTO suppliers (supplier_id, name, channel, edi_qualifier, edi_id,
                                default_lead_time_days, create_time, api_endpoint)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING *",
    )
    .bind(s.supplier_id)
    .bind(&s.name)
    .bind(&s.channel)
    .bind(&s.edi_qualifier)
    .bind(&s.edi_id)
    .bind(s.default_lead_time_days)
    .bind(s.create_time)
    .bind(&s.api_endpoint)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn supplier(
    conn: &mut PgConnection,
    supplier_id: Uuid,
) -> Result<Option<Supplier>, ServiceError> {
    sqlx::query_as("SELECT * FROM suppliers WHERE supplier_id = $1")
        .bind(supplier_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_suppliers(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Supplier>, ServiceError> {
    sqlx::query_as(
        "SELECT * FROM suppliers WHERE $1::uuid IS NULL OR supplier_id > $1
          ORDER BY supplier_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn upsert_offer(tx: &mut Tx, o: &Offer) -> Result<Offer, ServiceError> {
    sqlx::query_as(
        "INSERT INTO supplier_offers (supplier_id, product_id, unit_cost_micros,
                                      minimum_order_quantity, pack_multiple, lead_time_days,
                                      supplier_part_number, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (supplier_id, product_id) DO UPDATE
            SET unit_cost_micros = EXCLUDED.unit_cost_micros,
                minimum_order_quantity = EXCLUDED.minimum_order_quantity,
                pack_multiple = EXCLUDED.pack_multiple,
                lead_time_days = EXCLUDED.lead_time_days,
                supplier_part_number = EXCLUDED.supplier_part_number,
                update_time = EXCLUDED.update_time
         RETURNING *",
    )
    .bind(o.supplier_id)
    .bind(o.product_id)
    .bind(o.unit_cost_micros)
    .bind(o.minimum_order_quantity)
    .bind(o.pack_multiple)
    .bind(o.lead_time_days)
    .bind(&o.supplier_part_number)
    .bind(o.update_time)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("supplier_offers_supplier_id_fkey") => {
            ServiceError::not_found("supplier", o.supplier_id)
        }
        _ => db_error(e),
    })
}

/// Offers by product and/or supplier, ordered by (product, supplier), after that position.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_offers(
    conn: &mut PgConnection,
    product_id: Option<Uuid>,
    supplier_id: Option<Uuid>,
    after: Option<(Uuid, Uuid)>,
    limit: i64,
) -> Result<Vec<Offer>, ServiceError> {
    sqlx::query_as(
        "SELECT * FROM supplier_offers
          WHERE ($1::uuid IS NULL OR product_id = $1) AND ($2::uuid IS NULL OR supplier_id = $2)
            AND ($3::uuid IS NULL OR (product_id, supplier_id) > ($3, $4))
          ORDER BY product_id, supplier_id LIMIT $5",
    )
    .bind(product_id)
    .bind(supplier_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// The offer to buy `product_id` from: the named supplier's, or the best one (lowest unit cost,
/// then shortest lead time, then supplier id so the choice is stable). Effective lead time:
/// the offer's, or the supplier's default when the offer says 0.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn offer_for(
    conn: &mut PgConnection,
    product_id: Uuid,
    supplier_id: Option<Uuid>,
) -> Result<Option<(Offer, Supplier)>, ServiceError> {
    let offer: Option<Offer> = sqlx::query_as(
        "SELECT o.* FROM supplier_offers o JOIN suppliers s USING (supplier_id)
          WHERE o.product_id = $1 AND ($2::uuid IS NULL OR o.supplier_id = $2)
          ORDER BY o.unit_cost_micros,
                   CASE WHEN o.lead_time_days = 0 THEN s.default_lead_time_days
                        ELSE o.lead_time_days END,
                   o.supplier_id
          LIMIT 1",
    )
    .bind(product_id)
    .bind(supplier_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(offer) = offer else {
        return Ok(None);
    };
    let supplier = supplier(conn, offer.supplier_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("offer without its supplier".into()))?;
    Ok(Some((offer, supplier)))
}

/// A new purchase order; its number is drawn here. ALREADY_EXISTS when the product already
/// has an open PO for the warehouse.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_po(tx: &mut Tx, po: &PurchaseOrder) -> Result<PurchaseOrder, ServiceError> {
    let inserted = sqlx::query_as(&format!(
        "INSERT INTO purchase_orders (po_id, supplier_id, product_id, warehouse_id, ordered_qty,
             status, unit_cost_micros, lead_time_days, expected_delivery,
             supplier_part_number, created_by, create_time, decided_by, decide_time,
             decision_note, control_number, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $12)
         RETURNING {PO_COLUMNS}"
    ))
    .bind(po.po_id)
    .bind(po.supplier_id)
    .bind(po.product_id)
    .bind(po.warehouse_id)
    .bind(po.ordered_qty)
    .bind(&po.status)
    .bind(po.unit_cost_micros)
    .bind(po.lead_time_days)
    .bind(po.expected_delivery)
    .bind(&po.supplier_part_number)
    .bind(&po.created_by)
    .bind(po.create_time)
    .bind(&po.decided_by)
    .bind(po.decide_time)
    .bind(&po.decision_note)
    .bind(po.control_number)
    .fetch_one(&mut **tx)
    .await;
    match inserted {
        Ok(row) => Ok(row),
        Err(e) if violated_constraint(&e) == Some("purchase_orders_one_open") => {
            Err(ServiceError::AlreadyExists {
                resource: "open purchase order",
                id: format!(
                    "for product {} in warehouse {}",
                    po.product_id, po.warehouse_id
                ),
            })
        }
        Err(e) => Err(db_error(e)),
    }
}

/// The next X12 control number: never reused, even by a transaction that rolls back.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn next_control_number(tx: &mut Tx) -> Result<i64, ServiceError> {
    sqlx::query_scalar("SELECT nextval('x12_control_numbers')")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn po(conn: &mut PgConnection, po_id: Uuid) -> Result<PurchaseOrder, ServiceError> {
    sqlx::query_as(&format!(
        "SELECT {PO_COLUMNS} FROM purchase_orders WHERE po_id = $1"
    ))
    .bind(po_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?
    .ok_or_else(|| ServiceError::not_found("purchase order", po_id))
}

/// The PO, locked until the transaction ends.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_po(tx: &mut Tx, po_id: Uuid) -> Result<PurchaseOrder, ServiceError> {
    sqlx::query_as(&format!(
        "SELECT {PO_COLUMNS} FROM purchase_orders WHERE po_id = $1 FOR UPDATE"
    ))
    .bind(po_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?
    .ok_or_else(|| ServiceError::not_found("purchase order", po_id))
}

/// Records a decision (approve, reject, cancel): the new status, who, when, why, and the
/// control number drawn on approval.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn decide(
    tx: &mut Tx,
    po_id: Uuid,
    status: Status,
    by: &str,
    note: &str,
    control_number: Option<i64>,
    at: DateTime<Utc>,
) -> Result<PurchaseOrder, ServiceError> {
    // A cancellation is recorded beside the approval, never over it.
    let sql = if status == Status::Cancelled {
        format!(
            "UPDATE purchase_orders
                SET status = $2, cancelled_by = $3, cancel_reason = $4, cancel_time = $6,
                    control_number = coalesce($5, control_number), update_time = $6
              WHERE po_id = $1
             RETURNING {PO_COLUMNS}"
        )
    } else {
        format!(
            "UPDATE purchase_orders
                SET status = $2, decided_by = $3, decision_note = $4,
                    control_number = coalesce($5, control_number), decide_time = $6,
                    update_time = $6
              WHERE po_id = $1
             RETURNING {PO_COLUMNS}"
        )
    };
    sqlx::query_as(&sql)
        .bind(po_id)
        .bind(status.as_str())
        .bind(by)
        .bind(note)
        .bind(control_number)
        .bind(at)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}

pub struct PoFilter {
    pub status: Option<Status>,
    pub supplier_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub warehouse_id: Option<Uuid>,
}

/// Newest first (by PO number), below `before`.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_pos(
    conn: &mut PgConnection,
    filter: &PoFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<PurchaseOrder>, ServiceError> {
    sqlx::query_as(&format!(
        "SELECT {PO_COLUMNS} FROM purchase_orders
          WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR supplier_id = $2)
            AND ($3::uuid IS NULL OR product_id = $3) AND ($4::uuid IS NULL OR warehouse_id = $4)
            AND ($5::int8 IS NULL OR po_number < $5)
          ORDER BY po_number DESC LIMIT $6"
    ))
    .bind(filter.status.map(Status::as_str))
    .bind(filter.supplier_id)
    .bind(filter.product_id)
    .bind(filter.warehouse_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Records a receipt and what it did to the PO.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn record_receipt(
    tx: &mut Tx,
    receipt: &Receipt,
    status: Status,
    received_qty: i64,
) -> Result<PurchaseOrder, ServiceError> {
    sqlx::query(
        "INSERT INTO po_receipts (receipt_id, po_id, quantity, lot, stock_transaction_id, actor,
                                  create_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&receipt.receipt_id)
    .bind(receipt.po_id)
    .bind(receipt.quantity)
    .bind(&receipt.lot)
    .bind(receipt.stock_transaction_id)
    .bind(&receipt.actor)
    .bind(receipt.create_time)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query_as(&format!(
        "UPDATE purchase_orders SET status = $2, received_qty = $3, update_time = $4
          WHERE po_id = $1
         RETURNING {PO_COLUMNS}"
    ))
    .bind(receipt.po_id)
    .bind(status.as_str())
    .bind(received_qty)
    .bind(receipt.create_time)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn receipt(
    conn: &mut PgConnection,
    receipt_id: &str,
) -> Result<Option<Receipt>, ServiceError> {
    sqlx::query_as("SELECT * FROM po_receipts WHERE receipt_id = $1")
        .bind(receipt_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn receipts(conn: &mut PgConnection, po_id: Uuid) -> Result<Vec<Receipt>, ServiceError> {
    sqlx::query_as("SELECT * FROM po_receipts WHERE po_id = $1 ORDER BY create_time, receipt_id")
        .bind(po_id)
        .fetch_all(conn)
        .await
        .map_err(db_error)
}

/// Queues an approved PO for sending, in the approving transaction.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn enqueue(tx: &mut Tx, po_id: Uuid) -> Result<(), ServiceError> {
    sqlx::query("INSERT INTO po_outbox (po_id) VALUES ($1) ON CONFLICT (po_id) DO NOTHING")
        .bind(po_id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deliveries of a queued PO tried so far (0 when not queued).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn delivery_attempts(tx: &mut Tx, po_id: Uuid) -> Result<i32, ServiceError> {
    let attempts: Option<i32> =
        sqlx::query_scalar("SELECT attempts FROM po_outbox WHERE po_id = $1")
            .bind(po_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
    Ok(attempts.unwrap_or(0))
}

/// Takes a PO off the outbox (sent, or cancelled before it was).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn dequeue(tx: &mut Tx, po_id: Uuid) -> Result<(), ServiceError> {
    sqlx::query("DELETE FROM po_outbox WHERE po_id = $1")
        .bind(po_id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The next PO due for sending, locked (the PO row, as every other writer of a PO locks it
/// first) and skipped by other replicas while this one sends it; with its attempts so far.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn next_due(tx: &mut Tx) -> Result<Option<(PurchaseOrder, i32)>, ServiceError> {
    let due: Option<(Uuid, i32)> = sqlx::query_as(
        "SELECT po.po_id, o.attempts
           FROM po_outbox o JOIN purchase_orders po USING (po_id)
          WHERE o.next_attempt_time <= now()
          ORDER BY o.next_attempt_time LIMIT 1
          FOR UPDATE OF po SKIP LOCKED",
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?;
    match due {
        Some((po_id, attempts)) => Ok(Some((po(tx, po_id).await?, attempts))),
        None => Ok(None),
    }
}

/// The supplier has it: SENT, with the send time and the delivery expected from it.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_sent(
    tx: &mut Tx,
    po_id: Uuid,
    at: DateTime<Utc>,
    expected_delivery: DateTime<Utc>,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE purchase_orders
            SET status = 'SENT', send_time = $2, expected_delivery = $3, update_time = $2
          WHERE po_id = $1",
    )
    .bind(po_id)
    .bind(at)
    .bind(expected_delivery)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    dequeue(tx, po_id).await
}

/// A failed attempt: try again at `retry_at`.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn retry_later(
    tx: &mut Tx,
    po_id: Uuid,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE po_outbox SET attempts = attempts + 1, last_error = left($2, 512),
                              next_attempt_time = $3
          WHERE po_id = $1",
    )
    .bind(po_id)
    .bind(error)
    .bind(retry_at)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

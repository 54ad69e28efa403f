//! Reads: inventory rows, availability, the log, the ledger check and the summary.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::catalog::ensure_catalog;
use super::movements::{INVENTORY_COLUMNS, InventoryRow, TXN_COLUMNS, TxnRecord};
use super::{Store, db_error};
use crate::domain::movement::{InventoryKey, TxnType};

#[derive(Debug, Clone, Default)]
pub struct ListInventoryFilter {
    pub product_id: Option<Uuid>,
    pub warehouse_id: Option<Uuid>,
    pub below_reorder_point: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListTransactionsFilter {
    pub product_id: Option<Uuid>,
    pub warehouse_id: Option<Uuid>,
    pub txn_type: Option<TxnType>,
    pub reference_id: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// An inventory row whose stored quantities disagree with its log or its reservations.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct LedgerDriftRow {
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub recorded_on_hand: i64,
    pub recorded_reserved: i64,
    pub ledger_on_hand: i64,
    pub ledger_reserved: i64,
    pub reservations_held: i64,
    /// No inventory row exists for the pair (the recorded quantities read as 0).
    pub inventory_row_missing: bool,
    /// Log rows whose after-values disagree with the log's running sums.
    pub out_of_step: i64,
}

#[derive(Debug, Clone)]
pub struct LedgerReport {
    pub rows_checked: i64,
    pub transactions_replayed: i64,
    pub drifts: Vec<LedgerDriftRow>,
}

#[derive(Debug, Clone, FromRow)]
pub struct SummaryRow {
    pub warehouse_id: Uuid,
    pub quantity_on_hand: i64,
    pub quantity_reserved: i64,
    pub quantity_available: i64,
    pub value_micros: i64,
}

impl Store {
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn get_inventory(
        &self,
        key: InventoryKey,
    ) -> Result<Option<InventoryRow>, ServiceError> {
        let sql = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE product_id = $1 AND warehouse_id = $2"
        );
        sqlx::query_as::<_, InventoryRow>(&(sql))
            .bind(key.product_id)
            .bind(key.warehouse_id)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)
    }

    /// The rows that exist among `keys`, in one round trip.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn get_inventory_many(
        &self,
        keys: &[InventoryKey],
    ) -> Result<Vec<InventoryRow>, ServiceError> {
        read_inventory_many(self.pool(), keys).await
    }

    /// [`Self::get_inventory_many`] on a connection the caller holds.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn get_inventory_many_on(
        &self,
        conn: &mut PgConnection,
        keys: &[InventoryKey],
    ) -> Result<Vec<InventoryRow>, ServiceError> {
        read_inventory_many(conn, keys).await
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn list_inventory(
        &self,
        filter: &ListInventoryFilter,
        after: Option<InventoryKey>,
        limit: i64,
    ) -> Result<Vec<InventoryRow>, ServiceError> {
        // Unaliased, so the shared column list needs no prefix; only the reorder point comes
        // from products.
        let sql = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory
              WHERE ($1::uuid IS NULL OR product_id = $1)
                AND ($2::uuid IS NULL OR warehouse_id = $2)
                AND ($3::uuid IS NULL OR (product_id, warehouse_id) > ($3, $4::uuid))
                AND (NOT $5 OR quantity_available <
                     (SELECT p.reorder_point FROM products p
                       WHERE p.product_id = inventory.product_id))
              ORDER BY product_id, warehouse_id LIMIT $6"
        );
        sqlx::query_as::<_, InventoryRow>(&(sql))
            .bind(filter.product_id)
            .bind(filter.warehouse_id)
            .bind(after.map(|k| k.product_id))
            .bind(after.map(|k| k.warehouse_id))
            .bind(filter.below_reorder_point)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db_error)
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn list_transactions(
        &self,
        filter: &ListTransactionsFilter,
        after_sequence: i64,
        limit: i64,
    ) -> Result<Vec<TxnRecord>, ServiceError> {
        let sql = format!(
            "SELECT {TXN_COLUMNS} FROM inventory_transactions
              WHERE sequence > $1
                AND ($2::uuid IS NULL OR product_id = $2)
                AND ($3::uuid IS NULL OR warehouse_id = $3)
                AND ($4::text IS NULL OR txn_type = $4)
                AND ($5::text IS NULL OR reference_id = $5)
                AND ($6::timestamptz IS NULL OR created_at >= $6)
                AND ($7::timestamptz IS NULL OR created_at < $7)
              ORDER BY sequence LIMIT $8"
        );
        sqlx::query_as::<_, TxnRecord>(&(sql))
            .bind(after_sequence)
            .bind(filter.product_id)
            .bind(filter.warehouse_id)
            .bind(filter.txn_type.map(TxnType::as_str))
            .bind(filter.reference_id.as_deref())
            .bind(filter.start_time)
            .bind(filter.end_time)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db_error)
    }

    /// Replays the whole log against every inventory row, in one consistent snapshot: the
    /// sums of the deltas must equal the stored quantities, the after-values must be the
    /// running sums, and the active reservations must hold exactly what is reserved. A log
    /// row or active reservation naming no inventory row is drift too (nothing but the code
    /// keeps them from existing, the rows carrying no foreign key).
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn check_ledger(&self) -> Result<LedgerReport, ServiceError> {
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let (rows_checked, transactions_replayed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM inventory), (SELECT count(*) FROM inventory_transactions)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let drifts = sqlx::query_as::<_, LedgerDriftRow>(
            // One pass over the log: the running sums check every row's after-values, and
            // the same rows' sums are the ledger's totals (a second pass for the totals made
            // this three times slower on a log of two million rows).
            "WITH replay AS (
                 SELECT product_id, warehouse_id, on_hand_after, reserved_after,
                        on_hand_delta, reserved_delta,
                        sum(on_hand_delta) OVER w AS running_on_hand,
                        sum(reserved_delta) OVER w AS running_reserved
                   FROM inventory_transactions
                 WINDOW w AS (PARTITION BY product_id, warehouse_id ORDER BY sequence)
             ), ledger AS (
                 SELECT product_id, warehouse_id,
                        sum(on_hand_delta)::bigint AS on_hand,
                        sum(reserved_delta)::bigint AS reserved,
                        count(*) FILTER (WHERE on_hand_after <> running_on_hand
                                            OR reserved_after <> running_reserved) AS broken
                   FROM replay GROUP BY product_id, warehouse_id
             ), held AS (
                 SELECT product_id, warehouse_id, sum(quantity_held)::bigint AS held
                   FROM reservations WHERE status = 'ACTIVE' GROUP BY product_id, warehouse_id
             )
             SELECT product_id, warehouse_id,
                    COALESCE(i.quantity_on_hand, 0) AS recorded_on_hand,
                    COALESCE(i.quantity_reserved, 0) AS recorded_reserved,
                    COALESCE(l.on_hand, 0) AS ledger_on_hand,
                    COALESCE(l.reserved, 0) AS ledger_reserved,
                    COALESCE(h.held, 0) AS reservations_held,
                    i.product_id IS NULL AS inventory_row_missing,
                    COALESCE(l.broken, 0) AS out_of_step
               FROM inventory i
               FULL JOIN ledger l USING (product_id, warehouse_id)
               FULL JOIN held h USING (product_id, warehouse_id)
              WHERE i.product_id IS NULL
                 OR i.quantity_on_hand <> COALESCE(l.on_hand, 0)
                 OR i.quantity_reserved <> COALESCE(l.reserved, 0)
                 OR i.quantity_reserved <> COALESCE(h.held, 0)
                 OR COALESCE(l.broken, 0) > 0
              ORDER BY product_id, warehouse_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        inventory_runtime::commit(tx).await?;
        Ok(LedgerReport {
            rows_checked,
            transactions_replayed,
            drifts,
        })
    }

    /// Units and value per warehouse. Plain reads take no row locks, so this never slows a
    /// reservation; the figures are as of the statement's snapshot. Sums are taken in numeric
    /// and saturate at the largest bigint, so no stored data can make this read fail.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn inventory_summary(&self) -> Result<Vec<SummaryRow>, ServiceError> {
        sqlx::query_as::<_, SummaryRow>(
            "SELECT i.warehouse_id,
                    least(sum(i.quantity_on_hand::numeric), 9223372036854775807)::bigint
                        AS quantity_on_hand,
                    least(sum(i.quantity_reserved::numeric), 9223372036854775807)::bigint
                        AS quantity_reserved,
                    least(sum(i.quantity_available::numeric), 9223372036854775807)::bigint
                        AS quantity_available,
                    least(sum(i.quantity_on_hand::numeric * p.unit_cost_micros),
                          9223372036854775807)::bigint AS value_micros
               FROM inventory i JOIN products p USING (product_id)
              GROUP BY i.warehouse_id ORDER BY i.warehouse_id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db_error)
    }
}

impl Store {
    /// NOT_FOUND naming the first product or warehouse among `keys` that does not exist.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn ensure_catalog_exists(&self, keys: &[InventoryKey]) -> Result<(), ServiceError> {
        let mut conn = self.pool().acquire().await.map_err(db_error)?;
        ensure_catalog(&mut conn, keys).await
    }
}

/// The rows that exist among `keys`, in one round trip on `db`.
async fn read_inventory_many<'e>(
    db: impl PgExecutor<'e>,
    keys: &[InventoryKey],
) -> Result<Vec<InventoryRow>, ServiceError> {
    let wanted: BTreeSet<InventoryKey> = keys.iter().copied().collect();
    let products: BTreeSet<Uuid> = wanted.iter().map(|k| k.product_id).collect();
    let warehouses: BTreeSet<Uuid> = wanted.iter().map(|k| k.warehouse_id).collect();
    if products.len() * warehouses.len() <= 2 * wanted.len() {
        // Mostly every warehouse of every product asked (allocation's reads): one index
        // range per product holds them, where a probe per pair walks the index once for
        // each (~7x the time for 50 products in 8 warehouses). The few extra pairs read
        // are dropped here.
        let sql = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory
              WHERE product_id = ANY($1) AND warehouse_id = ANY($2)"
        );
        let rows = sqlx::query_as::<_, InventoryRow>(&sql)
            .bind(products.into_iter().collect::<Vec<_>>())
            .bind(warehouses.into_iter().collect::<Vec<_>>())
            .fetch_all(db)
            .await
            .map_err(db_error)?;
        return Ok(rows
            .into_iter()
            .filter(|row| wanted.contains(&row.key()))
            .collect());
    }
    let (products, warehouses): (Vec<Uuid>, Vec<Uuid>) = wanted
        .iter()
        .map(|k| (k.product_id, k.warehouse_id))
        .unzip();
    let distinct: BTreeSet<Uuid> = products.iter().copied().collect();
    // The products alone as well: an index range per product (and on Citus only their
    // shards), where the pairs alone get a hash join over the whole table once there
    // are a few hundred of them.
    let sql = format!(
        "SELECT {INVENTORY_COLUMNS} FROM inventory
          WHERE product_id = ANY($3)
            AND (product_id, warehouse_id) IN
                (SELECT * FROM unnest($1::uuid[], $2::uuid[]))"
    );
    sqlx::query_as::<_, InventoryRow>(&(sql))
        .bind(products)
        .bind(warehouses)
        .bind(distinct.into_iter().collect::<Vec<_>>())
        .fetch_all(db)
        .await
        .map_err(db_error)
}

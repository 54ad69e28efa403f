//! Applying movements: one conditional statement per inventory row, in lock order, then the
//! log rows in one insert. Either every row accepts its change or nothing is written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use sqlx::FromRow;
use uuid::Uuid;

use super::catalog::ensure_catalog;
use super::{Store, Tx, db_error};
use crate::domain::movement::{
    InventoryKey, Level, Movement, RowChange, TxnType, levels_after_each, rejection, row_changes,
};

pub(crate) const INVENTORY_COLUMNS: &str = "inventory_id, product_id, warehouse_id, \
     quantity_on_hand, quantity_reserved, quantity_available, last_updated";
pub(crate) const TXN_COLUMNS: &str = "sequence, txn_id, product_id, warehouse_id, txn_type, \
     quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reference_id, \
     reason, actor, request_id, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct InventoryRow {
    pub inventory_id: Uuid,
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub quantity_on_hand: i64,
    pub quantity_reserved: i64,
    pub quantity_available: i64,
    pub last_updated: DateTime<Utc>,
}

impl InventoryRow {
    pub fn key(&self) -> InventoryKey {
        InventoryKey {
            product_id: self.product_id,
            warehouse_id: self.warehouse_id,
        }
    }

    pub fn level(&self) -> Level {
        Level {
            on_hand: self.quantity_on_hand,
            reserved: self.quantity_reserved,
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct TxnRecord {
    pub sequence: i64,
    pub txn_id: Uuid,
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub txn_type: String,
    pub quantity: i64,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reference_id: String,
    pub reason: String,
    pub actor: String,
    pub request_id: String,
    pub created_at: DateTime<Utc>,
}

/// What a set of movements produced: each touched row as it now stands, and the log rows in
/// the order of the movements.
#[derive(Debug, Clone)]
pub struct Applied {
    pub rows: BTreeMap<InventoryKey, InventoryRow>,
    pub transactions: Vec<TxnRecord>,
}

impl Applied {
    pub fn row(&self, key: &InventoryKey) -> Result<&InventoryRow, ServiceError> {
        self.rows
            .get(key)
            .ok_or_else(|| ServiceError::Internal(format!("row {key:?} not in result")))
    }
}

impl Store {
    /// Applies `movements` inside `tx`. `expected_on_hand` (adjustments only) makes the change
    /// conditional on the row's current on hand. On any refusal nothing has been written
    /// that the caller's rollback will not undo, and the error says why.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn apply_movements(
        &self,
        tx: &mut Tx,
        movements: &[Movement],
        expected_on_hand: Option<i64>,
        request_id: &str,
        actor: &str,
    ) -> Result<Applied, ServiceError> {
        let mut rows = BTreeMap::new();
        for change in row_changes(movements) {
            // A pure addition may create the row; the catalog must know both halves of it.
            let may_create = change.reserved_delta == 0
                && change.on_hand_delta >= 0
                && matches!(expected_on_hand, None | Some(0));
            let row = if may_create {
                ensure_catalog(tx, &[change.key]).await?;
                upsert_row(tx, &change, expected_on_hand).await?
            } else {
                update_row(tx, &change, expected_on_hand).await?
            };
            match row {
                Some(row) => {
                    rows.insert(change.key, row);
                }
                None => {
                    let txn_type = movements
                        .iter()
                        .find(|m| m.key == change.key)
                        .map_or(TxnType::Adjust, |m| m.txn_type);
                    return Err(self
                        .explain_refusal(tx, &change, txn_type, expected_on_hand)
                        .await);
                }
            }
        }
        let finals: BTreeMap<InventoryKey, Level> =
            rows.iter().map(|(k, r)| (*k, r.level())).collect();
        let afters = levels_after_each(movements, &finals)?;
        let origins = vec![(request_id, actor); movements.len()];
        let transactions = insert_log(tx, movements, &afters, &origins).await?;
        Ok(Applied { rows, transactions })
    }

    async fn explain_refusal(
        &self,
        tx: &mut Tx,
        change: &RowChange,
        txn_type: TxnType,
        expected_on_hand: Option<i64>,
    ) -> ServiceError {
        if let Err(not_found) = ensure_catalog(tx, &[change.key]).await {
            return not_found;
        }
        let current = sqlx::query_as::<_, (i64, i64)>(
            "SELECT quantity_on_hand, quantity_reserved FROM inventory
             WHERE product_id = $1 AND warehouse_id = $2",
        )
        .bind(change.key.product_id)
        .bind(change.key.warehouse_id)
        .fetch_optional(&mut **tx)
        .await;
        match current {
            Ok(level) => rejection(
                change,
                txn_type,
                level.map(|(on_hand, reserved)| Level { on_hand, reserved }),
                expected_on_hand,
            ),
            Err(error) => db_error(error),
        }
    }
}

async fn update_row(
    tx: &mut Tx,
    change: &RowChange,
    expected_on_hand: Option<i64>,
) -> Result<Option<InventoryRow>, ServiceError> {
    let sql = format!(
        "UPDATE inventory
            SET quantity_on_hand = quantity_on_hand + $3,
                quantity_reserved = quantity_reserved + $4,
                last_updated = now()
          WHERE product_id = $1 AND warehouse_id = $2
            AND quantity_on_hand + $3 >= 0
            AND quantity_reserved + $4 >= 0
            AND quantity_reserved + $4 <= quantity_on_hand + $3
            AND ($5::bigint IS NULL OR quantity_on_hand = $5)
        RETURNING {INVENTORY_COLUMNS}"
    );
    sqlx::query_as::<_, InventoryRow>(&(sql))
        .bind(change.key.product_id)
        .bind(change.key.warehouse_id)
        .bind(change.on_hand_delta)
        .bind(change.reserved_delta)
        .bind(expected_on_hand)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)
}

async fn upsert_row(
    tx: &mut Tx,
    change: &RowChange,
    expected_on_hand: Option<i64>,
) -> Result<Option<InventoryRow>, ServiceError> {
    let sql = format!(
        "INSERT INTO inventory AS i (product_id, warehouse_id, quantity_on_hand, quantity_reserved,
                                     last_updated)
         VALUES ($1, $2, $3, 0, now())
         ON CONFLICT (product_id, warehouse_id) DO UPDATE
            SET quantity_on_hand = i.quantity_on_hand + EXCLUDED.quantity_on_hand,
                -- From the inserted row, not now() here: Citus runs this part on the shard
                -- and allows only immutable functions in it.
                last_updated = EXCLUDED.last_updated
          WHERE ($4::bigint IS NULL OR i.quantity_on_hand = $4)
        RETURNING {INVENTORY_COLUMNS}"
    );
    sqlx::query_as::<_, InventoryRow>(&(sql))
        .bind(change.key.product_id)
        .bind(change.key.warehouse_id)
        .bind(change.on_hand_delta)
        .bind(expected_on_hand)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)
}

/// Inserts log rows from the thirteen parallel arrays of [`LogRows`], bound as `$1`..`$13`.
/// Callers end it with `ORDER BY t.ord`, so sequence numbers are drawn in movement order, and
/// may join it first to a condition.
pub(crate) const LOG_INSERT: &str = "INSERT INTO inventory_transactions (txn_id, product_id,
         warehouse_id, txn_type, quantity, on_hand_delta, reserved_delta, on_hand_after,
         reserved_after, reference_id, reason, actor, request_id)
     SELECT t.txn_id, t.product_id, t.warehouse_id, t.txn_type, t.quantity, t.on_hand_delta,
            t.reserved_delta, t.on_hand_after, t.reserved_after, t.reference_id, t.reason,
            t.actor, t.request_id
       FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::int8[],
                   $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::text[], $12::text[],
                   $13::text[])
            WITH ORDINALITY AS t(txn_id, product_id, warehouse_id, txn_type, quantity,
                 on_hand_delta, reserved_delta, on_hand_after, reserved_after, reference_id,
                 reason, actor, request_id, ord)";

/// Log rows as parallel arrays, one element per movement.
#[derive(Default)]
pub(crate) struct LogRows {
    txn_ids: Vec<Uuid>,
    products: Vec<Uuid>,
    warehouses: Vec<Uuid>,
    types: Vec<&'static str>,
    quantities: Vec<i64>,
    on_hand_deltas: Vec<i64>,
    reserved_deltas: Vec<i64>,
    on_hand_afters: Vec<i64>,
    reserved_afters: Vec<i64>,
    references: Vec<String>,
    reasons: Vec<String>,
    actors: Vec<String>,
    request_ids: Vec<String>,
}

impl LogRows {
    /// `afters` and `origins` (request id, actor) are per movement.
    pub(crate) fn new(movements: &[Movement], afters: &[Level], origins: &[(&str, &str)]) -> Self {
        let mut rows = Self::default();
        for ((m, after), (request_id, actor)) in movements.iter().zip(afters).zip(origins) {
            rows.txn_ids.push(Uuid::now_v7());
            rows.products.push(m.key.product_id);
            rows.warehouses.push(m.key.warehouse_id);
            rows.types.push(m.txn_type.as_str());
            rows.quantities.push(m.quantity());
            rows.on_hand_deltas.push(m.on_hand_delta);
            rows.reserved_deltas.push(m.reserved_delta);
            rows.on_hand_afters.push(after.on_hand);
            rows.reserved_afters.push(after.reserved);
            rows.references.push(m.reference_id.clone());
            rows.reasons.push(m.reason.clone());
            rows.actors.push((*actor).to_owned());
            rows.request_ids.push((*request_id).to_owned());
        }
        rows
    }

    /// Binds the arrays as the first thirteen parameters of `query`.
    pub(crate) fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(self.txn_ids)
            .bind(self.products)
            .bind(self.warehouses)
            .bind(self.types)
            .bind(self.quantities)
            .bind(self.on_hand_deltas)
            .bind(self.reserved_deltas)
            .bind(self.on_hand_afters)
            .bind(self.reserved_afters)
            .bind(self.references)
            .bind(self.reasons)
            .bind(self.actors)
            .bind(self.request_ids)
    }
}

/// Appends one log row per movement and returns them in sequence order.
pub(crate) async fn insert_log(
    tx: &mut Tx,
    movements: &[Movement],
    afters: &[Level],
    origins: &[(&str, &str)],
) -> Result<Vec<TxnRecord>, ServiceError> {
    let sql = format!("{LOG_INSERT} ORDER BY t.ord RETURNING {TXN_COLUMNS}");
    let query = sqlx::query_as::<_, TxnRecord>(&(sql));
    let mut records = LogRows::new(movements, afters, origins)
        .bind(query)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    records.sort_by_key(|r| r.sequence);
    Ok(records)
}

//! Coalesced reservations: many single-line reservation requests applied in one database
//! transaction. Rows are locked once, in lock order; requests are granted in arrival order
//! while stock lasts; every request still gets its own log row, reservation, idempotency
//! record and answer, and a refused request leaves nothing behind.

use std::collections::{BTreeMap, HashSet};

use inventory_core::ServiceError;
use uuid::Uuid;

use super::movements::{INVENTORY_COLUMNS, InventoryRow, insert_log};
use super::{Store, db_error};
use crate::domain::movement::{
    Grant, InventoryKey, Level, Movement, grant_in_arrival_order, insufficient_stock,
};
use crate::domain::reservation::Reservation;

/// One request of a batch.
pub struct BatchRequest {
    pub request_id: String,
    pub method: &'static str,
    pub fingerprint: Vec<u8>,
    pub actor: String,
    /// The reservation to make, complete but for what the batch decides.
    pub reservation: Reservation,
}

/// What the batch did for one request.
pub enum BatchOutcome {
    /// Reserved: the reservation and its row right after this grant.
    Granted(Reservation, InventoryRow),
    /// Refused with this error; nothing of it was written.
    Refused(ServiceError),
    /// Not decided here (a retry, an unknown row, a duplicate order line in the batch):
    /// the caller must run it on the one-request path, which has an answer for every case.
    Single,
}

impl Store {
    /// Applies a batch in one transaction. `encode` turns a granted request's result into
    /// the response stored for retries. On any database error nothing is written and the
    /// caller should run every request on the one-request path.
    pub async fn reserve_batch(
        &self,
        requests: &[BatchRequest],
        encode: impl Fn(&Reservation, &InventoryRow) -> Vec<u8>,
    ) -> Result<Vec<BatchOutcome>, ServiceError> {
        let mut outcomes: Vec<BatchOutcome> =
            requests.iter().map(|_| BatchOutcome::Single).collect();
        let mut tx = self.begin().await?;

        // Claim every request id; one that already exists is a retry (or a concurrent twin).
        let claimed: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (request_id, method, request_fingerprint)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
             ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        )
        .bind(
            requests
                .iter()
                .map(|r| r.request_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(requests.iter().map(|r| r.method).collect::<Vec<_>>())
        .bind(
            requests
                .iter()
                .map(|r| r.fingerprint.as_slice())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();

        // Lock the rows, in lock order.
        let keys: Vec<InventoryKey> = requests
            .iter()
            .map(|r| r.reservation.key)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let sql = format!(
            "SELECT {INVENTORY_COLUMNS} FROM inventory
              WHERE (product_id, warehouse_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
              ORDER BY product_id, warehouse_id
              FOR UPDATE"
        );
        let rows: BTreeMap<InventoryKey, InventoryRow> =
            sqlx::query_as::<_, InventoryRow>(sqlx::AssertSqlSafe(sql))
                .bind(keys.iter().map(|k| k.product_id).collect::<Vec<_>>())
                .bind(keys.iter().map(|k| k.warehouse_id).collect::<Vec<_>>())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
                .into_iter()
                .map(|r| (r.key(), r))
                .collect();

        // Order lines that already hold a reservation in that warehouse.
        let existing: HashSet<(String, String, Uuid)> =
            sqlx::query_as::<_, (String, String, Uuid)>(
                "SELECT order_id, order_line_id, warehouse_id FROM reservations
              WHERE (order_id, order_line_id, warehouse_id) IN
                    (SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]))",
            )
            .bind(
                requests
                    .iter()
                    .map(|r| r.reservation.order_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                requests
                    .iter()
                    .map(|r| r.reservation.order_line_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                requests
                    .iter()
                    .map(|r| r.reservation.key.warehouse_id)
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .collect();

        // The claim of a request id belongs to its first request in the batch; a repeat of it
        // waits for the one-request path, which replays the answer.
        let mut first_with_id = HashSet::new();
        let owns_claim: Vec<bool> = requests
            .iter()
            .map(|r| claimed.contains(&r.request_id) && first_with_id.insert(r.request_id.as_str()))
            .collect();

        // Decide, in arrival order, among the requests this batch can answer.
        let mut seen_lines = HashSet::new();
        let mut candidates = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let r = &request.reservation;
            let line = (
                r.order_id.clone(),
                r.order_line_id.clone(),
                r.key.warehouse_id,
            );
            if !owns_claim[i] || !rows.contains_key(&r.key) {
                continue;
            }
            if existing.contains(&line) {
                outcomes[i] = BatchOutcome::Refused(ServiceError::AlreadyExists {
                    resource: "reservation",
                    id: format!(
                        "for order {} line {} in warehouse {}",
                        r.order_id, r.order_line_id, r.key.warehouse_id
                    ),
                });
                continue;
            }
            if seen_lines.insert(line) {
                candidates.push(i);
            }
        }
        let levels: BTreeMap<InventoryKey, Level> =
            rows.iter().map(|(k, r)| (*k, r.level())).collect();
        let asks: Vec<(InventoryKey, i64)> = candidates
            .iter()
            .map(|&i| {
                (
                    requests[i].reservation.key,
                    requests[i].reservation.quantity_requested,
                )
            })
            .collect();
        let grants = grant_in_arrival_order(&levels, &asks);

        let mut granted = Vec::new();
        let mut afters = Vec::new();
        for (&i, grant) in candidates.iter().zip(&grants) {
            let r = &requests[i].reservation;
            match *grant {
                Grant::Granted(after) => {
                    granted.push(i);
                    afters.push(after);
                }
                Grant::Refused { available } => {
                    outcomes[i] = BatchOutcome::Refused(insufficient_stock(
                        r.key,
                        r.quantity_requested,
                        available,
                    ));
                }
            }
        }

        let mut updated: BTreeMap<InventoryKey, InventoryRow> = BTreeMap::new();
        if !granted.is_empty() {
            let mut totals: BTreeMap<InventoryKey, i64> = BTreeMap::new();
            for &i in &granted {
                let r = &requests[i].reservation;
                *totals.entry(r.key).or_default() += r.quantity_requested;
            }
            let sql = format!(
                "UPDATE inventory i
                    SET quantity_reserved = i.quantity_reserved + t.d, last_updated = now()
                   FROM unnest($1::uuid[], $2::uuid[], $3::int8[]) AS t(p, w, d)
                  WHERE i.product_id = t.p AND i.warehouse_id = t.w
                    AND i.quantity_reserved + t.d <= i.quantity_on_hand
                RETURNING {}",
                INVENTORY_COLUMNS
                    .split(", ")
                    .map(|c| format!("i.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            updated = sqlx::query_as::<_, InventoryRow>(sqlx::AssertSqlSafe(sql))
                .bind(totals.keys().map(|k| k.product_id).collect::<Vec<_>>())
                .bind(totals.keys().map(|k| k.warehouse_id).collect::<Vec<_>>())
                .bind(totals.values().copied().collect::<Vec<_>>())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
                .into_iter()
                .map(|r| (r.key(), r))
                .collect();
            if updated.len() != totals.len() {
                return Err(ServiceError::Internal(
                    "a locked row refused a batch it was checked against".into(),
                ));
            }

            let movements: Vec<Movement> = granted
                .iter()
                .map(|&i| {
                    let r = &requests[i].reservation;
                    Movement::reserve(r.key, r.quantity_requested)
                        .with_reference(r.order_id.clone())
                })
                .collect();
            let origins: Vec<(&str, &str)> = granted
                .iter()
                .map(|&i| (requests[i].request_id.as_str(), requests[i].actor.as_str()))
                .collect();
            insert_log(&mut tx, &movements, &afters, &origins).await?;
            let reservations: Vec<Reservation> = granted
                .iter()
                .map(|&i| requests[i].reservation.clone())
                .collect();
            self.insert_reservations(&mut tx, &reservations).await?;
        }

        // Store the answers of granted requests; forget the claims of all others.
        let mut answered_ids = Vec::with_capacity(granted.len());
        let mut answers = Vec::with_capacity(granted.len());
        for (&i, after) in granted.iter().zip(&afters) {
            let request = &requests[i];
            let mut row = updated
                .get(&request.reservation.key)
                .cloned()
                .ok_or_else(|| ServiceError::Internal("granted row missing".into()))?;
            row.quantity_reserved = after.reserved;
            row.quantity_available = after.available();
            answered_ids.push(request.request_id.as_str());
            answers.push(encode(&request.reservation, &row));
            outcomes[i] = BatchOutcome::Granted(request.reservation.clone(), row);
        }
        if !answered_ids.is_empty() {
            sqlx::query(
                "UPDATE idempotency_keys k SET response = t.r
                   FROM unnest($1::text[], $2::bytea[]) AS t(id, r)
                  WHERE k.request_id = t.id",
            )
            .bind(&answered_ids)
            .bind(&answers)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        let unanswered: Vec<&str> = requests
            .iter()
            .zip(&outcomes)
            .zip(&owns_claim)
            .filter(|((_, o), owns)| **owns && !matches!(o, BatchOutcome::Granted(..)))
            .map(|((r, _), _)| r.request_id.as_str())
            .collect();
        if !unanswered.is_empty() {
            sqlx::query("DELETE FROM idempotency_keys WHERE request_id = ANY($1)")
                .bind(&unanswered)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(outcomes)
    }
}

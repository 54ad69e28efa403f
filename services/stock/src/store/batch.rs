//! Coalesced reservations: many single-line reservation requests applied in one database
//! transaction. Rows are locked once, in lock order; requests are granted in arrival order
//! while stock lasts; every request still gets its own log row, reservation, idempotency
//! record and answer, and a refused request leaves nothing behind.

use std::collections::{BTreeMap, HashSet};

use inventory_core::ServiceError;
use uuid::Uuid;

use super::movements::{INVENTORY_COLUMNS, InventoryRow, LOG_INSERT, LogRows};
use super::reservations::{ReservationRows, reservation_insert};
use super::{Store, db_error};
use crate::domain::movement::{
    Grant, InventoryKey, Level, Movement, grant_in_arrival_order, insufficient_stock,
};
use crate::domain::reservation::Reservation;

/// A request id already answered, or an order line (order, line, warehouse) already held.
type KnownRow = (Option<String>, Option<String>, Option<String>, Option<Uuid>);

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
    /// Applies a batch in one transaction of three statements: look up request ids and order
    /// lines already known, lock the rows, then write everything at once. `encode` turns a
    /// granted request's result into the response stored for retries. On any database error,
    /// or if a concurrent writer got in first, nothing is written and the caller should run
    /// every request on the one-request path.
    pub async fn reserve_batch(
        &self,
        requests: &[BatchRequest],
        encode: impl Fn(&Reservation, &InventoryRow) -> Vec<u8>,
    ) -> Result<Vec<BatchOutcome>, ServiceError> {
        let mut outcomes: Vec<BatchOutcome> =
            requests.iter().map(|_| BatchOutcome::Single).collect();
        let mut tx = self.begin().await?;

        // Request ids already answered (retries) and order lines already reserved.
        let known: Vec<KnownRow> = sqlx::query_as(
            "SELECT request_id, NULL, NULL, NULL::uuid FROM idempotency_keys
                  WHERE request_id = ANY($1)
                 UNION ALL
                 SELECT NULL, order_id, order_line_id, warehouse_id FROM reservations
                  WHERE (order_id, order_line_id, warehouse_id) IN
                        (SELECT * FROM unnest($2::text[], $3::text[], $4::uuid[]))",
        )
        .bind(
            requests
                .iter()
                .map(|r| r.request_id.as_str())
                .collect::<Vec<_>>(),
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
        .map_err(db_error)?;
        let mut answered_ids = HashSet::new();
        let mut existing_lines = HashSet::new();
        for row in known {
            match row {
                (Some(id), ..) => {
                    answered_ids.insert(id);
                }
                (None, Some(order), Some(line), Some(warehouse)) => {
                    existing_lines.insert((order, line, warehouse));
                }
                _ => {}
            }
        }

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
        let rows: BTreeMap<InventoryKey, InventoryRow> = sqlx::query_as::<_, InventoryRow>(&(sql))
            .bind(keys.iter().map(|k| k.product_id).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.warehouse_id).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();

        // Decide, in arrival order, among the requests this batch can answer. A repeated
        // request id or order line waits for the one-request path, which answers it.
        let mut seen_ids = HashSet::new();
        let mut seen_lines = HashSet::new();
        let mut candidates = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let r = &request.reservation;
            let line = (
                r.order_id.clone(),
                r.order_line_id.clone(),
                r.key.warehouse_id,
            );
            if answered_ids.contains(&request.request_id)
                || !seen_ids.insert(request.request_id.as_str())
                || !rows.contains_key(&r.key)
            {
                continue;
            }
            if existing_lines.contains(&line) {
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

        let now = crate::api::now();
        let mut granted = Vec::new();
        let mut afters = Vec::new();
        let mut totals: BTreeMap<InventoryKey, i64> = BTreeMap::new();
        for (&i, grant) in candidates.iter().zip(&grants) {
            let r = &requests[i].reservation;
            match *grant {
                Grant::Granted(after) => {
                    let mut row = rows
                        .get(&r.key)
                        .cloned()
                        .ok_or_else(|| ServiceError::Internal("granted row missing".into()))?;
                    row.quantity_reserved = after.reserved;
                    row.quantity_available = after.available();
                    row.last_updated = now;
                    *totals.entry(r.key).or_default() += r.quantity_requested;
                    granted.push((i, row));
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
        if granted.is_empty() {
            tx.rollback().await.map_err(db_error)?;
            return Ok(outcomes);
        }

        // One statement writes the rows, the log, the reservations and the answers.
        let movements: Vec<Movement> = granted
            .iter()
            .map(|(i, _)| {
                let r = &requests[*i].reservation;
                Movement::reserve(r.key, r.quantity_requested).with_reference(r.order_id.clone())
            })
            .collect();
        let origins: Vec<(&str, &str)> = granted
            .iter()
            .map(|(i, _)| {
                (
                    requests[*i].request_id.as_str(),
                    requests[*i].actor.as_str(),
                )
            })
            .collect();
        let sql = format!(
            "WITH logged AS ({LOG_INSERT} RETURNING 1),
             rows AS (
                 UPDATE inventory i
                    SET quantity_reserved = i.quantity_reserved + t.d, last_updated = $17
                   FROM unnest($14::uuid[], $15::uuid[], $16::int8[]) AS t(p, w, d)
                  WHERE i.product_id = t.p AND i.warehouse_id = t.w
                    AND i.quantity_reserved + t.d <= i.quantity_on_hand
                 RETURNING 1),
             reserved AS ({reservations} RETURNING 1),
             answered AS (
                 INSERT INTO idempotency_keys (request_id, method, request_fingerprint, response)
                 SELECT * FROM unnest($26::text[], $27::text[], $28::bytea[], $29::bytea[])
                 ON CONFLICT (request_id) DO NOTHING
                 RETURNING 1)
             SELECT (SELECT count(*) FROM logged), (SELECT count(*) FROM rows),
                    (SELECT count(*) FROM reserved), (SELECT count(*) FROM answered)",
            reservations = reservation_insert(18)
        );
        let query = sqlx::query_as::<_, (i64, i64, i64, i64)>(&(sql));
        let query = LogRows::new(&movements, &afters, &origins)
            .bind(query)
            .bind(totals.keys().map(|k| k.product_id).collect::<Vec<_>>())
            .bind(totals.keys().map(|k| k.warehouse_id).collect::<Vec<_>>())
            .bind(totals.values().copied().collect::<Vec<_>>())
            .bind(now);
        let query = ReservationRows::new(granted.iter().map(|(i, _)| &requests[*i].reservation))
            .bind(query)
            .bind(
                granted
                    .iter()
                    .map(|(i, _)| requests[*i].request_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                granted
                    .iter()
                    .map(|(i, _)| requests[*i].method)
                    .collect::<Vec<_>>(),
            )
            .bind(
                granted
                    .iter()
                    .map(|(i, _)| requests[*i].fingerprint.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                granted
                    .iter()
                    .map(|(i, row)| encode(&requests[*i].reservation, row))
                    .collect::<Vec<_>>(),
            );
        let written = query.fetch_one(&mut *tx).await.map_err(db_error)?;
        let n = i64::try_from(granted.len()).unwrap_or(i64::MAX);
        let rows_expected = i64::try_from(totals.len()).unwrap_or(i64::MAX);
        if written != (n, rows_expected, n, n) {
            // A concurrent writer claimed a request id or an order line first (the check
            // above only sees committed rows): let the one-request path sort it out.
            tx.rollback().await.map_err(db_error)?;
            return Err(ServiceError::Aborted(format!(
                "batch wrote {written:?}, expected ({n}, {rows_expected}, {n}, {n})"
            )));
        }
        tx.commit().await.map_err(db_error)?;
        for (i, row) in granted {
            outcomes[i] = BatchOutcome::Granted(requests[i].reservation.clone(), row);
        }
        Ok(outcomes)
    }
}

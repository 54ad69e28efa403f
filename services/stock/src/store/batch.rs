//! Coalesced reservations: many reservation requests (one line, or a whole order of lines
//! that are held all or none) applied by one statement. Requests are granted in arrival order
//! while stock lasts; every line still gets its own log row and reservation, every request
//! its idempotency record and answer, and a refused request leaves nothing behind.
//!
//! Two ways to run a batch, sharing the decision ([`plan`]) and the write ([`write`]):
//! - on rows as last seen (the coalescer remembers them): one autocommit statement that
//!   checks every row still holds what the decision assumed, and fails, writing nothing,
//!   if one moved;
//! - locked: claim the request ids, lock the rows and look up existing order lines in one
//!   round trip, decide, write, commit. This one also refuses requests and finds every other
//!   answer.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use sqlx::PgConnection;
use uuid::Uuid;

use super::movements::{INVENTORY_COLUMNS, InventoryRow, LOG_INSERT, LogRows};
use super::reservations::{ReservationRows, reservation_insert};
use super::{Store, db_error, violated_constraint};
use crate::domain::movement::{
    Grant, InventoryKey, Level, Movement, grant_in_arrival_order, insufficient_stock,
};
use crate::domain::reservation::Reservation;

/// Inventory rows a batch is decided against, by key.
pub type Rows = BTreeMap<InventoryKey, InventoryRow>;

/// One request of a batch.
pub struct BatchRequest {
    pub request_id: String,
    pub method: &'static str,
    pub fingerprint: Vec<u8>,
    pub actor: String,
    /// The reservations to make, all or none (one for ReserveStock), complete but for what
    /// the batch decides.
    pub lines: Vec<Reservation>,
}

/// What the batch did for one request.
pub enum BatchOutcome {
    /// Reserved: each line's reservation and its row right after that line's grant.
    Granted(Vec<(Reservation, InventoryRow)>),
    /// Refused with this error; nothing of it was written.
    Refused(ServiceError),
    /// Not decided here (a retry, an unknown row, a repeat within the batch): the caller
    /// must run it on the one-request path, which has an answer for every case.
    Single,
}

/// A batch's outcomes, and its rows as they stand after it.
pub struct BatchResult {
    pub outcomes: Vec<BatchOutcome>,
    pub rows: Rows,
}

/// An order line in a warehouse: at most one reservation each.
type Line = (String, String, Uuid);

/// What the locked path knows beyond the rows.
#[derive(Default)]
struct Known {
    answered_ids: HashSet<String>,
    existing_lines: HashSet<Line>,
}

/// A decided batch.
struct Plan {
    outcomes: Vec<BatchOutcome>,
    /// Granted requests, by index, with each line's row right after its grant.
    granted: Vec<(usize, Vec<InventoryRow>)>,
    /// The level after each granted line, in the order of `granted` and its lines.
    afters: Vec<Level>,
    /// Per touched row: what was added to reserved, and the level the decision assumed.
    changes: BTreeMap<InventoryKey, (i64, Level)>,
    /// The rows after the batch.
    rows: Rows,
}

impl Plan {
    /// Whether any request is not simply granted: a refusal, or a request left to the
    /// one-request path, needs the lookups of the locked path to be answered right.
    fn needs_lookups(&self) -> bool {
        self.granted.len() != self.outcomes.len()
    }
}

/// Decides a batch against `rows`: repeats of a request id or order line within the batch,
/// retries, unknown rows, an order naming a row twice, and an order that does not fit are
/// left to the one-request path (which names the line that cannot be held); the rest are
/// granted in arrival order while stock lasts, each order all or none.
fn plan(requests: &[BatchRequest], rows: &Rows, known: &Known, now: DateTime<Utc>) -> Plan {
    let mut outcomes: Vec<BatchOutcome> = requests.iter().map(|_| BatchOutcome::Single).collect();
    let mut seen_ids = HashSet::new();
    let mut seen_lines = HashSet::new();
    let mut candidates = Vec::new();
    'requests: for (i, request) in requests.iter().enumerate() {
        let keys: BTreeSet<InventoryKey> = request.lines.iter().map(|r| r.key).collect();
        // The id first: a later request with the same id is a repeat, whatever this one is.
        if !seen_ids.insert(request.request_id.as_str())
            || known.answered_ids.contains(&request.request_id)
            || request.lines.is_empty()
            || keys.len() != request.lines.len()
            || !keys.iter().all(|k| rows.contains_key(k))
        {
            continue;
        }
        let lines: Vec<Line> = request
            .lines
            .iter()
            .map(|r| {
                (
                    r.order_id.clone(),
                    r.order_line_id.clone(),
                    r.key.warehouse_id,
                )
            })
            .collect();
        for (r, line) in request.lines.iter().zip(&lines) {
            if known.existing_lines.contains(line) {
                // An order: the one-request path decides which refusal comes first.
                if request.lines.len() > 1 {
                    continue 'requests;
                }
                outcomes[i] = BatchOutcome::Refused(ServiceError::AlreadyExists {
                    resource: "reservation",
                    id: format!(
                        "for order {} line {} in warehouse {}",
                        r.order_id, r.order_line_id, r.key.warehouse_id
                    ),
                });
                continue 'requests;
            }
        }
        if lines.iter().any(|l| seen_lines.contains(l)) {
            continue;
        }
        seen_lines.extend(lines);
        candidates.push(i);
    }
    let levels: BTreeMap<InventoryKey, Level> = rows.iter().map(|(k, r)| (*k, r.level())).collect();
    let asks: Vec<Vec<(InventoryKey, i64)>> = candidates
        .iter()
        .map(|&i| {
            requests[i]
                .lines
                .iter()
                .map(|r| (r.key, r.quantity_requested))
                .collect()
        })
        .collect();
    let grants = grant_in_arrival_order(&levels, &asks);

    let mut plan = Plan {
        outcomes,
        granted: Vec::new(),
        afters: Vec::new(),
        changes: BTreeMap::new(),
        rows: rows.clone(),
    };
    for (&i, grant) in candidates.iter().zip(&grants) {
        let lines = &requests[i].lines;
        match grant {
            // Every key of a candidate has a row (checked above).
            Grant::Granted(afters) if lines.iter().all(|r| plan.rows.contains_key(&r.key)) => {
                let mut after_rows = Vec::with_capacity(lines.len());
                for (r, after) in lines.iter().zip(afters) {
                    let before = levels.get(&r.key).copied().unwrap_or_default();
                    plan.changes.entry(r.key).or_insert((0, before)).0 += r.quantity_requested;
                    if let Some(row) = plan.rows.get_mut(&r.key) {
                        row.quantity_reserved = after.reserved;
                        row.quantity_available = after.available();
                        row.last_updated = now;
                        after_rows.push(row.clone());
                    }
                    plan.afters.push(*after);
                }
                plan.granted.push((i, after_rows));
            }
            Grant::Granted(_) => {}
            // One line: its refusal is this request's answer. An order: the one-request path
            // names the line that cannot be held, as it does for an order on its own.
            Grant::Refused { available, .. } => {
                if let [r] = lines.as_slice() {
                    plan.outcomes[i] = BatchOutcome::Refused(insufficient_stock(
                        r.key,
                        r.quantity_requested,
                        *available,
                    ));
                }
            }
        }
    }
    plan
}

/// Whether the granted requests' ids are still to be claimed by the write, or were claimed
/// earlier in its transaction.
#[derive(Clone, Copy)]
enum Claims {
    ToTake,
    Held,
}

/// Writes a plan in one statement: the rows (only if they still hold the levels the plan
/// assumed), one log row, one reservation and one stored answer per granted request. If
/// anything does not match, or an id or order line is taken, the statement fails with
/// ABORTED and writes nothing.
async fn write(
    conn: &mut PgConnection,
    requests: &[BatchRequest],
    plan: Plan,
    claims: Claims,
    now: DateTime<Utc>,
    encode: impl Fn(&BatchRequest, &[InventoryRow]) -> Vec<u8>,
) -> Result<BatchResult, ServiceError> {
    let Plan {
        mut outcomes,
        granted,
        afters,
        changes,
        rows,
    } = plan;
    if granted.is_empty() {
        return Ok(BatchResult { outcomes, rows });
    }
    let lines = || {
        granted
            .iter()
            .flat_map(|(i, _)| requests[*i].lines.iter().map(move |r| (*i, r)))
    };
    let movements: Vec<Movement> = lines()
        .map(|(_, r)| {
            Movement::reserve(r.key, r.quantity_requested).with_reference(r.order_id.clone())
        })
        .collect();
    let origins: Vec<(&str, &str)> = lines()
        .map(|(i, _)| (requests[i].request_id.as_str(), requests[i].actor.as_str()))
        .collect();
    let sql = format!(
        // Order of locks, as on the one-request path: request ids first, then the rows in
        // lock order (an UPDATE joined to a list would lock in whatever order its plan
        // visits), so batches of several replicas cannot deadlock; the rows are updated
        // before the log draws its sequence numbers, so a log row is never numbered before a
        // change that precedes it.
        "WITH answered AS ({answers} RETURNING 1),
         claimed AS (SELECT count(*) AS n FROM answered),
         locked AS MATERIALIZED (
             SELECT 1 FROM inventory, claimed
              WHERE (product_id, warehouse_id) IN (SELECT * FROM unnest($14::uuid[], $15::uuid[]))
              ORDER BY product_id, warehouse_id
              FOR UPDATE OF inventory),
         rows AS (
             UPDATE inventory i
                SET quantity_reserved = i.quantity_reserved + t.d, last_updated = $19
               FROM unnest($14::uuid[], $15::uuid[], $16::int8[], $17::int8[], $18::int8[])
                    AS t(p, w, d, on_hand, reserved),
                    (SELECT count(*) FROM locked) AS l
              WHERE i.product_id = t.p AND i.warehouse_id = t.w
                AND i.quantity_on_hand = t.on_hand AND i.quantity_reserved = t.reserved
             RETURNING 1),
         updated AS (SELECT count(*) AS n FROM rows),
         logged AS (
             {LOG_INSERT} CROSS JOIN updated WHERE updated.n = $33 ORDER BY t.ord
             RETURNING 1),
         reserved AS ({reservations} RETURNING 1)
         SELECT assert_batch_matches(
                    (SELECT count(*) FROM logged) = $32 AND (SELECT n FROM updated) = $33
                AND (SELECT count(*) FROM reserved) = $32 AND (SELECT n FROM claimed) = $34)",
        reservations = reservation_insert(20),
        answers = match claims {
            Claims::ToTake => {
                // In request-id order, as every claim of several ids is made. A plain insert:
                // an id already taken fails the statement (see below), where ON CONFLICT
                // would probe each id's index entry once more and insert speculatively.
                "INSERT INTO idempotency_keys (request_id, method, request_fingerprint, response)
                 SELECT * FROM unnest($28::text[], $29::text[], $30::bytea[], $31::bytea[])
                  ORDER BY 1"
            }
            Claims::Held => {
                "UPDATE idempotency_keys k SET response = t.response
                   FROM unnest($28::text[], $29::text[], $30::bytea[], $31::bytea[])
                        AS t(request_id, method, fingerprint, response)
                  WHERE k.request_id = t.request_id AND k.method = t.method
                    AND k.request_fingerprint = t.fingerprint"
            }
        }
    );
    let query = sqlx::query_as::<_, (bool,)>(&sql);
    let query = LogRows::new(&movements, &afters, &origins)
        .bind(query)
        .bind(changes.keys().map(|k| k.product_id).collect::<Vec<_>>())
        .bind(changes.keys().map(|k| k.warehouse_id).collect::<Vec<_>>())
        .bind(changes.values().map(|c| c.0).collect::<Vec<_>>())
        .bind(changes.values().map(|c| c.1.on_hand).collect::<Vec<_>>())
        .bind(changes.values().map(|c| c.1.reserved).collect::<Vec<_>>())
        .bind(now);
    let query = ReservationRows::new(lines().map(|(_, r)| r))
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
                .map(|(i, rows)| encode(&requests[*i], rows))
                .collect::<Vec<_>>(),
        )
        .bind(i64::try_from(movements.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(changes.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(granted.len()).unwrap_or(i64::MAX));
    query.fetch_one(&mut *conn).await.map_err(|error| {
        if takes_a_taken_id_or_line(&error) {
            // A request id (a retry) or an order line (a second reservation for it) already
            // taken; on the locked path, committed since its lookups. Nothing was written:
            // the lane runs the batch again under locks, or after the locked path one
            // request at a time, and that path answers it.
            ServiceError::Aborted(
                "a request id or order line of the batch is already taken".to_owned(),
            )
        } else {
            db_error(error)
        }
    })?;
    for (i, rows) in granted {
        outcomes[i] = BatchOutcome::Granted(requests[i].lines.iter().cloned().zip(rows).collect());
    }
    Ok(BatchResult { outcomes, rows })
}

/// Whether the write failed on a request id or an order line that already exists. Other
/// unique keys (log sequence numbers, generated ids) are not retried: their violation is a
/// fault to surface. By prefix, as Citus may name the shard's constraint.
fn takes_a_taken_id_or_line(error: &sqlx::Error) -> bool {
    violated_constraint(error).is_some_and(|name| {
        ["idempotency_keys_pkey", "reservations_order_line_key"]
            .iter()
            .any(|key| name.starts_with(key))
    })
}

impl Store {
    /// Applies a batch on rows as last seen, in one autocommit statement on `conn`. `Ok(None)`
    /// when the batch needs what only the locked path knows (a refusal to confirm, a retry, a
    /// repeat); ABORTED when a row moved since, or a request id or order line turned out to be
    /// taken. Either way nothing was written.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn reserve_batch_on(
        &self,
        conn: &mut PgConnection,
        requests: &[BatchRequest],
        rows: &Rows,
        encode: impl Fn(&BatchRequest, &[InventoryRow]) -> Vec<u8>,
    ) -> Result<Option<BatchResult>, ServiceError> {
        let now = inventory_core::time::now();
        let plan = plan(requests, rows, &Known::default(), now);
        if plan.needs_lookups() {
            return Ok(None);
        }
        write(conn, requests, plan, Claims::ToTake, now, encode)
            .await
            .map(Some)
    }

    /// Applies a batch under row locks: one round trip claims the request ids (in order;
    /// an id already answered, or in flight elsewhere until that ends, is not claimed), then
    /// locks the rows in lock order and looks up order lines already reserved. Ids before
    /// rows, as on the one-request path, so the two never wait on each other in a cycle.
    /// Then the batch is decided, the claims it does not use are given back, and it is
    /// written and committed. Lookups read the statement's snapshot, so anything committed
    /// while the locks were awaited is caught by the write's checks (ABORTED, nothing
    /// written).
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn reserve_batch_locked(
        &self,
        requests: &[BatchRequest],
        encode: impl Fn(&BatchRequest, &[InventoryRow]) -> Vec<u8>,
    ) -> Result<BatchResult, ServiceError> {
        let keys: Vec<InventoryKey> = requests
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| l.key))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lines = || requests.iter().flat_map(|r| r.lines.iter());
        // The first request with each id, in id order.
        let mut ids: BTreeMap<&str, &BatchRequest> = BTreeMap::new();
        for request in requests {
            ids.entry(request.request_id.as_str()).or_insert(request);
        }
        let sql = format!(
            "WITH claimed AS (
                 INSERT INTO idempotency_keys (request_id, method, request_fingerprint)
                 SELECT * FROM unnest($3::text[], $7::text[], $8::bytea[])
                 ON CONFLICT (request_id) DO NOTHING
                 RETURNING request_id),
             locked AS MATERIALIZED (
                 SELECT {INVENTORY_COLUMNS}
                   FROM inventory, (SELECT count(*) AS n FROM claimed) AS claims_first
                  WHERE (product_id, warehouse_id) IN
                        (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
                  ORDER BY product_id, warehouse_id
                  FOR UPDATE OF inventory)
             SELECT inventory_id, product_id, warehouse_id, quantity_on_hand, quantity_reserved,
                    quantity_available, last_updated,
                    NULL::text AS request_id, NULL::text AS order_id, NULL::text AS order_line_id
               FROM locked
             UNION ALL
             SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, request_id, NULL, NULL
               FROM claimed
             UNION ALL
             SELECT NULL, NULL, warehouse_id, NULL, NULL, NULL, NULL, NULL, order_id, order_line_id
               FROM reservations
              WHERE (order_id, order_line_id, warehouse_id) IN
                    (SELECT * FROM unnest($4::text[], $5::text[], $6::uuid[]))"
        );
        let mut tx = self.begin().await?;
        let found: Vec<LookupRow> = sqlx::query_as(&sql)
            .bind(keys.iter().map(|k| k.product_id).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.warehouse_id).collect::<Vec<_>>())
            .bind(ids.keys().copied().collect::<Vec<_>>())
            .bind(lines().map(|l| l.order_id.as_str()).collect::<Vec<_>>())
            .bind(
                lines()
                    .map(|l| l.order_line_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(lines().map(|l| l.key.warehouse_id).collect::<Vec<_>>())
            .bind(ids.values().map(|r| r.method).collect::<Vec<_>>())
            .bind(
                ids.values()
                    .map(|r| r.fingerprint.as_slice())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut rows = Rows::new();
        let mut claimed = HashSet::new();
        let mut known = Known::default();
        for found in found {
            match found.into_kind() {
                Some(Found::Row(row)) => {
                    rows.insert(row.key(), row);
                }
                Some(Found::Claimed(id)) => {
                    claimed.insert(id);
                }
                Some(Found::Line(line)) => {
                    known.existing_lines.insert(line);
                }
                None => {}
            }
        }
        known.answered_ids = ids
            .keys()
            .filter(|id| !claimed.contains(**id))
            .map(|id| (*id).to_owned())
            .collect();
        let now = inventory_core::time::now();
        let plan = plan(requests, &rows, &known, now);
        for (i, _) in &plan.granted {
            claimed.remove(&requests[*i].request_id);
        }
        if !claimed.is_empty() {
            // Refused or left to the one-request path: their ids are free again.
            let ids: Vec<&str> = claimed.iter().map(String::as_str).collect();
            inventory_runtime::idempotency::unclaim(&mut tx, &ids).await?;
        }
        let result = write(&mut tx, requests, plan, Claims::Held, now, encode).await?;
        inventory_runtime::commit(tx).await?;
        Ok(result)
    }
}

/// One row of the locked path's lookup: a locked inventory row, a request id claimed, or an
/// order line already reserved.
#[derive(sqlx::FromRow)]
struct LookupRow {
    inventory_id: Option<Uuid>,
    product_id: Option<Uuid>,
    warehouse_id: Option<Uuid>,
    quantity_on_hand: Option<i64>,
    quantity_reserved: Option<i64>,
    quantity_available: Option<i64>,
    last_updated: Option<DateTime<Utc>>,
    request_id: Option<String>,
    order_id: Option<String>,
    order_line_id: Option<String>,
}

enum Found {
    Row(InventoryRow),
    Claimed(String),
    Line(Line),
}

impl LookupRow {
    fn into_kind(self) -> Option<Found> {
        if let Some(id) = self.request_id {
            return Some(Found::Claimed(id));
        }
        if let (Some(order), Some(line), Some(warehouse)) =
            (self.order_id, self.order_line_id, self.warehouse_id)
        {
            return Some(Found::Line((order, line, warehouse)));
        }
        Some(Found::Row(InventoryRow {
            inventory_id: self.inventory_id?,
            product_id: self.product_id?,
            warehouse_id: self.warehouse_id?,
            quantity_on_hand: self.quantity_on_hand?,
            quantity_reserved: self.quantity_reserved?,
            quantity_available: self.quantity_available?,
            last_updated: self.last_updated?,
        }))
    }
}

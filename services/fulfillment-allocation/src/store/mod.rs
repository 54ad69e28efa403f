//! PostgreSQL access for the allocation schema. Queries only: the rules live in `domain`.
//!
//! Lock order: the idempotency key, the order (an advisory lock on its id), the warehouses it
//! ships from (advisory, shared, in id order; a profile change takes one exclusively), then
//! warehouse profile rows in id order.

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use inventory_runtime::{Tx, db_error};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// How a warehouse operates, as this service knows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Profile {
    pub warehouse_id: Uuid,
    pub capacity_lines: Option<i64>,
    pub open_lines: i64,
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Allocated,
    PartiallyShipped,
    Shipped,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allocated => "ALLOCATED",
            Self::PartiallyShipped => "PARTIALLY_SHIPPED",
            Self::Shipped => "SHIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }

    fn parse(value: &str) -> Result<Self, ServiceError> {
        match value {
            "ALLOCATED" => Ok(Self::Allocated),
            "PARTIALLY_SHIPPED" => Ok(Self::PartiallyShipped),
            "SHIPPED" => Ok(Self::Shipped),
            "CANCELLED" => Ok(Self::Cancelled),
            other => Err(ServiceError::Internal(format!("unknown status {other}"))),
        }
    }
}

/// One order line's units from one warehouse.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AllocatedLine {
    pub order_line_id: String,
    pub warehouse_id: Uuid,
    pub product_id: Uuid,
    pub line_quantity: i64,
    pub quantity: i64,
    pub quantity_shipped: i64,
    pub distance_km: Option<f64>,
    pub reason: String,
    /// Encoded `LineAllocation` holding only its `passed_over`.
    pub passed_over: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Shortfall {
    pub order_line_id: String,
    pub requested: i64,
    pub allocated: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub order_id: String,
    pub status: Status,
    pub latitude: f64,
    pub longitude: f64,
    pub postal_code: String,
    pub country: String,
    pub reservation_request_id: String,
    pub lines: Vec<AllocatedLine>,
    pub shortfalls: Vec<Shortfall>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Head {
    order_id: String,
    status: String,
    destination_latitude: f64,
    destination_longitude: f64,
    postal_code: String,
    country: String,
    reservation_request_id: String,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

/// Every profile. On the caller's connection: an allocation reads them inside its own
/// transaction, never from a second pooled connection it would have to wait for.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn profiles(conn: &mut PgConnection) -> Result<Vec<Profile>, ServiceError> {
    sqlx::query_as(
        "SELECT warehouse_id, capacity_lines, open_lines, paused FROM warehouse_profiles",
    )
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn set_profile(
    tx: &mut Tx,
    warehouse_id: Uuid,
    capacity_lines: Option<i64>,
    paused: bool,
) -> Result<Profile, ServiceError> {
    // Workload is kept on the row only while a capacity is set; recount it from the
    // allocations whenever the profile changes, once allocations in flight on this
    // warehouse have committed (they hold its lock shared).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 1))")
        .bind(warehouse_id)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let open = count_open_lines(tx, Some(warehouse_id))
        .await?
        .first()
        .map_or(0, |(_, n)| *n);
    sqlx::query_as(
        "INSERT INTO warehouse_profiles (warehouse_id, capacity_lines, paused, open_lines)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (warehouse_id) DO UPDATE
            SET capacity_lines = EXCLUDED.capacity_lines, paused = EXCLUDED.paused,
                open_lines = EXCLUDED.open_lines, update_time = now()
         RETURNING warehouse_id, capacity_lines, open_lines, paused",
    )
    .bind(warehouse_id)
    .bind(capacity_lines)
    .bind(paused)
    .bind(open)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)
}

/// Adds open lines to the warehouses that have a capacity (in id order): only their count
/// decides anything, and leaving the others alone keeps every order from writing the same few
/// rows. With `within_capacity`, refuses (false, and the caller rolls back) when a warehouse
/// would pass its capacity: another order took the room since the plan was made.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn add_open_lines(
    conn: &mut PgConnection,
    lines: &[(Uuid, i64)],
    within_capacity: bool,
) -> Result<bool, ServiceError> {
    if lines.is_empty() {
        return Ok(true);
    }
    let (warehouses, counts): (Vec<Uuid>, Vec<i64>) = lines.iter().copied().unzip();
    // One statement: the capped rows locked in id order (their values as of the lock), then
    // all bumped, or none when one would pass its capacity.
    sqlx::query_scalar(
        "WITH capped AS MATERIALIZED (
             SELECT p.warehouse_id, a.n, p.open_lines + a.n <= p.capacity_lines AS fits
               FROM warehouse_profiles p
               JOIN (SELECT w, sum(n)::bigint AS n FROM unnest($1::uuid[], $2::bigint[]) AS u(w, n)
                      GROUP BY w) a ON a.w = p.warehouse_id
              WHERE p.capacity_lines IS NOT NULL
              ORDER BY p.warehouse_id
                FOR UPDATE OF p),
         verdict AS (SELECT NOT $3 OR coalesce(bool_and(fits), true) AS fits FROM capped),
         bumped AS (
             UPDATE warehouse_profiles p
                SET open_lines = p.open_lines + c.n, update_time = now()
               FROM capped c
              WHERE p.warehouse_id = c.warehouse_id AND (SELECT fits FROM verdict)
             RETURNING 1)
         SELECT fits FROM verdict",
    )
    .bind(warehouses)
    .bind(counts)
    .bind(within_capacity)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

/// Takes lines off the workload of warehouses with a capacity (shipped or cancelled).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn remove_open_lines(tx: &mut Tx, lines: &[(Uuid, i64)]) -> Result<(), ServiceError> {
    let mut sorted = lines.to_vec();
    sorted.sort();
    for (warehouse_id, n) in sorted {
        sqlx::query(
            "UPDATE warehouse_profiles SET open_lines = greatest(open_lines - $2, 0),
                    update_time = now()
              WHERE warehouse_id = $1 AND capacity_lines IS NOT NULL",
        )
        .bind(warehouse_id)
        .bind(n)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Open order lines per warehouse, counted from the allocations: lines allocated to it,
/// not yet shipped in full, of orders neither shipped nor cancelled.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn count_open_lines(
    conn: &mut PgConnection,
    warehouse_id: Option<Uuid>,
) -> Result<Vec<(Uuid, i64)>, ServiceError> {
    sqlx::query_as(
        "SELECT l.warehouse_id, count(*)
           FROM allocation_lines l JOIN allocations a USING (order_id)
          WHERE a.status IN ('ALLOCATED', 'PARTIALLY_SHIPPED')
            AND l.quantity_shipped < l.quantity
            AND ($1::uuid IS NULL OR l.warehouse_id = $1)
          GROUP BY l.warehouse_id",
    )
    .bind(warehouse_id)
    .fetch_all(conn)
    .await
    .map_err(db_error)
}

/// Shared locks on warehouses an allocation ships from, held to its commit: allocations do
/// not wait for one another, but a profile change (which takes the lock exclusively, then
/// recounts the open lines) waits for those in flight, so their lines are counted.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_warehouses_shared(
    conn: &mut PgConnection,
    warehouses: &[Uuid],
) -> Result<(), ServiceError> {
    let mut sorted = warehouses.to_vec();
    sorted.sort();
    sqlx::query(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended(w::text, 1))
           FROM unnest($1::uuid[]) WITH ORDINALITY AS t(w, i) ORDER BY i",
    )
    .bind(sorted)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Serialises work on one order (allocations of the same order id by different requests).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_order(tx: &mut Tx, order_id: &str) -> Result<(), ServiceError> {
    lock_orders(tx, &[order_id.to_owned()]).await
}

/// [`lock_order`] for many orders, in id order.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_orders(tx: &mut Tx, order_ids: &[String]) -> Result<(), ServiceError> {
    let mut sorted = order_ids.to_vec();
    sorted.sort();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(o, 0))
           FROM unnest($1::text[]) WITH ORDINALITY AS t(o, i) ORDER BY i",
    )
    .bind(sorted)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Which of these orders already have an allocation.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn allocated_orders(
    tx: &mut Tx,
    order_ids: &[String],
) -> Result<std::collections::HashSet<String>, ServiceError> {
    let found: Vec<String> =
        // Planned on each call: a plan cached while the table was small goes on reading all
        // of it as it grows, until statistics are next gathered.
        sqlx::query_scalar("SELECT order_id FROM allocations WHERE order_id = ANY($1)")
            .persistent(false)
            .bind(order_ids)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)?;
    Ok(found.into_iter().collect())
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn get_allocation(
    conn: &mut PgConnection,
    order_id: &str,
) -> Result<Option<Allocation>, ServiceError> {
    let head: Option<Head> = sqlx::query_as(
        "SELECT order_id, status, destination_latitude, destination_longitude, postal_code,
                country, reservation_request_id, create_time, update_time
           FROM allocations WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    match head {
        Some(head) => Ok(Some(complete(conn, head).await?)),
        None => Ok(None),
    }
}

async fn complete(conn: &mut PgConnection, head: Head) -> Result<Allocation, ServiceError> {
    let lines: Vec<AllocatedLine> = sqlx::query_as(
        "SELECT order_line_id, warehouse_id, product_id, line_quantity, quantity,
                quantity_shipped, distance_km, reason, passed_over
           FROM allocation_lines WHERE order_id = $1 ORDER BY order_line_id, distance_km",
    )
    .bind(&head.order_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let shortfalls: Vec<Shortfall> = sqlx::query_as(
        "SELECT order_line_id, requested, allocated FROM allocation_shortfalls
          WHERE order_id = $1 ORDER BY order_line_id",
    )
    .bind(&head.order_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Allocation {
        status: Status::parse(&head.status)?,
        order_id: head.order_id,
        latitude: head.destination_latitude,
        longitude: head.destination_longitude,
        postal_code: head.postal_code,
        country: head.country,
        reservation_request_id: head.reservation_request_id,
        lines,
        shortfalls,
        create_time: head.create_time,
        update_time: head.update_time,
    })
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_allocation(tx: &mut Tx, a: &Allocation) -> Result<(), ServiceError> {
    insert_allocations(tx, std::slice::from_ref(a)).await
}

/// Stores allocations, each with its lines and shortfalls: three statements however many.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_allocations(tx: &mut Tx, all: &[Allocation]) -> Result<(), ServiceError> {
    if all.is_empty() {
        return Ok(());
    }
    let heads = |f: fn(&Allocation) -> String| all.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO allocations (order_id, status, destination_latitude, destination_longitude,
                                  postal_code, country, reservation_request_id, create_time,
                                  update_time)
         SELECT o, s, lat, lon, p, c, r, t, t
           FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[],
                       $6::text[], $7::text[], $8::timestamptz[])
                AS h(o, s, lat, lon, p, c, r, t)",
    )
    .bind(heads(|a| a.order_id.clone()))
    .bind(heads(|a| a.status.as_str().to_owned()))
    .bind(all.iter().map(|a| a.latitude).collect::<Vec<_>>())
    .bind(all.iter().map(|a| a.longitude).collect::<Vec<_>>())
    .bind(heads(|a| a.postal_code.clone()))
    .bind(heads(|a| a.country.clone()))
    .bind(heads(|a| a.reservation_request_id.clone()))
    .bind(all.iter().map(|a| a.create_time).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let lines: Vec<(&str, &AllocatedLine)> = all
        .iter()
        .flat_map(|a| a.lines.iter().map(|l| (a.order_id.as_str(), l)))
        .collect();
    let column =
        |f: fn(&AllocatedLine) -> String| lines.iter().map(|(_, l)| f(l)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO allocation_lines (order_id, order_line_id, warehouse_id, product_id,
                                       line_quantity, quantity, distance_km, reason,
                                       passed_over)
         SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::bigint[],
                              $6::bigint[], $7::float8[], $8::text[], $9::bytea[])",
    )
    .bind(lines.iter().map(|(o, _)| *o).collect::<Vec<_>>())
    .bind(column(|l| l.order_line_id.clone()))
    .bind(
        lines
            .iter()
            .map(|(_, l)| l.warehouse_id)
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|(_, l)| l.product_id).collect::<Vec<_>>())
    .bind(
        lines
            .iter()
            .map(|(_, l)| l.line_quantity)
            .collect::<Vec<_>>(),
    )
    .bind(lines.iter().map(|(_, l)| l.quantity).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.distance_km).collect::<Vec<_>>())
    .bind(column(|l| l.reason.clone()))
    .bind(
        lines
            .iter()
            .map(|(_, l)| l.passed_over.as_slice())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let shortfalls: Vec<(&str, &Shortfall)> = all
        .iter()
        .flat_map(|a| a.shortfalls.iter().map(|s| (a.order_id.as_str(), s)))
        .collect();
    if !shortfalls.is_empty() {
        sqlx::query(
            "INSERT INTO allocation_shortfalls (order_id, order_line_id, requested, allocated)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])",
        )
        .bind(shortfalls.iter().map(|(o, _)| *o).collect::<Vec<_>>())
        .bind(
            shortfalls
                .iter()
                .map(|(_, s)| s.order_line_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            shortfalls
                .iter()
                .map(|(_, s)| s.requested)
                .collect::<Vec<_>>(),
        )
        .bind(
            shortfalls
                .iter()
                .map(|(_, s)| s.allocated)
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Takes back allocations stored in this transaction (with their lines and shortfalls).
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn delete_allocations(tx: &mut Tx, order_ids: &[&str]) -> Result<(), ServiceError> {
    for table in ["allocation_shortfalls", "allocation_lines", "allocations"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE order_id = ANY($1)"))
            .bind(order_ids)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn add_shipped(
    tx: &mut Tx,
    order_id: &str,
    order_line_id: &str,
    warehouse_id: Uuid,
    quantity: i64,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE allocation_lines SET quantity_shipped = quantity_shipped + $4
          WHERE order_id = $1 AND order_line_id = $2 AND warehouse_id = $3",
    )
    .bind(order_id)
    .bind(order_line_id)
    .bind(warehouse_id)
    .bind(quantity)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Sets an allocation's status; returns its new update time.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn set_status(
    tx: &mut Tx,
    order_id: &str,
    status: Status,
) -> Result<DateTime<Utc>, ServiceError> {
    sqlx::query_scalar(
        "UPDATE allocations SET status = $2, update_time = now() WHERE order_id = $1
         RETURNING update_time",
    )
    .bind(order_id)
    .bind(status.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)
}

/// A page of allocations after `after` (an order id), optionally only those shipping from
/// `warehouse_id` or in `status`.
#[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn list_allocations(
    pool: &PgPool,
    warehouse_id: Option<Uuid>,
    status: Option<Status>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Allocation>, ServiceError> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    let heads: Vec<Head> = sqlx::query_as(
        "SELECT order_id, status, destination_latitude, destination_longitude, postal_code,
                country, reservation_request_id, create_time, update_time
           FROM allocations a
          WHERE ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM allocation_lines l
                                              WHERE l.order_id = a.order_id
                                                AND l.warehouse_id = $1))
            AND ($2::text IS NULL OR status = $2)
            AND ($3::text IS NULL OR order_id > $3)
          ORDER BY order_id LIMIT $4",
    )
    .bind(warehouse_id)
    .bind(status.map(Status::as_str))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let mut allocations = Vec::with_capacity(heads.len());
    for head in heads {
        allocations.push(complete(&mut conn, head).await?);
    }
    Ok(allocations)
}

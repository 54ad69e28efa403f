//! Reservation records.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use sqlx::FromRow;
use uuid::Uuid;

use super::{Store, Tx, db_error};
use crate::domain::movement::InventoryKey;
use crate::domain::reservation::{Reservation, ReservationStatus};

const RESERVATION_COLUMNS: &str = "reservation_id, order_id, order_line_id, product_id, \
     warehouse_id, status, quantity_requested, quantity_held, quantity_shipped, \
     quantity_released, expire_time, create_time, update_time";

#[derive(FromRow)]
struct ReservationRow {
    reservation_id: Uuid,
    order_id: String,
    order_line_id: String,
    product_id: Uuid,
    warehouse_id: Uuid,
    status: String,
    quantity_requested: i64,
    quantity_held: i64,
    quantity_shipped: i64,
    quantity_released: i64,
    expire_time: Option<DateTime<Utc>>,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

impl TryFrom<ReservationRow> for Reservation {
    type Error = ServiceError;

    fn try_from(r: ReservationRow) -> Result<Self, ServiceError> {
        let status = ReservationStatus::parse(&r.status).ok_or_else(|| {
            ServiceError::Internal(format!("stored reservation status {:?}", r.status))
        })?;
        Ok(Reservation {
            reservation_id: r.reservation_id,
            order_id: r.order_id,
            order_line_id: r.order_line_id,
            key: InventoryKey {
                product_id: r.product_id,
                warehouse_id: r.warehouse_id,
            },
            status,
            quantity_requested: r.quantity_requested,
            quantity_held: r.quantity_held,
            quantity_shipped: r.quantity_shipped,
            quantity_released: r.quantity_released,
            expire_time: r.expire_time,
            create_time: r.create_time,
            update_time: r.update_time,
        })
    }
}

/// Inserts new active reservations from the eight arrays of [`ReservationRows`], bound as
/// parameters `first`..`first + 7`; an order line that already has one is skipped.
pub(crate) fn reservation_insert_skipping_taken(first: usize) -> String {
    format!(
        "{} ON CONFLICT (order_id, order_line_id, warehouse_id, product_id) DO NOTHING",
        reservation_insert(first)
    )
}

/// [`reservation_insert_skipping_taken`], but an order line that already has a reservation
/// fails the statement (a unique violation): no second probe of the index per row, and no
/// speculative insert.
pub(crate) fn reservation_insert(first: usize) -> String {
    let p: Vec<String> = (first..first + 8).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO reservations (reservation_id, order_id, order_line_id, product_id,
             warehouse_id, status, quantity_requested, quantity_held, expire_time,
             create_time, update_time)
         SELECT id, o, l, p, w, 'ACTIVE', q, q, e, c, c
           FROM unnest({}::uuid[], {}::text[], {}::text[], {}::uuid[], {}::uuid[],
                       {}::int8[], {}::timestamptz[], {}::timestamptz[])
                AS t(id, o, l, p, w, q, e, c)",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    )
}

/// New reservations as parallel arrays.
pub(crate) struct ReservationRows {
    ids: Vec<Uuid>,
    orders: Vec<String>,
    lines: Vec<String>,
    products: Vec<Uuid>,
    warehouses: Vec<Uuid>,
    quantities: Vec<i64>,
    expiries: Vec<Option<DateTime<Utc>>>,
    created: Vec<DateTime<Utc>>,
}

impl ReservationRows {
    pub(crate) fn new<'a>(reservations: impl IntoIterator<Item = &'a Reservation>) -> Self {
        let mut rows = Self {
            ids: Vec::new(),
            orders: Vec::new(),
            lines: Vec::new(),
            products: Vec::new(),
            warehouses: Vec::new(),
            quantities: Vec::new(),
            expiries: Vec::new(),
            created: Vec::new(),
        };
        for r in reservations {
            rows.ids.push(r.reservation_id);
            rows.orders.push(r.order_id.clone());
            rows.lines.push(r.order_line_id.clone());
            rows.products.push(r.key.product_id);
            rows.warehouses.push(r.key.warehouse_id);
            rows.quantities.push(r.quantity_requested);
            rows.expiries.push(r.expire_time);
            rows.created.push(r.create_time);
        }
        rows
    }

    /// Binds the arrays as the next eight parameters of `query`.
    pub(crate) fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(self.ids)
            .bind(self.orders)
            .bind(self.lines)
            .bind(self.products)
            .bind(self.warehouses)
            .bind(self.quantities)
            .bind(self.expiries)
            .bind(self.created)
    }
}

fn into_domain(rows: Vec<ReservationRow>) -> Result<Vec<Reservation>, ServiceError> {
    rows.into_iter().map(Reservation::try_from).collect()
}

impl Store {
    /// Inserts new reservations; ALREADY_EXISTS if the order line already has one in that
    /// warehouse for that product.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn insert_reservations(
        &self,
        tx: &mut Tx,
        reservations: &[Reservation],
    ) -> Result<(), ServiceError> {
        let sql = format!(
            "{} RETURNING reservation_id",
            reservation_insert_skipping_taken(1)
        );
        let query = sqlx::query_as::<_, (Uuid,)>(&(sql));
        let inserted: Vec<Uuid> = ReservationRows::new(reservations)
            .bind(query)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|(id,)| id)
            .collect();
        if let Some(existing) = reservations
            .iter()
            .find(|r| !inserted.contains(&r.reservation_id))
        {
            return Err(ServiceError::AlreadyExists {
                resource: "reservation",
                id: format!(
                    "for order {} line {} in warehouse {}",
                    existing.order_id, existing.order_line_id, existing.key.warehouse_id
                ),
            });
        }
        Ok(())
    }

    /// Locks an order's reservations (optionally one line, optionally one warehouse), product
    /// by product in product order. A distributed engine takes row locks only in a statement
    /// on one shard, and a product's reservations are on one; one order of locking keeps two
    /// transactions on the same order from deadlocking.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn lock_order_reservations(
        &self,
        tx: &mut Tx,
        order_id: &str,
        order_line_id: Option<&str>,
        warehouse_id: Option<Uuid>,
    ) -> Result<Vec<Reservation>, ServiceError> {
        const MATCHES: &str = "order_id = $1
                AND ($2::text IS NULL OR order_line_id = $2)
                AND ($3::uuid IS NULL OR warehouse_id = $3)";
        let products: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT product_id FROM reservations WHERE {MATCHES} ORDER BY product_id"
        ))
        .bind(order_id)
        .bind(order_line_id)
        .bind(warehouse_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations
              WHERE product_id = $4 AND {MATCHES}
              ORDER BY order_line_id, warehouse_id
              FOR UPDATE"
        );
        let mut rows = Vec::new();
        for product in products {
            rows.extend(
                sqlx::query_as::<_, ReservationRow>(&sql)
                    .bind(order_id)
                    .bind(order_line_id)
                    .bind(warehouse_id)
                    .bind(product)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db_error)?,
            );
        }
        rows.sort_by(|a, b| {
            (&a.order_line_id, a.warehouse_id).cmp(&(&b.order_line_id, b.warehouse_id))
        });
        into_domain(rows)
    }

    /// Locks up to `limit` active reservations whose expiry has passed, skipping any another
    /// replica is already releasing; product by product, as an order's are locked.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn lock_expired_reservations(
        &self,
        tx: &mut Tx,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Reservation>, ServiceError> {
        let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT product_id, reservation_id FROM reservations
              WHERE status = 'ACTIVE' AND expire_time <= $1
              ORDER BY expire_time LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
        let mut by_product: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
        for (product, reservation) in due {
            by_product.entry(product).or_default().push(reservation);
        }
        let sql = format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations
              WHERE product_id = $1 AND reservation_id = ANY($2)
                AND status = 'ACTIVE' AND expire_time <= $3
              ORDER BY order_id, order_line_id, warehouse_id
              FOR UPDATE SKIP LOCKED"
        );
        let mut rows = Vec::new();
        for (product, reservations) in by_product {
            rows.extend(
                sqlx::query_as::<_, ReservationRow>(&sql)
                    .bind(product)
                    .bind(reservations)
                    .bind(now)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db_error)?,
            );
        }
        into_domain(rows)
    }

    /// Writes back the state of reservations changed by ship or release.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn save_reservations(
        &self,
        tx: &mut Tx,
        reservations: &[Reservation],
    ) -> Result<(), ServiceError> {
        let ids: Vec<Uuid> = reservations.iter().map(|r| r.reservation_id).collect();
        let products: Vec<Uuid> = reservations.iter().map(|r| r.key.product_id).collect();
        let statuses: Vec<&str> = reservations.iter().map(|r| r.status.as_str()).collect();
        let held: Vec<i64> = reservations.iter().map(|r| r.quantity_held).collect();
        let shipped: Vec<i64> = reservations.iter().map(|r| r.quantity_shipped).collect();
        let released: Vec<i64> = reservations.iter().map(|r| r.quantity_released).collect();
        let updated: Vec<DateTime<Utc>> = reservations.iter().map(|r| r.update_time).collect();
        sqlx::query(
            "UPDATE reservations r
                SET status = t.s, quantity_held = t.h, quantity_shipped = t.sh,
                    quantity_released = t.rl, update_time = t.u
               FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                           $6::timestamptz[], $7::uuid[]) AS t(id, s, h, sh, rl, u, p)
              WHERE r.product_id = t.p AND r.reservation_id = t.id",
        )
        .bind(ids)
        .bind(statuses)
        .bind(held)
        .bind(shipped)
        .bind(released)
        .bind(updated)
        .bind(products)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn list_reservations(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<Reservation>, ServiceError> {
        // One index lookup per order, whatever the statistics say: `order_id = ANY(...)`
        // on a table without fresh statistics (autovacuum behind, or off) is planned as a
        // sequential scan of every reservation. The OFFSET keeps the lookup a subquery.
        // Citus does not run such a lateral join over a distributed table; there each
        // shard is asked with ANY.
        let sql = if self.is_distributed() {
            format!(
                "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = ANY($1)
                  ORDER BY order_id, order_line_id, warehouse_id"
            )
        } else {
            format!(
                "SELECT r.* FROM unnest($1::text[]) AS wanted(id)
                   CROSS JOIN LATERAL (SELECT {RESERVATION_COLUMNS} FROM reservations
                                        WHERE order_id = wanted.id OFFSET 0) r
                  ORDER BY r.order_id, r.order_line_id, r.warehouse_id"
            )
        };
        // Planned on each call: a plan cached while the table was small goes on reading all
        // of it as it grows, until statistics are next gathered.
        let distinct: BTreeSet<&String> = order_ids.iter().collect();
        let rows = sqlx::query_as::<_, ReservationRow>(&sql)
            .persistent(false)
            .bind(distinct.into_iter().collect::<Vec<_>>())
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        into_domain(rows)
    }
}

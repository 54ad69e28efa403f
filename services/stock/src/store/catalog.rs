//! Products and warehouses.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::{Store, Tx, db_error, violated_constraint};
use crate::domain::catalog::{Product, ProductPatch, Warehouse, WarehousePatch, WarehouseType};
use crate::domain::movement::InventoryKey;

const PRODUCT_COLUMNS: &str = "product_id, sku, name, category, unit_of_measure, reorder_point, \
     reorder_quantity, lead_time_days, unit_cost_micros, create_time, update_time";
const WAREHOUSE_COLUMNS: &str =
    "warehouse_id, name, address, warehouse_type, latitude, longitude, create_time, update_time";

#[derive(FromRow)]
struct ProductRow {
    product_id: Uuid,
    sku: String,
    name: String,
    category: String,
    unit_of_measure: String,
    reorder_point: i64,
    reorder_quantity: i64,
    lead_time_days: i32,
    unit_cost_micros: i64,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            product_id: r.product_id,
            sku: r.sku,
            name: r.name,
            category: r.category,
            unit_of_measure: r.unit_of_measure,
            reorder_point: r.reorder_point,
            reorder_quantity: r.reorder_quantity,
            lead_time_days: r.lead_time_days,
            unit_cost_micros: r.unit_cost_micros,
            create_time: r.create_time,
            update_time: r.update_time,
        }
    }
}

#[derive(FromRow)]
struct WarehouseRow {
    warehouse_id: Uuid,
    name: String,
    address: String,
    warehouse_type: String,
    latitude: f64,
    longitude: f64,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

impl TryFrom<WarehouseRow> for Warehouse {
    type Error = ServiceError;

    fn try_from(r: WarehouseRow) -> Result<Self, ServiceError> {
        let warehouse_type = WarehouseType::parse(&r.warehouse_type).ok_or_else(|| {
            ServiceError::Internal(format!("stored warehouse type {:?}", r.warehouse_type))
        })?;
        Ok(Warehouse {
            warehouse_id: r.warehouse_id,
            name: r.name,
            address: r.address,
            warehouse_type,
            latitude: r.latitude,
            longitude: r.longitude,
            create_time: r.create_time,
            update_time: r.update_time,
        })
    }
}

/// ALREADY_EXISTS for a taken SKU or a client-chosen id that exists; anything else as usual.
fn duplicate_product(error: sqlx::Error, product_id: Uuid, sku: &str) -> ServiceError {
    match violated_constraint(&error) {
        Some("products_sku_key") => ServiceError::AlreadyExists {
            resource: "product with sku",
            id: sku.to_owned(),
        },
        Some("products_pkey") => ServiceError::AlreadyExists {
            resource: "product",
            id: product_id.to_string(),
        },
        _ => db_error(error),
    }
}

impl Store {
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn insert_product(&self, tx: &mut Tx, p: &Product) -> Result<Product, ServiceError> {
        let sql = format!(
            "INSERT INTO products (product_id, sku, name, category, unit_of_measure, reorder_point,
                 reorder_quantity, lead_time_days, unit_cost_micros)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {PRODUCT_COLUMNS}"
        );
        sqlx::query_as::<_, ProductRow>(&(sql))
            .bind(p.product_id)
            .bind(&p.sku)
            .bind(&p.name)
            .bind(&p.category)
            .bind(&p.unit_of_measure)
            .bind(p.reorder_point)
            .bind(p.reorder_quantity)
            .bind(p.lead_time_days)
            .bind(p.unit_cost_micros)
            .fetch_one(&mut **tx)
            .await
            .map(Product::from)
            .map_err(|e| duplicate_product(e, p.product_id, &p.sku))
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn update_product(
        &self,
        tx: &mut Tx,
        product_id: Uuid,
        patch: &ProductPatch,
    ) -> Result<Product, ServiceError> {
        let sql = format!(
            "UPDATE products SET
                 sku = COALESCE($2, sku),
                 name = COALESCE($3, name),
                 category = COALESCE($4, category),
                 unit_of_measure = COALESCE($5, unit_of_measure),
                 reorder_point = COALESCE($6, reorder_point),
                 reorder_quantity = COALESCE($7, reorder_quantity),
                 lead_time_days = COALESCE($8, lead_time_days),
                 unit_cost_micros = COALESCE($9, unit_cost_micros),
                 update_time = now()
             WHERE product_id = $1 RETURNING {PRODUCT_COLUMNS}"
        );
        sqlx::query_as::<_, ProductRow>(&(sql))
            .bind(product_id)
            .bind(&patch.sku)
            .bind(&patch.name)
            .bind(&patch.category)
            .bind(&patch.unit_of_measure)
            .bind(patch.reorder_point)
            .bind(patch.reorder_quantity)
            .bind(patch.lead_time_days)
            .bind(patch.unit_cost_micros)
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| {
                duplicate_product(e, product_id, patch.sku.as_deref().unwrap_or_default())
            })?
            .map(Product::from)
            .ok_or_else(|| ServiceError::not_found("product", product_id))
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn get_product(&self, product_id: Uuid) -> Result<Product, ServiceError> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE product_id = $1");
        sqlx::query_as::<_, ProductRow>(&(sql))
            .bind(product_id)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?
            .map(Product::from)
            .ok_or_else(|| ServiceError::not_found("product", product_id))
    }

    /// The products of `ids` that exist, in no particular order.
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn get_products(&self, ids: &[Uuid]) -> Result<Vec<Product>, ServiceError> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE product_id = ANY($1)");
        let rows = sqlx::query_as::<_, ProductRow>(&sql)
            .bind(ids)
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    /// Products after `after` in id order (ids are UUIDv7, so roughly creation order).
    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn list_products(
        &self,
        after: Option<Uuid>,
        category: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Product>, ServiceError> {
        let sql = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products
             WHERE ($1::uuid IS NULL OR product_id > $1) AND ($2::text IS NULL OR category = $2)
             ORDER BY product_id LIMIT $3"
        );
        let rows = sqlx::query_as::<_, ProductRow>(&(sql))
            .bind(after)
            .bind(category)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn insert_warehouse(
        &self,
        tx: &mut Tx,
        w: &Warehouse,
    ) -> Result<Warehouse, ServiceError> {
        let sql = format!(
            "INSERT INTO warehouses (warehouse_id, name, address, warehouse_type, latitude, longitude)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {WAREHOUSE_COLUMNS}"
        );
        sqlx::query_as::<_, WarehouseRow>(&(sql))
            .bind(w.warehouse_id)
            .bind(&w.name)
            .bind(&w.address)
            .bind(w.warehouse_type.as_str())
            .bind(w.latitude)
            .bind(w.longitude)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| match violated_constraint(&e) {
                Some("warehouses_pkey") => ServiceError::AlreadyExists {
                    resource: "warehouse",
                    id: w.warehouse_id.to_string(),
                },
                _ => db_error(e),
            })?
            .try_into()
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn update_warehouse(
        &self,
        tx: &mut Tx,
        warehouse_id: Uuid,
        patch: &WarehousePatch,
    ) -> Result<Warehouse, ServiceError> {
        let sql = format!(
            "UPDATE warehouses SET
                 name = COALESCE($2, name),
                 address = COALESCE($3, address),
                 warehouse_type = COALESCE($4, warehouse_type),
                 latitude = COALESCE($5, latitude),
                 longitude = COALESCE($6, longitude),
                 update_time = now()
             WHERE warehouse_id = $1 RETURNING {WAREHOUSE_COLUMNS}"
        );
        sqlx::query_as::<_, WarehouseRow>(&(sql))
            .bind(warehouse_id)
            .bind(&patch.name)
            .bind(&patch.address)
            .bind(patch.warehouse_type.map(WarehouseType::as_str))
            .bind(patch.location.map(|l| l.0))
            .bind(patch.location.map(|l| l.1))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| ServiceError::not_found("warehouse", warehouse_id))?
            .try_into()
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn get_warehouse(&self, warehouse_id: Uuid) -> Result<Warehouse, ServiceError> {
        let sql = format!("SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE warehouse_id = $1");
        sqlx::query_as::<_, WarehouseRow>(&(sql))
            .bind(warehouse_id)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?
            .ok_or_else(|| ServiceError::not_found("warehouse", warehouse_id))?
            .try_into()
    }

    #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
    pub async fn list_warehouses(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Warehouse>, ServiceError> {
        let sql = format!(
            "SELECT {WAREHOUSE_COLUMNS} FROM warehouses
             WHERE ($1::uuid IS NULL OR warehouse_id > $1) ORDER BY warehouse_id LIMIT $2"
        );
        sqlx::query_as::<_, WarehouseRow>(&(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Warehouse::try_from)
            .collect()
    }
}

/// NOT_FOUND naming the first product or warehouse among `keys` that does not exist. Takes a
/// connection so it runs inside a caller's transaction or on its own.
pub(crate) async fn ensure_catalog(
    conn: &mut PgConnection,
    keys: &[InventoryKey],
) -> Result<(), ServiceError> {
    // Each id once, in the order first named: a batch names a product per warehouse.
    let (mut seen_products, mut seen_warehouses) = (HashSet::new(), HashSet::new());
    let products: Vec<Uuid> = keys
        .iter()
        .map(|k| k.product_id)
        .filter(|id| seen_products.insert(*id))
        .collect();
    let warehouses: Vec<Uuid> = keys
        .iter()
        .map(|k| k.warehouse_id)
        .filter(|id| seen_warehouses.insert(*id))
        .collect();
    let (missing_product, missing_warehouse): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT p FROM unnest($1::uuid[]) AS p
                  WHERE NOT EXISTS (SELECT 1 FROM products WHERE product_id = p) LIMIT 1),
                (SELECT w FROM unnest($2::uuid[]) AS w
                  WHERE NOT EXISTS (SELECT 1 FROM warehouses WHERE warehouse_id = w) LIMIT 1)",
    )
    .bind(products)
    .bind(warehouses)
    .fetch_one(conn)
    .await
    .map_err(db_error)?;
    if let Some(id) = missing_product {
        return Err(ServiceError::not_found("product", id));
    }
    if let Some(id) = missing_warehouse {
        return Err(ServiceError::not_found("warehouse", id));
    }
    Ok(())
}

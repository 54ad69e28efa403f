//! Requests to validated commands ("parse, don't validate"): every bad field is named in one
//! INVALID_ARGUMENT, and the handlers only ever see valid values.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use inventory_core::field_mask::mask_paths;
use inventory_core::time::from_timestamp;
use inventory_core::{ServiceError, Violations};
use inventory_proto::stock::v1 as pb;
use uuid::Uuid;

use crate::domain::catalog::{ProductPatch, WarehousePatch, WarehouseType};
use crate::domain::movement::{InventoryKey, TxnType};

/// Most lines one ReserveOrder may carry.
pub const MAX_ORDER_LINES: usize = 500;
/// Most keys one BatchGetAvailability may ask for.
pub const MAX_BATCH_KEYS: usize = 1000;
/// Most orders, and most lines in all, one BatchReserveOrders may carry.
pub const MAX_BATCH_ORDERS: usize = 1000;
pub const MAX_BATCH_ORDER_LINES: usize = 10_000;
/// Longest lead time accepted, in days.
const MAX_LEAD_TIME_DAYS: i32 = 3650;

fn key(
    v: &mut Violations,
    prefix: &str,
    product_id: &str,
    warehouse_id: &str,
) -> Option<InventoryKey> {
    let product_id = v.uuid(&format!("{prefix}product_id"), product_id);
    let warehouse_id = v.uuid(&format!("{prefix}warehouse_id"), warehouse_id);
    Some(InventoryKey {
        product_id: product_id?,
        warehouse_id: warehouse_id?,
    })
}

/// Turns collected violations into the error, or unwraps the parsed value.
fn done<T>(v: Violations, value: Option<T>) -> Result<T, ServiceError> {
    v.finish()?;
    value.ok_or_else(|| ServiceError::Internal("parsed value missing without a violation".into()))
}

fn warehouse_type(v: &mut Violations, field: &str, value: i32) -> Option<WarehouseType> {
    v.known_enum::<pb::WarehouseType>(field, value)
        .map(|t| match t {
            pb::WarehouseType::Retail => WarehouseType::Retail,
            pb::WarehouseType::Distribution => WarehouseType::Distribution,
            _ => WarehouseType::Fulfillment,
        })
}

fn location(v: &mut Violations, field: &str, value: Option<&pb::GeoPoint>) -> Option<(f64, f64)> {
    let point = v.present(field, value)?;
    let lat = v.in_range(&format!("{field}.latitude"), point.latitude, -90.0, 90.0);
    let lon = v.in_range(
        &format!("{field}.longitude"),
        point.longitude,
        -180.0,
        180.0,
    );
    Some((lat?, lon?))
}

/// An optional expiry. Whether it is still in the future is decided by the handler: a retry
/// must replay its first answer even after the expiry it asked for has passed.
fn expiry(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<Option<DateTime<Utc>>> {
    let Some(t) = value else { return Some(None) };
    match from_timestamp(field, t) {
        Ok(at) => Some(Some(at)),
        Err(_) => {
            v.add(field, "is not a valid timestamp");
            None
        }
    }
}

/// A validated new product (without its timestamps).
pub struct NewProduct {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub unit_of_measure: String,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub lead_time_days: i32,
    pub unit_cost_micros: i64,
}

pub fn create_product(
    req: &pb::CreateProductRequest,
) -> Result<(String, NewProduct), ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let product = v.present("product", req.product.as_ref());
    let parsed = product.and_then(|p| {
        let id = v.optional_uuid("product.product_id", &p.product_id);
        let f = product_fields(&mut v, p, &ALL_PRODUCT_FIELDS);
        Some(NewProduct {
            product_id: id?.unwrap_or_else(Uuid::now_v7),
            sku: f.sku?,
            name: f.name?,
            category: f.category?,
            unit_of_measure: f.unit_of_measure?,
            reorder_point: f.reorder_point?,
            reorder_quantity: f.reorder_quantity?,
            lead_time_days: f.lead_time_days?,
            unit_cost_micros: f.unit_cost_micros?,
        })
    });
    let parsed = request_id.zip(parsed);
    done(v, parsed)
}

const ALL_PRODUCT_FIELDS: [&str; 8] = [
    "sku",
    "name",
    "category",
    "unit_of_measure",
    "reorder_point",
    "reorder_quantity",
    "lead_time_days",
    "unit_cost_micros",
];

/// Parses the named fields of a product; every other field is left `None`.
fn product_fields(v: &mut Violations, p: &pb::Product, fields: &[&str]) -> ProductPatch {
    let mut patch = ProductPatch::default();
    for field in fields {
        let path = format!("product.{field}");
        match *field {
            "sku" => patch.sku = v.key(&path, &p.sku),
            "name" => patch.name = v.text(&path, &p.name),
            "category" => patch.category = v.optional_text(&path, &p.category),
            "unit_of_measure" => patch.unit_of_measure = v.key(&path, &p.unit_of_measure),
            "reorder_point" => patch.reorder_point = v.quantity_or_zero(&path, p.reorder_point),
            "reorder_quantity" => {
                patch.reorder_quantity = v.quantity_or_zero(&path, p.reorder_quantity)
            }
            "lead_time_days" => {
                patch.lead_time_days = v.in_range(&path, p.lead_time_days, 0, MAX_LEAD_TIME_DAYS)
            }
            "unit_cost_micros" => {
                patch.unit_cost_micros = v.unit_cost_micros(&path, p.unit_cost_micros)
            }
            // mask_paths let only the fields above through.
            _ => {}
        }
    }
    patch
}

pub fn update_product(
    req: &pb::UpdateProductRequest,
) -> Result<(String, Uuid, ProductPatch), ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let paths = mask_paths(&mut v, req.update_mask.as_ref(), &ALL_PRODUCT_FIELDS);
    let parsed = v.present("product", req.product.as_ref()).and_then(|p| {
        let id = v.uuid("product.product_id", &p.product_id);
        let patch = product_fields(&mut v, p, &paths);
        Some((id?, patch))
    });
    let parsed = request_id
        .zip(parsed)
        .map(|(r, (id, patch))| (r, id, patch));
    done(v, parsed)
}

const ALL_WAREHOUSE_FIELDS: [&str; 4] = ["name", "address", "type", "location"];

fn warehouse_fields(v: &mut Violations, w: &pb::Warehouse, fields: &[&str]) -> WarehousePatch {
    let mut patch = WarehousePatch::default();
    for field in fields {
        let path = format!("warehouse.{field}");
        match *field {
            "name" => patch.name = v.text(&path, &w.name),
            "address" => patch.address = v.optional_text(&path, &w.address),
            "type" => patch.warehouse_type = warehouse_type(v, &path, w.r#type),
            "location" => patch.location = location(v, &path, w.location.as_ref()),
            // mask_paths let only the fields above through.
            _ => {}
        }
    }
    patch
}

pub struct NewWarehouse {
    pub warehouse_id: Uuid,
    pub name: String,
    pub address: String,
    pub warehouse_type: WarehouseType,
    pub location: (f64, f64),
}

pub fn create_warehouse(
    req: &pb::CreateWarehouseRequest,
) -> Result<(String, NewWarehouse), ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let parsed = v
        .present("warehouse", req.warehouse.as_ref())
        .and_then(|w| {
            let id = v.optional_uuid("warehouse.warehouse_id", &w.warehouse_id);
            let patch = warehouse_fields(&mut v, w, &ALL_WAREHOUSE_FIELDS);
            Some(NewWarehouse {
                warehouse_id: id?.unwrap_or_else(Uuid::now_v7),
                name: patch.name?,
                address: patch.address?,
                warehouse_type: patch.warehouse_type?,
                location: patch.location?,
            })
        });
    let parsed = request_id.zip(parsed);
    done(v, parsed)
}

pub fn update_warehouse(
    req: &pb::UpdateWarehouseRequest,
) -> Result<(String, Uuid, WarehousePatch), ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let paths = mask_paths(&mut v, req.update_mask.as_ref(), &ALL_WAREHOUSE_FIELDS);
    let parsed = v
        .present("warehouse", req.warehouse.as_ref())
        .and_then(|w| {
            let id = v.uuid("warehouse.warehouse_id", &w.warehouse_id);
            let patch = warehouse_fields(&mut v, w, &paths);
            Some((id?, patch))
        });
    let parsed = request_id
        .zip(parsed)
        .map(|(r, (id, patch))| (r, id, patch));
    done(v, parsed)
}

/// Fields common to every movement request.
pub struct Envelope {
    pub request_id: String,
    pub actor: String,
}

fn envelope(v: &mut Violations, request_id: &str, actor: &str) -> Option<Envelope> {
    let request_id = v.request_id("request_id", request_id);
    let actor = v.optional_key("actor", actor);
    Some(Envelope {
        request_id: request_id?,
        actor: actor?.unwrap_or_default(),
    })
}

pub struct Receive {
    pub envelope: Envelope,
    pub key: InventoryKey,
    pub quantity: i64,
    pub reference_id: String,
}

pub fn receive(req: &pb::ReceiveStockRequest) -> Result<Receive, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let key = key(&mut v, "", &req.product_id, &req.warehouse_id);
    let quantity = v.positive("quantity", req.quantity);
    let reference_id = v.optional_key("reference_id", &req.reference_id);
    let parsed = (|| {
        Some(Receive {
            envelope: envelope?,
            key: key?,
            quantity: quantity?,
            reference_id: reference_id?.unwrap_or_default(),
        })
    })();
    done(v, parsed)
}

pub struct ReserveLine {
    pub order_line_id: String,
    pub key: InventoryKey,
    pub quantity: i64,
}

pub struct Reserve {
    pub envelope: Envelope,
    pub order_id: String,
    pub lines: Vec<ReserveLine>,
    pub expire_time: Option<DateTime<Utc>>,
}

fn reserve_line(
    v: &mut Violations,
    prefix: &str,
    line: &pb::ReservationLine,
) -> Option<ReserveLine> {
    let order_line_id = v.key(&format!("{prefix}order_line_id"), &line.order_line_id);
    let key = key(v, prefix, &line.product_id, &line.warehouse_id);
    let quantity = v.positive(&format!("{prefix}quantity"), line.quantity);
    Some(ReserveLine {
        order_line_id: order_line_id?,
        key: key?,
        quantity: quantity?,
    })
}

pub fn reserve_one(req: &pb::ReserveStockRequest) -> Result<Reserve, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let order_id = v.key("order_id", &req.order_id);
    let line = v
        .present("line", req.line.as_ref())
        .and_then(|l| reserve_line(&mut v, "line.", l));
    let expire_time = expiry(&mut v, "expire_time", req.expire_time.as_ref());
    let parsed = (|| {
        Some(Reserve {
            envelope: envelope?,
            order_id: order_id?,
            lines: vec![line?],
            expire_time: expire_time?,
        })
    })();
    done(v, parsed)
}

/// The batch as a whole: how many orders and lines, and no request id twice (each order's
/// own fields are its entry's business).
pub fn batch_reserve_orders(req: &pb::BatchReserveOrdersRequest) -> Result<(), ServiceError> {
    let mut v = Violations::new();
    v.item_count("orders", req.orders.len(), MAX_BATCH_ORDERS, "orders");
    let lines: usize = req.orders.iter().map(|o| o.lines.len()).sum();
    if lines > MAX_BATCH_ORDER_LINES {
        v.add(
            "orders",
            format!("must hold at most {MAX_BATCH_ORDER_LINES} lines in all, got {lines}"),
        );
    }
    let mut seen = HashSet::new();
    for (i, order) in req.orders.iter().enumerate() {
        if !order.request_id.is_empty() && !seen.insert(order.request_id.as_str()) {
            v.add(
                format!("orders[{i}].request_id"),
                "repeats the request id of an earlier order",
            );
        }
    }
    v.finish()
}

pub fn reserve_order(req: &pb::ReserveOrderRequest) -> Result<Reserve, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let order_id = v.key("order_id", &req.order_id);
    let expire_time = expiry(&mut v, "expire_time", req.expire_time.as_ref());
    v.item_count("lines", req.lines.len(), MAX_ORDER_LINES, "lines");
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, line) in req.lines.iter().enumerate() {
        if let Some(parsed) = reserve_line(&mut v, &format!("lines[{i}]."), line) {
            if !seen.insert((parsed.order_line_id.clone(), parsed.key.warehouse_id)) {
                v.add(
                    format!("lines[{i}]"),
                    "repeats an (order_line_id, warehouse_id) pair of an earlier line",
                );
            }
            lines.push(parsed);
        }
    }
    let parsed = (|| {
        Some(Reserve {
            envelope: envelope?,
            order_id: order_id?,
            lines,
            expire_time: expire_time?,
        })
    })();
    done(v, parsed)
}

pub struct Release {
    pub envelope: Envelope,
    pub order_id: String,
    pub order_line_id: Option<String>,
    pub warehouse_id: Option<Uuid>,
    pub quantity: Option<i64>,
    pub reason: String,
}

pub fn release(req: &pb::ReleaseReservationRequest) -> Result<Release, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let order_id = v.key("order_id", &req.order_id);
    let order_line_id = v.optional_key("order_line_id", &req.order_line_id);
    let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
    let quantity = v
        .quantity_or_zero("quantity", req.quantity)
        .map(|q| (q > 0).then_some(q));
    let reason = v.optional_text("reason", &req.reason);
    let parsed = (|| {
        Some(Release {
            envelope: envelope?,
            order_id: order_id?,
            order_line_id: order_line_id?,
            warehouse_id: warehouse_id?,
            quantity: quantity?,
            reason: reason?,
        })
    })();
    done(v, parsed)
}

pub struct Ship {
    pub envelope: Envelope,
    pub order_id: String,
    pub order_line_id: String,
    pub warehouse_id: Uuid,
    pub quantity: i64,
}

pub fn ship(req: &pb::ShipReservationRequest) -> Result<Ship, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let order_id = v.key("order_id", &req.order_id);
    let order_line_id = v.key("order_line_id", &req.order_line_id);
    let warehouse_id = v.uuid("warehouse_id", &req.warehouse_id);
    let quantity = v.positive("quantity", req.quantity);
    let parsed = (|| {
        Some(Ship {
            envelope: envelope?,
            order_id: order_id?,
            order_line_id: order_line_id?,
            warehouse_id: warehouse_id?,
            quantity: quantity?,
        })
    })();
    done(v, parsed)
}

pub struct Adjust {
    pub envelope: Envelope,
    pub key: InventoryKey,
    pub quantity_delta: i64,
    pub reason: String,
    pub reference_id: String,
    pub expected_on_hand: Option<i64>,
}

pub fn adjust(req: &pb::AdjustStockRequest) -> Result<Adjust, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let key = key(&mut v, "", &req.product_id, &req.warehouse_id);
    let quantity_delta = if req.quantity_delta == 0 {
        v.add("quantity_delta", "must be a non-zero change of on hand");
        None
    } else {
        v.positive("quantity_delta", req.quantity_delta.saturating_abs())
            .map(|_| req.quantity_delta)
    };
    let reason = v.text("reason", &req.reason);
    let reference_id = v.optional_key("reference_id", &req.reference_id);
    let expected_on_hand = match req.expected_on_hand {
        Some(e) => v.quantity_or_zero("expected_on_hand", e).map(Some),
        None => Some(None),
    };
    let parsed = (|| {
        Some(Adjust {
            envelope: envelope?,
            key: key?,
            quantity_delta: quantity_delta?,
            reason: reason?,
            reference_id: reference_id?.unwrap_or_default(),
            expected_on_hand: expected_on_hand?,
        })
    })();
    done(v, parsed)
}

pub struct Transfer {
    pub envelope: Envelope,
    pub from: InventoryKey,
    pub to: InventoryKey,
    pub quantity: i64,
    pub reference_id: String,
}

pub fn transfer(req: &pb::TransferStockRequest) -> Result<Transfer, ServiceError> {
    let mut v = Violations::new();
    let envelope = envelope(&mut v, &req.request_id, &req.actor);
    let product_id = v.uuid("product_id", &req.product_id);
    let from = v.uuid("from_warehouse_id", &req.from_warehouse_id);
    let to = v.uuid("to_warehouse_id", &req.to_warehouse_id);
    if from.is_some() && from == to {
        v.add("to_warehouse_id", "must differ from from_warehouse_id");
    }
    let quantity = v.positive("quantity", req.quantity);
    let reference_id = v.optional_key("reference_id", &req.reference_id);
    let parsed = (|| {
        let envelope = envelope?;
        let reference_id = reference_id?.unwrap_or_else(|| envelope.request_id.clone());
        Some(Transfer {
            from: InventoryKey {
                product_id: product_id?,
                warehouse_id: from?,
            },
            to: InventoryKey {
                product_id: product_id?,
                warehouse_id: to?,
            },
            quantity: quantity?,
            reference_id,
            envelope,
        })
    })();
    done(v, parsed)
}

pub fn inventory_key(product_id: &str, warehouse_id: &str) -> Result<InventoryKey, ServiceError> {
    let mut v = Violations::new();
    let parsed = key(&mut v, "", product_id, warehouse_id);
    done(v, parsed)
}

pub fn batch_keys(
    req: &pb::BatchGetAvailabilityRequest,
) -> Result<Vec<InventoryKey>, ServiceError> {
    let mut v = Violations::new();
    v.item_count("keys", req.keys.len(), MAX_BATCH_KEYS, "keys");
    let keys: Vec<Option<InventoryKey>> = req
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            key(
                &mut v,
                &format!("keys[{i}]."),
                &k.product_id,
                &k.warehouse_id,
            )
        })
        .collect();
    v.finish()?;
    Ok(keys.into_iter().flatten().collect())
}

/// The ids of a BatchGetProducts: 1 to 1000, each a UUID, none repeated.
pub fn product_ids(ids: &[String]) -> Result<Vec<Uuid>, ServiceError> {
    let mut v = Violations::new();
    v.item_count("product_ids", ids.len(), MAX_BATCH_KEYS, "product ids");
    if ids.len() > MAX_BATCH_KEYS {
        return v.finish().map(|()| Vec::new());
    }
    let mut seen = std::collections::HashSet::new();
    let parsed: Vec<Option<Uuid>> = ids
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let field = format!("product_ids[{i}]");
            let id = v.uuid(&field, raw)?;
            if !seen.insert(id) {
                v.add(&field, "repeats an earlier id");
            }
            Some(id)
        })
        .collect();
    v.finish()?;
    Ok(parsed.into_iter().flatten().collect())
}

/// A UUID inside a page token's position. Tokens are signed, so a bad one means a token
/// of an older format, not a forgery.
pub fn token_uuid(value: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(value).map_err(|_| bad_token())
}

pub fn bad_token() -> ServiceError {
    ServiceError::invalid("page_token", "is not a page token this service issued")
}

pub fn txn_type_filter(value: i32) -> Result<Option<TxnType>, ServiceError> {
    match pb::TransactionType::try_from(value) {
        Ok(pb::TransactionType::Unspecified) => Ok(None),
        Ok(pb::TransactionType::Receive) => Ok(Some(TxnType::Receive)),
        Ok(pb::TransactionType::Reserve) => Ok(Some(TxnType::Reserve)),
        Ok(pb::TransactionType::Release) => Ok(Some(TxnType::Release)),
        Ok(pb::TransactionType::Ship) => Ok(Some(TxnType::Ship)),
        Ok(pb::TransactionType::Adjust) => Ok(Some(TxnType::Adjust)),
        Ok(pb::TransactionType::Transfer) => Ok(Some(TxnType::Transfer)),
        Err(_) => Err(ServiceError::invalid(
            "txn_type",
            format!("unknown value {value}"),
        )),
    }
}

/// Every request stock validates, fuzzed from a valid seed (see the test kit's `fuzz`): no
/// input panics, and every refusal names its fields.
#[cfg(test)]
mod fuzz {
    use inventory_testkit::fuzz::{cases, mutated, refusal_is_specific};
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "0190b5f6-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
    const OTHER: &str = "0190b5f6-1c2d-7e3f-8a4b-5c6d7e8f9a0c";

    fn product() -> pb::Product {
        pb::Product {
            product_id: ID.into(),
            sku: "SKU-1".into(),
            name: "Mug".into(),
            category: "kitchen".into(),
            unit_of_measure: "each".into(),
            reorder_point: 10,
            reorder_quantity: 40,
            lead_time_days: 7,
            unit_cost_micros: 2_500_000,
            ..Default::default()
        }
    }

    fn warehouse() -> pb::Warehouse {
        pb::Warehouse {
            warehouse_id: ID.into(),
            name: "Berlin".into(),
            address: "Mitte".into(),
            r#type: pb::WarehouseType::Distribution.into(),
            location: Some(pb::GeoPoint {
                latitude: 52.52,
                longitude: 13.405,
            }),
            ..Default::default()
        }
    }

    fn line() -> pb::ReservationLine {
        pb::ReservationLine {
            order_line_id: "1".into(),
            product_id: ID.into(),
            warehouse_id: OTHER.into(),
            quantity: 3,
        }
    }

    fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn create_product(req in mutated(pb::CreateProductRequest {
            request_id: ID.into(),
            product: Some(product()),
        })) {
            refusal_is_specific(&super::create_product(&req))?;
        }

        #[test]
        fn update_product(req in mutated(pb::UpdateProductRequest {
            request_id: ID.into(),
            product: Some(product()),
            update_mask: mask(&["name", "unit_cost_micros"]),
        })) {
            refusal_is_specific(&super::update_product(&req))?;
        }

        #[test]
        fn create_warehouse(req in mutated(pb::CreateWarehouseRequest {
            request_id: ID.into(),
            warehouse: Some(warehouse()),
        })) {
            refusal_is_specific(&super::create_warehouse(&req))?;
        }

        #[test]
        fn update_warehouse(req in mutated(pb::UpdateWarehouseRequest {
            request_id: ID.into(),
            warehouse: Some(warehouse()),
            update_mask: mask(&["location"]),
        })) {
            refusal_is_specific(&super::update_warehouse(&req))?;
        }

        #[test]
        fn receive(req in mutated(pb::ReceiveStockRequest {
            request_id: ID.into(),
            product_id: ID.into(),
            warehouse_id: OTHER.into(),
            quantity: 5,
            reference_id: "PO-1".into(),
            actor: "dock-3".into(),
        })) {
            refusal_is_specific(&super::receive(&req))?;
        }

        #[test]
        fn reserve_one(req in mutated(pb::ReserveStockRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            line: Some(line()),
            expire_time: Some(prost_types::Timestamp { seconds: 4_000_000_000, nanos: 0 }),
            actor: "checkout".into(),
        })) {
            refusal_is_specific(&super::reserve_one(&req))?;
        }

        #[test]
        fn reserve_order(req in mutated(pb::ReserveOrderRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            lines: vec![line(), pb::ReservationLine { order_line_id: "2".into(), ..line() }],
            expire_time: None,
            actor: "checkout".into(),
        })) {
            refusal_is_specific(&super::reserve_order(&req))?;
        }

        #[test]
        fn release(req in mutated(pb::ReleaseReservationRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            order_line_id: "1".into(),
            warehouse_id: OTHER.into(),
            ..Default::default()
        })) {
            refusal_is_specific(&super::release(&req))?;
        }

        #[test]
        fn ship(req in mutated(pb::ShipReservationRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            order_line_id: "1".into(),
            warehouse_id: OTHER.into(),
            quantity: 2,
            ..Default::default()
        })) {
            refusal_is_specific(&super::ship(&req))?;
        }

        #[test]
        fn adjust(req in mutated(pb::AdjustStockRequest {
            request_id: ID.into(),
            product_id: ID.into(),
            warehouse_id: OTHER.into(),
            quantity_delta: -4,
            reason: "damaged".into(),
            expected_on_hand: Some(10),
            ..Default::default()
        })) {
            refusal_is_specific(&super::adjust(&req))?;
        }

        #[test]
        fn transfer(req in mutated(pb::TransferStockRequest {
            request_id: ID.into(),
            product_id: ID.into(),
            from_warehouse_id: ID.into(),
            to_warehouse_id: OTHER.into(),
            quantity: 4,
            ..Default::default()
        })) {
            refusal_is_specific(&super::transfer(&req))?;
        }

        #[test]
        fn keys_tokens_and_filters(
            product_id in any::<String>(),
            warehouse_id in any::<String>(),
            ids in prop::collection::vec(any::<String>(), 0..4),
            token in any::<String>(),
            txn_type in any::<i32>(),
        ) {
            refusal_is_specific(&inventory_key(&product_id, &warehouse_id))?;
            refusal_is_specific(&product_ids(&ids))?;
            refusal_is_specific(&token_uuid(&token))?;
            refusal_is_specific(&txn_type_filter(txn_type))?;
        }
    }
}

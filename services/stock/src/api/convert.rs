//! Domain and store values to proto messages.

use inventory_core::time::timestamp;
use inventory_proto::stock::v1 as pb;

use crate::domain::catalog::{Product, Warehouse, WarehouseType};
use crate::domain::movement::TxnType;
use crate::domain::reservation::{Reservation, ReservationStatus};
use crate::store::{InventoryRow, TxnRecord};

pub fn product(p: Product) -> pb::Product {
    pb::Product {
        product_id: p.product_id.to_string(),
        sku: p.sku,
        name: p.name,
        category: p.category,
        unit_of_measure: p.unit_of_measure,
        reorder_point: p.reorder_point,
        reorder_quantity: p.reorder_quantity,
        lead_time_days: p.lead_time_days,
        unit_cost_micros: p.unit_cost_micros,
        create_time: Some(timestamp(p.create_time)),
        update_time: Some(timestamp(p.update_time)),
    }
}

pub fn warehouse_type(t: WarehouseType) -> pb::WarehouseType {
    match t {
        WarehouseType::Fulfillment => pb::WarehouseType::Fulfillment,
        WarehouseType::Distribution => pb::WarehouseType::Distribution,
        WarehouseType::Retail => pb::WarehouseType::Retail,
    }
}

pub fn warehouse(w: Warehouse) -> pb::Warehouse {
    pb::Warehouse {
        warehouse_id: w.warehouse_id.to_string(),
        name: w.name,
        address: w.address,
        r#type: warehouse_type(w.warehouse_type).into(),
        location: Some(pb::GeoPoint {
            latitude: w.latitude,
            longitude: w.longitude,
        }),
        create_time: Some(timestamp(w.create_time)),
        update_time: Some(timestamp(w.update_time)),
    }
}

pub fn inventory(r: &InventoryRow) -> pb::Inventory {
    pb::Inventory {
        inventory_id: r.inventory_id.to_string(),
        product_id: r.product_id.to_string(),
        warehouse_id: r.warehouse_id.to_string(),
        quantity_on_hand: r.quantity_on_hand,
        quantity_reserved: r.quantity_reserved,
        quantity_available: r.quantity_available,
        last_updated: Some(timestamp(r.last_updated)),
    }
}

pub fn txn_type(t: TxnType) -> pb::TransactionType {
    match t {
        TxnType::Receive => pb::TransactionType::Receive,
        TxnType::Reserve => pb::TransactionType::Reserve,
        TxnType::Release => pb::TransactionType::Release,
        TxnType::Ship => pb::TransactionType::Ship,
        TxnType::Adjust => pb::TransactionType::Adjust,
        TxnType::Transfer => pb::TransactionType::Transfer,
    }
}

pub fn transaction(t: &TxnRecord) -> pb::InventoryTransaction {
    pb::InventoryTransaction {
        txn_id: t.txn_id.to_string(),
        sequence: t.sequence,
        product_id: t.product_id.to_string(),
        warehouse_id: t.warehouse_id.to_string(),
        txn_type: TxnType::parse(&t.txn_type)
            .map_or(pb::TransactionType::Unspecified, txn_type)
            .into(),
        quantity: t.quantity,
        on_hand_delta: t.on_hand_delta,
        reserved_delta: t.reserved_delta,
        on_hand_after: t.on_hand_after,
        reserved_after: t.reserved_after,
        reference_id: t.reference_id.clone(),
        reason: t.reason.clone(),
        actor: t.actor.clone(),
        request_id: t.request_id.clone(),
        create_time: Some(timestamp(t.created_at)),
    }
}

pub fn reservation(r: &Reservation) -> pb::Reservation {
    let status = match r.status {
        ReservationStatus::Active => pb::ReservationStatus::Active,
        ReservationStatus::Shipped => pb::ReservationStatus::Shipped,
        ReservationStatus::Released => pb::ReservationStatus::Released,
        ReservationStatus::Expired => pb::ReservationStatus::Expired,
    };
    pb::Reservation {
        reservation_id: r.reservation_id.to_string(),
        order_id: r.order_id.clone(),
        order_line_id: r.order_line_id.clone(),
        product_id: r.key.product_id.to_string(),
        warehouse_id: r.key.warehouse_id.to_string(),
        status: status.into(),
        quantity_requested: r.quantity_requested,
        quantity_held: r.quantity_held,
        quantity_shipped: r.quantity_shipped,
        quantity_released: r.quantity_released,
        expire_time: r.expire_time.map(timestamp),
        create_time: Some(timestamp(r.create_time)),
        update_time: Some(timestamp(r.update_time)),
    }
}

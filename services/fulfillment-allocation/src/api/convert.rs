//! Stored allocations and profiles to proto messages.

use std::collections::{BTreeMap, HashMap};

use inventory_core::time::timestamp;
use inventory_proto::allocation::v1 as pb;
use prost::Message;
use uuid::Uuid;

use crate::domain::explain::{PassOver, Passed};
use crate::store::{Allocation, Profile, Status};

pub fn status(s: Status) -> pb::AllocationStatus {
    match s {
        Status::Allocated => pb::AllocationStatus::Allocated,
        Status::PartiallyShipped => pb::AllocationStatus::PartiallyShipped,
        Status::Shipped => pb::AllocationStatus::Shipped,
        Status::Cancelled => pb::AllocationStatus::Cancelled,
    }
}

/// The passed-over warehouses of one line, as stored with it.
pub fn passed_over(passed: &[Passed], warehouse_ids: &[Uuid]) -> Vec<u8> {
    let passed_over = passed
        .iter()
        .map(|p| {
            let (reason, available) = match p.why {
                PassOver::NoStock { available } => (pb::PassOverReason::NoStock, available),
                PassOver::AtCapacity => (pb::PassOverReason::AtCapacity, 0),
                PassOver::Paused => (pb::PassOverReason::Paused, 0),
                PassOver::NoCoordinates => (pb::PassOverReason::NoCoordinates, 0),
                PassOver::Consolidation => (pb::PassOverReason::Consolidation, 0),
                PassOver::Workload => (pb::PassOverReason::Workload, 0),
            };
            pb::PassedOver {
                warehouse_id: warehouse_ids[p.site].to_string(),
                distance_km: p.distance_km.unwrap_or(-1.0),
                reason: reason.into(),
                available,
            }
        })
        .collect();
    pb::LineAllocation {
        passed_over,
        ..Default::default()
    }
    .encode_to_vec()
}

pub fn allocation(a: &Allocation, names: &HashMap<Uuid, String>) -> pb::Allocation {
    let mut shipments: BTreeMap<Uuid, pb::Shipment> = BTreeMap::new();
    let mut lines: BTreeMap<&str, pb::LineAllocation> = BTreeMap::new();
    for row in &a.lines {
        let shipment = shipments
            .entry(row.warehouse_id)
            .or_insert_with(|| pb::Shipment {
                warehouse_id: row.warehouse_id.to_string(),
                warehouse_name: names.get(&row.warehouse_id).cloned().unwrap_or_default(),
                distance_km: row.distance_km.unwrap_or(-1.0),
                lines: Vec::new(),
            });
        shipment.lines.push(pb::ShipmentLine {
            order_line_id: row.order_line_id.clone(),
            product_id: row.product_id.to_string(),
            quantity: row.quantity,
            quantity_shipped: row.quantity_shipped,
        });
        let line = lines.entry(&row.order_line_id).or_insert_with(|| {
            let stored = pb::LineAllocation::decode(row.passed_over.as_slice()).unwrap_or_default();
            pb::LineAllocation {
                order_line_id: row.order_line_id.clone(),
                product_id: row.product_id.to_string(),
                quantity: row.line_quantity,
                sources: Vec::new(),
                reason: row.reason.clone(),
                passed_over: stored.passed_over,
            }
        });
        line.sources.push(pb::LineSource {
            warehouse_id: row.warehouse_id.to_string(),
            quantity: row.quantity,
            quantity_shipped: row.quantity_shipped,
        });
    }
    let mut shipments: Vec<pb::Shipment> = shipments.into_values().collect();
    shipments.sort_by(|x, y| x.distance_km.total_cmp(&y.distance_km));
    pb::Allocation {
        order_id: a.order_id.clone(),
        status: status(a.status).into(),
        destination: Some(pb::Destination {
            latitude: a.latitude,
            longitude: a.longitude,
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }),
        shipments,
        lines: lines.into_values().collect(),
        shortfalls: a
            .shortfalls
            .iter()
            .map(|s| pb::LineShortfall {
                order_line_id: s.order_line_id.clone(),
                requested: s.requested,
                allocated: s.allocated,
            })
            .collect(),
        create_time: Some(timestamp(a.create_time)),
        update_time: Some(timestamp(a.update_time)),
    }
}

pub fn profile(
    warehouse: &inventory_proto::stock::v1::Warehouse,
    profile: Option<&Profile>,
) -> pb::WarehouseProfile {
    pb::WarehouseProfile {
        warehouse_id: warehouse.warehouse_id.clone(),
        name: warehouse.name.clone(),
        has_coordinates: warehouse.location.is_some(),
        capacity_lines: profile.and_then(|p| p.capacity_lines),
        open_lines: profile.map_or(0, |p| p.open_lines),
        paused: profile.is_some_and(|p| p.paused),
    }
}

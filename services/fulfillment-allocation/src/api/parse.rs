//! Requests to validated commands: every bad field named in one INVALID_ARGUMENT.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use inventory_core::time::from_timestamp;
use inventory_core::{ServiceError, Violations};
use inventory_proto::allocation::v1 as pb;
use uuid::Uuid;

use crate::domain::geo::GeoPoint;
use crate::domain::planner::{Line, Options};
use crate::store::Status;

/// Most lines one order may carry.
pub const MAX_LINES: usize = 200;
/// Most warehouses one order may ship from.
pub const MAX_SHIPMENTS: i32 = 50;
/// Shipments allowed when the request says 0.
pub const DEFAULT_MAX_SHIPMENTS: usize = 5;

fn done<T>(v: Violations, value: Option<T>) -> Result<T, ServiceError> {
    v.finish()?;
    value.ok_or_else(|| ServiceError::Internal("parsed value missing without a violation".into()))
}

pub struct Destination {
    pub point: GeoPoint,
    pub postal_code: String,
    pub country: String,
}

pub struct Allocate {
    pub request_id: String,
    pub order_id: String,
    pub destination: Destination,
    pub lines: Vec<Line>,
    pub options: Options,
    pub expire_time: Option<DateTime<Utc>>,
    pub actor: String,
}

fn destination(v: &mut Violations, value: Option<&pb::Destination>) -> Option<Destination> {
    let d = v.present("destination", value)?;
    let latitude = v.in_range("destination.latitude", d.latitude, -90.0, 90.0);
    let longitude = v.in_range("destination.longitude", d.longitude, -180.0, 180.0);
    let postal_code = short_text(v, "destination.postal_code", &d.postal_code, 32);
    let country = short_text(v, "destination.country", &d.country, 64);
    Some(Destination {
        point: GeoPoint {
            latitude: latitude?,
            longitude: longitude?,
        },
        postal_code: postal_code?,
        country: country?,
    })
}

fn short_text(v: &mut Violations, field: &str, value: &str, max: usize) -> Option<String> {
    let text = v.optional_text(field, value)?;
    if text.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        return None;
    }
    Some(text)
}

pub fn allocate(req: &pb::AllocateOrderRequest) -> Result<Allocate, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let order_id = v.key("order_id", &req.order_id);
    let destination = destination(&mut v, req.destination.as_ref());
    let actor = v
        .optional_key("actor", &req.actor)
        .map(Option::unwrap_or_default);
    v.item_count("lines", req.lines.len(), MAX_LINES, "lines");
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, line) in req.lines.iter().enumerate() {
        let line_id = v.key(&format!("lines[{i}].order_line_id"), &line.order_line_id);
        let product_id = v.uuid(&format!("lines[{i}].product_id"), &line.product_id);
        let quantity = v.positive(&format!("lines[{i}].quantity"), line.quantity);
        if let Some(id) = &line_id
            && !seen.insert(id.clone())
        {
            v.add(
                format!("lines[{i}].order_line_id"),
                "repeats the order_line_id of an earlier line",
            );
        }
        if let (Some(line_id), Some(product_id), Some(quantity)) = (line_id, product_id, quantity) {
            lines.push(Line {
                line_id,
                product_id,
                quantity,
            });
        }
    }
    let options = req.options.unwrap_or_default();
    let max_shipments = match options.max_shipments {
        0 => Some(DEFAULT_MAX_SHIPMENTS),
        n => v
            .in_range("options.max_shipments", n, 1, MAX_SHIPMENTS)
            .map(|n| n as usize),
    };
    // Whether it is still in the future is decided by the handler: a retry must replay its
    // first answer even after the expiry it asked for has passed.
    let expire_time = match &options.reservation_expire_time {
        None => Some(None),
        Some(t) => match from_timestamp("options.reservation_expire_time", t) {
            Ok(at) => Some(Some(at)),
            Err(_) => {
                v.add(
                    "options.reservation_expire_time",
                    "is not a valid timestamp",
                );
                None
            }
        },
    };
    let parsed = (|| {
        Some(Allocate {
            request_id: request_id?,
            order_id: order_id?,
            destination: destination?,
            lines,
            options: Options {
                allow_split: !options.single_shipment_only,
                max_shipments: max_shipments?,
                allow_partial: options.allow_partial,
            },
            expire_time: expire_time?,
            actor: actor?,
        })
    })();
    done(v, parsed)
}

pub struct Cancel {
    pub request_id: String,
    pub order_id: String,
    pub reason: String,
    pub actor: String,
}

pub fn cancel(req: &pb::CancelAllocationRequest) -> Result<Cancel, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let order_id = v.key("order_id", &req.order_id);
    let reason = v.optional_text("reason", &req.reason);
    let actor = v
        .optional_key("actor", &req.actor)
        .map(Option::unwrap_or_default);
    let parsed = (|| {
        Some(Cancel {
            request_id: request_id?,
            order_id: order_id?,
            reason: reason?,
            actor: actor?,
        })
    })();
    done(v, parsed)
}

pub struct Ship {
    pub request_id: String,
    pub order_id: String,
    pub warehouse_id: Uuid,
    pub lines: Vec<(String, i64)>,
    pub actor: String,
}

pub fn ship(req: &pb::ConfirmShipmentRequest) -> Result<Ship, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let order_id = v.key("order_id", &req.order_id);
    let warehouse_id = v.uuid("warehouse_id", &req.warehouse_id);
    let actor = v
        .optional_key("actor", &req.actor)
        .map(Option::unwrap_or_default);
    v.item_count("lines", req.lines.len(), MAX_LINES, "lines");
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, line) in req.lines.iter().enumerate() {
        let id = v.key(&format!("lines[{i}].order_line_id"), &line.order_line_id);
        let quantity = v.positive(&format!("lines[{i}].quantity"), line.quantity);
        if let Some(id) = &id
            && !seen.insert(id.clone())
        {
            v.add(format!("lines[{i}].order_line_id"), "is listed twice");
        }
        if let (Some(id), Some(quantity)) = (id, quantity) {
            lines.push((id, quantity));
        }
    }
    let parsed = (|| {
        Some(Ship {
            request_id: request_id?,
            order_id: order_id?,
            warehouse_id: warehouse_id?,
            lines,
            actor: actor?,
        })
    })();
    done(v, parsed)
}

pub struct SetProfile {
    pub request_id: String,
    pub warehouse_id: Uuid,
    pub capacity_lines: Option<i64>,
    pub paused: bool,
}

pub fn set_profile(req: &pb::SetWarehouseProfileRequest) -> Result<SetProfile, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let warehouse_id = v.uuid("warehouse_id", &req.warehouse_id);
    let capacity_lines = match req.capacity_lines {
        None => Some(None),
        Some(c) => v.quantity_or_zero("capacity_lines", c).map(Some),
    };
    let parsed = (|| {
        Some(SetProfile {
            request_id: request_id?,
            warehouse_id: warehouse_id?,
            capacity_lines: capacity_lines?,
            paused: req.paused,
        })
    })();
    done(v, parsed)
}

/// An optional status filter.
pub fn status_filter(value: i32) -> Result<Option<Status>, ServiceError> {
    match pb::AllocationStatus::try_from(value) {
        Ok(pb::AllocationStatus::Unspecified) => Ok(None),
        Ok(pb::AllocationStatus::Allocated) => Ok(Some(Status::Allocated)),
        Ok(pb::AllocationStatus::PartiallyShipped) => Ok(Some(Status::PartiallyShipped)),
        Ok(pb::AllocationStatus::Shipped) => Ok(Some(Status::Shipped)),
        Ok(pb::AllocationStatus::Cancelled) => Ok(Some(Status::Cancelled)),
        Err(_) => Err(ServiceError::invalid(
            "status",
            format!("unknown value {value}"),
        )),
    }
}

/// Every request allocation validates, fuzzed from a valid seed (see the test kit's `fuzz`):
/// no input panics, and every refusal names its fields.
#[cfg(test)]
mod fuzz {
    use inventory_testkit::fuzz::{cases, mutated, refusal_is_specific};
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "0190b5f6-1c2d-7e3f-8a4b-5c6d7e8f9a0b";

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn allocate(req in mutated(pb::AllocateOrderRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            destination: Some(pb::Destination {
                latitude: 52.52,
                longitude: 13.405,
                postal_code: "10117".into(),
                country: "DE".into(),
            }),
            lines: vec![
                pb::OrderLine { order_line_id: "1".into(), product_id: ID.into(), quantity: 2 },
                pb::OrderLine { order_line_id: "2".into(), product_id: ID.into(), quantity: 1 },
            ],
            options: Some(pb::AllocationOptions {
                single_shipment_only: false,
                max_shipments: 2,
                reservation_expire_time: Some(prost_types::Timestamp { seconds: 4_000_000_000, nanos: 0 }),
                allow_partial: true,
            }),
            actor: "checkout".into(),
        })) {
            refusal_is_specific(&super::allocate(&req))?;
        }

        #[test]
        fn cancel(req in mutated(pb::CancelAllocationRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            reason: "customer cancelled".into(),
            actor: "support".into(),
        })) {
            refusal_is_specific(&super::cancel(&req))?;
        }

        #[test]
        fn ship(req in mutated(pb::ConfirmShipmentRequest {
            request_id: ID.into(),
            order_id: "order-1".into(),
            warehouse_id: ID.into(),
            lines: vec![pb::ShipmentLineQuantity { order_line_id: "1".into(), quantity: 2 }],
            actor: "dock".into(),
        })) {
            refusal_is_specific(&super::ship(&req))?;
        }

        #[test]
        fn set_profile(req in mutated(pb::SetWarehouseProfileRequest {
            request_id: ID.into(),
            warehouse_id: ID.into(),
            capacity_lines: Some(500),
            paused: true,
        })) {
            refusal_is_specific(&super::set_profile(&req))?;
        }

        #[test]
        fn status_filter(value in any::<i32>()) {
            refusal_is_specific(&super::status_filter(value))?;
        }
    }
}

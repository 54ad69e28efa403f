//! Requests to commands: every field checked, every bad one named in one INVALID_ARGUMENT.

use inventory_core::ServiceError;
use inventory_core::validate::{MAX_QUANTITY, Violations, excerpt};
use inventory_proto::replenishment::v1 as pb;
use uuid::Uuid;

use crate::domain::purchase_order::Status;
use crate::store::PoFilter;
use crate::supplier_api::check_endpoint;

/// A receipt id leaves room for the prefix of the request id derived from it in stock.
pub const MAX_RECEIPT_ID_LEN: usize = 100;
const MAX_NAME_LEN: usize = 256;
const MAX_PART_NUMBER_LEN: usize = 48;
const MAX_LEAD_TIME_DAYS: i32 = 365;
const MAX_ENDPOINT_LEN: usize = 2048;

pub struct CreateSupplier {
    pub request_id: String,
    pub name: String,
    /// EDI or API, as stored.
    pub channel: &'static str,
    pub api_endpoint: String,
    pub edi_qualifier: String,
    pub edi_id: String,
    pub default_lead_time_days: i32,
}

/// Characters an X12 element may carry: printable ASCII, none of our separators.
fn edi_safe(v: &mut Violations, field: &str, value: &str, min: usize, max: usize) -> String {
    let len = value.chars().count();
    if len < min || len > max {
        v.add(
            field,
            format!("must be {min} to {max} characters, got {len}"),
        );
    } else if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii_graphic() && *c != ' ' || matches!(c, '*' | '~' | '>'))
    {
        v.add(
            field,
            format!(
                "must be printable ASCII without * ~ >, got {c:?} in {}",
                excerpt(value)
            ),
        );
    } else if value.trim() != value {
        v.add(field, "must not start or end with whitespace");
    }
    value.to_owned()
}

pub fn create_supplier(req: &pb::CreateSupplierRequest) -> Result<CreateSupplier, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let name = v.text("name", &req.name);
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_LEN)
    {
        v.add("name", format!("must be at most {MAX_NAME_LEN} characters"));
    }
    let channel: Option<pb::SupplierChannel> = v.known_enum("channel", req.channel);
    let (edi_qualifier, edi_id) = if channel == Some(pb::SupplierChannel::Edi) {
        (
            edi_safe(&mut v, "edi_qualifier", &req.edi_qualifier, 2, 2),
            edi_safe(&mut v, "edi_id", &req.edi_id, 1, 15),
        )
    } else {
        (String::new(), String::new())
    };
    let api_endpoint = if channel == Some(pb::SupplierChannel::Api) {
        if req.api_endpoint.chars().count() > MAX_ENDPOINT_LEN {
            v.add(
                "api_endpoint",
                format!("must be at most {MAX_ENDPOINT_LEN} characters"),
            );
        } else if let Err(problem) = check_endpoint(&req.api_endpoint) {
            v.add(
                "api_endpoint",
                format!("{problem}, got {}", excerpt(&req.api_endpoint)),
            );
        }
        req.api_endpoint.clone()
    } else {
        String::new()
    };
    let lead = v.in_range(
        "default_lead_time_days",
        req.default_lead_time_days,
        0,
        MAX_LEAD_TIME_DAYS,
    );
    v.finish()?;
    Ok(CreateSupplier {
        request_id: request_id.unwrap_or_default(),
        name: name.unwrap_or_default(),
        channel: if channel == Some(pb::SupplierChannel::Api) {
            "API"
        } else {
            "EDI"
        },
        api_endpoint,
        edi_qualifier,
        edi_id,
        default_lead_time_days: lead.unwrap_or_default(),
    })
}

pub struct SetOffer {
    pub request_id: String,
    pub supplier_id: Uuid,
    pub product_id: Uuid,
    pub unit_cost_micros: i64,
    pub minimum_order_quantity: i64,
    pub pack_multiple: i64,
    pub lead_time_days: i32,
    pub supplier_part_number: String,
}

pub fn set_offer(req: &pb::SetSupplierOfferRequest) -> Result<SetOffer, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let default = pb::SupplierOffer::default();
    let offer = v.present("offer", req.offer.as_ref()).unwrap_or(&default);
    let supplier_id = v.uuid("offer.supplier_id", &offer.supplier_id);
    let product_id = v.uuid("offer.product_id", &offer.product_id);
    let unit_cost = v.unit_cost_micros("offer.unit_cost_micros", offer.unit_cost_micros);
    let minimum = v.positive("offer.minimum_order_quantity", offer.minimum_order_quantity);
    let pack = v.positive("offer.pack_multiple", offer.pack_multiple);
    let lead = v.in_range(
        "offer.lead_time_days",
        offer.lead_time_days,
        0,
        MAX_LEAD_TIME_DAYS,
    );
    // The smallest order must itself be an order stock can take.
    if let (Some(minimum), Some(pack)) = (minimum, pack) {
        let smallest = i128::from(minimum).div_euclid(i128::from(pack)) * i128::from(pack)
            + if minimum % pack == 0 {
                0
            } else {
                i128::from(pack)
            };
        if smallest > i128::from(MAX_QUANTITY) {
            v.add(
                "offer.minimum_order_quantity",
                format!("rounded up to packs of {pack} it is {smallest}, more than {MAX_QUANTITY}"),
            );
        }
    }
    let part = if offer.supplier_part_number.is_empty() {
        String::new()
    } else {
        edi_safe(
            &mut v,
            "offer.supplier_part_number",
            &offer.supplier_part_number,
            1,
            MAX_PART_NUMBER_LEN,
        )
    };
    v.finish()?;
    Ok(SetOffer {
        request_id: request_id.unwrap_or_default(),
        supplier_id: supplier_id.unwrap_or_default(),
        product_id: product_id.unwrap_or_default(),
        unit_cost_micros: unit_cost.unwrap_or_default(),
        minimum_order_quantity: minimum.unwrap_or(1),
        pack_multiple: pack.unwrap_or(1),
        lead_time_days: lead.unwrap_or_default(),
        supplier_part_number: part,
    })
}

pub fn list_offers(
    req: &pb::ListSupplierOffersRequest,
) -> Result<(Option<Uuid>, Option<Uuid>), ServiceError> {
    let mut v = Violations::new();
    let product = v.optional_uuid("product_id", &req.product_id);
    let supplier = v.optional_uuid("supplier_id", &req.supplier_id);
    v.finish()?;
    Ok((product.flatten(), supplier.flatten()))
}

pub struct CreatePo {
    pub request_id: String,
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    pub quantity: i64,
    pub supplier_id: Option<Uuid>,
    pub actor: String,
}

pub fn create_po(req: &pb::CreatePurchaseOrderRequest) -> Result<CreatePo, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let product_id = v.uuid("product_id", &req.product_id);
    let warehouse_id = v.uuid("warehouse_id", &req.warehouse_id);
    let quantity = v.positive("quantity", req.quantity);
    let supplier_id = v.optional_uuid("supplier_id", &req.supplier_id);
    let actor = v.key("actor", &req.actor);
    v.finish()?;
    Ok(CreatePo {
        request_id: request_id.unwrap_or_default(),
        product_id: product_id.unwrap_or_default(),
        warehouse_id: warehouse_id.unwrap_or_default(),
        quantity: quantity.unwrap_or_default(),
        supplier_id: supplier_id.flatten(),
        actor: actor.unwrap_or_default(),
    })
}

/// Approve, reject or cancel: which PO, who decides (required), and why.
pub struct Decide {
    pub request_id: String,
    pub po_id: Uuid,
    pub by: String,
    pub note: String,
}

pub fn decide(
    request_id: &str,
    po_id: &str,
    (by_field, by): (&str, &str),
    (note_field, note): (&str, &str),
) -> Result<Decide, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", request_id);
    let po_id = v.uuid("po_id", po_id);
    let by = v.key(by_field, by);
    let note = v.optional_text(note_field, note);
    v.finish()?;
    Ok(Decide {
        request_id: request_id.unwrap_or_default(),
        po_id: po_id.unwrap_or_default(),
        by: by.unwrap_or_default(),
        note: note.unwrap_or_default(),
    })
}

pub struct Receive {
    pub receipt_id: String,
    pub po_id: Uuid,
    pub quantity: i64,
    pub lot: String,
    pub actor: String,
}

pub fn receive(req: &pb::ReceivePurchaseOrderRequest) -> Result<Receive, ServiceError> {
    let mut v = Violations::new();
    let receipt_id = v.key("receipt_id", &req.receipt_id);
    if receipt_id
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_RECEIPT_ID_LEN)
    {
        v.add(
            "receipt_id",
            format!("must be at most {MAX_RECEIPT_ID_LEN} characters"),
        );
    }
    let po_id = v.uuid("po_id", &req.po_id);
    let quantity = v.positive("quantity", req.quantity);
    let lot = v.optional_key("lot", &req.lot);
    let actor = v.optional_key("actor", &req.actor);
    v.finish()?;
    Ok(Receive {
        receipt_id: receipt_id.unwrap_or_default(),
        po_id: po_id.unwrap_or_default(),
        quantity: quantity.unwrap_or_default(),
        lot: lot.flatten().unwrap_or_default(),
        actor: actor.flatten().unwrap_or_default(),
    })
}

pub fn list_pos(req: &pb::ListPurchaseOrdersRequest) -> Result<PoFilter, ServiceError> {
    let mut v = Violations::new();
    let status = if req.status == 0 {
        None
    } else {
        v.known_enum::<pb::PurchaseOrderStatus>("status", req.status)
            .and_then(status)
    };
    let supplier_id = v.optional_uuid("supplier_id", &req.supplier_id);
    let product_id = v.optional_uuid("product_id", &req.product_id);
    let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
    v.finish()?;
    Ok(PoFilter {
        status,
        supplier_id: supplier_id.flatten(),
        product_id: product_id.flatten(),
        warehouse_id: warehouse_id.flatten(),
    })
}

fn status(s: pb::PurchaseOrderStatus) -> Option<Status> {
    Some(match s {
        pb::PurchaseOrderStatus::Unspecified => return None,
        pb::PurchaseOrderStatus::Draft => Status::Draft,
        pb::PurchaseOrderStatus::PendingApproval => Status::PendingApproval,
        pb::PurchaseOrderStatus::Approved => Status::Approved,
        pb::PurchaseOrderStatus::Sent => Status::Sent,
        pb::PurchaseOrderStatus::Partial => Status::Partial,
        pb::PurchaseOrderStatus::Complete => Status::Complete,
        pb::PurchaseOrderStatus::Rejected => Status::Rejected,
        pb::PurchaseOrderStatus::Cancelled => Status::Cancelled,
    })
}

pub fn pair(product_id: &str, warehouse_id: &str) -> Result<(Uuid, Uuid), ServiceError> {
    let mut v = Violations::new();
    let product = v.uuid("product_id", product_id);
    let warehouse = v.uuid("warehouse_id", warehouse_id);
    v.finish()?;
    Ok((product.unwrap_or_default(), warehouse.unwrap_or_default()))
}

pub struct SetPolicy {
    pub request_id: String,
    pub product_id: Uuid,
    pub warehouse_id: Uuid,
    /// (reorder point, reorder quantity) of a FIXED policy; None for a computed one.
    pub fixed: Option<(i64, i64)>,
    pub service_level: f64,
    pub actor: String,
}

pub fn set_policy(
    req: &pb::SetReorderPolicyRequest,
    default_service_level: f64,
) -> Result<SetPolicy, ServiceError> {
    let mut v = Violations::new();
    let request_id = v.request_id("request_id", &req.request_id);
    let product_id = v.uuid("product_id", &req.product_id);
    let warehouse_id = v.uuid("warehouse_id", &req.warehouse_id);
    let source: Option<pb::PolicySource> = v.known_enum("source", req.source);
    let mut fixed = None;
    let mut service_level = default_service_level;
    match source {
        Some(pb::PolicySource::Fixed) => {
            let point = v.quantity_or_zero("reorder_point", req.reorder_point);
            let quantity = v.positive("reorder_quantity", req.reorder_quantity);
            fixed = point.zip(quantity);
        }
        Some(pb::PolicySource::Computed) if req.service_level != 0.0 => {
            if req.service_level.is_finite() && req.service_level > 0.0 && req.service_level < 1.0 {
                service_level = req.service_level;
            } else {
                v.add(
                    "service_level",
                    format!(
                        "must be between 0 and 1 (exclusive), got {}",
                        req.service_level
                    ),
                );
            }
        }
        _ => {}
    }
    let actor = v.key("actor", &req.actor);
    v.finish()?;
    Ok(SetPolicy {
        request_id: request_id.unwrap_or_default(),
        product_id: product_id.unwrap_or_default(),
        warehouse_id: warehouse_id.unwrap_or_default(),
        fixed,
        service_level,
        actor: actor.unwrap_or_default(),
    })
}

/// Every request replenishment validates, fuzzed from a valid seed (see the test kit's
/// `fuzz`): no input panics, and every refusal names its fields.
#[cfg(test)]
mod fuzz {
    use inventory_testkit::fuzz::{cases, mutated, refusal_is_specific};
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "0190b5f6-1c2d-7e3f-8a4b-5c6d7e8f9a0b";

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn create_supplier(req in mutated(pb::CreateSupplierRequest {
            request_id: ID.into(),
            name: "Acme".into(),
            channel: pb::SupplierChannel::Edi.into(),
            edi_qualifier: "ZZ".into(),
            edi_id: "ACME".into(),
            default_lead_time_days: 7,
            api_endpoint: String::new(),
        })) {
            refusal_is_specific(&super::create_supplier(&req))?;
        }

        #[test]
        fn create_api_supplier(req in mutated(pb::CreateSupplierRequest {
            request_id: ID.into(),
            name: "Acme".into(),
            channel: pb::SupplierChannel::Api.into(),
            edi_qualifier: String::new(),
            edi_id: String::new(),
            default_lead_time_days: 7,
            api_endpoint: "http://supplier.example:8080/orders".into(),
        })) {
            refusal_is_specific(&super::create_supplier(&req))?;
        }

        #[test]
        fn set_offer(req in mutated(pb::SetSupplierOfferRequest {
            request_id: ID.into(),
            offer: Some(pb::SupplierOffer {
                supplier_id: ID.into(),
                product_id: ID.into(),
                unit_cost_micros: 2_500_000,
                minimum_order_quantity: 10,
                pack_multiple: 6,
                lead_time_days: 5,
                supplier_part_number: "ACME-1".into(),
                ..Default::default()
            }),
        })) {
            refusal_is_specific(&super::set_offer(&req))?;
        }

        #[test]
        fn list_offers(req in mutated(pb::ListSupplierOffersRequest {
            product_id: ID.into(),
            supplier_id: ID.into(),
            page_size: 10,
            page_token: String::new(),
        })) {
            refusal_is_specific(&super::list_offers(&req))?;
        }

        #[test]
        fn create_po(req in mutated(pb::CreatePurchaseOrderRequest {
            request_id: ID.into(),
            product_id: ID.into(),
            warehouse_id: ID.into(),
            quantity: 100,
            supplier_id: ID.into(),
            actor: "buyer".into(),
        })) {
            refusal_is_specific(&super::create_po(&req))?;
        }

        #[test]
        fn decide(req in mutated(pb::ApprovePurchaseOrderRequest {
            request_id: ID.into(),
            po_id: ID.into(),
            approver: "manager".into(),
            note: "needed".into(),
        })) {
            refusal_is_specific(&super::decide(
                &req.request_id,
                &req.po_id,
                ("approver", &req.approver),
                ("note", &req.note),
            ))?;
        }

        #[test]
        fn receive(req in mutated(pb::ReceivePurchaseOrderRequest {
            receipt_id: "R-1".into(),
            po_id: ID.into(),
            quantity: 25,
            lot: "LOT-7".into(),
            actor: "dock-3".into(),
        })) {
            refusal_is_specific(&super::receive(&req))?;
        }

        #[test]
        fn list_pos(req in mutated(pb::ListPurchaseOrdersRequest {
            status: pb::PurchaseOrderStatus::Sent.into(),
            supplier_id: ID.into(),
            product_id: ID.into(),
            warehouse_id: ID.into(),
            page_size: 10,
            page_token: String::new(),
        })) {
            refusal_is_specific(&super::list_pos(&req))?;
        }

        #[test]
        fn set_policy(req in mutated(pb::SetReorderPolicyRequest {
            request_id: ID.into(),
            product_id: ID.into(),
            warehouse_id: ID.into(),
            source: pb::PolicySource::Fixed.into(),
            reorder_point: 20,
            reorder_quantity: 60,
            service_level: 0.95,
            actor: "planner".into(),
        })) {
            refusal_is_specific(&super::set_policy(&req, 0.95))?;
        }

        #[test]
        fn pair(product_id in any::<String>(), warehouse_id in any::<String>()) {
            refusal_is_specific(&super::pair(&product_id, &warehouse_id))?;
        }
    }
}

//! Stored rows to proto messages.

use inventory_core::time::timestamp;
use inventory_proto::replenishment::v1 as pb;

use crate::domain::purchase_order::Status;
use crate::outbox::po_number;
use crate::store::{self, planning};

pub fn supplier(s: &store::Supplier) -> pb::Supplier {
    pb::Supplier {
        supplier_id: s.supplier_id.to_string(),
        name: s.name.clone(),
        channel: match s.channel.as_str() {
            "EDI" => pb::SupplierChannel::Edi,
            "API" => pb::SupplierChannel::Api,
            _ => pb::SupplierChannel::Unspecified,
        }
        .into(),
        api_endpoint: s.api_endpoint.clone(),
        edi_qualifier: s.edi_qualifier.clone(),
        edi_id: s.edi_id.clone(),
        default_lead_time_days: s.default_lead_time_days,
        create_time: Some(timestamp(s.create_time)),
    }
}

pub fn offer(o: &store::Offer) -> pb::SupplierOffer {
    pb::SupplierOffer {
        supplier_id: o.supplier_id.to_string(),
        product_id: o.product_id.to_string(),
        unit_cost_micros: o.unit_cost_micros,
        minimum_order_quantity: o.minimum_order_quantity,
        pack_multiple: o.pack_multiple,
        lead_time_days: o.lead_time_days,
        supplier_part_number: o.supplier_part_number.clone(),
        update_time: Some(timestamp(o.update_time)),
    }
}

pub fn status(s: Status) -> pb::PurchaseOrderStatus {
    match s {
        Status::Draft => pb::PurchaseOrderStatus::Draft,
        Status::PendingApproval => pb::PurchaseOrderStatus::PendingApproval,
        Status::Approved => pb::PurchaseOrderStatus::Approved,
        Status::Sent => pb::PurchaseOrderStatus::Sent,
        Status::Partial => pb::PurchaseOrderStatus::Partial,
        Status::Complete => pb::PurchaseOrderStatus::Complete,
        Status::Rejected => pb::PurchaseOrderStatus::Rejected,
        Status::Cancelled => pb::PurchaseOrderStatus::Cancelled,
    }
}

pub fn purchase_order(po: &store::PurchaseOrder) -> pb::PurchaseOrder {
    pb::PurchaseOrder {
        po_id: po.po_id.to_string(),
        po_number: po_number(po.po_number),
        supplier_id: po.supplier_id.to_string(),
        product_id: po.product_id.to_string(),
        warehouse_id: po.warehouse_id.to_string(),
        ordered_qty: po.ordered_qty,
        received_qty: po.received_qty,
        status: Status::parse(&po.status)
            .map(status)
            .unwrap_or(pb::PurchaseOrderStatus::Unspecified)
            .into(),
        unit_cost_micros: po.unit_cost_micros,
        total_cost_micros: total_cost(po.ordered_qty, po.unit_cost_micros).unwrap_or(i64::MAX),
        expected_delivery: Some(timestamp(po.expected_delivery)),
        created_by: po.created_by.clone(),
        create_time: Some(timestamp(po.create_time)),
        decided_by: po.decided_by.clone(),
        decide_time: po.decide_time.map(timestamp),
        decision_note: po.decision_note.clone(),
        cancelled_by: po.cancelled_by.clone(),
        cancel_time: po.cancel_time.map(timestamp),
        cancel_reason: po.cancel_reason.clone(),
        send_time: po.send_time.map(timestamp),
        control_number: po.control_number.unwrap_or(0),
        update_time: Some(timestamp(po.update_time)),
    }
}

pub fn receipt(r: &store::Receipt) -> pb::Receipt {
    pb::Receipt {
        receipt_id: r.receipt_id.clone(),
        po_id: r.po_id.to_string(),
        quantity: r.quantity,
        lot: r.lot.clone(),
        stock_transaction_id: r.stock_transaction_id.to_string(),
        actor: r.actor.clone(),
        create_time: Some(timestamp(r.create_time)),
    }
}

/// quantity x unit cost, None past i64 (10^12 units at 10^12 micros do not fit).
pub fn total_cost(quantity: i64, unit_cost_micros: i64) -> Option<i64> {
    quantity.checked_mul(unit_cost_micros)
}

pub fn policy(p: &planning::Policy) -> pb::ReorderPolicy {
    pb::ReorderPolicy {
        product_id: p.product_id.to_string(),
        warehouse_id: p.warehouse_id.to_string(),
        source: match p.source.as_str() {
            "FIXED" => pb::PolicySource::Fixed,
            "COMPUTED" => pb::PolicySource::Computed,
            _ => pb::PolicySource::Unspecified,
        }
        .into(),
        reorder_point: p.reorder_point,
        reorder_quantity: p.reorder_quantity,
        service_level: p.service_level,
        method: match p.method.as_str() {
            "BOOTSTRAP" => pb::ComputationMethod::Bootstrap,
            "PRODUCT_DEFAULTS" => pb::ComputationMethod::ProductDefaults,
            _ => pb::ComputationMethod::Unspecified,
        }
        .into(),
        average_daily_demand: p.average_daily_demand,
        demand_std_dev: p.demand_std_dev,
        history_days: p.history_days,
        lead_time_days: p.lead_time_days,
        lead_time_std_dev: p.lead_time_std_dev,
        safety_stock: p.safety_stock,
        economic_order_quantity: p.eoq,
        textbook_reorder_point: p.textbook_reorder_point,
        compute_time: p.computed_time.map(timestamp),
        updated_by: p.updated_by.clone(),
        update_time: Some(timestamp(p.update_time)),
    }
}

pub fn decision(d: &planning::Decision) -> pb::ReorderDecision {
    pb::ReorderDecision {
        product_id: d.product_id.to_string(),
        warehouse_id: d.warehouse_id.to_string(),
        quantity_available: d.quantity_available,
        reorder_point: d.reorder_point,
        quantity: d.quantity.unwrap_or(0),
        supplier_id: d.supplier_id.map(|s| s.to_string()).unwrap_or_default(),
        unit_cost_micros: d.unit_cost_micros.unwrap_or(0),
        po_id: d.po_id.map(|p| p.to_string()).unwrap_or_default(),
        status: d
            .status
            .as_deref()
            .and_then(Status::parse)
            .map(status)
            .unwrap_or(pb::PurchaseOrderStatus::Unspecified)
            .into(),
    }
}

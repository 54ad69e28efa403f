//! Rows to messages. A blind task hides what the system says until it is completed.

use inventory_core::time::timestamp;
use inventory_proto::reconciliation::v1 as pb;

use crate::store::{Line, Task};

pub fn task(t: &Task) -> pb::CountTask {
    pb::CountTask {
        task_id: t.task_id.to_string(),
        warehouse_id: t.warehouse_id.to_string(),
        location: t.location.clone(),
        blind: t.blind,
        status: pb::CountTaskStatus::from_str_name(&format!("{TASK_STATUS}{}", t.status))
            .unwrap_or(pb::CountTaskStatus::Unspecified) as i32,
        created_by: t.created_by.clone(),
        create_time: Some(timestamp(t.create_time)),
        completed_by: t.completed_by.clone().unwrap_or_default(),
        complete_time: t.complete_time.map(timestamp),
        cancelled_by: t.cancelled_by.clone().unwrap_or_default(),
        cancel_reason: t.cancel_reason.clone().unwrap_or_default(),
        cancel_time: t.cancel_time.map(timestamp),
        lines: t.lines,
        lines_uncounted: t.lines_uncounted,
        lines_recount_required: t.lines_recount_required,
        lines_pending_approval: t.lines_pending_approval,
        lines_applied: t.lines_applied,
    }
}

/// The database's status names are the proto enums' without their prefix.
const TASK_STATUS: &str = "COUNT_TASK_STATUS_";
const LINE_STATUS: &str = "LINE_STATUS_";

pub fn task_status_name(status: pb::CountTaskStatus) -> &'static str {
    status.as_str_name().trim_start_matches(TASK_STATUS)
}

pub fn line_status_name(status: pb::LineStatus) -> &'static str {
    status.as_str_name().trim_start_matches(LINE_STATUS)
}

fn line_status(name: &str) -> pb::LineStatus {
    pb::LineStatus::from_str_name(&format!("{LINE_STATUS}{name}"))
        .unwrap_or(pb::LineStatus::Unspecified)
}

/// `hide_system`: the line belongs to a blind task still being counted.
pub fn line(l: &Line, hide_system: bool) -> pb::CountLine {
    pb::CountLine {
        line_id: l.line_id.to_string(),
        task_id: l.task_id.to_string(),
        product_id: l.product_id.to_string(),
        warehouse_id: l.warehouse_id.to_string(),
        location: l.location.clone(),
        status: line_status(&l.status) as i32,
        expected_quantity: (!hide_system).then_some(l.expected_quantity),
        counted_quantity: l.counted_quantity,
        count_time: l.count_time.map(timestamp),
        counted_by: l.counted_by.clone().unwrap_or_default(),
        system_quantity: if hide_system { None } else { l.system_quantity },
        variance: if hide_system {
            0
        } else {
            l.variance.unwrap_or(0)
        },
        variance_value_micros: if hide_system {
            0
        } else {
            l.variance_value_micros.unwrap_or(0)
        },
        variance_percent: if hide_system {
            None
        } else {
            l.variance_percent
        },
        unit_cost_micros: l.unit_cost_micros,
        abc_class: l.abc_class.clone().unwrap_or_default(),
        exceeded: l
            .exceeded
            .iter()
            .map(|x| {
                pb::ToleranceExceeded::from_str_name(&format!("TOLERANCE_EXCEEDED_{x}"))
                    .unwrap_or(pb::ToleranceExceeded::Unspecified) as i32
            })
            .collect(),
        decided_by: l.decided_by.clone().unwrap_or_default(),
        decide_time: l.decide_time.map(timestamp),
        decision_comment: l.decision_comment.clone().unwrap_or_default(),
        stock_txn_id: l.stock_txn_id.map(|t| t.to_string()).unwrap_or_default(),
        stock_sequence: l.stock_sequence.unwrap_or(0),
        apply_time: l.apply_time.map(timestamp),
        blocked_reason: l.blocked_reason.clone().unwrap_or_default(),
    }
}

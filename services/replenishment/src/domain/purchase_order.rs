//! A purchase order's life, from draft to receipt, as pure transitions.
//!
//! ```text
//! DRAFT -> APPROVED (total under the threshold) or PENDING_APPROVAL
//! PENDING_APPROVAL -> APPROVED | REJECTED          (approve / reject, naming who)
//! APPROVED -> SENT                                 (the outbox delivered it)
//! SENT | PARTIAL -> PARTIAL | COMPLETE             (receipts)
//! DRAFT | PENDING_APPROVAL | APPROVED -> CANCELLED (before it reaches the supplier)
//! ```
//!
//! DRAFT, SENT, PARTIAL and COMPLETE are the seed's statuses; the others are what approval and
//! cancellation need. A PO is open (blocks a new draft for its product and warehouse) until it
//! is COMPLETE, REJECTED or CANCELLED.

/// Where a PO stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Draft,
    PendingApproval,
    Approved,
    Sent,
    Partial,
    Complete,
    Rejected,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Draft,
        Status::PendingApproval,
        Status::Approved,
        Status::Sent,
        Status::Partial,
        Status::Complete,
        Status::Rejected,
        Status::Cancelled,
    ];

    /// The name stored in the database and shown in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::PendingApproval => "PENDING_APPROVAL",
            Status::Approved => "APPROVED",
            Status::Sent => "SENT",
            Status::Partial => "PARTIAL",
            Status::Complete => "COMPLETE",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the PO still counts as the one open PO of its product and warehouse.
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            Status::Complete | Status::Rejected | Status::Cancelled
        )
    }
}

/// A transition refused: the reason (an ErrorInfo reason) and the status it was refused in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub status: Status,
}

fn refuse(reason: &'static str, status: Status) -> Refused {
    Refused { reason, status }
}

/// The status a fresh draft moves to: approved at once when its total cost is under the
/// threshold (strictly), else waiting for a person.
pub fn after_drafting(total_cost_micros: i64, auto_approve_below_micros: i64) -> Status {
    if total_cost_micros < auto_approve_below_micros {
        Status::Approved
    } else {
        Status::PendingApproval
    }
}

pub fn approve(status: Status) -> Result<Status, Refused> {
    match status {
        Status::PendingApproval => Ok(Status::Approved),
        other => Err(refuse("PO_NOT_PENDING_APPROVAL", other)),
    }
}

pub fn reject(status: Status) -> Result<Status, Refused> {
    match status {
        Status::PendingApproval => Ok(Status::Rejected),
        other => Err(refuse("PO_NOT_PENDING_APPROVAL", other)),
    }
}

/// Only before the supplier has it: a sent PO would need a cancellation sent after it.
pub fn cancel(status: Status) -> Result<Status, Refused> {
    match status {
        Status::Draft | Status::PendingApproval | Status::Approved => Ok(Status::Cancelled),
        Status::Sent | Status::Partial => Err(refuse("PO_ALREADY_SENT", status)),
        other => Err(refuse("PO_CLOSED", other)),
    }
}

pub fn mark_sent(status: Status) -> Result<Status, Refused> {
    match status {
        Status::Approved => Ok(Status::Sent),
        other => Err(refuse("PO_NOT_APPROVED", other)),
    }
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub status: Status,
    pub received_qty: i64,
}

/// Why a receipt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptRefused {
    /// Not in a status that takes goods (not sent yet, or closed).
    Status(Refused),
    /// More than ordered plus the tolerance: at most `acceptable` more units.
    OverReceipt { acceptable: i64 },
}

impl ReceiptRefused {
    /// The ErrorInfo reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ReceiptRefused::Status(refused) => refused.reason,
            ReceiptRefused::OverReceipt { .. } => "OVER_RECEIPT",
        }
    }
}

/// Most units a PO of `ordered` may receive in all: ordered plus `tolerance_percent` of it,
/// rounded down.
pub fn receivable(ordered: i64, tolerance_percent: u32) -> i64 {
    let extra = i128::from(ordered) * i128::from(tolerance_percent) / 100;
    ordered.saturating_add(i64::try_from(extra).unwrap_or(i64::MAX))
}

/// Takes `quantity` (> 0) more units against a PO that has `received` of `ordered`.
pub fn receive(
    status: Status,
    ordered: i64,
    received: i64,
    quantity: i64,
    tolerance_percent: u32,
) -> Result<Received, ReceiptRefused> {
    match status {
        Status::Sent | Status::Partial => {}
        Status::Draft | Status::PendingApproval | Status::Approved => {
            return Err(ReceiptRefused::Status(refuse("PO_NOT_SENT", status)));
        }
        other => return Err(ReceiptRefused::Status(refuse("PO_CLOSED", other))),
    }
    let acceptable = receivable(ordered, tolerance_percent)
        .saturating_sub(received)
        .max(0);
    if quantity > acceptable {
        return Err(ReceiptRefused::OverReceipt { acceptable });
    }
    let received_qty = received + quantity;
    let status = if received_qty >= ordered {
        Status::Complete
    } else {
        Status::Partial
    };
    Ok(Received {
        status,
        received_qty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_under_the_threshold_is_approved_and_one_at_it_waits() {
        assert_eq!(after_drafting(999, 1_000), Status::Approved);
        assert_eq!(after_drafting(1_000, 1_000), Status::PendingApproval);
        assert_eq!(after_drafting(5, 0), Status::PendingApproval);
    }

    #[test]
    fn only_a_pending_po_is_approved_or_rejected() {
        assert_eq!(approve(Status::PendingApproval), Ok(Status::Approved));
        assert_eq!(reject(Status::PendingApproval), Ok(Status::Rejected));
        for status in [Status::Approved, Status::Sent, Status::Rejected] {
            assert_eq!(
                approve(status),
                Err(Refused {
                    reason: "PO_NOT_PENDING_APPROVAL",
                    status
                })
            );
            assert!(reject(status).is_err());
        }
    }

    #[test]
    fn cancelling_stops_before_the_supplier_has_it() {
        for status in [Status::Draft, Status::PendingApproval, Status::Approved] {
            assert_eq!(cancel(status), Ok(Status::Cancelled));
        }
        assert_eq!(
            cancel(Status::Sent).map_err(|r| r.reason),
            Err("PO_ALREADY_SENT")
        );
        assert_eq!(
            cancel(Status::Partial).map_err(|r| r.reason),
            Err("PO_ALREADY_SENT")
        );
        assert_eq!(
            cancel(Status::Complete).map_err(|r| r.reason),
            Err("PO_CLOSED")
        );
        assert_eq!(
            cancel(Status::Cancelled).map_err(|r| r.reason),
            Err("PO_CLOSED")
        );
    }

    #[test]
    fn only_an_approved_po_is_sent() {
        assert_eq!(mark_sent(Status::Approved), Ok(Status::Sent));
        assert!(mark_sent(Status::PendingApproval).is_err());
        assert!(mark_sent(Status::Sent).is_err());
    }

    #[test]
    fn receipts_move_a_sent_po_to_partial_then_complete() {
        let first = receive(Status::Sent, 100, 0, 40, 5);
        assert_eq!(
            first,
            Ok(Received {
                status: Status::Partial,
                received_qty: 40
            })
        );
        let second = receive(Status::Partial, 100, 40, 60, 5);
        assert_eq!(
            second,
            Ok(Received {
                status: Status::Complete,
                received_qty: 100
            })
        );
    }

    #[test]
    fn a_receipt_within_the_tolerance_completes_and_one_beyond_it_is_refused() {
        // 100 ordered, 5%: up to 105 in all.
        assert_eq!(receivable(100, 5), 105);
        assert_eq!(
            receive(Status::Partial, 100, 40, 65, 5).map(|r| r.received_qty),
            Ok(105)
        );
        assert_eq!(
            receive(Status::Partial, 100, 40, 66, 5),
            Err(ReceiptRefused::OverReceipt { acceptable: 65 })
        );
        assert_eq!(
            receive(Status::Sent, 100, 0, 101, 0),
            Err(ReceiptRefused::OverReceipt { acceptable: 100 })
        );
        assert_eq!(
            receive(Status::Sent, 100, 0, 101, 0).map_err(|r| r.reason()),
            Err("OVER_RECEIPT")
        );
    }

    #[test]
    fn goods_are_not_taken_before_sending_or_after_closing() {
        assert_eq!(
            receive(Status::Approved, 10, 0, 1, 0),
            Err(ReceiptRefused::Status(Refused {
                reason: "PO_NOT_SENT",
                status: Status::Approved
            }))
        );
        assert!(matches!(
            receive(Status::Complete, 10, 10, 1, 50),
            Err(ReceiptRefused::Status(Refused {
                reason: "PO_CLOSED",
                ..
            }))
        ));
        assert!(receive(Status::Cancelled, 10, 0, 1, 0).is_err());
    }

    #[test]
    fn open_means_not_complete_rejected_or_cancelled() {
        let open: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .map(Status::as_str)
            .collect();
        assert_eq!(
            open,
            ["DRAFT", "PENDING_APPROVAL", "APPROVED", "SENT", "PARTIAL"]
        );
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("SHIPPED"), None);
    }

    #[test]
    fn the_tolerance_never_overflows() {
        assert_eq!(receivable(i64::MAX, 100), i64::MAX);
    }
}

//! Purchase orders: created by a person (the reorder scan drafts them the same way), approved
//! automatically under the threshold or by a person, sent through the outbox, received
//! against.

use inventory_core::ServiceError;
use inventory_core::time::now;
use inventory_core::validate::uuid_field;
use inventory_proto::replenishment::v1 as pb;
use inventory_proto::stock::v1 as stock;
use inventory_runtime::{RequestKey, Tx, db_error, failpoint, idempotency};
use uuid::Uuid;

use super::{DOMAIN, ReplenishmentApi, convert, parse};
use crate::domain::purchase_order::{self, ReceiptRefused, Refused, Status};
use crate::outbox::po_number;
use crate::store;

/// Who approves a PO under the threshold.
pub const AUTO_APPROVER: &str = "auto-approval";

fn refused(refusal: Refused, po: &store::PurchaseOrder, action: &str) -> ServiceError {
    ServiceError::FailedPrecondition {
        reason: refusal.reason,
        domain: DOMAIN,
        message: format!(
            "cannot {action} purchase order {} ({}): it is {}",
            po_number(po.po_number),
            po.po_id,
            refusal.status.as_str()
        ),
        metadata: vec![
            ("po_id", po.po_id.to_string()),
            ("status", refusal.status.as_str().to_owned()),
        ],
    }
}

impl ReplenishmentApi {
    pub(super) async fn create_po(
        &self,
        req: pb::CreatePurchaseOrderRequest,
    ) -> Result<pb::CreatePurchaseOrderResponse, ServiceError> {
        let cmd = parse::create_po(&req)?;
        // Both must exist in stock (NOT_FOUND otherwise); asked before any write.
        self.stock.get_product(cmd.product_id.to_string()).await?;
        self.stock
            .get_warehouse(cmd.warehouse_id.to_string())
            .await?;
        let key = RequestKey::new("CreatePurchaseOrder", &cmd.request_id, &req);
        let rules = self.rules;
        let response = idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let (offer, supplier) = store::offer_for(&mut tx, cmd.product_id, cmd.supplier_id)
                .await?
                .ok_or_else(|| no_offer(cmd.product_id, cmd.supplier_id))?;
            orderable(cmd.quantity, &offer)?;
            let total =
                convert::total_cost(cmd.quantity, offer.unit_cost_micros).ok_or_else(|| {
                    ServiceError::invalid("quantity", "times the unit cost is too large")
                })?;
            let lead_time_days = if offer.lead_time_days == 0 {
                supplier.default_lead_time_days
            } else {
                offer.lead_time_days
            };
            let at = now();
            let mut po = store::PurchaseOrder {
                po_id: Uuid::now_v7(),
                po_number: 0,
                supplier_id: supplier.supplier_id,
                product_id: cmd.product_id,
                warehouse_id: cmd.warehouse_id,
                ordered_qty: cmd.quantity,
                received_qty: 0,
                status: Status::Draft.as_str().to_owned(),
                unit_cost_micros: offer.unit_cost_micros,
                lead_time_days,
                expected_delivery: at + chrono::Duration::days(i64::from(lead_time_days)),
                supplier_part_number: offer.supplier_part_number.clone(),
                created_by: cmd.actor.clone(),
                create_time: at,
                decided_by: String::new(),
                decide_time: None,
                decision_note: String::new(),
                cancelled_by: String::new(),
                cancel_time: None,
                cancel_reason: String::new(),
                control_number: None,
                send_time: None,
                update_time: at,
            };
            let status = purchase_order::after_drafting(total, rules.auto_approve_below_micros);
            po.status = status.as_str().to_owned();
            if status == Status::Approved {
                po.decided_by = AUTO_APPROVER.to_owned();
                po.decide_time = Some(at);
                po.decision_note = format!(
                    "total {total} micros is under the auto-approval threshold of {} micros",
                    rules.auto_approve_below_micros
                );
                po.control_number = Some(store::next_control_number(&mut tx).await?);
            }
            let po = store::insert_po(&mut tx, &po).await?;
            if status == Status::Approved {
                store::enqueue(&mut tx, po.po_id).await?;
            }
            let response = pb::CreatePurchaseOrderResponse {
                purchase_order: Some(convert::purchase_order(&po)),
            };
            Ok((tx, response))
        })
        .await?;
        self.outbox.wake();
        Ok(response)
    }

    pub(super) async fn get_po(
        &self,
        req: pb::GetPurchaseOrderRequest,
    ) -> Result<pb::GetPurchaseOrderResponse, ServiceError> {
        let po_id = uuid_field("po_id", &req.po_id)?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let po = store::po(&mut conn, po_id).await?;
        let receipts = store::receipts(&mut conn, po_id).await?;
        Ok(pb::GetPurchaseOrderResponse {
            purchase_order: Some(convert::purchase_order(&po)),
            receipts: receipts.iter().map(convert::receipt).collect(),
        })
    }

    pub(super) async fn list_pos(
        &self,
        req: pb::ListPurchaseOrdersRequest,
    ) -> Result<pb::ListPurchaseOrdersResponse, ServiceError> {
        let filter = parse::list_pos(&req)?;
        let filters = format!(
            "{}|{}|{}|{}",
            req.status, req.supplier_id, req.product_id, req.warehouse_id
        );
        let page = self
            .pages
            .request(req.page_size, &req.page_token, filters)?;
        let before = page.after.as_deref().and_then(|a| a.parse::<i64>().ok());
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let rows = store::list_pos(&mut conn, &filter, before, page.fetch_limit()).await?;
        let (rows, next_page_token) = self.pages.page(rows, &page, |po| po.po_number.to_string());
        Ok(pb::ListPurchaseOrdersResponse {
            purchase_orders: rows.iter().map(convert::purchase_order).collect(),
            next_page_token,
        })
    }

    pub(super) async fn approve(
        &self,
        req: pb::ApprovePurchaseOrderRequest,
    ) -> Result<pb::ApprovePurchaseOrderResponse, ServiceError> {
        let cmd = parse::decide(
            &req.request_id,
            &req.po_id,
            ("approver", &req.approver),
            ("note", &req.note),
        )?;
        let key = RequestKey::new("ApprovePurchaseOrder", &cmd.request_id, &req);
        let response = idempotency::idempotent(&self.pool, &key, |tx| async move {
            let (tx, po) = decide(tx, &cmd, "approve", purchase_order::approve).await?;
            Ok((
                tx,
                pb::ApprovePurchaseOrderResponse {
                    purchase_order: Some(convert::purchase_order(&po)),
                },
            ))
        })
        .await?;
        self.outbox.wake();
        Ok(response)
    }

    pub(super) async fn reject(
        &self,
        req: pb::RejectPurchaseOrderRequest,
    ) -> Result<pb::RejectPurchaseOrderResponse, ServiceError> {
        let cmd = parse::decide(
            &req.request_id,
            &req.po_id,
            ("approver", &req.approver),
            ("reason", &req.reason),
        )?;
        let key = RequestKey::new("RejectPurchaseOrder", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |tx| async move {
            let (tx, po) = decide(tx, &cmd, "reject", purchase_order::reject).await?;
            Ok((
                tx,
                pb::RejectPurchaseOrderResponse {
                    purchase_order: Some(convert::purchase_order(&po)),
                },
            ))
        })
        .await
    }

    pub(super) async fn cancel(
        &self,
        req: pb::CancelPurchaseOrderRequest,
    ) -> Result<pb::CancelPurchaseOrderResponse, ServiceError> {
        let cmd = parse::decide(
            &req.request_id,
            &req.po_id,
            ("actor", &req.actor),
            ("reason", &req.reason),
        )?;
        let key = RequestKey::new("CancelPurchaseOrder", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |tx| async move {
            let (tx, po) = decide(tx, &cmd, "cancel", purchase_order::cancel).await?;
            Ok((
                tx,
                pb::CancelPurchaseOrderResponse {
                    purchase_order: Some(convert::purchase_order(&po)),
                },
            ))
        })
        .await
    }

    pub(super) async fn receive(
        &self,
        req: pb::ReceivePurchaseOrderRequest,
    ) -> Result<pb::ReceivePurchaseOrderResponse, ServiceError> {
        let cmd = parse::receive(&req)?;
        // A receipt id names one delivery for good: the same id for another PO or quantity is
        // refused by name (the stored receipt outlives the request-id record).
        {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            if let Some(known) = store::receipt(&mut conn, &cmd.receipt_id).await?
                && (known.po_id != cmd.po_id || known.quantity != cmd.quantity)
            {
                return Err(ServiceError::invalid(
                    "receipt_id",
                    format!(
                        "{} was already recorded for purchase order {} with quantity {}",
                        inventory_core::validate::excerpt(&cmd.receipt_id),
                        known.po_id,
                        known.quantity
                    ),
                ));
            }
        }
        // Receipt ids live beside request ids: prefixed, they cannot collide.
        let key = RequestKey::new(
            "ReceivePurchaseOrder",
            &format!("receipt:{}", cmd.receipt_id),
            &req,
        );
        let tolerance = self.rules.receipt_tolerance_percent;
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let po = store::lock_po(&mut tx, cmd.po_id).await?;
            // Recorded before and its request-id record since purged: the receipt as it was.
            if let Some(known) = store::receipt(&mut tx, &cmd.receipt_id).await? {
                return Ok((
                    tx,
                    pb::ReceivePurchaseOrderResponse {
                        purchase_order: Some(convert::purchase_order(&po)),
                        receipt: Some(convert::receipt(&known)),
                    },
                ));
            }
            let received = purchase_order::receive(
                po.status()?,
                po.ordered_qty,
                po.received_qty,
                cmd.quantity,
                tolerance,
            )
            .map_err(|refusal| receipt_refused(refusal, &po, cmd.quantity, tolerance))?;
            // The request id stock sees comes from the receipt id alone: after a crash between
            // stock's RECEIVE and this commit, the retry gets stock's first answer, not a second
            // RECEIVE.
            let answer = self
                .stock
                .receive(stock::ReceiveStockRequest {
                    request_id: format!("po-receipt:{}", cmd.receipt_id),
                    product_id: po.product_id.to_string(),
                    warehouse_id: po.warehouse_id.to_string(),
                    quantity: cmd.quantity,
                    reference_id: po.po_id.to_string(),
                    actor: cmd.actor.clone(),
                })
                .await?;
            failpoint("replenishment.after_stock_receive").await;
            let transaction_id = answer
                .transaction
                .as_ref()
                .and_then(|t| Uuid::parse_str(&t.txn_id).ok())
                .ok_or_else(|| {
                    ServiceError::Internal("stock answered without its transaction".into())
                })?;
            let receipt = store::Receipt {
                receipt_id: cmd.receipt_id.clone(),
                po_id: po.po_id,
                quantity: cmd.quantity,
                lot: cmd.lot.clone(),
                stock_transaction_id: transaction_id,
                actor: cmd.actor.clone(),
                create_time: now(),
            };
            let po =
                store::record_receipt(&mut tx, &receipt, received.status, received.received_qty)
                    .await?;
            // The position the scan reads moves now, with the PO: a PO completed here must not
            // leave the pair looking short (and ordered again) until the feed catches up.
            if let Some(transaction) = &answer.transaction {
                store::planning::apply_feed(&mut tx, std::slice::from_ref(transaction)).await?;
            }
            Ok((
                tx,
                pb::ReceivePurchaseOrderResponse {
                    purchase_order: Some(convert::purchase_order(&po)),
                    receipt: Some(convert::receipt(&receipt)),
                },
            ))
        })
        .await
    }
}

/// Locks the PO, applies `transition`, records who and why; an approval draws the control
/// number and queues the PO for sending, a cancellation takes it off the queue.
async fn decide(
    mut tx: Tx,
    cmd: &parse::Decide,
    action: &str,
    transition: fn(Status) -> Result<Status, Refused>,
) -> Result<(Tx, store::PurchaseOrder), ServiceError> {
    let po = store::lock_po(&mut tx, cmd.po_id).await?;
    let next = transition(po.status()?).map_err(|r| refused(r, &po, action))?;
    // A delivery that failed may still have reached the supplier (a timeout after it arrived):
    // cancelling here would leave the supplier filling an order we no longer expect.
    if next == Status::Cancelled && store::delivery_attempts(&mut tx, po.po_id).await? > 0 {
        return Err(ServiceError::FailedPrecondition {
            reason: "PO_DELIVERY_IN_DOUBT",
            domain: DOMAIN,
            message: format!(
                "purchase order {} may have reached its supplier (a delivery was attempted); it cannot be cancelled here",
                po_number(po.po_number)
            ),
            metadata: vec![("po_id", po.po_id.to_string())],
        });
    }
    let control_number = if next == Status::Approved {
        Some(store::next_control_number(&mut tx).await?)
    } else {
        None
    };
    let po = store::decide(
        &mut tx,
        po.po_id,
        next,
        &cmd.by,
        &cmd.note,
        control_number,
        now(),
    )
    .await?;
    match next {
        Status::Approved => store::enqueue(&mut tx, po.po_id).await?,
        Status::Cancelled => store::dequeue(&mut tx, po.po_id).await?,
        _ => {}
    }
    Ok((tx, po))
}

fn no_offer(product_id: Uuid, supplier_id: Option<Uuid>) -> ServiceError {
    let (message, mut metadata) = match supplier_id {
        Some(s) => (
            format!("supplier {s} has no offer for product {product_id}"),
            vec![("supplier_id", s.to_string())],
        ),
        None => (
            format!("no supplier offers product {product_id}"),
            Vec::new(),
        ),
    };
    metadata.push(("product_id", product_id.to_string()));
    ServiceError::FailedPrecondition {
        reason: "NO_SUPPLIER_OFFER",
        domain: DOMAIN,
        message,
        metadata,
    }
}

/// At least the minimum order and a whole number of packs.
fn orderable(quantity: i64, offer: &store::Offer) -> Result<(), ServiceError> {
    if quantity >= offer.minimum_order_quantity && quantity % offer.pack_multiple == 0 {
        return Ok(());
    }
    Err(ServiceError::FailedPrecondition {
        reason: "QUANTITY_NOT_ORDERABLE",
        domain: DOMAIN,
        message: format!(
            "quantity {quantity} must be at least the supplier's minimum order of {} and a multiple of its pack of {}",
            offer.minimum_order_quantity, offer.pack_multiple
        ),
        metadata: vec![
            ("quantity", quantity.to_string()),
            (
                "minimum_order_quantity",
                offer.minimum_order_quantity.to_string(),
            ),
            ("pack_multiple", offer.pack_multiple.to_string()),
        ],
    })
}

fn receipt_refused(
    refusal: ReceiptRefused,
    po: &store::PurchaseOrder,
    quantity: i64,
    tolerance: u32,
) -> ServiceError {
    match refusal {
        ReceiptRefused::Status(r) => refused(r, po, "receive against"),
        ReceiptRefused::OverReceipt { acceptable } => ServiceError::FailedPrecondition {
            reason: refusal.reason(),
            domain: DOMAIN,
            message: format!(
                "receiving {quantity} would exceed purchase order {} ({} ordered, {} received, {tolerance}% tolerance): at most {acceptable} more",
                po_number(po.po_number),
                po.ordered_qty,
                po.received_qty
            ),
            metadata: vec![
                ("po_id", po.po_id.to_string()),
                ("ordered_qty", po.ordered_qty.to_string()),
                ("received_qty", po.received_qty.to_string()),
                ("quantity", quantity.to_string()),
                ("acceptable", acceptable.to_string()),
            ],
        },
    }
}

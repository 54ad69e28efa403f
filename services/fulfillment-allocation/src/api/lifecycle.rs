//! After allocation: read, list, cancel (release in stock), confirm a shipment (ship in
//! stock). Each stock call carries a request id derived from ours, so a retry after a
//! failure half-way repeats nothing stock already did and finishes the rest.

use std::collections::BTreeMap;

use inventory_core::{ServiceError, Violations};
use inventory_proto::allocation::v1 as pb;
use inventory_runtime::{RequestKey, idempotency};
use inventory_stock_client::{StockClient, StockError, pb as stock};
use uuid::Uuid;

use super::{AllocationApi, DOMAIN, convert, parse};
use crate::store::{self, Status};

fn not_found(order_id: &str) -> ServiceError {
    ServiceError::not_found("allocation of order", order_id)
}

/// Whether a failed stock call leaves unknown what stock did: its answer was lost (a
/// deadline, an outage mid-call), so the hold may have been committed all the same.
pub(super) fn outcome_unknown(error: &StockError) -> bool {
    matches!(
        error,
        StockError::Unavailable(_) | StockError::DeadlineExceeded(_) | StockError::Other { .. }
    )
}

/// Lets go of what stock may hold for an order whose attempt (request `request_id`) was given
/// up on with an unknown outcome, so no hold outlives a caller answered with an error. Best
/// effort: if stock cannot be reached now either, the caller's retry adopts or releases it.
pub(super) async fn release_given_up(stock: &dyn StockClient, order_id: &str, request_id: &str) {
    let release_id = super::stock_request_id(request_id, &format!("give-up:{}", Uuid::now_v7()));
    match release_order(
        stock,
        order_id,
        release_id,
        "the allocation attempt that held it was given up",
        crate::app::SPEC.binary,
    )
    .await
    {
        Ok(()) => tracing::info!(
            order_id,
            "released what stock may hold for a given-up attempt"
        ),
        Err(error) => tracing::warn!(
            order_id,
            %error,
            "could not release what stock may hold for a given-up attempt; a retry of the \
             order adopts or releases it"
        ),
    }
}

/// Releases whatever stock holds for an order. Stock holding nothing for it any more
/// (shipped, expired, released, or never held) counts as released.
pub(super) async fn release_order(
    stock: &dyn StockClient,
    order_id: &str,
    request_id: String,
    reason: &str,
    actor: &str,
) -> Result<(), StockError> {
    let released = stock
        .release(stock::ReleaseReservationRequest {
            request_id,
            order_id: order_id.to_owned(),
            reason: reason.to_owned(),
            actor: actor.to_owned(),
            ..Default::default()
        })
        .await;
    match released {
        Ok(_) | Err(StockError::Refused { .. } | StockError::NotFound(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

impl AllocationApi {
    pub(super) async fn get(
        &self,
        req: pb::GetAllocationRequest,
    ) -> Result<pb::GetAllocationResponse, ServiceError> {
        let mut v = Violations::new();
        let order_id = v.key("order_id", &req.order_id);
        v.finish()?;
        let order_id = order_id.unwrap_or_default();
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(inventory_runtime::db_error)?;
        let allocation = store::get_allocation(&mut conn, &order_id)
            .await?
            .ok_or_else(|| not_found(&order_id))?;
        let names = self.names().await;
        Ok(pb::GetAllocationResponse {
            allocation: Some(convert::allocation(&allocation, &names)),
        })
    }

    pub(super) async fn list(
        &self,
        req: pb::ListAllocationsRequest,
    ) -> Result<pb::ListAllocationsResponse, ServiceError> {
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!("warehouse={};status={}", req.warehouse_id, req.status),
        )?;
        let mut v = Violations::new();
        let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
        v.finish()?;
        let status = parse::status_filter(req.status)?;
        let rows = store::list_allocations(
            &self.pool,
            warehouse_id.flatten(),
            status,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next) = self.pages.page(rows, &page, |a| a.order_id.clone());
        let names = self.names().await;
        Ok(pb::ListAllocationsResponse {
            allocations: rows
                .iter()
                .map(|a| convert::allocation(a, &names))
                .collect(),
            next_page_token: next,
        })
    }

    pub(super) async fn cancel(
        &self,
        req: pb::CancelAllocationRequest,
    ) -> Result<pb::CancelAllocationResponse, ServiceError> {
        let cmd = parse::cancel(&req)?;
        let key = RequestKey::new("CancelAllocation", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            store::lock_order(&mut tx, &cmd.order_id).await?;
            let mut allocation = store::get_allocation(&mut tx, &cmd.order_id)
                .await?
                .ok_or_else(|| not_found(&cmd.order_id))?;
            match allocation.status {
                Status::Shipped => {
                    return Err(ServiceError::FailedPrecondition {
                        reason: "ORDER_ALREADY_SHIPPED",
                        domain: DOMAIN,
                        message: format!(
                            "order {} has shipped in full and cannot be cancelled",
                            cmd.order_id
                        ),
                        metadata: vec![("order_id", cmd.order_id.clone())],
                    });
                }
                Status::Cancelled => {}
                Status::Allocated | Status::PartiallyShipped => {
                    release_order(
                        &*self.stock,
                        &cmd.order_id,
                        super::stock_request_id(&cmd.request_id, "release"),
                        &cmd.reason,
                        &cmd.actor,
                    )
                    .await?;
                    let mut open: BTreeMap<Uuid, i64> = BTreeMap::new();
                    for line in &allocation.lines {
                        if line.quantity_shipped < line.quantity {
                            *open.entry(line.warehouse_id).or_default() += 1;
                        }
                    }
                    let open: Vec<(Uuid, i64)> = open.into_iter().collect();
                    store::remove_open_lines(&mut tx, &open).await?;
                    allocation.update_time =
                        store::set_status(&mut tx, &cmd.order_id, Status::Cancelled).await?;
                    allocation.status = Status::Cancelled;
                }
            }
            let names = self.names().await;
            let response = pb::CancelAllocationResponse {
                allocation: Some(convert::allocation(&allocation, &names)),
            };
            Ok((tx, response))
        })
        .await
    }

    pub(super) async fn ship(
        &self,
        req: pb::ConfirmShipmentRequest,
    ) -> Result<pb::ConfirmShipmentResponse, ServiceError> {
        let cmd = parse::ship(&req)?;
        let key = RequestKey::new("ConfirmShipment", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            store::lock_order(&mut tx, &cmd.order_id).await?;
            let mut allocation = store::get_allocation(&mut tx, &cmd.order_id)
                .await?
                .ok_or_else(|| not_found(&cmd.order_id))?;
            if allocation.status == Status::Cancelled {
                return Err(ServiceError::FailedPrecondition {
                    reason: "ORDER_CANCELLED",
                    domain: DOMAIN,
                    message: format!("order {} was cancelled", cmd.order_id),
                    metadata: vec![("order_id", cmd.order_id.clone())],
                });
            }
            // Check every line before shipping any: bad input changes nothing.
            let mut rows = Vec::with_capacity(cmd.lines.len());
            for (i, (line_id, quantity)) in cmd.lines.iter().enumerate() {
                let index = allocation
                    .lines
                    .iter()
                    .position(|l| l.order_line_id == *line_id && l.warehouse_id == cmd.warehouse_id)
                    .ok_or_else(|| {
                        ServiceError::invalid(
                            format!("lines[{i}].order_line_id"),
                            format!(
                                "order line {line_id} is not allocated to warehouse {}",
                                cmd.warehouse_id
                            ),
                        )
                    })?;
                let row = &allocation.lines[index];
                let left = row.quantity - row.quantity_shipped;
                if *quantity > left {
                    return Err(ServiceError::FailedPrecondition {
                        reason: "EXCEEDS_ALLOCATED_QUANTITY",
                        domain: DOMAIN,
                        message: format!(
                            "order line {line_id}: {quantity} to ship, {left} allocated and not yet shipped"
                        ),
                        metadata: vec![
                            ("order_line_id", line_id.clone()),
                            ("requested", quantity.to_string()),
                            ("unshipped", left.to_string()),
                        ],
                    });
                }
                rows.push((index, *quantity));
            }
            // Stock must still hold every line (a hold may have expired): checked before any
            // line ships, so a refusal leaves stock and this record agreeing. A line stock has
            // shipped beyond this record is one an earlier attempt of this request shipped
            // before failing on a later line: its derived request id makes stock replay it.
            let held = self.stock.list_reservations(vec![cmd.order_id.clone()]).await?;
            for (i, (index, quantity)) in rows.iter().enumerate() {
                let row = &allocation.lines[*index];
                let holds = held.iter().any(|r| {
                    r.order_line_id == row.order_line_id
                        && r.warehouse_id == cmd.warehouse_id.to_string()
                        && ((r.status == stock::ReservationStatus::Active as i32
                            && r.quantity_held >= *quantity)
                            || r.quantity_shipped - row.quantity_shipped >= *quantity)
                });
                if !holds {
                    return Err(ServiceError::FailedPrecondition {
                        reason: "RESERVATION_NOT_HELD",
                        domain: DOMAIN,
                        message: format!(
                            "stock no longer holds {quantity} units of order line {} in warehouse {} (lines[{i}]): the hold expired or was released",
                            row.order_line_id, cmd.warehouse_id
                        ),
                        metadata: vec![("order_line_id", row.order_line_id.clone())],
                    });
                }
            }
            let mut finished = 0;
            for (i, (index, quantity)) in rows.iter().enumerate() {
                let row = &mut allocation.lines[*index];
                self.stock
                    .ship(stock::ShipReservationRequest {
                        request_id: super::stock_request_id(&cmd.request_id, &format!("ship:{i}")),
                        order_id: cmd.order_id.clone(),
                        order_line_id: row.order_line_id.clone(),
                        warehouse_id: cmd.warehouse_id.to_string(),
                        quantity: *quantity,
                        actor: cmd.actor.clone(),
                    })
                    .await?;
                store::add_shipped(
                    &mut tx,
                    &cmd.order_id,
                    &row.order_line_id,
                    cmd.warehouse_id,
                    *quantity,
                )
                .await?;
                row.quantity_shipped += quantity;
                if row.quantity_shipped == row.quantity {
                    finished += 1;
                }
            }
            if finished > 0 {
                store::remove_open_lines(&mut tx, &[(cmd.warehouse_id, finished)]).await?;
            }
            let all_shipped = allocation
                .lines
                .iter()
                .all(|l| l.quantity_shipped == l.quantity);
            allocation.status = if all_shipped {
                Status::Shipped
            } else {
                Status::PartiallyShipped
            };
            allocation.update_time =
                store::set_status(&mut tx, &cmd.order_id, allocation.status).await?;
            let names = self.names().await;
            let response = pb::ConfirmShipmentResponse {
                allocation: Some(convert::allocation(&allocation, &names)),
            };
            Ok((tx, response))
        })
        .await
    }
}

//! Every quantity change: receive, reserve (one line or a whole order), release, ship,
//! adjust, transfer. Each runs once per request id, inside one transaction.

use std::collections::BTreeMap;

use inventory_core::ServiceError;
use inventory_core::time::now;
use inventory_proto::stock::v1 as pb;
use inventory_runtime::{RequestKey, Tx};
use uuid::Uuid;

use super::coalesce::{self, Answer, Coalesced};
use super::{StockApi, convert, parse};
use crate::domain::movement::Movement;
use crate::domain::reservation::{ReleaseCause, Reservation};
use crate::store::{Applied, BatchRequest};

impl StockApi {
    pub(super) async fn receive(
        &self,
        req: pb::ReceiveStockRequest,
    ) -> Result<pb::ReceiveStockResponse, ServiceError> {
        let cmd = parse::receive(&req)?;
        let key = RequestKey::new("ReceiveStock", &cmd.envelope.request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let movement =
                Movement::receive(cmd.key, cmd.quantity).with_reference(cmd.reference_id.clone());
            let applied = self
                .apply(&mut tx, &[movement], None, &cmd.envelope)
                .await?;
            Ok((
                tx,
                pb::ReceiveStockResponse {
                    inventory: Some(convert::inventory(applied.row(&cmd.key)?)),
                    transaction: applied.transactions.first().map(convert::transaction),
                },
            ))
        })
        .await
    }

    /// Reserves every line or none: rows are updated in lock order, so overlapping orders
    /// cannot deadlock, and any refused line rolls the whole request back.
    async fn reserve_lines(
        &self,
        tx: &mut Tx,
        cmd: &parse::Reserve,
    ) -> Result<(Vec<Reservation>, Applied), ServiceError> {
        let reservations = reservations_of(cmd);
        let movements: Vec<Movement> = reservations
            .iter()
            .map(|r| {
                Movement::reserve(r.key, r.quantity_requested).with_reference(cmd.order_id.clone())
            })
            .collect();
        let applied = self.apply(tx, &movements, None, &cmd.envelope).await?;
        self.store.insert_reservations(tx, &reservations).await?;
        Ok((reservations, applied))
    }

    pub(super) async fn reserve_stock(
        &self,
        req: pb::ReserveStockRequest,
    ) -> Result<pb::ReserveStockResponse, ServiceError> {
        let cmd = parse::reserve_one(&req)?;
        let key = RequestKey::new("ReserveStock", &cmd.envelope.request_id, &req);
        if let Some(first) = self.check_expiry(&key, cmd.expire_time).await? {
            return Ok(first);
        }
        match self.coalesced(&key, &cmd).await {
            Some(Ok(Answer::One(response))) => return Ok(*response),
            Some(Ok(Answer::Order(_))) => {
                return Err(ServiceError::Internal(
                    "an order's answer to one line".into(),
                ));
            }
            Some(Err(error)) => return Err(error),
            None => {}
        }
        self.idempotent(&key, |mut tx| async move {
            let (reservations, applied) = self.reserve_lines(&mut tx, &cmd).await?;
            let reservation = reservations
                .first()
                .ok_or_else(|| ServiceError::Internal("no reservation made".into()))?;
            let response = coalesce::response(reservation, applied.row(&reservation.key)?);
            Ok((tx, response))
        })
        .await
    }

    pub(super) async fn reserve_order(
        &self,
        req: pb::ReserveOrderRequest,
    ) -> Result<pb::ReserveOrderResponse, ServiceError> {
        let (key, cmd) = match self.order_request(&req).await? {
            OrderRequest::Answered(first) => return Ok(first),
            OrderRequest::Ready(key, cmd) => (key, cmd),
        };
        match self.coalesced(&key, &cmd).await {
            Some(answer) => order_answer(answer),
            None => self.reserve_order_alone(&key, &cmd).await,
        }
    }

    /// Many ReserveOrder requests, each answered as that RPC would answer it; those that
    /// reach the coalescer are spread over its lanes by their first row, and each lane's
    /// share goes into one batch together.
    pub(super) async fn batch_reserve_orders(
        &self,
        req: pb::BatchReserveOrdersRequest,
    ) -> Result<pb::BatchReserveOrdersResponse, ServiceError> {
        parse::batch_reserve_orders(&req)?;
        let mut results: Vec<Option<Result<pb::ReserveOrderResponse, ServiceError>>> =
            req.orders.iter().map(|_| None).collect();
        let mut ready: Vec<(usize, RequestKey, parse::Reserve)> = Vec::new();
        for (i, order) in req.orders.iter().enumerate() {
            match self.order_request(order).await {
                Ok(OrderRequest::Ready(key, cmd)) => ready.push((i, key, cmd)),
                Ok(OrderRequest::Answered(first)) => results[i] = Some(Ok(first)),
                Err(error) => results[i] = Some(Err(error)),
            }
        }
        let coalesced: Vec<Option<Result<Answer, ServiceError>>> = match &self.coalescer {
            Some(coalescer) => {
                let requests = ready
                    .iter()
                    .map(|(_, key, cmd)| batch_request(key, cmd))
                    .collect();
                coalescer
                    .submit_together(requests)
                    .await
                    .into_iter()
                    .map(Coalesced::into_answer)
                    .collect()
            }
            None => ready.iter().map(|_| None).collect(),
        };
        // The rest (retries, unknown rows, a failed batch) each alone, in request order.
        for ((i, key, cmd), answer) in ready.into_iter().zip(coalesced) {
            results[i] = Some(match answer {
                Some(answer) => order_answer(answer),
                None => self.reserve_order_alone(&key, &cmd).await,
            });
        }
        Ok(pb::BatchReserveOrdersResponse {
            results: results
                .into_iter()
                .map(|result| {
                    let result = result.unwrap_or_else(|| {
                        Err(ServiceError::Internal("an order left unanswered".into()))
                    });
                    pb::ReserveOrderResult {
                        result: Some(match result {
                            Ok(reserved) => pb::reserve_order_result::Result::Reserved(reserved),
                            Err(error) => pb::reserve_order_result::Result::Error(
                                inventory_core::error::rpc_status(error),
                            ),
                        }),
                    }
                })
                .collect(),
        })
    }

    /// A ReserveOrder request checked, or the first answer of a retry whose hold has expired.
    async fn order_request(
        &self,
        req: &pb::ReserveOrderRequest,
    ) -> Result<OrderRequest, ServiceError> {
        let cmd = parse::reserve_order(req)?;
        let key = RequestKey::new("ReserveOrder", &cmd.envelope.request_id, req);
        Ok(match self.check_expiry(&key, cmd.expire_time).await? {
            Some(first) => OrderRequest::Answered(first),
            None => OrderRequest::Ready(key, cmd),
        })
    }

    /// An order on the one-request path: its own transaction, replayed if seen before.
    async fn reserve_order_alone(
        &self,
        key: &RequestKey,
        cmd: &parse::Reserve,
    ) -> Result<pb::ReserveOrderResponse, ServiceError> {
        self.idempotent(key, |mut tx| async move {
            let (reservations, _) = self.reserve_lines(&mut tx, cmd).await?;
            Ok((
                tx,
                pb::ReserveOrderResponse {
                    reservations: reservations.iter().map(convert::reservation).collect(),
                },
            ))
        })
        .await
    }

    /// `cmd` through the coalescer, if there is one: its answer or refusal, or `None` when
    /// it must run on the one-request path (a retry, an unknown row, a batch that failed).
    async fn coalesced(
        &self,
        key: &RequestKey,
        cmd: &parse::Reserve,
    ) -> Option<Result<Answer, ServiceError>> {
        let coalescer = self.coalescer.as_ref()?;
        coalescer
            .submit(batch_request(key, cmd))
            .await
            .into_answer()
    }

    pub(super) async fn release(
        &self,
        req: pb::ReleaseReservationRequest,
    ) -> Result<pb::ReleaseReservationResponse, ServiceError> {
        let cmd = parse::release(&req)?;
        let key = RequestKey::new("ReleaseReservation", &cmd.envelope.request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let found = self
                .store
                .lock_order_reservations(
                    &mut tx,
                    &cmd.order_id,
                    cmd.order_line_id.as_deref(),
                    cmd.warehouse_id,
                )
                .await?;
            if found.is_empty() {
                return Err(ServiceError::not_found(
                    "reservation",
                    format!("for order {}", cmd.order_id),
                ));
            }
            if cmd.quantity.is_some() && found.len() != 1 {
                return Err(ServiceError::invalid(
                    "quantity",
                    format!(
                        "a partial release must match exactly one reservation (name order_line_id and warehouse_id); {} match",
                        found.len()
                    ),
                ));
            }
            // One named reservation must be active; a whole-order release skips finished lines.
            let targets: Vec<&Reservation> = if found.len() == 1 {
                found.iter().collect()
            } else {
                found.iter().filter(|r| r.quantity_held > 0).collect()
            };
            let targets = if targets.is_empty() {
                vec![&found[0]]
            } else {
                targets
            };
            let now = now();
            let mut changed = Vec::with_capacity(targets.len());
            let mut movements = Vec::with_capacity(targets.len());
            for r in targets {
                let (next, movement) = r.release(cmd.quantity, ReleaseCause::Cancelled, now)?;
                changed.push(next);
                movements.push(movement.with_reason(cmd.reason.clone()));
            }
            self.apply(&mut tx, &movements, None, &cmd.envelope).await?;
            self.store.save_reservations(&mut tx, &changed).await?;
            let updated: BTreeMap<Uuid, &Reservation> =
                changed.iter().map(|r| (r.reservation_id, r)).collect();
            Ok((tx, pb::ReleaseReservationResponse {
                reservations: found
                    .iter()
                    .map(|r| {
                        convert::reservation(updated.get(&r.reservation_id).copied().unwrap_or(r))
                    })
                    .collect(),
            }))
        })
        .await
    }

    pub(super) async fn ship(
        &self,
        req: pb::ShipReservationRequest,
    ) -> Result<pb::ShipReservationResponse, ServiceError> {
        let cmd = parse::ship(&req)?;
        let key = RequestKey::new("ShipReservation", &cmd.envelope.request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let found = self
                .store
                .lock_order_reservations(
                    &mut tx,
                    &cmd.order_id,
                    Some(&cmd.order_line_id),
                    Some(cmd.warehouse_id),
                )
                .await?;
            let reservation = found.first().ok_or_else(|| {
                ServiceError::not_found(
                    "reservation",
                    format!(
                        "for order {} line {} in warehouse {}",
                        cmd.order_id, cmd.order_line_id, cmd.warehouse_id
                    ),
                )
            })?;
            let (next, movement) = reservation.ship(cmd.quantity, now())?;
            let applied = self
                .apply(&mut tx, &[movement], None, &cmd.envelope)
                .await?;
            self.store
                .save_reservations(&mut tx, std::slice::from_ref(&next))
                .await?;
            Ok((
                tx,
                pb::ShipReservationResponse {
                    reservation: Some(convert::reservation(&next)),
                    inventory: Some(convert::inventory(applied.row(&next.key)?)),
                },
            ))
        })
        .await
    }

    pub(super) async fn adjust(
        &self,
        req: pb::AdjustStockRequest,
    ) -> Result<pb::AdjustStockResponse, ServiceError> {
        let cmd = parse::adjust(&req)?;
        let key = RequestKey::new("AdjustStock", &cmd.envelope.request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let movement = Movement::adjust(cmd.key, cmd.quantity_delta)
                .with_reason(cmd.reason.clone())
                .with_reference(cmd.reference_id.clone());
            let applied = self
                .apply(&mut tx, &[movement], cmd.expected_on_hand, &cmd.envelope)
                .await?;
            Ok((
                tx,
                pb::AdjustStockResponse {
                    inventory: Some(convert::inventory(applied.row(&cmd.key)?)),
                    transaction: applied.transactions.first().map(convert::transaction),
                },
            ))
        })
        .await
    }

    pub(super) async fn transfer(
        &self,
        req: pb::TransferStockRequest,
    ) -> Result<pb::TransferStockResponse, ServiceError> {
        let cmd = parse::transfer(&req)?;
        let key = RequestKey::new("TransferStock", &cmd.envelope.request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let movements = [
                Movement::transfer_out(cmd.from, cmd.quantity)
                    .with_reference(cmd.reference_id.clone()),
                Movement::transfer_in(cmd.to, cmd.quantity)
                    .with_reference(cmd.reference_id.clone()),
            ];
            let applied = self.apply(&mut tx, &movements, None, &cmd.envelope).await?;
            Ok((
                tx,
                pb::TransferStockResponse {
                    from_inventory: Some(convert::inventory(applied.row(&cmd.from)?)),
                    to_inventory: Some(convert::inventory(applied.row(&cmd.to)?)),
                    transactions: applied
                        .transactions
                        .iter()
                        .map(convert::transaction)
                        .collect(),
                },
            ))
        })
        .await
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        movements: &[Movement],
        expected_on_hand: Option<i64>,
        envelope: &parse::Envelope,
    ) -> Result<Applied, ServiceError> {
        self.store
            .apply_movements(
                tx,
                movements,
                expected_on_hand,
                &envelope.request_id,
                &envelope.actor,
            )
            .await
    }
}

/// The reservations a reserve command asks for, one per line, made now.
fn reservations_of(cmd: &parse::Reserve) -> Vec<Reservation> {
    let now = now();
    cmd.lines
        .iter()
        .map(|l| {
            Reservation::new(
                cmd.order_id.clone(),
                l.order_line_id.clone(),
                l.key,
                l.quantity,
                cmd.expire_time,
                now,
            )
        })
        .collect()
}

/// A ReserveOrder request, checked or answered already.
enum OrderRequest {
    Ready(RequestKey, parse::Reserve),
    Answered(pb::ReserveOrderResponse),
}

/// A reservation request as the coalescer takes it.
fn batch_request(key: &RequestKey, cmd: &parse::Reserve) -> BatchRequest {
    BatchRequest {
        request_id: key.request_id.clone(),
        method: key.method,
        fingerprint: key.fingerprint.clone(),
        actor: cmd.envelope.actor.clone(),
        lines: reservations_of(cmd),
    }
}

/// An order's answer from the coalescer.
fn order_answer(
    answer: Result<Answer, ServiceError>,
) -> Result<pb::ReserveOrderResponse, ServiceError> {
    match answer? {
        Answer::Order(response) => Ok(response),
        Answer::One(_) => Err(ServiceError::Internal(
            "one line's answer to an order".into(),
        )),
    }
}

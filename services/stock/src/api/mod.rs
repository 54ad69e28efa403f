//! The gRPC layer: requests become commands (`parse`), commands run against the store inside
//! idempotent transactions, results become messages (`convert`). Status codes are decided
//! once, by `ServiceError`.

mod coalesce;
mod convert;
mod parse;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use inventory_core::{ServiceError, paging};
use inventory_proto::stock::v1 as pb;
use pb::stock_service_server::StockService;
use prost::Message;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::catalog::{Product, Warehouse};
use crate::domain::movement::{InventoryKey, Movement};
use crate::domain::reservation::{ReleaseCause, Reservation};
use crate::store::{
    Applied, BatchRequest, Begun, FeedReader, ListInventoryFilter, ListTransactionsFilter,
    RequestKey, Store, Tx,
};
use coalesce::{Coalesced, Coalescer};
pub use convert::now;

/// Transactions fetched per feed query.
const FEED_BATCH: i64 = 500;
/// Messages buffered per feed subscriber before the reader waits for the client.
const FEED_BUFFER: usize = 1024;

/// The StockService implementation.
#[derive(Clone)]
pub struct StockApi {
    store: Store,
    /// Woken after every commit that appends to the log, so local feeds deliver at once.
    log_appended: Arc<Notify>,
    /// How often a caught-up feed looks for transactions written by other replicas.
    feed_poll: Duration,
    /// Gathers concurrent single-line reservations into shared transactions, when enabled.
    coalescer: Option<Coalescer>,
    /// Turns true when the server begins to shut down; open feeds end then.
    stopping: watch::Receiver<bool>,
    /// Furthest ahead a reservation may expire: as long as request ids are kept.
    longest_expiry: chrono::Duration,
}

/// How single-line reservations are applied.
#[derive(Debug, Clone, Copy)]
pub struct Coalescing {
    /// Lane workers; rows are spread over them by key.
    pub lanes: usize,
    /// Most requests one transaction applies.
    pub max_batch: usize,
}

impl StockApi {
    pub fn new(
        store: Store,
        log_appended: Arc<Notify>,
        feed_poll: Duration,
        coalescing: Option<Coalescing>,
        stopping: watch::Receiver<bool>,
        longest_expiry: chrono::Duration,
    ) -> Self {
        let coalescer = coalescing
            .map(|c| Coalescer::start(store.clone(), c.lanes, c.max_batch, log_appended.clone()));
        Self {
            store,
            log_appended,
            feed_poll,
            coalescer,
            stopping,
            longest_expiry,
        }
    }
}

fn request_key<M: Message>(method: &'static str, request_id: &str, request: &M) -> RequestKey {
    RequestKey {
        request_id: request_id.to_owned(),
        method,
        fingerprint: request.encode_to_vec(),
    }
}

fn replay<M: Message + Default>(bytes: &[u8]) -> Result<M, ServiceError> {
    M::decode(bytes).map_err(|e| ServiceError::Internal(format!("stored response: {e}")))
}

/// Runs the shared shape of every mutating RPC: claim the request id or replay its first
/// response; otherwise do the work, store the response beside it, commit.
macro_rules! idempotent {
    ($self:ident, $key:expr, |$tx:ident| $work:expr) => {{
        let key = $key;
        match $self.store.begin_request(&key).await? {
            Begun::Replay(bytes) => replay(&bytes),
            Begun::Fresh(mut $tx) => {
                let response = $work;
                $self
                    .store
                    .finish_request($tx, &key, response.encode_to_vec())
                    .await?;
                $self.log_appended.notify_waiters();
                Ok(response)
            }
        }
    }};
}

/// A new reservation must expire in the future, and no later than request ids are kept (so a
/// retry within its window always finds its first answer); a retry of one replays its first
/// answer however much time has passed since.
async fn check_expiry<M: Message + Default>(
    store: &Store,
    key: &RequestKey,
    expire_time: Option<chrono::DateTime<chrono::Utc>>,
    longest: chrono::Duration,
) -> Result<Option<M>, ServiceError> {
    let now = chrono::Utc::now();
    match expire_time {
        Some(at) if at <= now => match store.begin_request(key).await? {
            Begun::Replay(bytes) => replay(&bytes).map(Some),
            Begun::Fresh(_unclaimed) => Err(ServiceError::invalid(
                "expire_time",
                "must be in the future",
            )),
        },
        Some(at) if at > now + longest => Err(ServiceError::invalid(
            "expire_time",
            format!(
                "must be at most {} hours ahead, as long as request ids are kept",
                longest.num_hours()
            ),
        )),
        _ => Ok(None),
    }
}

fn reply<T>(result: Result<T, ServiceError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

impl StockApi {
    async fn create_product(
        &self,
        req: pb::CreateProductRequest,
    ) -> Result<pb::CreateProductResponse, ServiceError> {
        let (request_id, new) = parse::create_product(&req)?;
        idempotent!(
            self,
            request_key("CreateProduct", &request_id, &req),
            |tx| {
                let p = new.patch;
                let now = now();
                let product = Product {
                    product_id: new.product_id,
                    sku: p.sku.unwrap_or_default(),
                    name: p.name.unwrap_or_default(),
                    category: p.category.unwrap_or_default(),
                    unit_of_measure: p.unit_of_measure.unwrap_or_default(),
                    reorder_point: p.reorder_point.unwrap_or_default(),
                    reorder_quantity: p.reorder_quantity.unwrap_or_default(),
                    lead_time_days: p.lead_time_days.unwrap_or_default(),
                    unit_cost_micros: p.unit_cost_micros.unwrap_or_default(),
                    create_time: now,
                    update_time: now,
                };
                let product = self.store.insert_product(&mut tx, &product).await?;
                pb::CreateProductResponse {
                    product: Some(convert::product(product)),
                }
            }
        )
    }

    async fn update_product(
        &self,
        req: pb::UpdateProductRequest,
    ) -> Result<pb::UpdateProductResponse, ServiceError> {
        let (request_id, product_id, patch) = parse::update_product(&req)?;
        idempotent!(
            self,
            request_key("UpdateProduct", &request_id, &req),
            |tx| {
                let product = self
                    .store
                    .update_product(&mut tx, product_id, &patch)
                    .await?;
                pb::UpdateProductResponse {
                    product: Some(convert::product(product)),
                }
            }
        )
    }

    async fn create_warehouse(
        &self,
        req: pb::CreateWarehouseRequest,
    ) -> Result<pb::CreateWarehouseResponse, ServiceError> {
        let (request_id, new) = parse::create_warehouse(&req)?;
        idempotent!(
            self,
            request_key("CreateWarehouse", &request_id, &req),
            |tx| {
                let now = now();
                let warehouse = Warehouse {
                    warehouse_id: new.warehouse_id,
                    name: new.name.clone(),
                    address: new.address.clone(),
                    warehouse_type: new.warehouse_type,
                    latitude: new.location.0,
                    longitude: new.location.1,
                    create_time: now,
                    update_time: now,
                };
                let warehouse = self.store.insert_warehouse(&mut tx, &warehouse).await?;
                pb::CreateWarehouseResponse {
                    warehouse: Some(convert::warehouse(warehouse)),
                }
            }
        )
    }

    async fn update_warehouse(
        &self,
        req: pb::UpdateWarehouseRequest,
    ) -> Result<pb::UpdateWarehouseResponse, ServiceError> {
        let (request_id, warehouse_id, patch) = parse::update_warehouse(&req)?;
        idempotent!(
            self,
            request_key("UpdateWarehouse", &request_id, &req),
            |tx| {
                let warehouse = self
                    .store
                    .update_warehouse(&mut tx, warehouse_id, &patch)
                    .await?;
                pb::UpdateWarehouseResponse {
                    warehouse: Some(convert::warehouse(warehouse)),
                }
            }
        )
    }

    async fn receive(
        &self,
        req: pb::ReceiveStockRequest,
    ) -> Result<pb::ReceiveStockResponse, ServiceError> {
        let cmd = parse::receive(&req)?;
        idempotent!(
            self,
            request_key("ReceiveStock", &cmd.envelope.request_id, &req),
            |tx| {
                let movement = Movement::receive(cmd.key, cmd.quantity)
                    .with_reference(cmd.reference_id.clone());
                let applied = self
                    .apply(&mut tx, &[movement], None, &cmd.envelope)
                    .await?;
                pb::ReceiveStockResponse {
                    inventory: Some(convert::inventory(applied.row(&cmd.key)?)),
                    transaction: applied.transactions.first().map(convert::transaction),
                }
            }
        )
    }

    /// Reserves every line or none: rows are updated in lock order, so overlapping orders
    /// cannot deadlock, and any refused line rolls the whole request back.
    async fn reserve_lines(
        &self,
        tx: &mut Tx,
        cmd: &parse::Reserve,
    ) -> Result<(Vec<Reservation>, Applied), ServiceError> {
        let now = now();
        let reservations: Vec<Reservation> = cmd
            .lines
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
            .collect();
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

    async fn reserve_stock(
        &self,
        req: pb::ReserveStockRequest,
    ) -> Result<pb::ReserveStockResponse, ServiceError> {
        let cmd = parse::reserve_one(&req)?;
        let key = request_key("ReserveStock", &cmd.envelope.request_id, &req);
        if let Some(first) =
            check_expiry(&self.store, &key, cmd.expire_time, self.longest_expiry).await?
        {
            return Ok(first);
        }
        if let Some(coalescer) = &self.coalescer
            && let [line] = cmd.lines.as_slice()
        {
            let request = BatchRequest {
                request_id: key.request_id.clone(),
                method: key.method,
                fingerprint: key.fingerprint.clone(),
                actor: cmd.envelope.actor.clone(),
                reservation: Reservation::new(
                    cmd.order_id.clone(),
                    line.order_line_id.clone(),
                    line.key,
                    line.quantity,
                    cmd.expire_time,
                    now(),
                ),
            };
            match coalescer.submit(request).await {
                Coalesced::Done(response) => return Ok(*response),
                Coalesced::Refused(error) => return Err(error),
                Coalesced::Single => {}
            }
        }
        idempotent!(self, key, |tx| {
            let (reservations, applied) = self.reserve_lines(&mut tx, &cmd).await?;
            let reservation = reservations
                .first()
                .ok_or_else(|| ServiceError::Internal("no reservation made".into()))?;
            coalesce::response(reservation, applied.row(&reservation.key)?)
        })
    }

    async fn reserve_order(
        &self,
        req: pb::ReserveOrderRequest,
    ) -> Result<pb::ReserveOrderResponse, ServiceError> {
        let cmd = parse::reserve_order(&req)?;
        let key = request_key("ReserveOrder", &cmd.envelope.request_id, &req);
        if let Some(first) =
            check_expiry(&self.store, &key, cmd.expire_time, self.longest_expiry).await?
        {
            return Ok(first);
        }
        idempotent!(self, key, |tx| {
            let (reservations, _) = self.reserve_lines(&mut tx, &cmd).await?;
            pb::ReserveOrderResponse {
                reservations: reservations.iter().map(convert::reservation).collect(),
            }
        })
    }

    async fn release(
        &self,
        req: pb::ReleaseReservationRequest,
    ) -> Result<pb::ReleaseReservationResponse, ServiceError> {
        let cmd = parse::release(&req)?;
        idempotent!(
            self,
            request_key("ReleaseReservation", &cmd.envelope.request_id, &req),
            |tx| {
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
                pb::ReleaseReservationResponse {
                    reservations: found
                        .iter()
                        .map(|r| {
                            convert::reservation(
                                updated.get(&r.reservation_id).copied().unwrap_or(r),
                            )
                        })
                        .collect(),
                }
            }
        )
    }

    async fn ship(
        &self,
        req: pb::ShipReservationRequest,
    ) -> Result<pb::ShipReservationResponse, ServiceError> {
        let cmd = parse::ship(&req)?;
        idempotent!(
            self,
            request_key("ShipReservation", &cmd.envelope.request_id, &req),
            |tx| {
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
                pb::ShipReservationResponse {
                    reservation: Some(convert::reservation(&next)),
                    inventory: Some(convert::inventory(applied.row(&next.key)?)),
                }
            }
        )
    }

    async fn adjust(
        &self,
        req: pb::AdjustStockRequest,
    ) -> Result<pb::AdjustStockResponse, ServiceError> {
        let cmd = parse::adjust(&req)?;
        idempotent!(
            self,
            request_key("AdjustStock", &cmd.envelope.request_id, &req),
            |tx| {
                let movement = Movement::adjust(cmd.key, cmd.quantity_delta)
                    .with_reason(cmd.reason.clone())
                    .with_reference(cmd.reference_id.clone());
                let applied = self
                    .apply(&mut tx, &[movement], cmd.expected_on_hand, &cmd.envelope)
                    .await?;
                pb::AdjustStockResponse {
                    inventory: Some(convert::inventory(applied.row(&cmd.key)?)),
                    transaction: applied.transactions.first().map(convert::transaction),
                }
            }
        )
    }

    async fn transfer(
        &self,
        req: pb::TransferStockRequest,
    ) -> Result<pb::TransferStockResponse, ServiceError> {
        let cmd = parse::transfer(&req)?;
        idempotent!(
            self,
            request_key("TransferStock", &cmd.envelope.request_id, &req),
            |tx| {
                let movements = [
                    Movement::transfer_out(cmd.from, cmd.quantity)
                        .with_reference(cmd.reference_id.clone()),
                    Movement::transfer_in(cmd.to, cmd.quantity)
                        .with_reference(cmd.reference_id.clone()),
                ];
                let applied = self.apply(&mut tx, &movements, None, &cmd.envelope).await?;
                pb::TransferStockResponse {
                    from_inventory: Some(convert::inventory(applied.row(&cmd.from)?)),
                    to_inventory: Some(convert::inventory(applied.row(&cmd.to)?)),
                    transactions: applied
                        .transactions
                        .iter()
                        .map(convert::transaction)
                        .collect(),
                }
            }
        )
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

impl StockApi {
    async fn get_inventory(
        &self,
        req: pb::GetInventoryRequest,
    ) -> Result<pb::GetInventoryResponse, ServiceError> {
        let key = parse::inventory_key(&req.product_id, &req.warehouse_id)?;
        match self.store.get_inventory(key).await? {
            Some(row) => Ok(pb::GetInventoryResponse {
                inventory: Some(convert::inventory(&row)),
            }),
            None => {
                self.store.ensure_catalog_exists(&[key]).await?;
                Err(ServiceError::not_found(
                    "inventory",
                    format!(
                        "for product {} in warehouse {} (never stocked)",
                        key.product_id, key.warehouse_id
                    ),
                ))
            }
        }
    }

    async fn batch_get_availability(
        &self,
        req: pb::BatchGetAvailabilityRequest,
    ) -> Result<pb::BatchGetAvailabilityResponse, ServiceError> {
        let keys = parse::batch_keys(&req)?;
        self.store.ensure_catalog_exists(&keys).await?;
        let rows: BTreeMap<InventoryKey, _> = self
            .store
            .get_inventory_many(&keys)
            .await?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        let availabilities = keys
            .iter()
            .map(|k| {
                let level = rows.get(k).map(|r| r.level()).unwrap_or_default();
                pb::Availability {
                    product_id: k.product_id.to_string(),
                    warehouse_id: k.warehouse_id.to_string(),
                    quantity_on_hand: level.on_hand,
                    quantity_reserved: level.reserved,
                    quantity_available: level.available(),
                }
            })
            .collect();
        Ok(pb::BatchGetAvailabilityResponse { availabilities })
    }

    async fn list_products(
        &self,
        req: pb::ListProductsRequest,
    ) -> Result<pb::ListProductsResponse, ServiceError> {
        let filters = format!("category={}", req.category);
        let (limit, token) = parse::page(req.page_size, &req.page_token, &filters)?;
        let after = token.map(|t| parse_uuid_token(&t)).transpose()?;
        let category = (!req.category.is_empty()).then_some(req.category.as_str());
        let products = self.store.list_products(after, category, limit + 1).await?;
        let (page, next) = split_page(products, limit, &filters, |p| p.product_id.to_string());
        Ok(pb::ListProductsResponse {
            products: page.into_iter().map(convert::product).collect(),
            next_page_token: next,
        })
    }

    async fn list_warehouses(
        &self,
        req: pb::ListWarehousesRequest,
    ) -> Result<pb::ListWarehousesResponse, ServiceError> {
        let filters = String::new();
        let (limit, token) = parse::page(req.page_size, &req.page_token, &filters)?;
        let after = token.map(|t| parse_uuid_token(&t)).transpose()?;
        let warehouses = self.store.list_warehouses(after, limit + 1).await?;
        let (page, next) = split_page(warehouses, limit, &filters, |w| w.warehouse_id.to_string());
        Ok(pb::ListWarehousesResponse {
            warehouses: page.into_iter().map(convert::warehouse).collect(),
            next_page_token: next,
        })
    }

    async fn list_inventory(
        &self,
        req: pb::ListInventoryRequest,
    ) -> Result<pb::ListInventoryResponse, ServiceError> {
        let filters = format!(
            "product={};warehouse={};below={}",
            req.product_id, req.warehouse_id, req.below_reorder_point
        );
        let (limit, token) = parse::page(req.page_size, &req.page_token, &filters)?;
        let mut v = inventory_core::Violations::new();
        let product_id = v.optional_uuid("product_id", &req.product_id);
        let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
        v.finish()?;
        let after = token
            .map(|t| {
                let (p, w) = t.split_once(',').ok_or_else(bad_token)?;
                Ok::<_, ServiceError>(InventoryKey {
                    product_id: parse_uuid_token(p)?,
                    warehouse_id: parse_uuid_token(w)?,
                })
            })
            .transpose()?;
        let filter = ListInventoryFilter {
            product_id: product_id.flatten(),
            warehouse_id: warehouse_id.flatten(),
            below_reorder_point: req.below_reorder_point,
        };
        let rows = self.store.list_inventory(&filter, after, limit + 1).await?;
        let (page, next) = split_page(rows, limit, &filters, |r| {
            format!("{},{}", r.product_id, r.warehouse_id)
        });
        Ok(pb::ListInventoryResponse {
            inventory: page.iter().map(convert::inventory).collect(),
            next_page_token: next,
        })
    }

    async fn list_reservations(
        &self,
        req: pb::ListReservationsRequest,
    ) -> Result<pb::ListReservationsResponse, ServiceError> {
        let mut v = inventory_core::Violations::new();
        let order_id = v.key("order_id", &req.order_id);
        v.finish()?;
        let reservations = self
            .store
            .list_reservations(&order_id.unwrap_or_default())
            .await?;
        Ok(pb::ListReservationsResponse {
            reservations: reservations.iter().map(convert::reservation).collect(),
        })
    }

    async fn list_transactions(
        &self,
        req: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, ServiceError> {
        let filters = format!(
            "product={};warehouse={};type={};reference={};start={:?};end={:?}",
            req.product_id,
            req.warehouse_id,
            req.txn_type,
            req.reference_id,
            req.start_time,
            req.end_time
        );
        let (limit, token) = parse::page(req.page_size, &req.page_token, &filters)?;
        let mut v = inventory_core::Violations::new();
        let product_id = v.optional_uuid("product_id", &req.product_id);
        let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
        let reference_id = v.optional_key("reference_id", &req.reference_id);
        v.finish()?;
        let txn_type = parse::txn_type_filter(req.txn_type)?;
        let start_time = req
            .start_time
            .as_ref()
            .map(|t| convert::from_timestamp("start_time", t))
            .transpose()?;
        let end_time = req
            .end_time
            .as_ref()
            .map(|t| convert::from_timestamp("end_time", t))
            .transpose()?;
        let after = token
            .map(|t| t.parse::<i64>().map_err(|_| bad_token()))
            .transpose()?
            .unwrap_or(0);
        let filter = ListTransactionsFilter {
            product_id: product_id.flatten(),
            warehouse_id: warehouse_id.flatten(),
            txn_type,
            reference_id: reference_id.flatten(),
            start_time,
            end_time,
        };
        let rows = self
            .store
            .list_transactions(&filter, after, limit + 1)
            .await?;
        let (page, next) = split_page(rows, limit, &filters, |t| t.sequence.to_string());
        Ok(pb::ListTransactionsResponse {
            transactions: page.iter().map(convert::transaction).collect(),
            next_page_token: next,
        })
    }

    async fn check_ledger(&self) -> Result<pb::CheckLedgerResponse, ServiceError> {
        let report = self.store.check_ledger().await?;
        Ok(pb::CheckLedgerResponse {
            rows_checked: report.rows_checked,
            transactions_replayed: report.transactions_replayed,
            drifts: report
                .drifts
                .into_iter()
                .map(|d| pb::LedgerDrift {
                    product_id: d.product_id.to_string(),
                    warehouse_id: d.warehouse_id.to_string(),
                    recorded_on_hand: d.recorded_on_hand,
                    recorded_reserved: d.recorded_reserved,
                    ledger_on_hand: d.ledger_on_hand,
                    ledger_reserved: d.ledger_reserved,
                    reservations_held: d.reservations_held,
                })
                .collect(),
        })
    }

    async fn inventory_summary(&self) -> Result<pb::GetInventorySummaryResponse, ServiceError> {
        let as_of = now();
        let rows = self.store.inventory_summary().await?;
        let mut total = pb::WarehouseSummary::default();
        let warehouses = rows
            .into_iter()
            .map(|r| {
                total.quantity_on_hand = total.quantity_on_hand.saturating_add(r.quantity_on_hand);
                total.quantity_reserved =
                    total.quantity_reserved.saturating_add(r.quantity_reserved);
                total.quantity_available = total
                    .quantity_available
                    .saturating_add(r.quantity_available);
                total.value_micros = total.value_micros.saturating_add(r.value_micros);
                pb::WarehouseSummary {
                    warehouse_id: r.warehouse_id.to_string(),
                    quantity_on_hand: r.quantity_on_hand,
                    quantity_reserved: r.quantity_reserved,
                    quantity_available: r.quantity_available,
                    value_micros: r.value_micros,
                }
            })
            .collect();
        Ok(pb::GetInventorySummaryResponse {
            warehouses,
            total: Some(total),
            as_of: Some(convert::timestamp(as_of)),
        })
    }

    /// Streams the log from `after_sequence`: history first, then live. A task reads in
    /// batches and feeds a bounded channel, so a slow client slows only its own reader.
    fn stream(&self, req: pb::StreamTransactionsRequest) -> Result<FeedStream, ServiceError> {
        let mut v = inventory_core::Violations::new();
        v.non_negative("after_sequence", req.after_sequence);
        v.finish()?;
        let (sender, receiver) = mpsc::channel(FEED_BUFFER);
        let mut reader = FeedReader::new(self.store.clone(), req.after_sequence);
        let log_appended = self.log_appended.clone();
        let poll = self.feed_poll;
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let feed = async {
                loop {
                    let woken = log_appended.notified();
                    match reader.next_batch(FEED_BATCH).await {
                        Ok(batch) if batch.is_empty() => {
                            tokio::select! {
                                () = woken => {}
                                () = tokio::time::sleep(poll) => {}
                                () = sender.closed() => return,
                            }
                        }
                        Ok(batch) => {
                            for txn in &batch {
                                let message = pb::StreamTransactionsResponse {
                                    transaction: Some(convert::transaction(txn)),
                                };
                                if sender.send(Ok(message)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, cursor = reader.cursor(), "transaction feed stopped");
                            let _ = sender.send(Err(Status::from(error))).await;
                            return;
                        }
                    }
                }
            };
            // A feed never ends on its own: on shutdown it ends with UNAVAILABLE, so the
            // server can drain and the consumer resumes from its cursor on another replica.
            let stopped = tokio::select! {
                () = feed => false,
                result = stopping.wait_for(|stop| *stop) => result.is_ok(),
            };
            if stopped {
                let status = Status::unavailable("server shutting down; resume from your cursor");
                let _ = sender.send(Err(status)).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }
}

type FeedStream =
    Pin<Box<dyn Stream<Item = Result<pb::StreamTransactionsResponse, Status>> + Send>>;

fn bad_token() -> ServiceError {
    ServiceError::invalid("page_token", "is not a page token this service issued")
}

fn parse_uuid_token(value: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(value).map_err(|_| bad_token())
}

/// Keeps `limit` items and, when one more was fetched, a token resuming after the last kept,
/// valid only for a request with the same `filters`.
fn split_page<T>(
    mut items: Vec<T>,
    limit: i64,
    filters: &str,
    position: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        let next = items
            .last()
            .map(|last| paging::encode_token(filters, &position(last)))
            .unwrap_or_default();
        (items, next)
    } else {
        (items, String::new())
    }
}

#[tonic::async_trait]
impl StockService for StockApi {
    async fn create_product(
        &self,
        r: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        reply(self.create_product(r.into_inner()).await)
    }
    async fn get_product(
        &self,
        r: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let result = async {
            let mut v = inventory_core::Violations::new();
            let id = v.uuid("product_id", &r.get_ref().product_id);
            v.finish()?;
            let product = self.store.get_product(id.unwrap_or_default()).await?;
            Ok(pb::GetProductResponse {
                product: Some(convert::product(product)),
            })
        };
        reply(result.await)
    }
    async fn list_products(
        &self,
        r: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        reply(self.list_products(r.into_inner()).await)
    }
    async fn update_product(
        &self,
        r: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::UpdateProductResponse>, Status> {
        reply(self.update_product(r.into_inner()).await)
    }
    async fn create_warehouse(
        &self,
        r: Request<pb::CreateWarehouseRequest>,
    ) -> Result<Response<pb::CreateWarehouseResponse>, Status> {
        reply(self.create_warehouse(r.into_inner()).await)
    }
    async fn get_warehouse(
        &self,
        r: Request<pb::GetWarehouseRequest>,
    ) -> Result<Response<pb::GetWarehouseResponse>, Status> {
        let result = async {
            let mut v = inventory_core::Violations::new();
            let id = v.uuid("warehouse_id", &r.get_ref().warehouse_id);
            v.finish()?;
            let warehouse = self.store.get_warehouse(id.unwrap_or_default()).await?;
            Ok(pb::GetWarehouseResponse {
                warehouse: Some(convert::warehouse(warehouse)),
            })
        };
        reply(result.await)
    }
    async fn list_warehouses(
        &self,
        r: Request<pb::ListWarehousesRequest>,
    ) -> Result<Response<pb::ListWarehousesResponse>, Status> {
        reply(self.list_warehouses(r.into_inner()).await)
    }
    async fn update_warehouse(
        &self,
        r: Request<pb::UpdateWarehouseRequest>,
    ) -> Result<Response<pb::UpdateWarehouseResponse>, Status> {
        reply(self.update_warehouse(r.into_inner()).await)
    }
    async fn receive_stock(
        &self,
        r: Request<pb::ReceiveStockRequest>,
    ) -> Result<Response<pb::ReceiveStockResponse>, Status> {
        reply(self.receive(r.into_inner()).await)
    }
    async fn reserve_stock(
        &self,
        r: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        reply(self.reserve_stock(r.into_inner()).await)
    }
    async fn reserve_order(
        &self,
        r: Request<pb::ReserveOrderRequest>,
    ) -> Result<Response<pb::ReserveOrderResponse>, Status> {
        reply(self.reserve_order(r.into_inner()).await)
    }
    async fn release_reservation(
        &self,
        r: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        reply(self.release(r.into_inner()).await)
    }
    async fn ship_reservation(
        &self,
        r: Request<pb::ShipReservationRequest>,
    ) -> Result<Response<pb::ShipReservationResponse>, Status> {
        reply(self.ship(r.into_inner()).await)
    }
    async fn adjust_stock(
        &self,
        r: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        reply(self.adjust(r.into_inner()).await)
    }
    async fn transfer_stock(
        &self,
        r: Request<pb::TransferStockRequest>,
    ) -> Result<Response<pb::TransferStockResponse>, Status> {
        reply(self.transfer(r.into_inner()).await)
    }
    async fn get_inventory(
        &self,
        r: Request<pb::GetInventoryRequest>,
    ) -> Result<Response<pb::GetInventoryResponse>, Status> {
        reply(self.get_inventory(r.into_inner()).await)
    }
    async fn batch_get_availability(
        &self,
        r: Request<pb::BatchGetAvailabilityRequest>,
    ) -> Result<Response<pb::BatchGetAvailabilityResponse>, Status> {
        reply(self.batch_get_availability(r.into_inner()).await)
    }
    async fn list_inventory(
        &self,
        r: Request<pb::ListInventoryRequest>,
    ) -> Result<Response<pb::ListInventoryResponse>, Status> {
        reply(self.list_inventory(r.into_inner()).await)
    }
    async fn list_reservations(
        &self,
        r: Request<pb::ListReservationsRequest>,
    ) -> Result<Response<pb::ListReservationsResponse>, Status> {
        reply(self.list_reservations(r.into_inner()).await)
    }
    async fn list_transactions(
        &self,
        r: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        reply(self.list_transactions(r.into_inner()).await)
    }

    type StreamTransactionsStream = FeedStream;

    async fn stream_transactions(
        &self,
        r: Request<pb::StreamTransactionsRequest>,
    ) -> Result<Response<Self::StreamTransactionsStream>, Status> {
        reply(self.stream(r.into_inner()))
    }
    async fn check_ledger(
        &self,
        _: Request<pb::CheckLedgerRequest>,
    ) -> Result<Response<pb::CheckLedgerResponse>, Status> {
        reply(self.check_ledger().await)
    }
    async fn get_inventory_summary(
        &self,
        _: Request<pb::GetInventorySummaryRequest>,
    ) -> Result<Response<pb::GetInventorySummaryResponse>, Status> {
        reply(self.inventory_summary().await)
    }
}

//! The gRPC layer, split by resource the way the store is: `catalog` (products, warehouses),
//! `movements` (every quantity change), `reads` (inventory, reservations, the log, the ledger
//! check, the summary) and `feed` (the transaction stream). Requests become commands in
//! `parse`, results become messages in `convert`; mutations run inside the platform's
//! idempotent transactions; status codes are decided once, by `ServiceError`.

mod catalog;
mod coalesce;
mod convert;
mod feed;
mod movements;
mod parse;
mod reads;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use inventory_core::error::reply;
use inventory_core::{PageTokens, ServiceError};
use inventory_proto::stock::v1 as pb;
use inventory_runtime::auth::{with_verified_actor, with_verified_actors};
use inventory_runtime::{RequestKey, ServiceHost, Stopping, Tx, idempotency};
use pb::stock_service_server::StockService;
use prost::Message;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::StockSettings;
use crate::store::Store;
use coalesce::Coalescer;
/// The stored answer of a request a coalesced batch granted.
pub use coalesce::encode_answer;
/// The answer to a reservation made by a coalesced batch, as stored for its retries.
pub use coalesce::response as reservation_response;

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
    /// Completes when the server begins to shut down; open feeds end then.
    stopping: Stopping,
    /// Furthest ahead a reservation may expire: as long as request ids are kept.
    longest_expiry: chrono::Duration,
    /// Signs the page tokens of every list RPC.
    pages: PageTokens,
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
    pub fn new(store: Store, settings: &StockSettings, host: &ServiceHost) -> Self {
        let log_appended = Arc::new(Notify::new());
        let coalescer = settings
            .coalescing
            .map(|c| Coalescer::start(store.clone(), c.lanes, c.max_batch, log_appended.clone()));
        Self {
            store,
            log_appended,
            feed_poll: settings.feed_poll,
            coalescer,
            stopping: host.background.stopping(),
            longest_expiry: host.config.request_id_retention,
            pages: host.page_tokens.clone(),
        }
    }

    /// Woken after every commit that appends to the log.
    pub fn log_appended(&self) -> Arc<Notify> {
        self.log_appended.clone()
    }

    /// Runs a mutation once per request id (see the runtime's idempotency), then wakes the
    /// local feeds.
    async fn idempotent<M, Fut>(
        &self,
        key: &RequestKey,
        work: impl FnOnce(Tx) -> Fut,
    ) -> Result<M, ServiceError>
    where
        M: Message + Default,
        Fut: Future<Output = Result<(Tx, M), ServiceError>>,
    {
        let response = idempotency::idempotent(self.store.pool(), key, work).await?;
        self.log_appended.notify_waiters();
        Ok(response)
    }

    /// A new reservation must expire in the future, and no later than request ids are kept
    /// (so a retry within its window always finds its first answer); a retry of one replays
    /// its first answer however much time has passed since.
    async fn check_expiry<M: Message + Default>(
        &self,
        key: &RequestKey,
        expire_time: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<M>, ServiceError> {
        let now = chrono::Utc::now();
        match expire_time {
            Some(at) if at <= now => {
                let refusal = ServiceError::invalid("expire_time", "must be in the future");
                idempotency::replay_or(self.store.pool(), key, refusal)
                    .await
                    .map(Some)
            }
            Some(at) if at > now + self.longest_expiry => Err(ServiceError::invalid(
                "expire_time",
                format!(
                    "must be at most {} hours ahead, as long as request ids are kept",
                    self.longest_expiry.num_hours()
                ),
            )),
            _ => Ok(None),
        }
    }
}

/// Forwards each RPC to its handler; no handler bodies here.
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
        reply(self.get_product(r.into_inner()).await)
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
        reply(self.get_warehouse(r.into_inner()).await)
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
        reply(
            self.receive(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn reserve_stock(
        &self,
        r: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        reply(
            self.reserve_stock(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn reserve_order(
        &self,
        r: Request<pb::ReserveOrderRequest>,
    ) -> Result<Response<pb::ReserveOrderResponse>, Status> {
        reply(
            self.reserve_order(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn batch_reserve_orders(
        &self,
        r: Request<pb::BatchReserveOrdersRequest>,
    ) -> Result<Response<pb::BatchReserveOrdersResponse>, Status> {
        let req = with_verified_actors(r, |m| m.orders.iter_mut().map(|o| &mut o.actor).collect())?;
        reply(self.batch_reserve_orders(req).await)
    }
    async fn release_reservation(
        &self,
        r: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        reply(
            self.release(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn ship_reservation(
        &self,
        r: Request<pb::ShipReservationRequest>,
    ) -> Result<Response<pb::ShipReservationResponse>, Status> {
        reply(self.ship(with_verified_actor(r, |m| &mut m.actor)?).await)
    }
    async fn adjust_stock(
        &self,
        r: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        reply(self.adjust(with_verified_actor(r, |m| &mut m.actor)?).await)
    }
    async fn transfer_stock(
        &self,
        r: Request<pb::TransferStockRequest>,
    ) -> Result<Response<pb::TransferStockResponse>, Status> {
        reply(
            self.transfer(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn get_inventory(
        &self,
        r: Request<pb::GetInventoryRequest>,
    ) -> Result<Response<pb::GetInventoryResponse>, Status> {
        reply(self.get_inventory(r.into_inner()).await)
    }
    async fn batch_get_products(
        &self,
        r: Request<pb::BatchGetProductsRequest>,
    ) -> Result<Response<pb::BatchGetProductsResponse>, Status> {
        reply(self.batch_get_products(r.into_inner()).await)
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

    type StreamTransactionsStream = feed::FeedStream;

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

//! The calls other services make to stock, and their gRPC implementation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_runtime::auth::{OutgoingInterceptor, PeerCredentials};
use inventory_runtime::{Role, RuntimeError, Settings};
use inventory_telemetry::client_span;
use pb::stock_service_client::StockServiceClient;
use tokio_stream::{Stream, StreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use crate::{RetryPolicy, StockError};

/// Stock's transaction log from a cursor: history, then live, each committed transaction once.
pub type TransactionStream = Pin<Box<dyn Stream<Item = Result<FeedEvent, StockError>> + Send>>;

/// One transaction of the feed, with the feed's position after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub transaction: pb::InventoryTransaction,
    /// Opaque: stored with what was derived from the transaction, to resume after it.
    pub cursor: String,
}

/// Where a feed starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStart {
    /// After a cursor the feed gave.
    Cursor(String),
    /// After a sequence stored from the feed before cursors (0: from the beginning).
    Sequence(i64),
}

/// What the other services ask of stock. Every mutation carries its own `request_id` (and a
/// reference: order, PO or count id), so a retry of the same request is safe.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[tonic::async_trait]
pub trait StockClient: Send + Sync {
    /// On hand, reserved and available for every pair, in one call (1 to 1000 pairs).
    async fn batch_get_availability(
        &self,
        keys: Vec<pb::InventoryKey>,
    ) -> Result<Vec<pb::Availability>, StockError>;
    /// Holds every line or none (INSUFFICIENT_STOCK names the first line that cannot be held).
    async fn reserve_order(
        &self,
        request: pb::ReserveOrderRequest,
    ) -> Result<pb::ReserveOrderResponse, StockError>;
    /// Many orders in one call, each held all or nothing on its own: one answer per order,
    /// in request order, as `reserve_order` would give it. The call's own error (stock
    /// unreachable, say) leaves unknown which orders stock holds.
    async fn batch_reserve_orders(
        &self,
        orders: Vec<pb::ReserveOrderRequest>,
    ) -> Result<Vec<Result<pb::ReserveOrderResponse, StockError>>, StockError>;
    async fn release(
        &self,
        request: pb::ReleaseReservationRequest,
    ) -> Result<pb::ReleaseReservationResponse, StockError>;
    async fn ship(
        &self,
        request: pb::ShipReservationRequest,
    ) -> Result<pb::ShipReservationResponse, StockError>;
    async fn receive(
        &self,
        request: pb::ReceiveStockRequest,
    ) -> Result<pb::ReceiveStockResponse, StockError>;
    async fn adjust(
        &self,
        request: pb::AdjustStockRequest,
    ) -> Result<pb::AdjustStockResponse, StockError>;
    async fn get_inventory(
        &self,
        product_id: String,
        warehouse_id: String,
    ) -> Result<pb::Inventory, StockError>;
    async fn list_inventory(
        &self,
        request: pb::ListInventoryRequest,
    ) -> Result<pb::ListInventoryResponse, StockError>;
    async fn get_product(&self, product_id: String) -> Result<pb::Product, StockError>;
    /// 1 to 1000 products by id, in request order.
    async fn batch_get_products(
        &self,
        product_ids: Vec<String>,
    ) -> Result<Vec<pb::Product>, StockError>;
    /// One page of the log, filtered.
    async fn list_transactions(
        &self,
        request: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, StockError>;
    async fn list_products(
        &self,
        request: pb::ListProductsRequest,
    ) -> Result<pb::ListProductsResponse, StockError>;
    async fn get_warehouse(&self, warehouse_id: String) -> Result<pb::Warehouse, StockError>;
    async fn list_warehouses(
        &self,
        request: pb::ListWarehousesRequest,
    ) -> Result<pb::ListWarehousesResponse, StockError>;
    /// Every reservation of the orders named (at most 1000), whatever its status.
    async fn list_reservations(
        &self,
        order_ids: Vec<String>,
    ) -> Result<Vec<pb::Reservation>, StockError>;
    /// Replays the log against every inventory row.
    async fn check_ledger(&self) -> Result<pb::CheckLedgerResponse, StockError>;
    /// The log after `from`. No deadline: a feed stays open until either side ends it.
    async fn stream_transactions(&self, from: FeedStart) -> Result<TransactionStream, StockError>;
}

/// How the gRPC client behaves.
#[derive(Debug, Clone)]
pub struct StockClientOptions {
    /// `STOCK_URL`: where stock listens (default `http://127.0.0.1:50051`).
    pub url: String,
    /// `STOCK_DEADLINE_MS`: the deadline of each attempt of a unary call (default 5000).
    pub deadline: Duration,
    /// `STOCK_RETRY_ATTEMPTS`: attempts per call, the first included (default 4).
    pub retry: RetryPolicy,
    /// How the calling service proves itself to stock (`TLS_*`, `AUTH_TOKEN_SECRET`); an
    /// `https://` URL is reached over TLS.
    pub credentials: PeerCredentials,
}

impl StockClientOptions {
    /// The settings of the service calling stock as `caller`.
    pub fn from_settings(settings: &Settings, caller: Role) -> Result<Self, RuntimeError> {
        Ok(Self {
            credentials: PeerCredentials::from_settings(settings, caller)?,
            url: settings.text("STOCK_URL", "http://127.0.0.1:50051"),
            deadline: settings.millis("STOCK_DEADLINE_MS", 5000)?,
            retry: RetryPolicy {
                attempts: settings.get("STOCK_RETRY_ATTEMPTS", 4_u32)?.max(1),
                ..RetryPolicy::default()
            },
        })
    }
}

type Inner = StockServiceClient<InterceptedService<Channel, OutgoingInterceptor>>;

/// [`StockClient`] over gRPC; cheap to clone (one HTTP/2 connection, multiplexed).
#[derive(Clone)]
pub struct GrpcStockClient {
    inner: Inner,
    deadline: Duration,
    retry: RetryPolicy,
}

impl GrpcStockClient {
    /// Connects lazily: building never waits for stock, and a call made while stock is
    /// down fails with UNAVAILABLE (after the retries) instead of blocking start-up.
    pub fn new(options: &StockClientOptions) -> Result<Self, RuntimeError> {
        let endpoint = Endpoint::from_shared(options.url.clone())
            .map_err(|e| RuntimeError::Config(format!("STOCK_URL {:?}: {e}", options.url)))?
            .connect_timeout(options.deadline)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = options.credentials.channel(endpoint)?;
        let interceptor = OutgoingInterceptor::new(options.credentials.clone());
        Ok(Self {
            inner: StockServiceClient::with_interceptor(channel, interceptor),
            deadline: options.deadline,
            retry: options.retry,
        })
    }

    pub fn from_settings(settings: &Settings, caller: Role) -> Result<Self, RuntimeError> {
        Self::new(&StockClientOptions::from_settings(settings, caller)?)
    }

    /// Sends `message` with a per-attempt deadline, retrying what is safe to retry; each
    /// attempt sends the same message, so the same request_id.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        message: Req,
        call: F,
    ) -> Result<Resp, StockError>
    where
        Req: Clone,
        F: Fn(Inner, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let result = self
            .retry
            .run(method, || {
                let mut request = tonic::Request::new(message.clone());
                request.set_timeout(self.deadline);
                let inner = self.inner.clone();
                let attempt = call(inner, request);
                let deadline = self.deadline;
                let span = client_span(pb::SERVICE_NAME, method);
                async move {
                    // The channel enforces nothing by itself; stop waiting at the deadline.
                    match tokio::time::timeout(deadline, attempt).await {
                        Ok(result) => result,
                        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                            "no answer from stock within {} ms",
                            deadline.as_millis()
                        ))),
                    }
                }
                .instrument(span)
            })
            .await;
        result
            .map(tonic::Response::into_inner)
            .map_err(StockError::from)
    }
}

#[tonic::async_trait]
impl StockClient for GrpcStockClient {
    async fn batch_get_availability(
        &self,
        keys: Vec<pb::InventoryKey>,
    ) -> Result<Vec<pb::Availability>, StockError> {
        let request = pb::BatchGetAvailabilityRequest { keys };
        self.unary("BatchGetAvailability", request, |mut c, r| async move {
            c.batch_get_availability(r).await
        })
        .await
        .map(|r| r.availabilities)
    }

    async fn reserve_order(
        &self,
        request: pb::ReserveOrderRequest,
    ) -> Result<pb::ReserveOrderResponse, StockError> {
        self.unary("ReserveOrder", request, |mut c, r| async move {
            c.reserve_order(r).await
        })
        .await
    }

    async fn batch_reserve_orders(
        &self,
        orders: Vec<pb::ReserveOrderRequest>,
    ) -> Result<Vec<Result<pb::ReserveOrderResponse, StockError>>, StockError> {
        let count = orders.len();
        let request = pb::BatchReserveOrdersRequest { orders };
        let results = self
            .unary("BatchReserveOrders", request, |mut c, r| async move {
                c.batch_reserve_orders(r).await
            })
            .await?
            .results;
        if results.len() != count {
            return Err(StockError::Other {
                code: tonic::Code::Internal,
                message: format!("{} answers to {count} orders", results.len()),
            });
        }
        Ok(results
            .into_iter()
            .map(|entry| match entry.result {
                Some(pb::reserve_order_result::Result::Reserved(reserved)) => Ok(reserved),
                Some(pb::reserve_order_result::Result::Error(status)) => {
                    Err(StockError::from(status))
                }
                None => Err(StockError::Other {
                    code: tonic::Code::Internal,
                    message: "an order without its answer".to_owned(),
                }),
            })
            .collect())
    }

    async fn release(
        &self,
        request: pb::ReleaseReservationRequest,
    ) -> Result<pb::ReleaseReservationResponse, StockError> {
        self.unary("ReleaseReservation", request, |mut c, r| async move {
            c.release_reservation(r).await
        })
        .await
    }

    async fn ship(
        &self,
        request: pb::ShipReservationRequest,
    ) -> Result<pb::ShipReservationResponse, StockError> {
        self.unary("ShipReservation", request, |mut c, r| async move {
            c.ship_reservation(r).await
        })
        .await
    }

    async fn receive(
        &self,
        request: pb::ReceiveStockRequest,
    ) -> Result<pb::ReceiveStockResponse, StockError> {
        self.unary("ReceiveStock", request, |mut c, r| async move {
            c.receive_stock(r).await
        })
        .await
    }

    async fn adjust(
        &self,
        request: pb::AdjustStockRequest,
    ) -> Result<pb::AdjustStockResponse, StockError> {
        self.unary("AdjustStock", request, |mut c, r| async move {
            c.adjust_stock(r).await
        })
        .await
    }

    async fn get_inventory(
        &self,
        product_id: String,
        warehouse_id: String,
    ) -> Result<pb::Inventory, StockError> {
        let request = pb::GetInventoryRequest {
            product_id,
            warehouse_id,
        };
        let response = self
            .unary("GetInventory", request, |mut c, r| async move {
                c.get_inventory(r).await
            })
            .await?;
        response
            .inventory
            .ok_or_else(|| missing("GetInventoryResponse.inventory"))
    }

    async fn list_inventory(
        &self,
        request: pb::ListInventoryRequest,
    ) -> Result<pb::ListInventoryResponse, StockError> {
        self.unary("ListInventory", request, |mut c, r| async move {
            c.list_inventory(r).await
        })
        .await
    }

    async fn batch_get_products(
        &self,
        product_ids: Vec<String>,
    ) -> Result<Vec<pb::Product>, StockError> {
        let request = pb::BatchGetProductsRequest { product_ids };
        self.unary("BatchGetProducts", request, |mut c, r| async move {
            c.batch_get_products(r).await
        })
        .await
        .map(|r| r.products)
    }

    async fn list_transactions(
        &self,
        request: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, StockError> {
        self.unary("ListTransactions", request, |mut c, r| async move {
            c.list_transactions(r).await
        })
        .await
    }

    async fn get_product(&self, product_id: String) -> Result<pb::Product, StockError> {
        let request = pb::GetProductRequest { product_id };
        let response = self
            .unary("GetProduct", request, |mut c, r| async move {
                c.get_product(r).await
            })
            .await?;
        response
            .product
            .ok_or_else(|| missing("GetProductResponse.product"))
    }

    async fn list_products(
        &self,
        request: pb::ListProductsRequest,
    ) -> Result<pb::ListProductsResponse, StockError> {
        self.unary("ListProducts", request, |mut c, r| async move {
            c.list_products(r).await
        })
        .await
    }

    async fn get_warehouse(&self, warehouse_id: String) -> Result<pb::Warehouse, StockError> {
        let request = pb::GetWarehouseRequest { warehouse_id };
        let response = self
            .unary("GetWarehouse", request, |mut c, r| async move {
                c.get_warehouse(r).await
            })
            .await?;
        response
            .warehouse
            .ok_or_else(|| missing("GetWarehouseResponse.warehouse"))
    }

    async fn list_warehouses(
        &self,
        request: pb::ListWarehousesRequest,
    ) -> Result<pb::ListWarehousesResponse, StockError> {
        self.unary("ListWarehouses", request, |mut c, r| async move {
            c.list_warehouses(r).await
        })
        .await
    }

    async fn list_reservations(
        &self,
        order_ids: Vec<String>,
    ) -> Result<Vec<pb::Reservation>, StockError> {
        // One order in `order_id`, as a stock server older than `order_ids` reads it.
        let request = match <[String; 1]>::try_from(order_ids) {
            Ok([order_id]) => pb::ListReservationsRequest {
                order_id,
                order_ids: Vec::new(),
            },
            Err(order_ids) => pb::ListReservationsRequest {
                order_id: String::new(),
                order_ids,
            },
        };
        self.unary("ListReservations", request, |mut c, r| async move {
            c.list_reservations(r).await
        })
        .await
        .map(|r| r.reservations)
    }

    async fn check_ledger(&self) -> Result<pb::CheckLedgerResponse, StockError> {
        self.unary(
            "CheckLedger",
            pb::CheckLedgerRequest {},
            |mut c, r| async move { c.check_ledger(r).await },
        )
        .await
    }

    async fn stream_transactions(&self, from: FeedStart) -> Result<TransactionStream, StockError> {
        let request = match from {
            FeedStart::Cursor(after_cursor) => pb::StreamTransactionsRequest {
                after_cursor,
                after_sequence: 0,
            },
            FeedStart::Sequence(after_sequence) => pb::StreamTransactionsRequest {
                after_sequence,
                after_cursor: String::new(),
            },
        };
        // Opening the stream is retried like a unary call; the stream itself has no deadline.
        let stream = self
            .retry
            .run("StreamTransactions", || {
                let mut inner = self.inner.clone();
                let request = request.clone();
                async move { inner.stream_transactions(request).await }
            })
            .await
            .map_err(StockError::from)?
            .into_inner();
        Ok(Box::pin(stream.map(|item| match item {
            Ok(message) => match message.transaction {
                Some(transaction) if !message.cursor.is_empty() => Ok(FeedEvent {
                    transaction,
                    cursor: message.cursor,
                }),
                Some(_) => Err(missing("StreamTransactionsResponse.cursor")),
                None => Err(missing("StreamTransactionsResponse.transaction")),
            },
            Err(status) => Err(StockError::from(status)),
        })))
    }
}

fn missing(field: &str) -> StockError {
    StockError::Other {
        code: tonic::Code::Internal,
        message: format!("stock's answer lacks {field}"),
    }
}

//! The stock service under test, with helpers that speak its API.

use std::collections::HashMap;
use std::sync::Arc;

use inventory_proto::stock::v1 as pb;
use inventory_testkit::{StockServer, TestServer};
pub use inventory_testkit::{TestDatabase, bad_fields, new_id};
use pb::stock_service_client::StockServiceClient;
use tonic::transport::Channel;

/// The ErrorInfo domain of every stock refusal.
pub const DOMAIN: &str = "stock.inventory";

/// The ErrorInfo reason and metadata of a FAILED_PRECONDITION from stock.
pub fn error_info(status: &tonic::Status) -> (String, HashMap<String, String>) {
    inventory_testkit::error_info(status, DOMAIN)
}

pub struct TestApp {
    pub client: StockServiceClient<Channel>,
    pub database: Arc<TestDatabase>,
    pub server: TestServer,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a service with extra settings (name, value).
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        Self::start(Arc::new(TestDatabase::create().await), vars).await
    }

    /// Starts a service that applies every reservation in its own transaction.
    pub async fn spawn_uncoalesced() -> Self {
        Self::spawn_with(&[("RESERVE_COALESCING", "false")]).await
    }

    /// Starts a service on `database` with extra settings (name, value).
    pub async fn spawn_on(database: Arc<TestDatabase>, vars: &[(&str, &str)]) -> Self {
        Self::start(database, vars).await
    }

    /// Starts another replica of this service on the same database.
    pub async fn replica(&self) -> Self {
        Self::start(self.database.clone(), &[]).await
    }

    async fn start(database: Arc<TestDatabase>, vars: &[(&str, &str)]) -> Self {
        let StockServer { server, client } = StockServer::spawn_on(database.clone(), vars).await;
        Self {
            client,
            database,
            server,
        }
    }

    pub async fn channel(&self) -> Channel {
        self.server.channel().await
    }

    /// A direct connection to the service's database, for assertions on what was stored.
    pub async fn db(&self) -> sqlx::PgConnection {
        self.database.connect("stock").await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        let mut db = self.db().await;
        sqlx::query_scalar(sql)
            .fetch_one(&mut db)
            .await
            .expect("count query")
    }

    pub async fn transaction_count(&self) -> i64 {
        self.count("SELECT count(*) FROM inventory_transactions")
            .await
    }

    /// The Citus worker (`host:port`) holding `product`'s rows; `None` on one server.
    pub async fn worker_of(&self, product: &str) -> Option<String> {
        if inventory_testkit::citus_workers().is_empty() {
            return None;
        }
        let mut db = self.db().await;
        let worker = sqlx::query_scalar(
            "SELECT nodename || ':' || nodeport FROM citus_shards
              WHERE table_name = 'inventory'::regclass
                AND shardid = get_shard_id_for_distribution_column('inventory', $1::uuid)",
        )
        .bind(product)
        .fetch_one(&mut db)
        .await
        .expect("shard placement");
        Some(worker)
    }

    /// `n` products (n >= 2) named `{prefix}-0`.. that, on Citus, live on more than one
    /// worker, so what a test does with them crosses nodes. A product whose shard would leave
    /// them all on one worker is passed over (it stays in the catalog, unstocked).
    pub async fn products_across_workers(&self, prefix: &str, n: usize) -> Vec<String> {
        let wanted_workers = worker_count().min(2);
        let mut products = Vec::new();
        let mut workers = std::collections::BTreeSet::new();
        for i in 0..64 {
            let product = self.product(&format!("{prefix}-{i}")).await;
            let worker = self.worker_of(&product).await;
            let on_new_worker = worker.as_ref().is_some_and(|w| !workers.contains(w));
            let spread_after = workers.len() + usize::from(on_new_worker) >= wanted_workers;
            if products.len() + 1 < n || spread_after {
                workers.extend(worker);
                products.push(product);
            }
            if products.len() == n {
                return products;
            }
        }
        panic!("no product landed on a second worker in 64 tries");
    }

    pub async fn product(&self, sku: &str) -> String {
        self.create_product(product(sku))
            .await
            .expect("create product")
            .product_id
    }

    /// Creates `product` under a new request id and returns it as stored.
    pub async fn create_product(&self, product: pb::Product) -> Result<pb::Product, tonic::Status> {
        let response = self
            .create_product_with(pb::CreateProductRequest {
                request_id: new_id(),
                product: Some(product),
            })
            .await?;
        Ok(response.product.expect("product"))
    }

    /// CreateProduct with the request as given: no product, a missing or a reused request id.
    pub async fn create_product_with(
        &self,
        request: pb::CreateProductRequest,
    ) -> Result<pb::CreateProductResponse, tonic::Status> {
        self.client
            .clone()
            .create_product(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get_product(
        &self,
        product_id: &str,
    ) -> Result<pb::GetProductResponse, tonic::Status> {
        self.client
            .clone()
            .get_product(pb::GetProductRequest {
                product_id: product_id.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list_products(
        &self,
        request: pb::ListProductsRequest,
    ) -> Result<pb::ListProductsResponse, tonic::Status> {
        self.client
            .clone()
            .list_products(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn update_product(
        &self,
        request: pb::UpdateProductRequest,
    ) -> Result<pb::UpdateProductResponse, tonic::Status> {
        self.client
            .clone()
            .update_product(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn warehouse(&self, name: &str) -> String {
        self.create_warehouse(pb::Warehouse {
            name: name.to_owned(),
            address: "1 Dock Road".to_owned(),
            r#type: pb::WarehouseType::Fulfillment.into(),
            location: Some(pb::GeoPoint {
                latitude: 52.5,
                longitude: 13.4,
            }),
            ..Default::default()
        })
        .await
        .expect("create warehouse")
        .warehouse_id
    }

    /// Creates `warehouse` under a new request id and returns it as stored.
    pub async fn create_warehouse(
        &self,
        warehouse: pb::Warehouse,
    ) -> Result<pb::Warehouse, tonic::Status> {
        let response = self
            .create_warehouse_with(pb::CreateWarehouseRequest {
                request_id: new_id(),
                warehouse: Some(warehouse),
            })
            .await?;
        Ok(response.warehouse.expect("warehouse"))
    }

    /// CreateWarehouse with the request as given: no warehouse, a missing or a reused request id.
    pub async fn create_warehouse_with(
        &self,
        request: pb::CreateWarehouseRequest,
    ) -> Result<pb::CreateWarehouseResponse, tonic::Status> {
        self.client
            .clone()
            .create_warehouse(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get_warehouse(
        &self,
        warehouse_id: &str,
    ) -> Result<pb::GetWarehouseResponse, tonic::Status> {
        self.client
            .clone()
            .get_warehouse(pb::GetWarehouseRequest {
                warehouse_id: warehouse_id.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list_warehouses(
        &self,
        request: pb::ListWarehousesRequest,
    ) -> Result<pb::ListWarehousesResponse, tonic::Status> {
        self.client
            .clone()
            .list_warehouses(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn update_warehouse(
        &self,
        request: pb::UpdateWarehouseRequest,
    ) -> Result<pb::UpdateWarehouseResponse, tonic::Status> {
        self.client
            .clone()
            .update_warehouse(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Receives `quantity` units under reference PO-1, which must succeed.
    pub async fn receive(
        &self,
        product_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> pb::ReceiveStockResponse {
        self.receive_stock(receive_request(product_id, warehouse_id, quantity))
            .await
            .expect("receive")
    }

    pub async fn receive_stock(
        &self,
        request: pb::ReceiveStockRequest,
    ) -> Result<pb::ReceiveStockResponse, tonic::Status> {
        self.client
            .clone()
            .receive_stock(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn reserve(
        &self,
        order_id: &str,
        product_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<pb::ReserveStockResponse, tonic::Status> {
        self.reserve_stock(reserve_request(
            order_id,
            product_id,
            warehouse_id,
            quantity,
        ))
        .await
    }

    pub async fn reserve_stock(
        &self,
        request: pb::ReserveStockRequest,
    ) -> Result<pb::ReserveStockResponse, tonic::Status> {
        self.client
            .clone()
            .reserve_stock(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn reserve_order(
        &self,
        request: pb::ReserveOrderRequest,
    ) -> Result<pb::ReserveOrderResponse, tonic::Status> {
        self.client
            .clone()
            .reserve_order(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn batch_reserve_orders(
        &self,
        orders: Vec<pb::ReserveOrderRequest>,
    ) -> Result<Vec<pb::ReserveOrderResult>, tonic::Status> {
        self.client
            .clone()
            .batch_reserve_orders(pb::BatchReserveOrdersRequest { orders })
            .await
            .map(|r| r.into_inner().results)
    }

    pub async fn release(
        &self,
        request: pb::ReleaseReservationRequest,
    ) -> Result<pb::ReleaseReservationResponse, tonic::Status> {
        self.client
            .clone()
            .release_reservation(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn ship(
        &self,
        request: pb::ShipReservationRequest,
    ) -> Result<pb::ShipReservationResponse, tonic::Status> {
        self.client
            .clone()
            .ship_reservation(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn adjust(
        &self,
        request: pb::AdjustStockRequest,
    ) -> Result<pb::AdjustStockResponse, tonic::Status> {
        self.client
            .clone()
            .adjust_stock(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn transfer(
        &self,
        request: pb::TransferStockRequest,
    ) -> Result<pb::TransferStockResponse, tonic::Status> {
        self.client
            .clone()
            .transfer_stock(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The inventory row of a pair, which must exist.
    pub async fn inventory(&self, product_id: &str, warehouse_id: &str) -> pb::Inventory {
        self.get_inventory(product_id, warehouse_id)
            .await
            .expect("get inventory")
            .inventory
            .expect("inventory")
    }

    pub async fn get_inventory(
        &self,
        product_id: &str,
        warehouse_id: &str,
    ) -> Result<pb::GetInventoryResponse, tonic::Status> {
        self.client
            .clone()
            .get_inventory(pb::GetInventoryRequest {
                product_id: product_id.to_owned(),
                warehouse_id: warehouse_id.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn batch_get_availability(
        &self,
        keys: Vec<pb::InventoryKey>,
    ) -> Result<pb::BatchGetAvailabilityResponse, tonic::Status> {
        self.client
            .clone()
            .batch_get_availability(pb::BatchGetAvailabilityRequest { keys })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list_inventory(
        &self,
        request: pb::ListInventoryRequest,
    ) -> Result<pb::ListInventoryResponse, tonic::Status> {
        self.client
            .clone()
            .list_inventory(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list_reservations(
        &self,
        order_id: &str,
    ) -> Result<pb::ListReservationsResponse, tonic::Status> {
        self.client
            .clone()
            .list_reservations(pb::ListReservationsRequest {
                order_id: order_id.to_owned(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list_transactions(
        &self,
        request: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, tonic::Status> {
        self.client
            .clone()
            .list_transactions(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The transaction feed after `after_sequence` (a sequence from the feed before cursors).
    pub async fn stream_transactions(
        &self,
        after_sequence: i64,
    ) -> Result<tonic::Streaming<pb::StreamTransactionsResponse>, tonic::Status> {
        self.stream_from(pb::StreamTransactionsRequest {
            after_sequence,
            ..Default::default()
        })
        .await
    }

    /// The transaction feed from `request`'s cursor.
    pub async fn stream_from(
        &self,
        request: pb::StreamTransactionsRequest,
    ) -> Result<tonic::Streaming<pb::StreamTransactionsResponse>, tonic::Status> {
        self.client
            .clone()
            .stream_transactions(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn summary(&self) -> Result<pb::GetInventorySummaryResponse, tonic::Status> {
        self.client
            .clone()
            .get_inventory_summary(pb::GetInventorySummaryRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn check_ledger(&self) -> Result<pb::CheckLedgerResponse, tonic::Status> {
        self.client
            .clone()
            .check_ledger(pb::CheckLedgerRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    /// Asserts the ledger check finds every row equal to its replayed log.
    pub async fn assert_ledger_clean(&self) -> pb::CheckLedgerResponse {
        let report = self.check_ledger().await.expect("check ledger");
        assert!(
            report.drifts.is_empty(),
            "ledger drift: {:?}",
            report.drifts
        );
        report
    }
}

/// A valid product (reorder point 10, unit cost 2.5 currency units).
pub fn product(sku: &str) -> pb::Product {
    pb::Product {
        sku: sku.to_owned(),
        name: format!("Product {sku}"),
        category: "widgets".to_owned(),
        unit_of_measure: "each".to_owned(),
        reorder_point: 10,
        reorder_quantity: 50,
        lead_time_days: 7,
        unit_cost_micros: 2_500_000,
        ..Default::default()
    }
}

pub fn receive_request(
    product_id: &str,
    warehouse_id: &str,
    quantity: i64,
) -> pb::ReceiveStockRequest {
    pb::ReceiveStockRequest {
        request_id: new_id(),
        product_id: product_id.to_owned(),
        warehouse_id: warehouse_id.to_owned(),
        quantity,
        reference_id: "PO-1".to_owned(),
        actor: "receiving".to_owned(),
    }
}

pub fn reserve_request(
    order_id: &str,
    product_id: &str,
    warehouse_id: &str,
    quantity: i64,
) -> pb::ReserveStockRequest {
    pb::ReserveStockRequest {
        request_id: new_id(),
        order_id: order_id.to_owned(),
        line: Some(pb::ReservationLine {
            order_line_id: "1".to_owned(),
            product_id: product_id.to_owned(),
            warehouse_id: warehouse_id.to_owned(),
            quantity,
        }),
        expire_time: None,
        actor: String::new(),
    }
}

/// Workers of the Citus cluster under test (0 on one server).
pub fn worker_count() -> usize {
    inventory_testkit::citus_workers().len()
}

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

    pub async fn product(&self, sku: &str) -> String {
        self.create_product(product(sku))
            .await
            .expect("create product")
            .product_id
    }

    pub async fn create_product(&self, product: pb::Product) -> Result<pb::Product, tonic::Status> {
        let response = self
            .client
            .clone()
            .create_product(pb::CreateProductRequest {
                request_id: new_id(),
                product: Some(product),
            })
            .await?;
        Ok(response.into_inner().product.expect("product"))
    }

    pub async fn warehouse(&self, name: &str) -> String {
        let response = self
            .client
            .clone()
            .create_warehouse(pb::CreateWarehouseRequest {
                request_id: new_id(),
                warehouse: Some(pb::Warehouse {
                    name: name.to_owned(),
                    address: "1 Dock Road".to_owned(),
                    r#type: pb::WarehouseType::Fulfillment.into(),
                    location: Some(pb::GeoPoint {
                        latitude: 52.5,
                        longitude: 13.4,
                    }),
                    ..Default::default()
                }),
            })
            .await
            .expect("create warehouse");
        response
            .into_inner()
            .warehouse
            .expect("warehouse")
            .warehouse_id
    }

    pub async fn receive(
        &self,
        product_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> pb::ReceiveStockResponse {
        self.client
            .clone()
            .receive_stock(receive_request(product_id, warehouse_id, quantity))
            .await
            .expect("receive")
            .into_inner()
    }

    pub async fn reserve(
        &self,
        order_id: &str,
        product_id: &str,
        warehouse_id: &str,
        quantity: i64,
    ) -> Result<pb::ReserveStockResponse, tonic::Status> {
        self.client
            .clone()
            .reserve_stock(reserve_request(
                order_id,
                product_id,
                warehouse_id,
                quantity,
            ))
            .await
            .map(tonic::Response::into_inner)
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

    pub async fn summary(&self) -> Result<pb::GetInventorySummaryResponse, tonic::Status> {
        self.client
            .clone()
            .get_inventory_summary(pb::GetInventorySummaryRequest {})
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn inventory(&self, product_id: &str, warehouse_id: &str) -> pb::Inventory {
        self.client
            .clone()
            .get_inventory(pb::GetInventoryRequest {
                product_id: product_id.to_owned(),
                warehouse_id: warehouse_id.to_owned(),
            })
            .await
            .expect("get inventory")
            .into_inner()
            .inventory
            .expect("inventory")
    }

    /// Asserts the ledger check finds every row equal to its replayed log.
    pub async fn assert_ledger_clean(&self) -> pb::CheckLedgerResponse {
        let report = self
            .client
            .clone()
            .check_ledger(pb::CheckLedgerRequest {})
            .await
            .expect("check ledger")
            .into_inner();
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

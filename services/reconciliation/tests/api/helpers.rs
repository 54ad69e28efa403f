//! Reconciliation and stock running together, with helpers that speak both APIs.

use std::sync::Arc;
use std::time::Duration;

use inventory_proto::reconciliation::v1 as pb;
use inventory_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use inventory_proto::stock::v1 as stock;
use inventory_testkit::{StockServer, TestDatabase, TestServer};
pub use inventory_testkit::{bad_fields, error_info, new_id};
use reconciliation_service::ReconciliationApp;
use tonic::transport::Channel;

pub const DOMAIN: &str = "reconciliation";

pub struct TestApp {
    pub client: ReconciliationServiceClient<Channel>,
    pub server: TestServer,
    pub stock: StockServer,
    pub database: Arc<TestDatabase>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        let database = Arc::new(TestDatabase::create().await);
        let stock = StockServer::spawn_on(database.clone(), &[]).await;
        let server = Self::reconciliation(&database, &stock, vars).await;
        let client = ReconciliationServiceClient::new(server.channel().await);
        Self {
            client,
            server,
            stock,
            database,
        }
    }

    async fn reconciliation(
        database: &Arc<TestDatabase>,
        stock: &StockServer,
        vars: &[(&str, &str)],
    ) -> TestServer {
        let url = stock.url();
        let vars: Vec<(&str, &str)> = [
            ("STOCK_URL", url.as_str()),
            ("APPLY_RETRY_MS", "100"),
            // Tests count and move within milliseconds of each other.
            ("COUNT_UNCERTAINTY_MS", "50"),
        ]
        .into_iter()
        .chain(vars.iter().copied())
        .collect();
        TestServer::spawn::<ReconciliationApp>(database.clone(), &vars).await
    }

    pub fn client(&self) -> ReconciliationServiceClient<Channel> {
        self.client.clone()
    }

    pub async fn warehouse(&self, name: &str) -> String {
        self.stock.create_warehouse(name, (48.137, 11.575)).await
    }

    /// A product costing `unit_cost_micros` a unit.
    pub async fn product(&self, sku: &str, unit_cost_micros: i64) -> String {
        self.stock
            .client
            .clone()
            .create_product(stock::CreateProductRequest {
                request_id: new_id(),
                product: Some(stock::Product {
                    sku: sku.to_owned(),
                    name: format!("Product {sku}"),
                    unit_of_measure: "each".to_owned(),
                    unit_cost_micros,
                    ..Default::default()
                }),
            })
            .await
            .expect("create product")
            .into_inner()
            .product
            .expect("product")
            .product_id
    }

    /// `quantity` received into the warehouse.
    pub async fn stocked(&self, product: &str, warehouse: &str, quantity: i64) {
        self.stock
            .receive(product, warehouse, quantity, "opening stock")
            .await;
    }

    /// Reserves and ships `quantity`: stock's SHIP, what shrinkage is measured against.
    pub async fn ship(&self, product: &str, warehouse: &str, quantity: i64) {
        let order = new_id();
        let mut client = self.stock.client.clone();
        client
            .reserve_stock(stock::ReserveStockRequest {
                request_id: new_id(),
                order_id: order.clone(),
                line: Some(stock::ReservationLine {
                    order_line_id: "1".into(),
                    product_id: product.to_owned(),
                    warehouse_id: warehouse.to_owned(),
                    quantity,
                }),
                expire_time: None,
                actor: "test".into(),
            })
            .await
            .expect("reserve");
        client
            .ship_reservation(stock::ShipReservationRequest {
                request_id: new_id(),
                order_id: order,
                order_line_id: "1".into(),
                warehouse_id: warehouse.to_owned(),
                quantity,
                actor: "test".into(),
            })
            .await
            .expect("ship");
    }

    /// An ADJUST made in stock directly (damage written off), not through a count.
    pub async fn adjust_in_stock(&self, product: &str, warehouse: &str, delta: i64) {
        self.stock
            .client
            .clone()
            .adjust_stock(stock::AdjustStockRequest {
                request_id: new_id(),
                product_id: product.to_owned(),
                warehouse_id: warehouse.to_owned(),
                quantity_delta: delta,
                reason: "damaged".into(),
                reference_id: String::new(),
                expected_on_hand: None,
                actor: "test".into(),
            })
            .await
            .expect("adjust");
    }

    pub async fn on_hand(&self, product: &str, warehouse: &str) -> i64 {
        self.stock
            .level(product, warehouse)
            .await
            .map_or(0, |(on_hand, _)| on_hand)
    }

    /// ADJUST transactions of a pair in stock's log.
    pub async fn adjustments_in_stock(
        &self,
        product: &str,
        warehouse: &str,
    ) -> Vec<stock::InventoryTransaction> {
        self.stock
            .client
            .clone()
            .list_transactions(stock::ListTransactionsRequest {
                page_size: 1000,
                product_id: product.to_owned(),
                warehouse_id: warehouse.to_owned(),
                txn_type: stock::TransactionType::Adjust.into(),
                ..Default::default()
            })
            .await
            .expect("transactions")
            .into_inner()
            .transactions
    }

    pub async fn create_task(
        &self,
        warehouse: &str,
        products: &[&str],
        blind: bool,
    ) -> pb::CountTask {
        self.create_task_at(warehouse, "", products, blind).await
    }

    pub async fn create_task_at(
        &self,
        warehouse: &str,
        location: &str,
        products: &[&str],
        blind: bool,
    ) -> pb::CountTask {
        // Counting starts once the last movement is older than the count uncertainty (50 ms
        // here), as on a floor where the shelf is not being worked while counted.
        tokio::time::sleep(Duration::from_millis(60)).await;
        self.client()
            .create_count_task(pb::CreateCountTaskRequest {
                request_id: new_id(),
                warehouse_id: warehouse.to_owned(),
                location: location.to_owned(),
                product_ids: products.iter().map(|p| (*p).to_owned()).collect(),
                blind,
                actor: "planner".into(),
            })
            .await
            .expect("create task")
            .into_inner()
            .task
            .expect("task")
    }

    /// One submission per (product, quantity), by `counter`, counted now.
    pub async fn submit(
        &self,
        task: &str,
        counter: &str,
        counts: &[(&str, i64)],
    ) -> Result<Vec<pb::CountLine>, tonic::Status> {
        self.client()
            .submit_counts(pb::SubmitCountsRequest {
                request_id: new_id(),
                task_id: task.to_owned(),
                entries: counts
                    .iter()
                    .map(|&(p, q)| pb::CountEntry {
                        product_id: p.to_owned(),
                        quantity: q,
                        recount: false,
                        count_time: None,
                    })
                    .collect(),
                counted_by: counter.to_owned(),
            })
            .await
            .map(|r| r.into_inner().lines)
    }

    pub async fn complete(
        &self,
        task: &str,
    ) -> Result<pb::CompleteCountTaskResponse, tonic::Status> {
        self.client()
            .complete_count_task(pb::CompleteCountTaskRequest {
                request_id: new_id(),
                task_id: task.to_owned(),
                actor: "lead".into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every line of a task, by product id.
    pub async fn lines(&self, task: &str) -> Vec<pb::CountLine> {
        self.client()
            .list_count_lines(pb::ListCountLinesRequest {
                task_id: task.to_owned(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("lines")
            .into_inner()
            .lines
    }

    pub async fn line(&self, task: &str, product: &str) -> pb::CountLine {
        self.lines(task)
            .await
            .into_iter()
            .find(|l| l.product_id == product)
            .expect("line of the product")
    }

    pub async fn approve(&self, line: &str, manager: &str) -> Result<pb::CountLine, tonic::Status> {
        self.client()
            .approve_adjustment(pb::ApproveAdjustmentRequest {
                request_id: new_id(),
                adjustment_id: line.to_owned(),
                manager: manager.to_owned(),
                comment: "checked the shelf".into(),
            })
            .await
            .map(|r| r.into_inner().adjustment.expect("adjustment"))
    }

    /// Waits until `done` holds of the line (the background retry or the feed catching up).
    pub async fn wait_for_line(
        &self,
        task: &str,
        product: &str,
        done: impl Fn(&pb::CountLine) -> bool,
    ) -> pb::CountLine {
        for _ in 0..200 {
            let line = self.line(task, product).await;
            if done(&line) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("line of {product} never reached the expected state");
    }

    /// The shrinkage report over today, once the feed has seen `shipped` units shipped.
    pub async fn shrinkage_once_shipped(&self, shipped: i64) -> pb::GetShrinkageReportResponse {
        let now = chrono::Utc::now();
        let request = pb::GetShrinkageReportRequest {
            start_time: Some(inventory_core::time::timestamp(
                now - chrono::Duration::days(1),
            )),
            end_time: Some(inventory_core::time::timestamp(
                now + chrono::Duration::days(1),
            )),
            warehouse_id: String::new(),
        };
        for _ in 0..200 {
            let report = self
                .client()
                .get_shrinkage_report(request.clone())
                .await
                .expect("report")
                .into_inner();
            if report
                .overall
                .as_ref()
                .is_some_and(|o| o.shipped_units >= shipped)
            {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the feed never showed {shipped} units shipped");
    }
}

pub fn status(line: &pb::CountLine) -> pb::LineStatus {
    pb::LineStatus::try_from(line.status).unwrap_or(pb::LineStatus::Unspecified)
}

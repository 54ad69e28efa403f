//! A real stock service on port 0 against a fresh PostgreSQL database of its own, and a
//! real gRPC client. The database is dropped when the test ends.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_runtime::Config;
use pb::stock_service_client::StockServiceClient;
use sqlx::Connection;
use stock_service::{StockApp, StockSettings};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use uuid::Uuid;

/// Server of the databases tests create; override with TEST_DATABASE_URL.
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// A uniquely named database on the test server, dropped with this value.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("stock_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("test PostgreSQL reachable (TEST_DATABASE_URL)");
        sqlx::raw_sql(&(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = database_url(&name);
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let database = self.name.clone();
        // A fresh runtime on its own thread: Drop cannot await, and the test's runtime may be
        // shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                        let _ = sqlx::raw_sql(
                            &(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")),
                        )
                        .execute(&mut admin)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: StockServiceClient<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Declared last: dropped after the service has been told to stop.
    pub database: Arc<TestDatabase>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a service with extra environment settings (name, value).
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        let settings = StockSettings::default();
        Self::start(Arc::new(TestDatabase::create().await), vars, settings).await
    }

    /// Starts a service that applies every reservation in its own transaction.
    pub async fn spawn_uncoalesced() -> Self {
        let settings = StockSettings {
            coalescing: None,
            ..StockSettings::default()
        };
        Self::start(Arc::new(TestDatabase::create().await), &[], settings).await
    }

    /// Starts another replica of this service on the same database.
    pub async fn replica(&self) -> Self {
        Self::start(self.database.clone(), &[], StockSettings::default()).await
    }

    async fn start(
        database: Arc<TestDatabase>,
        vars: &[(&str, &str)],
        settings: StockSettings,
    ) -> Self {
        let url = database.url.clone();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // Tests run in parallel against one server (max_connections is 100 by default): each
        // replica gets a small pool.
        let config = Config::from_lookup("127.0.0.1:0", |key| match key {
            "DATABASE_URL" => Some(url.clone()),
            "DATABASE_MAX_CONNECTIONS" => Some("4".to_owned()),
            other => vars
                .iter()
                .find(|(k, _)| k == other)
                .map(|(_, v)| v.clone()),
        })
        .expect("config");
        let settings = StockSettings {
            feed_poll: Duration::from_millis(50),
            expiry_interval: Duration::from_millis(100),
            ..settings
        };
        let app = StockApp::build(&config, settings)
            .await
            .expect("stock service builds");
        let addr = app.local_addr().expect("bound");
        let (shutdown, stopped) = oneshot::channel();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let client = StockServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("client connects");
        Self {
            addr,
            client,
            database,
            shutdown: Some(shutdown),
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// A direct connection to the service's database, for assertions on what was stored.
    pub async fn db(&self) -> sqlx::PgConnection {
        let mut conn = sqlx::PgConnection::connect(&self.database.url)
            .await
            .expect("connect test database");
        sqlx::raw_sql("SET search_path = stock")
            .execute(&mut conn)
            .await
            .expect("search path");
        conn
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
        let response = self
            .client
            .clone()
            .create_product(pb::CreateProductRequest {
                request_id: new_id(),
                product: Some(pb::Product {
                    sku: sku.to_owned(),
                    name: format!("Product {sku}"),
                    category: "widgets".to_owned(),
                    unit_of_measure: "each".to_owned(),
                    reorder_point: 10,
                    reorder_quantity: 50,
                    lead_time_days: 7,
                    unit_cost_micros: 2_500_000,
                    ..Default::default()
                }),
            })
            .await
            .expect("create product");
        response.into_inner().product.expect("product").product_id
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
            .receive_stock(pb::ReceiveStockRequest {
                request_id: new_id(),
                product_id: product_id.to_owned(),
                warehouse_id: warehouse_id.to_owned(),
                quantity,
                reference_id: "PO-1".to_owned(),
                actor: "receiving".to_owned(),
            })
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

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn new_id() -> String {
    Uuid::now_v7().to_string()
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

/// The fields named by an INVALID_ARGUMENT's BadRequest details.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("bad request details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// The ErrorInfo reason and metadata of a FAILED_PRECONDITION.
pub fn error_info(status: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let info = status.get_details_error_info().expect("error info details");
    assert_eq!(info.domain, "stock.inventory");
    (info.reason, info.metadata)
}

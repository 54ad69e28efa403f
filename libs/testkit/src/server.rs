use std::net::SocketAddr;
use std::sync::Arc;

use inventory_proto::stock::v1 as stock;
use inventory_proto::stock::v1::stock_service_client::StockServiceClient;
use inventory_runtime::{App, RuntimeError};
use stock_service::StockApp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{TestDatabase, new_id};

/// A new connection to `url`.
pub(crate) async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// A service running in the test's process on port 0, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<Result<(), RuntimeError>>>,
    /// Declared last: dropped after the service was told to stop.
    pub database: Arc<TestDatabase>,
}

impl TestServer {
    /// Starts `A` against `database` with `vars` over the test defaults (port 0, and
    /// [`TestDatabase::settings`]).
    pub async fn spawn<A: App>(database: Arc<TestDatabase>, vars: &[(&str, &str)]) -> Self {
        crate::init_logs();
        let settings = database
            .settings()
            .overlay([("LISTEN_ADDR", "127.0.0.1:0")])
            .overlay(vars.iter().copied());
        let app = A::build(&settings)
            .await
            .unwrap_or_else(|error| panic!("{} builds: {error}", A::SPEC.binary));
        let addr = app.local_addr().expect("bound");
        let (shutdown, stopped) = oneshot::channel();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            shutdown: Some(shutdown),
            running: Some(running),
            database,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address for a TLS client (the test certificates are valid for 127.0.0.1).
    pub fn tls_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A new connection (its own HTTP/2 connection, unlike clones of one channel).
    pub async fn channel(&self) -> Channel {
        connect(&self.url()).await
    }

    /// Shuts the service down as SIGTERM would, and waits until it has drained and stopped.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("service task")
                .expect("service stops cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The ledger check of the stock service behind `client` finds no drift.
pub async fn assert_ledger_clean(client: &StockServiceClient<Channel>) {
    let report = client
        .clone()
        .check_ledger(stock::CheckLedgerRequest {})
        .await
        .expect("ledger")
        .into_inner();
    assert!(report.drifts.is_empty(), "{:?}", report.drifts);
}

/// (on hand, reserved) of a pair, asked of the stock service behind `client`; None while
/// stock has no row for it.
pub async fn inventory_level(
    client: &StockServiceClient<Channel>,
    product_id: &str,
    warehouse_id: &str,
) -> Option<(i64, i64)> {
    let answer = client
        .clone()
        .get_inventory(stock::GetInventoryRequest {
            product_id: product_id.to_owned(),
            warehouse_id: warehouse_id.to_owned(),
        })
        .await;
    match answer {
        Ok(response) => response
            .into_inner()
            .inventory
            .map(|i| (i.quantity_on_hand, i.quantity_reserved)),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("inventory: {status}"),
    }
}

/// A real stock service with a client, for the tests of stock and of the services calling it.
pub struct StockServer {
    pub server: TestServer,
    pub client: StockServiceClient<Channel>,
}

impl StockServer {
    /// Stock on a fresh database. Feeds poll and expiry runs often, so tests see them soon.
    pub async fn spawn(vars: &[(&str, &str)]) -> Self {
        Self::spawn_on(Arc::new(TestDatabase::create().await), vars).await
    }

    /// Stock on `database` (another replica, or a restart on the same data).
    pub async fn spawn_on(database: Arc<TestDatabase>, vars: &[(&str, &str)]) -> Self {
        let vars: Vec<(&str, &str)> = [("FEED_POLL_MS", "50"), ("EXPIRY_INTERVAL_MS", "100")]
            .into_iter()
            .chain(vars.iter().copied())
            .collect();
        let server = TestServer::spawn::<StockApp>(database, &vars).await;
        let client = StockServiceClient::new(server.channel().await);
        Self { server, client }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A fulfillment warehouse at (latitude, longitude); its id.
    pub async fn create_warehouse(&self, name: &str, (latitude, longitude): (f64, f64)) -> String {
        self.client
            .clone()
            .create_warehouse(stock::CreateWarehouseRequest {
                request_id: new_id(),
                warehouse: Some(stock::Warehouse {
                    name: name.to_owned(),
                    r#type: stock::WarehouseType::Fulfillment.into(),
                    location: Some(stock::GeoPoint {
                        latitude,
                        longitude,
                    }),
                    ..Default::default()
                }),
            })
            .await
            .expect("create warehouse")
            .into_inner()
            .warehouse
            .expect("warehouse")
            .warehouse_id
    }

    /// A product counted in "each"; its id.
    pub async fn create_product(&self, sku: &str) -> String {
        self.client
            .clone()
            .create_product(stock::CreateProductRequest {
                request_id: new_id(),
                product: Some(stock::Product {
                    sku: sku.to_owned(),
                    name: format!("Product {sku}"),
                    unit_of_measure: "each".to_owned(),
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

    /// Receives `quantity` under `reference_id` (not through another service).
    pub async fn receive(
        &self,
        product_id: &str,
        warehouse_id: &str,
        quantity: i64,
        reference_id: &str,
    ) {
        self.client
            .clone()
            .receive_stock(stock::ReceiveStockRequest {
                request_id: new_id(),
                product_id: product_id.to_owned(),
                warehouse_id: warehouse_id.to_owned(),
                quantity,
                reference_id: reference_id.to_owned(),
                actor: "test".to_owned(),
            })
            .await
            .expect("receive");
    }

    /// (on hand, reserved) of a pair; None while stock has no row for it.
    pub async fn level(&self, product_id: &str, warehouse_id: &str) -> Option<(i64, i64)> {
        inventory_level(&self.client, product_id, warehouse_id).await
    }

    /// Stock's ledger check finds no drift.
    pub async fn assert_ledger_clean(&self) {
        assert_ledger_clean(&self.client).await;
    }
}

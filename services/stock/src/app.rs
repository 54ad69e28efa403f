//! Builds the stock service from its settings and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_runtime::{
    App, CitusLayout, Config, Policy, Role, RuntimeError, ServiceHost, ServiceSpec, Settings,
};

use crate::api::{Coalescing, StockApi};
use crate::store::Store;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: pb::SERVICE_NAME,
    binary: "stock-service",
    schema: "stock",
    descriptor_set: pb::FILE_DESCRIPTOR_SET,
    migrator: &MIGRATOR,
    default_listen: "0.0.0.0:50051",
    default_metrics: "0.0.0.0:9451",
    citus: Some(&CITUS_LAYOUT),
    policy: POLICY,
};

/// Who may change what in stock: the catalog is the operators'; holds and shipments are order
/// management's (and allocation's, which holds for it); receipts come from replenishment (or
/// an operator at the dock); adjustments only from reconciliation's approved counts.
pub const POLICY: Policy = Policy {
    writes: &[
        ("CreateProduct", &[Role::Operator]),
        ("UpdateProduct", &[Role::Operator]),
        ("CreateWarehouse", &[Role::Operator]),
        ("UpdateWarehouse", &[Role::Operator]),
        ("ReceiveStock", &[Role::Replenishment, Role::Operator]),
        ("ReserveStock", &[Role::OrderManagement, Role::Allocation]),
        ("ReserveOrder", &[Role::OrderManagement, Role::Allocation]),
        (
            "BatchReserveOrders",
            &[Role::OrderManagement, Role::Allocation],
        ),
        (
            "ReleaseReservation",
            &[Role::OrderManagement, Role::Allocation],
        ),
        (
            "ShipReservation",
            &[Role::OrderManagement, Role::Allocation],
        ),
        ("AdjustStock", &[Role::Reconciliation]),
        ("TransferStock", &[Role::Operator]),
        // A replay of the whole log: not for every caller.
        ("CheckLedger", &[Role::Operator]),
    ],
    reads: &[
        "GetProduct",
        "BatchGetProducts",
        "ListProducts",
        "GetWarehouse",
        "ListWarehouses",
        "GetInventory",
        "BatchGetAvailability",
        "ListInventory",
        "ListReservations",
        "ListTransactions",
        "StreamTransactions",
        "GetInventorySummary",
    ],
};

/// Stock on Citus: everything about a product on one shard group, so each movement,
/// reservation and the coalesced batch of one product runs on one node; the catalog on every
/// node for the joins and the inventory rows' foreign keys; request ids on the coordinator, where every request
/// begins, and committed in two phases with the rows a request wrote on a worker.
pub static CITUS_LAYOUT: CitusLayout = CitusLayout {
    reference: &["products", "warehouses"],
    distributed: &[
        ("inventory", "product_id"),
        ("inventory_transactions", "product_id"),
        ("reservations", "product_id"),
    ],
    coordinator: &["idempotency_keys"],
    foreign_keys: &[
        ("inventory", "inventory_product_id_fkey"),
        ("inventory", "inventory_warehouse_id_fkey"),
    ],
};

/// How often the feed's holdback is sampled (see [`crate::feed_watch`]).
const FEED_HOLDBACK_SAMPLE: Duration = Duration::from_secs(5);

/// Settings of the stock service beyond the shared ones.
#[derive(Debug, Clone)]
pub struct StockSettings {
    /// `FEED_POLL_MS`: how often a caught-up transaction feed looks for rows written by other
    /// replicas (default 200).
    pub feed_poll: Duration,
    /// `EXPIRY_INTERVAL_MS`: how often expired reservations are released (default 1000).
    pub expiry_interval: Duration,
    /// `RESERVE_COALESCING` (default true), `RESERVE_LANES` (default 2) and
    /// `RESERVE_MAX_BATCH` (default 256): concurrent reservations (one line or a whole order) share
    /// transactions; `None` applies each in its own.
    pub coalescing: Option<Coalescing>,
}

impl StockSettings {
    pub fn from_settings(settings: &Settings) -> Result<Self, RuntimeError> {
        let coalescing = if settings.flag("RESERVE_COALESCING", true)? {
            Some(Coalescing {
                lanes: settings.get::<usize>("RESERVE_LANES", 2)?.max(1),
                max_batch: settings.get::<usize>("RESERVE_MAX_BATCH", 256)?.max(1),
            })
        } else {
            None
        };
        Ok(Self {
            feed_poll: settings.millis("FEED_POLL_MS", 200)?,
            expiry_interval: settings
                .millis("EXPIRY_INTERVAL_MS", 1000)?
                .max(Duration::from_millis(1)),
            coalescing,
        })
    }
}

/// A stock service bound to its port with its database migrated, ready to run.
pub struct StockApp {
    host: ServiceHost,
    api: StockApi,
}

impl App for StockApp {
    const SPEC: ServiceSpec = SPEC;

    async fn build(settings: &Settings) -> Result<Self, RuntimeError> {
        let config = Config::from_settings(settings, SPEC.default_listen)?;
        let mut stock = StockSettings::from_settings(settings)?;
        let mut host = ServiceHost::build(config, SPEC).await?;
        let store = Store::open(host.pool.clone())
            .await
            .map_err(|e| RuntimeError::Config(format!("reading the Citus layout: {e}")))?;
        if stock.coalescing.is_some() && store.is_distributed() {
            // A coalesced batch is one statement that locks rows of many products and writes
            // request ids on the coordinator with rows on the shards: not a statement Citus
            // runs. Each reservation is then its own transaction, on its product's shard.
            tracing::info!("tables on Citus: reservations are not coalesced");
            stock.coalescing = None;
        }
        let api = StockApi::new(store.clone(), &stock, &host);
        let log_appended = api.log_appended();
        let watched = store.clone();
        host.background.every(stock.expiry_interval, move || {
            crate::expiry::release_all_expired(store.clone(), log_appended.clone())
        });
        host.background.every(FEED_HOLDBACK_SAMPLE, move || {
            crate::feed_watch::sample_holdback(watched.clone())
        });
        Ok(Self { host, api })
    }

    fn local_addr(&self) -> Result<SocketAddr, RuntimeError> {
        self.host.local_addr()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let service = pb::stock_service_server::StockServiceServer::new(self.api)
            .max_decoding_message_size(self.host.config.max_message_bytes);
        self.host.run(service, shutdown).await
    }
}

//! Builds the stock service from configuration and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_runtime::{
    Config, GrpcServer, RuntimeError, ServiceSpec, connect_database, env_flag, env_setting,
};
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

use crate::api::{Coalescing, StockApi};
use crate::store::Store;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: pb::SERVICE_NAME,
    schema: "stock",
    descriptor_set: pb::FILE_DESCRIPTOR_SET,
};
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";

/// Settings of the stock service beyond the shared ones.
#[derive(Debug, Clone)]
pub struct StockSettings {
    /// `FEED_POLL_MS`: how often a caught-up transaction feed looks for rows written by other
    /// replicas (default 200).
    pub feed_poll: Duration,
    /// `EXPIRY_INTERVAL_MS`: how often expired reservations are released (default 1000).
    pub expiry_interval: Duration,
    /// `REQUEST_ID_RETENTION_HOURS`: how long request ids are remembered for retries
    /// (default 168, a week).
    pub request_id_retention: chrono::Duration,
    /// `RESERVE_COALESCING` (default true), `RESERVE_LANES` (default 2) and
    /// `RESERVE_MAX_BATCH` (default 256): concurrent single-line reservations share
    /// transactions; `None` applies each in its own.
    pub coalescing: Option<Coalescing>,
}

impl StockSettings {
    pub fn from_env() -> Result<Self, RuntimeError> {
        let coalescing = if env_flag("RESERVE_COALESCING", true)? {
            Some(Coalescing {
                lanes: env_setting::<usize>("RESERVE_LANES", 2)?.max(1),
                max_batch: env_setting::<usize>("RESERVE_MAX_BATCH", 256)?.max(1),
            })
        } else {
            None
        };
        Ok(Self {
            feed_poll: Duration::from_millis(env_setting("FEED_POLL_MS", 200)?),
            expiry_interval: Duration::from_millis(env_setting("EXPIRY_INTERVAL_MS", 1000)?.max(1)),
            request_id_retention: chrono::Duration::hours(i64::from(env_setting::<u32>(
                "REQUEST_ID_RETENTION_HOURS",
                168,
            )?)),
            coalescing,
        })
    }
}

impl Default for StockSettings {
    fn default() -> Self {
        Self {
            feed_poll: Duration::from_millis(200),
            expiry_interval: Duration::from_millis(1000),
            request_id_retention: chrono::Duration::hours(168),
            coalescing: Some(Coalescing {
                lanes: 2,
                max_batch: 256,
            }),
        }
    }
}

/// A stock service bound to its port with its database migrated, ready to run.
pub struct StockApp {
    server: GrpcServer,
    pool: PgPool,
    settings: StockSettings,
}

impl StockApp {
    pub async fn build(config: &Config, settings: StockSettings) -> Result<Self, RuntimeError> {
        let pool = connect_database(config, SPEC.schema, &MIGRATOR).await?;
        let server = GrpcServer::bind(config, SPEC).await?;
        Ok(Self {
            server,
            pool,
            settings,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, RuntimeError> {
        self.server.local_addr()
    }

    /// Serves until `shutdown` completes, then stops the background upkeep.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        let store = Store::new(self.pool.clone());
        let log_appended = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let upkeep = tokio::spawn(crate::expiry::run(
            store.clone(),
            self.settings.expiry_interval,
            self.settings.request_id_retention,
            log_appended.clone(),
            stopped,
        ));
        let api = StockApi::new(
            store,
            log_appended,
            self.settings.feed_poll,
            self.settings.coalescing,
            stop.subscribe(),
            self.settings.request_id_retention,
        );
        let service = pb::stock_service_server::StockServiceServer::new(api);
        // Tell long-lived work (feeds, upkeep) to end as soon as shutdown begins, so the
        // server's drain is not held up by streams that would never finish.
        let shutdown = async {
            shutdown.await;
            let _ = stop.send(true);
        };
        let result = self
            .server
            .serve(service, self.pool.clone(), shutdown)
            .await;
        let _ = stop.send(true);
        let _ = upkeep.await;
        self.pool.close().await;
        result
    }
}

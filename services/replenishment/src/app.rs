//! Builds the replenishment service from its settings and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use inventory_proto::replenishment::v1 as pb;
use inventory_runtime::{App, Config, RuntimeError, ServiceHost, ServiceSpec, Settings};
use inventory_stock_client::GrpcStockClient;

use crate::api::{ReplenishmentApi, Rules};
use crate::outbox::{DropDirectory, Outbox, Sender};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: pb::SERVICE_NAME,
    schema: "replenishment",
    descriptor_set: pb::FILE_DESCRIPTOR_SET,
    migrator: &MIGRATOR,
};
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50053";

pub struct ReplenishmentApp {
    host: ServiceHost,
    api: ReplenishmentApi,
}

impl App for ReplenishmentApp {
    const NAME: &'static str = "replenishment-service";

    async fn build(settings: &Settings) -> Result<Self, RuntimeError> {
        let config = Config::from_settings(settings, DEFAULT_LISTEN)?;
        let rules = Rules {
            // AUTO_APPROVE_BELOW_MICROS: POs with a smaller total need no person.
            auto_approve_below_micros: settings.get("AUTO_APPROVE_BELOW_MICROS", 1_000_000_000)?,
            // RECEIPT_TOLERANCE_PERCENT: how far past the ordered quantity receipts may go.
            receipt_tolerance_percent: settings.get("RECEIPT_TOLERANCE_PERCENT", 2)?,
        };
        if rules.auto_approve_below_micros < 0 {
            return Err(RuntimeError::Config(
                "AUTO_APPROVE_BELOW_MICROS must not be negative".into(),
            ));
        }
        let sender = Sender {
            qualifier: settings.text("EDI_SENDER_QUALIFIER", "ZZ"),
            id: settings.text("EDI_SENDER_ID", "INVENTORY"),
            // EDI_PRODUCTION: documents say P (production) only when this is set.
            production: settings.flag("EDI_PRODUCTION", false)?,
        };
        if sender.qualifier.chars().count() != 2 || !(1..=15).contains(&sender.id.chars().count()) {
            return Err(RuntimeError::Config(
                "EDI_SENDER_QUALIFIER must be 2 characters and EDI_SENDER_ID 1 to 15".into(),
            ));
        }
        let drop_dir = settings.text("EDI_DROP_DIR", "edi-outbox");
        let poll = settings.millis("OUTBOX_POLL_MS", 5_000)?;
        let mut host = ServiceHost::build(config, SPEC).await?;
        let stock = Arc::new(GrpcStockClient::from_settings(settings)?);
        let outbox = Outbox::new(
            host.pool.clone(),
            Arc::new(DropDirectory::new(drop_dir)),
            sender,
            poll,
        );
        let sending = outbox.clone();
        host.background.spawn(|stopping| sending.run(stopping));
        let api = ReplenishmentApi::new(
            host.pool.clone(),
            host.page_tokens.clone(),
            stock,
            outbox,
            rules,
        );
        Ok(Self { host, api })
    }

    fn local_addr(&self) -> Result<SocketAddr, RuntimeError> {
        self.host.local_addr()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let service = pb::replenishment_service_server::ReplenishmentServiceServer::new(self.api);
        self.host.run(service, shutdown).await
    }
}

//! Builds the replenishment service from its settings and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use inventory_proto::replenishment::v1 as pb;
use inventory_runtime::{
    App, Config, Policy, Role, RuntimeError, ServiceHost, ServiceSpec, Settings,
};
use inventory_stock_client::{FeedConsumer, GrpcStockClient};

use crate::api::{ReplenishmentApi, Rules};
use crate::outbox::{DropDirectory, Outbox, Sender};
use crate::planning::{DemandFeed, FEED, Planner, PolicyDefaults};
use crate::supplier_api::HttpSupplierApi;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: pb::SERVICE_NAME,
    binary: "replenishment-service",
    schema: "replenishment",
    descriptor_set: pb::FILE_DESCRIPTOR_SET,
    migrator: &MIGRATOR,
    default_listen: "0.0.0.0:50053",
    default_metrics: "0.0.0.0:9453",
    citus: None,
    policy: POLICY,
};

/// Operators run suppliers, policies, purchase orders and scans; managers approve; the
/// supplier integration may push receipts and nothing else.
pub const POLICY: Policy = Policy {
    writes: &[
        ("CreateSupplier", &[Role::Operator]),
        ("SetSupplierOffer", &[Role::Operator]),
        ("SetReorderPolicy", &[Role::Operator]),
        ("CreatePurchaseOrder", &[Role::Operator]),
        ("RunReorderScan", &[Role::Operator]),
        ("CancelPurchaseOrder", &[Role::Operator, Role::Manager]),
        ("ApprovePurchaseOrder", &[Role::Manager]),
        ("RejectPurchaseOrder", &[Role::Manager]),
        (
            "ReceivePurchaseOrder",
            &[Role::SupplierIntegration, Role::Operator],
        ),
    ],
    reads: &[
        "GetSupplier",
        "ListSuppliers",
        "ListSupplierOffers",
        "GetPurchaseOrder",
        "ListPurchaseOrders",
        "GetReorderPolicy",
    ],
};

pub struct ReplenishmentApp {
    host: ServiceHost,
    api: ReplenishmentApi,
}

impl App for ReplenishmentApp {
    const SPEC: ServiceSpec = SPEC;

    async fn build(settings: &Settings) -> Result<Self, RuntimeError> {
        let config = Config::from_settings(settings, SPEC.default_listen)?;
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
        let policy_defaults = PolicyDefaults {
            // REORDER_SERVICE_LEVEL: the target cycle service level of computed policies.
            service_level: settings.get("REORDER_SERVICE_LEVEL", 0.95)?,
            // ORDERING_COST_MICROS and HOLDING_RATE: EOQ's cost per order and yearly holding
            // cost as a share of the unit cost.
            ordering_cost_micros: settings.get("ORDERING_COST_MICROS", 50_000_000)?,
            holding_rate: settings.get("HOLDING_RATE", 0.25)?,
        };
        if !(policy_defaults.service_level > 0.0 && policy_defaults.service_level < 1.0) {
            return Err(RuntimeError::Config(
                "REORDER_SERVICE_LEVEL must be between 0 and 1 (exclusive)".into(),
            ));
        }
        if policy_defaults.ordering_cost_micros < 0
            || !policy_defaults.holding_rate.is_finite()
            || policy_defaults.holding_rate < 0.0
        {
            return Err(RuntimeError::Config(
                "ORDERING_COST_MICROS and HOLDING_RATE must not be negative".into(),
            ));
        }
        // REORDER_SCAN_INTERVAL_MS (hourly) and POLICY_RECOMPUTE_INTERVAL_MS (daily).
        let scan_every = settings.millis("REORDER_SCAN_INTERVAL_MS", 3_600_000)?;
        let recompute_every = settings.millis("POLICY_RECOMPUTE_INTERVAL_MS", 86_400_000)?;
        if scan_every.is_zero() || recompute_every.is_zero() {
            return Err(RuntimeError::Config(
                "REORDER_SCAN_INTERVAL_MS and POLICY_RECOMPUTE_INTERVAL_MS must be positive".into(),
            ));
        }
        let drop_dir = settings.text("EDI_DROP_DIR", "edi-outbox");
        // SUPPLIER_API_TIMEOUT_MS: how long a supplier's API may take to accept a PO.
        let api = HttpSupplierApi::new(settings.millis("SUPPLIER_API_TIMEOUT_MS", 10_000)?)
            .map_err(RuntimeError::Config)?;
        let poll = settings.millis("OUTBOX_POLL_MS", 5_000)?;
        let mut host = ServiceHost::build(config, SPEC).await?;
        let stock = Arc::new(GrpcStockClient::from_settings(
            settings,
            Role::Replenishment,
        )?);
        let outbox = Outbox::new(
            host.pool.clone(),
            stock.clone(),
            Arc::new(DropDirectory::new(drop_dir)),
            Arc::new(api),
            sender,
            poll,
        );
        let sending = outbox.clone();
        host.background.spawn(|stopping| sending.run(stopping));
        let feed = FeedConsumer::new(FEED, host.pool.clone(), stock.clone(), Arc::new(DemandFeed));
        host.background.spawn(|stopping| feed.run(stopping));
        let planner = Planner::new(host.pool.clone(), stock.clone(), policy_defaults);
        let (scanner, woken) = (planner.clone(), outbox.clone());
        let threshold = rules.auto_approve_below_micros;
        host.background.every(scan_every, move || {
            let (scanner, woken) = (scanner.clone(), woken.clone());
            async move {
                match scanner.scan(false, threshold).await {
                    Ok(decisions) => {
                        let drafted = decisions.iter().filter(|d| d.po_id.is_some()).count();
                        tracing::info!(drafted, "reorder scan");
                        woken.wake();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reorder scan failed; next one at the next interval")
                    }
                }
            }
        });
        let recomputer = planner.clone();
        host.background.every(recompute_every, move || {
            let recomputer = recomputer.clone();
            async move {
                match recomputer.recompute_all().await {
                    Ok(count) => tracing::info!(count, "reorder policies recomputed"),
                    Err(error) => tracing::warn!(%error, "recomputing reorder policies failed"),
                }
            }
        });
        let api = ReplenishmentApi::new(
            host.pool.clone(),
            host.page_tokens.clone(),
            stock,
            outbox,
            planner,
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
        let service = pb::replenishment_service_server::ReplenishmentServiceServer::new(self.api)
            .max_decoding_message_size(self.host.config.max_message_bytes);
        self.host.run(service, shutdown).await
    }
}

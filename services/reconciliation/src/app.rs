//! Builds the reconciliation service from its settings and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use inventory_proto::reconciliation::v1 as pb;
use inventory_runtime::{
    App, Config, Policy, RecurringFailure, Role, RuntimeError, ServiceHost, ServiceSpec, Settings,
};
use inventory_stock_client::{FeedConsumer, GrpcStockClient};

use crate::api::ReconciliationApi;
use crate::counting::{CountRules, Counting};
use crate::domain::tolerance::{Limit, Tolerances};
use crate::feed::{FEED, MovementFeed};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: pb::SERVICE_NAME,
    binary: "reconciliation-service",
    schema: "reconciliation",
    descriptor_set: pb::FILE_DESCRIPTOR_SET,
    migrator: &MIGRATOR,
    default_listen: "0.0.0.0:50054",
    default_metrics: "0.0.0.0:9454",
    citus: None,
    policy: POLICY,
};

/// Operators plan and count; managers approve or reject the adjustments that need them.
pub const POLICY: Policy = Policy {
    writes: &[
        ("CreateCountTask", &[Role::Operator]),
        ("SubmitCounts", &[Role::Operator]),
        ("CompleteCountTask", &[Role::Operator]),
        ("CancelCountTask", &[Role::Operator]),
        ("ApproveAdjustment", &[Role::Manager]),
        ("RejectAdjustment", &[Role::Manager]),
    ],
    reads: &[
        "GetCountTask",
        "ListCountTasks",
        "ListCountLines",
        "ListAdjustments",
        "GetShrinkageReport",
        "GetCountingReport",
        "ListCountsDue",
    ],
};

/// Auto-approval limit in value, either way, unless told otherwise: 100 currency units.
const DEFAULT_VALUE_LIMIT_MICROS: i64 = 100_000_000;

pub struct ReconciliationApp {
    host: ServiceHost,
    api: ReconciliationApi,
}

/// TOLERANCE_{A,B,C}_{GAIN,LOSS}_PERCENT (defaults 1, 3, 5) and
/// TOLERANCE_{A,B,C}_{GAIN,LOSS}_VALUE_MICROS (default 100 currency units): the largest
/// variance approved without a manager, per ABC class and direction.
fn tolerances(settings: &Settings) -> Result<Tolerances, RuntimeError> {
    let mut t = Tolerances::defaults(DEFAULT_VALUE_LIMIT_MICROS);
    for (class, limits) in [("A", &mut t.a), ("B", &mut t.b), ("C", &mut t.c)] {
        for (direction, limit) in [("GAIN", &mut limits.gain), ("LOSS", &mut limits.loss)] {
            let percent_name = format!("TOLERANCE_{class}_{direction}_PERCENT");
            let value_name = format!("TOLERANCE_{class}_{direction}_VALUE_MICROS");
            let read = Limit {
                percent: settings.get(&percent_name, limit.percent)?,
                value_micros: settings.get(&value_name, limit.value_micros)?,
            };
            if !(read.percent.is_finite() && read.percent >= 0.0) || read.value_micros < 0 {
                return Err(RuntimeError::Config(format!(
                    "{percent_name} and {value_name} must not be negative"
                )));
            }
            *limit = read;
        }
    }
    Ok(t)
}

impl App for ReconciliationApp {
    const SPEC: ServiceSpec = SPEC;

    async fn build(settings: &Settings) -> Result<Self, RuntimeError> {
        let config = Config::from_settings(settings, SPEC.default_listen)?;
        let rules = CountRules {
            tolerances: tolerances(settings)?,
            // COUNT_UNCERTAINTY_MS: how far a scanner's clock may be from stock's; a movement
            // closer than this to a count asks for a recount.
            uncertainty: chrono::Duration::from_std(
                settings.millis("COUNT_UNCERTAINTY_MS", 5_000)?,
            )
            .map_err(|e| RuntimeError::Config(format!("COUNT_UNCERTAINTY_MS: {e}")))?,
            // APPLY_CONCURRENCY: ADJUST calls in flight at once when a count completes.
            apply_concurrency: settings.get("APPLY_CONCURRENCY", 16_usize)?,
        };
        if rules.apply_concurrency == 0 {
            return Err(RuntimeError::Config(
                "APPLY_CONCURRENCY must be positive".into(),
            ));
        }
        // APPLY_RETRY_MS: how often approved adjustments not yet in stock are sent again.
        let retry_every = settings.millis("APPLY_RETRY_MS", 10_000)?;
        if retry_every.is_zero() {
            return Err(RuntimeError::Config(
                "APPLY_RETRY_MS must be positive".into(),
            ));
        }
        let mut host = ServiceHost::build(config, SPEC).await?;
        let stock = Arc::new(GrpcStockClient::from_settings(
            settings,
            Role::Reconciliation,
        )?);
        let counting = Counting::new(host.pool.clone(), stock.clone(), rules);
        let feed = FeedConsumer::new(FEED, host.pool.clone(), stock, Arc::new(MovementFeed));
        host.background.spawn(|stopping| feed.run(stopping));
        let retrying = counting.clone();
        host.background.every(retry_every, move || {
            let retrying = retrying.clone();
            async move {
                static FAILURES: RecurringFailure =
                    RecurringFailure::new("sending approved adjustments");
                match retrying.apply_pending().await {
                    Ok(0) => FAILURES.succeeded(),
                    Ok(count) => {
                        FAILURES.succeeded();
                        tracing::info!(count, "approved adjustments sent again");
                    }
                    Err(error) => FAILURES.failed(&error),
                }
            }
        });
        let api = ReconciliationApi::new(host.pool.clone(), host.page_tokens.clone(), counting);
        Ok(Self { host, api })
    }

    fn local_addr(&self) -> Result<SocketAddr, RuntimeError> {
        self.host.local_addr()
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let service = pb::reconciliation_service_server::ReconciliationServiceServer::new(self.api)
            .max_decoding_message_size(self.host.config.max_message_bytes);
        self.host.run(service, shutdown).await
    }
}

//! The four services in one process, each on its own port with its own schema and settings,
//! calling each other over real gRPC exactly as when deployed apart.
//!
//! Each service reads its settings through the platform's lookup, scoped: for the
//! replenishment service `REPLENISHMENT_EDI_DROP_DIR` wins over the suite's own values
//! (its port, stock's address, the database), which win over a plain `EDI_DROP_DIR`.

use std::future::Future;
use std::net::SocketAddr;

use fulfillment_allocation_service::AllocationApp;
use inventory_runtime::{App, RuntimeError, Settings};
use reconciliation_service::ReconciliationApp;
use replenishment_service::ReplenishmentApp;
use stock_service::StockApp;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Each service's prefix for its own settings, and its port in the suite.
pub const SERVICES: [(&str, u16); 4] = [
    ("STOCK", 50051),
    ("ALLOCATION", 50052),
    ("REPLENISHMENT", 50053),
    ("RECONCILIATION", 50054),
];

/// The four services' names, under which each exports its own traces.
pub const SERVICE_NAMES: [&str; 4] = [
    StockApp::SPEC.binary,
    AllocationApp::SPEC.binary,
    ReplenishmentApp::SPEC.binary,
    ReconciliationApp::SPEC.binary,
];

/// Where each service listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub stock: SocketAddr,
    pub allocation: SocketAddr,
    pub replenishment: SocketAddr,
    pub reconciliation: SocketAddr,
}

pub struct Suite {
    pub addresses: Addresses,
    stop: watch::Sender<bool>,
    running: JoinSet<(&'static str, Result<(), RuntimeError>)>,
}

/// `base` seen by the service with `prefix`: its own `PREFIX_KEY` first, then `suite`
/// (values the suite decides), then `base` itself.
fn scoped(base: &Settings, prefix: &'static str, suite: Vec<(&str, String)>) -> Settings {
    let suite: Vec<(String, String)> = suite.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let own = base.clone();
    let with_suite = base.overlay(suite);
    Settings::from_fn(move |key| {
        own.raw(&format!("{prefix}_{key}"))
            .or_else(|| with_suite.raw(key))
    })
}

impl Suite {
    /// Builds and starts stock, then the others pointed at it; `base` holds `DATABASE_URL`.
    pub async fn start(base: &Settings) -> Result<Self, RuntimeError> {
        let (stop, stopping) = watch::channel(false);
        let mut running = JoinSet::new();
        let listen = |port: u16| format!("127.0.0.1:{port}");
        let stock = StockApp::build(&scoped(
            base,
            "STOCK",
            vec![("LISTEN_ADDR", listen(SERVICES[0].1))],
        ))
        .await?;
        let stock_addr = serve(&mut running, &stopping, stock)?;
        let peers = |port: u16| {
            vec![
                ("LISTEN_ADDR", listen(port)),
                ("STOCK_URL", format!("http://{stock_addr}")),
            ]
        };
        let allocation =
            AllocationApp::build(&scoped(base, "ALLOCATION", peers(SERVICES[1].1))).await?;
        let allocation_addr = serve(&mut running, &stopping, allocation)?;
        let replenishment =
            ReplenishmentApp::build(&scoped(base, "REPLENISHMENT", peers(SERVICES[2].1))).await?;
        let replenishment_addr = serve(&mut running, &stopping, replenishment)?;
        let reconciliation =
            ReconciliationApp::build(&scoped(base, "RECONCILIATION", peers(SERVICES[3].1))).await?;
        let reconciliation_addr = serve(&mut running, &stopping, reconciliation)?;
        Ok(Self {
            addresses: Addresses {
                stock: stock_addr,
                allocation: allocation_addr,
                replenishment: replenishment_addr,
                reconciliation: reconciliation_addr,
            },
            stop,
            running,
        })
    }

    /// Runs until `shutdown`, or until a service stops on its own (an error), then drains
    /// all four.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        let first = tokio::select! {
            () = shutdown => None,
            ended = self.running.join_next() => ended,
        };
        let _ = self.stop.send(true);
        let mut outcome = Ok(());
        if let Some(ended) = first {
            outcome = stopped(ended);
        }
        while let Some(ended) = self.running.join_next().await {
            if let Err(error) = stopped(ended) {
                outcome = outcome.and(Err(error));
            }
        }
        outcome
    }

    /// Stops all four and waits for them.
    pub async fn stop(self) -> Result<(), RuntimeError> {
        self.run_until(std::future::ready(())).await
    }
}

fn stopped(
    ended: Result<(&'static str, Result<(), RuntimeError>), tokio::task::JoinError>,
) -> Result<(), RuntimeError> {
    match ended {
        Ok((_, Ok(()))) => Ok(()),
        Ok((name, Err(error))) => {
            tracing::error!(service = name, %error, "stopped");
            Err(error)
        }
        Err(panic) => Err(RuntimeError::Config(format!(
            "a service task failed: {panic}"
        ))),
    }
}

/// Spawns `app` until the suite stops; where it listens.
fn serve<A: App>(
    running: &mut JoinSet<(&'static str, Result<(), RuntimeError>)>,
    stopping: &watch::Receiver<bool>,
    app: A,
) -> Result<SocketAddr, RuntimeError> {
    let addr = app.local_addr()?;
    let mut stopping = stopping.clone();
    let shutdown = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    running.spawn(async move { (A::SPEC.binary, app.run_until_stopped(shutdown).await) });
    tracing::info!(service = A::SPEC.binary, %addr, "serving");
    Ok(addr)
}

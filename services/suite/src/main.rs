//! `inventory-suite [demo]`: the four services on :50051-:50054; with `demo` (or `--demo`),
//! demo data loaded once they serve.

use std::process::ExitCode;

use inventory_runtime::Settings;
use inventory_suite::database::{self, PRIVATE_PORT};
use inventory_suite::{SERVICE_NAMES, Suite, demo};

const USAGE: &str = "usage: inventory-suite [demo]

Runs stock (:50051), fulfillment-allocation (:50052), replenishment (:50053) and reconciliation
(:50054) in one process. With `demo` (or `--demo`) it loads demo data through their APIs.

Without DATABASE_URL it uses the PostgreSQL at 127.0.0.1:5432 (database `inventory`, created if
missing), or starts a private one from PostgreSQL's programs (port SUITE_POSTGRES_PORT, 54329).
A service's own settings take its prefix: STOCK_*, ALLOCATION_*, REPLENISHMENT_*,
RECONCILIATION_* (for example REPLENISHMENT_EDI_DROP_DIR). Prometheus metrics of all four are
at http://METRICS_ADDR/metrics (default 127.0.0.1:9464, `off` for none).";

#[tokio::main]
async fn main() -> ExitCode {
    let mut demo_wanted = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "demo" | "--demo" => demo_wanted = true,
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let _telemetry = match inventory_telemetry::init("inventory-suite", &SERVICE_NAMES) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("inventory-suite: {error}");
            return ExitCode::FAILURE;
        }
    };
    let env = Settings::from_env();
    let port = match env.get("SUITE_POSTGRES_PORT", PRIVATE_PORT) {
        Ok(port) => port,
        Err(error) => {
            eprintln!("inventory-suite: {error}");
            return ExitCode::from(2);
        }
    };
    let database = match database::resolve(env.raw("DATABASE_URL"), port).await {
        Ok(database) => database,
        Err(error) => {
            eprintln!("inventory-suite: {error}");
            return ExitCode::from(2);
        }
    };
    let settings = env.overlay([("DATABASE_URL", database.url.clone())]);
    let outcome = run(&settings, demo_wanted).await;
    if let Some(server) = &database.private {
        server.stop().await;
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("inventory-suite: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: &Settings, demo_wanted: bool) -> Result<(), Box<dyn std::error::Error>> {
    // One /metrics for the four (they share the process's registry; rpc_service tells them
    // apart), on loopback like the services.
    let metrics =
        inventory_runtime::MetricsServer::from_settings(settings, "127.0.0.1:9464").await?;
    let suite = Suite::start(settings).await?;
    if let Some(metrics) = metrics {
        eprintln!("metrics: http://{}/metrics", metrics.local_addr()?);
        tokio::spawn(metrics.serve(std::future::pending()));
    }
    let a = suite.addresses;
    eprintln!(
        "serving: stock {}, allocation {}, replenishment {}, reconciliation {}",
        a.stock, a.allocation, a.replenishment, a.reconciliation
    );
    if demo_wanted {
        match demo::load(&a).await {
            Ok(true) => eprintln!("demo data loaded (see the README's walkthrough)"),
            Ok(false) => eprintln!("demo data was already loaded"),
            Err(error) => eprintln!("loading demo data failed: {error}"),
        }
    }
    suite
        .run_until(inventory_runtime::shutdown_signal())
        .await?;
    Ok(())
}

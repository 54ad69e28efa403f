use std::process::ExitCode;

use inventory_runtime::{App, Settings, shutdown_signal};
use stock_service::StockApp;

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = match inventory_telemetry::init("stock-service") {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("stock-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = async {
        let app = StockApp::build(&Settings::from_env()).await?;
        app.run_until_stopped(shutdown_signal()).await
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stock-service stopped");
            ExitCode::FAILURE
        }
    }
}

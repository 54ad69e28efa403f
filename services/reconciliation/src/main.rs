use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    inventory_runtime::run_main::<reconciliation_service::ReconciliationApp>().await
}

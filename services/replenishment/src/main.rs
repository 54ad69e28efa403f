use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    inventory_runtime::run_main::<replenishment_service::ReplenishmentApp>().await
}

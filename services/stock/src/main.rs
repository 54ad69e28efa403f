use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    inventory_runtime::run_main::<stock_service::StockApp>().await
}

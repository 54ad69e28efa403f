use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    inventory_runtime::run_main::<fulfillment_allocation_service::AllocationApp>().await
}

//! The platform contract, kept by stock: health, both reflection versions, load shedding.

use inventory_proto::stock::v1 as pb;
use inventory_testkit::contract;
use pb::stock_service_client::StockServiceClient;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_reports_serving_for_the_stock_service() {
    let app = TestApp::spawn().await;
    contract::assert_health(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn reflection_lists_the_stock_service_in_both_versions() {
    let app = TestApp::spawn().await;
    contract::assert_reflection(&app.server, pb::SERVICE_NAME).await;
}

/// A ledger check is several queries in one transaction: long enough for calls to overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_concurrency_limit_calls_are_shed_with_resource_exhausted_but_health_is_not() {
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    contract::assert_sheds_load(&app.server, pb::SERVICE_NAME, |channel| async move {
        let report = StockServiceClient::new(channel)
            .check_ledger(pb::CheckLedgerRequest {})
            .await?
            .into_inner();
        assert!(report.drifts.is_empty());
        Ok(())
    })
    .await;
}

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

#[tokio::test]
async fn reflection_can_be_turned_off() {
    let app = TestApp::spawn_with(&[("REFLECTION", "false")]).await;
    contract::assert_reflection_off(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_naming_the_limit_and_changes_nothing() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGE_BYTES", "1024")]).await;
    contract::assert_message_limit(&app.server, 1024, |channel, text| async move {
        StockServiceClient::new(channel)
            .create_product(pb::CreateProductRequest {
                request_id: crate::helpers::new_id(),
                product: Some(pb::Product {
                    sku: "SKU-BIG".into(),
                    name: text,
                    ..Default::default()
                }),
            })
            .await
            .map(|_| ())
    })
    .await;
    assert_eq!(app.count("SELECT count(*) FROM products").await, 0);
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

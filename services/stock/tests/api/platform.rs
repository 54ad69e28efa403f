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

#[tokio::test]
async fn the_purge_forgets_request_ids_older_than_the_retention_and_keeps_the_rest() {
    let database = inventory_testkit::TestDatabase::create().await;
    let pool = database
        .migrate("stock", &stock_service::app::MIGRATOR)
        .await;
    for (request_id, age_hours) in [("old-1", 49), ("old-2", 25), ("recent", 1)] {
        sqlx::query(
            "INSERT INTO idempotency_keys (request_id, method, request_fingerprint, create_time)
             VALUES ($1, 'ReserveStock', '', now() - make_interval(hours => $2))",
        )
        .bind(request_id)
        .bind(age_hours)
        .execute(&pool)
        .await
        .expect("key");
    }
    let purged = inventory_runtime::idempotency::purge(&pool, chrono::Duration::hours(24))
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT request_id FROM idempotency_keys")
        .fetch_all(&pool)
        .await
        .expect("read");
    assert_eq!(left, ["recent"]);
}

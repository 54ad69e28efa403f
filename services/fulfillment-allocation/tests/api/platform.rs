//! The platform contract, kept by allocation: health and both reflection versions.

use inventory_proto::allocation::v1 as pb;
use inventory_testkit::contract;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_reports_serving_for_the_allocation_service() {
    let app = TestApp::spawn().await;
    contract::assert_health(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn reflection_lists_the_allocation_service_in_both_versions() {
    let app = TestApp::spawn().await;
    contract::assert_reflection(&app.server, pb::SERVICE_NAME).await;
}

//! The platform contract, kept by allocation: health, both reflection versions, the request
//! size limit.

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

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_naming_the_limit() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGE_BYTES", "1024")]).await;
    contract::assert_message_limit(&app.server, 1024, |channel, text| async move {
        pb::allocation_service_client::AllocationServiceClient::new(channel)
            .allocate_order(pb::AllocateOrderRequest {
                request_id: crate::helpers::new_id(),
                order_id: text,
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await;
}

//! The platform contract, kept by replenishment: health, both reflection versions, the request
//! size limit; and the one-open-PO rule held by the database itself.

use inventory_proto::replenishment::v1 as pb;
use inventory_testkit::{TestDatabase, contract};
use replenishment_service::app::MIGRATOR;
use uuid::Uuid;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_reports_serving_for_the_replenishment_service() {
    let app = TestApp::spawn().await;
    contract::assert_health(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn reflection_lists_the_replenishment_service_in_both_versions() {
    let app = TestApp::spawn().await;
    contract::assert_reflection(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn the_database_refuses_a_second_open_po_for_a_product_and_warehouse() {
    let database = TestDatabase::create().await;
    let pool = database.migrate("replenishment", &MIGRATOR).await;
    let supplier = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO suppliers (supplier_id, name, channel, edi_qualifier, edi_id,
                                default_lead_time_days)
         VALUES ($1, 'Acme', 'EDI', 'ZZ', 'ACME', 3)",
    )
    .bind(supplier)
    .execute(&pool)
    .await
    .expect("supplier");
    let (product, warehouse) = (Uuid::now_v7(), Uuid::now_v7());
    let insert = |status: &'static str| {
        sqlx::query(
            "INSERT INTO purchase_orders (po_id, supplier_id, product_id, warehouse_id,
                 ordered_qty, status, unit_cost_micros, lead_time_days, expected_delivery,
                 created_by, decide_time)
             VALUES ($1, $2, $3, $4, 10, $5, 1, 3, now(), 'test', now())",
        )
        .bind(Uuid::now_v7())
        .bind(supplier)
        .bind(product)
        .bind(warehouse)
        .bind(status)
        .execute(&pool)
    };
    insert("PENDING_APPROVAL").await.expect("first open PO");
    let second = insert("DRAFT").await.expect_err("a second open PO");
    assert!(
        second.to_string().contains("purchase_orders_one_open"),
        "{second}"
    );
    // Closed ones do not count.
    insert("REJECTED")
        .await
        .expect("a rejected PO beside the open one");
    // And the statuses must agree with the quantities: no goods on a PO not yet sent.
    let received = sqlx::query(
        "UPDATE purchase_orders SET received_qty = 5 WHERE status = 'PENDING_APPROVAL'",
    )
    .execute(&pool)
    .await
    .expect_err("goods on an unsent PO");
    assert!(
        received
            .to_string()
            .contains("purchase_orders_received_matches_status"),
        "{received}"
    );
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_naming_the_limit() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGE_BYTES", "1024")]).await;
    contract::assert_message_limit(&app.server, 1024, |channel, text| async move {
        pb::replenishment_service_client::ReplenishmentServiceClient::new(channel)
            .create_supplier(pb::CreateSupplierRequest {
                request_id: crate::helpers::new_id(),
                name: text,
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await;
}

//! The platform contract, kept by reconciliation: health, both reflection versions, the
//! request size limit; and the line invariants held by the database itself.

use inventory_proto::reconciliation::v1 as pb;
use inventory_testkit::{TestDatabase, contract};
use reconciliation_service::MIGRATOR;
use uuid::Uuid;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_reports_serving_for_the_reconciliation_service() {
    let app = TestApp::spawn().await;
    contract::assert_health(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn reflection_lists_the_reconciliation_service_in_both_versions() {
    let app = TestApp::spawn().await;
    contract::assert_reflection(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn the_database_refuses_impossible_lines() {
    let database = TestDatabase::create().await;
    let pool = database.migrate("reconciliation", &MIGRATOR).await;
    let task = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO count_tasks (task_id, warehouse_id, blind, status, created_by)
         VALUES ($1, $2, false, 'OPEN', 'planner')",
    )
    .bind(task)
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await
    .expect("task");
    let insert = |columns: &'static str, values: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(&format!(
                "INSERT INTO count_lines (line_id, task_id, product_id, warehouse_id,
                                          expected_quantity, status{columns})
                 VALUES ($1, $2, $3, $4, 10, {values})"
            ))
            .bind(Uuid::now_v7())
            .bind(task)
            .bind(Uuid::now_v7())
            .bind(Uuid::now_v7())
            .execute(&pool)
            .await
        }
    };
    insert("", "'UNCOUNTED'").await.expect("an uncounted line");
    let refused = [
        // Counted without a quantity.
        insert("", "'COUNTED'").await,
        // A negative count.
        insert(", counted_quantity, count_time, first_count_time", "'COUNTED', -1, now(), now()")
            .await,
        // Applied without the stock transaction that applied it.
        insert(
            ", counted_quantity, count_time, first_count_time, system_quantity, variance, decided_by",
            "'APPLIED', 8, now(), now(), 10, -2, 'm'",
        )
        .await,
        // A variance that is not counted - system.
        insert(
            ", counted_quantity, count_time, first_count_time, system_quantity, variance",
            "'PENDING_APPROVAL', 8, now(), now(), 10, -5",
        )
        .await,
        // Approved by nobody.
        insert(
            ", counted_quantity, count_time, first_count_time, system_quantity, variance",
            "'APPROVED', 8, now(), now(), 10, -2",
        )
        .await,
    ];
    for (i, result) in refused.iter().enumerate() {
        let error = result.as_ref().expect_err("refused");
        assert!(
            error
                .as_database_error()
                .and_then(|e| e.constraint())
                .is_some(),
            "case {i}: {error}"
        );
    }
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_naming_the_limit() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGE_BYTES", "1024")]).await;
    contract::assert_message_limit(&app.server, 1024, |channel, text| async move {
        pb::reconciliation_service_client::ReconciliationServiceClient::new(channel)
            .approve_adjustment(pb::ApproveAdjustmentRequest {
                request_id: crate::helpers::new_id(),
                comment: text,
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await;
}

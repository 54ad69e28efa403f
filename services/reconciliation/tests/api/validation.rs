//! Bad input gets a specific error and changes nothing.

use inventory_proto::reconciliation::v1 as pb;

use crate::helpers::{DOMAIN, TestApp, bad_fields, error_info, new_id};

#[tokio::test]
async fn a_negative_count_or_a_product_outside_the_task_is_refused_by_field() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("V-1", 1_000_000).await;
    let other = app.product("V-2", 1_000_000).await;
    app.stocked(&p, &w, 10).await;
    let task = app.create_task(&w, &[&p], false).await;

    let negative = app
        .submit(&task.task_id, "alice", &[(&p, -1)])
        .await
        .expect_err("negative");
    assert_eq!(negative.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad_fields(&negative), ["entries[0].quantity"]);
    let outside = app
        .submit(&task.task_id, "alice", &[(&other, 1)])
        .await
        .expect_err("outside");
    assert_eq!(bad_fields(&outside), ["entries[0].product_id"]);
    let nobody = app
        .submit(&task.task_id, "", &[(&p, 1)])
        .await
        .expect_err("no counter");
    assert_eq!(bad_fields(&nobody), ["counted_by"]);

    let line = app.line(&task.task_id, &p).await;
    assert_eq!(line.counted_quantity, None, "nothing was recorded");
}

#[tokio::test]
async fn unknown_tasks_warehouses_and_products_are_not_found() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = app
        .submit(&unknown, "alice", &[(&unknown, 1)])
        .await
        .expect_err("task");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = app
        .client()
        .create_count_task(pb::CreateCountTaskRequest {
            request_id: new_id(),
            warehouse_id: unknown.clone(),
            actor: "planner".into(),
            ..Default::default()
        })
        .await
        .expect_err("warehouse");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = app
        .client()
        .create_count_task(pb::CreateCountTaskRequest {
            request_id: new_id(),
            warehouse_id: w.clone(),
            product_ids: vec![unknown.clone()],
            actor: "planner".into(),
            ..Default::default()
        })
        .await
        .expect_err("product");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = app
        .client()
        .create_count_task(pb::CreateCountTaskRequest {
            request_id: new_id(),
            warehouse_id: w.clone(),
            product_ids: vec!["shelf 4".into(), unknown.clone(), unknown.clone()],
            actor: String::new(),
            ..Default::default()
        })
        .await
        .expect_err("bad fields");
    assert_eq!(
        bad_fields(&status),
        ["actor", "product_ids[0]", "product_ids[2]"]
    );
    let empty = app
        .client()
        .list_count_tasks(pb::ListCountTasksRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(empty.tasks.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_closed_task_takes_no_counts_and_an_uncounted_task_does_not_complete() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("V-3", 1_000_000).await;
    let q = app.product("V-4", 1_000_000).await;
    app.stocked(&p, &w, 10).await;
    app.stocked(&q, &w, 10).await;
    let task = app.create_task(&w, &[&p, &q], false).await;
    app.submit(&task.task_id, "alice", &[(&p, 10)])
        .await
        .expect("count");

    let early = app.complete(&task.task_id).await.expect_err("uncounted");
    assert_eq!(error_info(&early, DOMAIN).0, "LINES_NOT_COUNTED");

    app.submit(&task.task_id, "alice", &[(&q, 10)])
        .await
        .expect("count");
    app.complete(&task.task_id).await.expect("complete");
    let late = app
        .submit(&task.task_id, "alice", &[(&p, 1)])
        .await
        .expect_err("closed");
    assert_eq!(late.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_info(&late, DOMAIN).0, "TASK_CLOSED");
    let cancel = app
        .client()
        .cancel_count_task(pb::CancelCountTaskRequest {
            request_id: new_id(),
            task_id: task.task_id.clone(),
            actor: "lead".into(),
            reason: "too late".into(),
        })
        .await
        .expect_err("completed");
    assert_eq!(error_info(&cancel, DOMAIN).0, "TASK_CLOSED");
    assert_eq!(app.line(&task.task_id, &p).await.counted_quantity, Some(10));
}

#[tokio::test]
async fn a_retried_submission_counts_once_and_a_cancelled_task_adjusts_nothing() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("V-5", 1_000_000).await;
    app.stocked(&p, &w, 10).await;
    let task = app.create_task(&w, &[&p], false).await;
    let request = pb::SubmitCountsRequest {
        request_id: new_id(),
        task_id: task.task_id.clone(),
        entries: vec![pb::CountEntry {
            product_id: p.clone(),
            quantity: 4,
            ..Default::default()
        }],
        counted_by: "alice".into(),
    };
    let mut altered = request.clone();
    altered.entries[0].quantity = 5;
    inventory_testkit::assert_idempotent(
        |r| {
            let mut client = app.client();
            async move {
                client
                    .submit_counts(r)
                    .await
                    .map(tonic::Response::into_inner)
            }
        },
        request,
        altered,
    )
    .await;
    assert_eq!(app.line(&task.task_id, &p).await.counted_quantity, Some(4));

    let cancelled = app
        .client()
        .cancel_count_task(pb::CancelCountTaskRequest {
            request_id: new_id(),
            task_id: task.task_id.clone(),
            actor: "lead".into(),
            reason: "wrong aisle".into(),
        })
        .await
        .expect("cancel")
        .into_inner()
        .task
        .expect("task");
    assert_eq!(cancelled.status, pb::CountTaskStatus::Cancelled as i32);
    assert_eq!(cancelled.cancel_reason, "wrong aisle");
    let closed = app.complete(&task.task_id).await.expect_err("cancelled");
    assert_eq!(closed.code(), tonic::Code::FailedPrecondition);
    assert!(app.adjustments_in_stock(&p, &w).await.is_empty());
}

#[tokio::test]
async fn a_report_period_must_be_given_and_ordered() {
    let app = TestApp::spawn().await;
    let status = app
        .client()
        .get_shrinkage_report(pb::GetShrinkageReportRequest::default())
        .await
        .expect_err("no period");
    assert_eq!(bad_fields(&status), ["start_time", "end_time"]);
    let now = inventory_core::time::timestamp(chrono::Utc::now());
    let status = app
        .client()
        .get_counting_report(pb::GetCountingReportRequest {
            start_time: Some(now),
            end_time: Some(now),
            warehouse_id: "x".into(),
        })
        .await
        .expect_err("empty period");
    assert_eq!(bad_fields(&status), ["end_time"]);
}

//! Variances outside tolerance wait for a manager: approved ones are applied once (even
//! after stock moved meanwhile), rejected ones never.

use inventory_proto::reconciliation::v1 as pb;

use crate::helpers::{DOMAIN, TestApp, error_info, new_id, status};

/// A task whose only line is 10 short of 100 (10%, beyond C's 5%), completed.
pub(crate) async fn pending(app: &TestApp) -> (String, String, String, pb::CountLine) {
    let w = app.warehouse("Munich").await;
    let p = app.product("D-1", 1_000_000).await;
    app.stocked(&p, &w, 100).await;
    let task = app.create_task(&w, &[&p], false).await;
    app.submit(&task.task_id, "alice", &[(&p, 90)])
        .await
        .expect("count");
    let done = app.complete(&task.task_id).await.expect("complete");
    assert_eq!(done.pending_approval, 1, "{done:?}");
    let line = app.line(&task.task_id, &p).await;
    (w, p, task.task_id, line)
}

#[tokio::test]
async fn a_large_variance_waits_for_a_manager_and_is_applied_once_approved() {
    let app = TestApp::spawn().await;
    let (w, p, _task, line) = pending(&app).await;
    assert_eq!(status(&line), pb::LineStatus::PendingApproval);
    assert_eq!(line.exceeded, [pb::ToleranceExceeded::Percent as i32]);
    assert_eq!(line.variance_percent, Some(10.0));
    assert_eq!(
        app.on_hand(&p, &w).await,
        100,
        "nothing adjusted before approval"
    );

    let approved = app
        .approve(&line.line_id, "manager-max")
        .await
        .expect("approve");

    assert_eq!(status(&approved), pb::LineStatus::Applied);
    assert_eq!(approved.decided_by, "manager-max");
    assert_eq!(app.on_hand(&p, &w).await, 90);
    let adjustments = app.adjustments_in_stock(&p, &w).await;
    assert_eq!(adjustments.len(), 1);
    assert_eq!(
        adjustments[0].actor, "manager-max",
        "stock's log names who approved"
    );
    app.stock.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_rejected_variance_never_adjusts_stock() {
    let app = TestApp::spawn().await;
    let (w, p, _task, line) = pending(&app).await;
    let rejected = app
        .client()
        .reject_adjustment(pb::RejectAdjustmentRequest {
            request_id: new_id(),
            adjustment_id: line.line_id.clone(),
            manager: "manager-max".into(),
            comment: "found the rest in the returns cage".into(),
        })
        .await
        .expect("reject")
        .into_inner()
        .adjustment
        .expect("adjustment");
    assert_eq!(status(&rejected), pb::LineStatus::Rejected);
    assert_eq!(
        rejected.decision_comment,
        "found the rest in the returns cage"
    );

    let late = app
        .approve(&line.line_id, "manager-eve")
        .await
        .expect_err("decided");
    assert_eq!(late.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_info(&late, DOMAIN).0, "NOT_AWAITING_DECISION");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.adjustments_in_stock(&p, &w).await.is_empty());
    assert_eq!(app.on_hand(&p, &w).await, 100);
}

#[tokio::test]
async fn approving_twice_applies_once_and_a_counter_cannot_approve_their_own_count() {
    let app = TestApp::spawn().await;
    let (w, p, _task, line) = pending(&app).await;
    let own = app
        .approve(&line.line_id, "alice")
        .await
        .expect_err("self approval");
    assert_eq!(error_info(&own, DOMAIN).0, "SELF_APPROVAL");

    let request = pb::ApproveAdjustmentRequest {
        request_id: new_id(),
        adjustment_id: line.line_id.clone(),
        manager: "manager-max".into(),
        comment: String::new(),
    };
    let first = app
        .client()
        .approve_adjustment(request.clone())
        .await
        .expect("approve");
    let retry = app
        .client()
        .approve_adjustment(request)
        .await
        .expect("retry");
    assert_eq!(first.into_inner(), retry.into_inner());
    let again = app
        .approve(&line.line_id, "manager-max")
        .await
        .expect_err("twice");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);

    assert_eq!(app.adjustments_in_stock(&p, &w).await.len(), 1);
    assert_eq!(app.on_hand(&p, &w).await, 90);
}

#[tokio::test]
async fn an_approval_after_stock_moved_applies_the_counted_variance_to_the_new_on_hand() {
    let app = TestApp::spawn().await;
    let (w, p, _task, line) = pending(&app).await;
    // While the variance waited (well after the count), 30 were shipped: on hand is 70,
    // not the 100 judged against.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    app.ship(&p, &w, 30).await;

    let approved = app
        .approve(&line.line_id, "manager-max")
        .await
        .expect("approve");

    assert_eq!(status(&approved), pb::LineStatus::Applied, "{approved:?}");
    assert_eq!(approved.variance, -10);
    assert_eq!(
        app.on_hand(&p, &w).await,
        60,
        "100 - 30 shipped - 10 missing"
    );
    assert_eq!(app.adjustments_in_stock(&p, &w).await.len(), 1);
    app.stock.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_approval_while_stock_is_down_is_kept_and_applied_once_stock_returns() {
    let mut app = TestApp::spawn_with(&[("STOCK_RETRY_ATTEMPTS", "1")]).await;
    let (w, p, task, line) = pending(&app).await;
    app.stock.server.stop().await;

    let approved = app
        .approve(&line.line_id, "manager-max")
        .await
        .expect("approve");
    assert_eq!(
        status(&approved),
        pb::LineStatus::Approved,
        "decided, not yet applied"
    );

    let addr = app.stock.server.addr.to_string();
    let database = app.stock.server.database.clone();
    app.stock =
        inventory_testkit::StockServer::spawn_on(database, &[("LISTEN_ADDR", addr.as_str())]).await;
    let applied = app
        .wait_for_line(&task, &p, |l| status(l) == pb::LineStatus::Applied)
        .await;
    assert_eq!(applied.decided_by, "manager-max");
    assert_eq!(app.on_hand(&p, &w).await, 90);
    assert_eq!(app.adjustments_in_stock(&p, &w).await.len(), 1);
}

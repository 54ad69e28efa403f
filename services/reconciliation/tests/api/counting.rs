//! Counting against the system at the moment of counting: matches adjust nothing, small
//! variances are applied at once, movements during a count are not variances.

use chrono::Utc;
use inventory_proto::reconciliation::v1 as pb;

use crate::helpers::{TestApp, new_id, status};

#[tokio::test]
async fn a_count_that_matches_adjusts_nothing() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("M-1", 2_000_000).await;
    app.stocked(&p, &w, 40).await;
    let task = app.create_task(&w, &[&p], false).await;
    app.submit(&task.task_id, "alice", &[(&p, 40)])
        .await
        .expect("count");

    let done = app.complete(&task.task_id).await.expect("complete");

    assert_eq!(
        (done.matched, done.applied, done.pending_approval),
        (1, 0, 0)
    );
    assert_eq!(
        done.task.expect("task").status,
        pb::CountTaskStatus::Completed as i32
    );
    let line = app.line(&task.task_id, &p).await;
    assert_eq!(status(&line), pb::LineStatus::Matched);
    assert_eq!((line.system_quantity, line.variance), (Some(40), 0));
    assert!(app.adjustments_in_stock(&p, &w).await.is_empty());
    assert_eq!(app.on_hand(&p, &w).await, 40);
}

#[tokio::test]
async fn a_small_variance_is_applied_at_once_and_audited() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("M-2", 1_000_000).await;
    app.stocked(&p, &w, 100).await;
    let task = app.create_task(&w, &[&p], false).await;
    // Two submissions add up: 60 + 38 = 98, 2% short (C tolerates 5%).
    app.submit(&task.task_id, "alice", &[(&p, 60)])
        .await
        .expect("first");
    app.submit(&task.task_id, "alice", &[(&p, 38)])
        .await
        .expect("second");

    let done = app.complete(&task.task_id).await.expect("complete");

    assert_eq!(done.applied, 1, "{done:?}");
    let line = app.line(&task.task_id, &p).await;
    assert_eq!(status(&line), pb::LineStatus::Applied);
    assert_eq!(
        (line.counted_quantity, line.system_quantity, line.variance),
        (Some(98), Some(100), -2)
    );
    assert_eq!(line.variance_value_micros, -2_000_000);
    assert_eq!(line.abc_class, "C");
    assert_eq!(line.counted_by, "alice");
    assert_eq!(line.decided_by, "reconciliation-service");
    assert_eq!(app.on_hand(&p, &w).await, 98);
    let adjustments = app.adjustments_in_stock(&p, &w).await;
    assert_eq!(adjustments.len(), 1);
    assert_eq!(
        adjustments[0].txn_id, line.stock_txn_id,
        "the line names its ADJUST"
    );
    assert_eq!(
        adjustments[0].reference_id, task.task_id,
        "the ADJUST names the count"
    );
    assert_eq!(adjustments[0].on_hand_delta, -2);
    app.stock.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_shipment_after_the_shelf_was_counted_is_not_a_variance() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("M-3", 1_000_000).await;
    app.stocked(&p, &w, 200).await;
    let task = app.create_task(&w, &[&p], false).await;
    // 1 of 200 missing: 0.5%, within tolerance whether the shipment below has made the
    // product class A (1%) by the time it is judged or not.
    app.submit(&task.task_id, "alice", &[(&p, 199)])
        .await
        .expect("count");
    // The count is done; 20 leave before the task is completed.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    app.ship(&p, &w, 20).await;

    app.complete(&task.task_id).await.expect("complete");

    let line = app.line(&task.task_id, &p).await;
    assert_eq!(status(&line), pb::LineStatus::Applied);
    assert_eq!(
        (line.system_quantity, line.variance),
        (Some(200), -1),
        "{line:?}"
    );
    assert_eq!(
        app.on_hand(&p, &w).await,
        179,
        "200 - 20 shipped - 1 missing"
    );
    app.stock.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_movement_while_the_shelf_is_counted_asks_for_a_recount() {
    let app = TestApp::spawn_with(&[("COUNT_UNCERTAINTY_MS", "2000")]).await;
    let w = app.warehouse("Munich").await;
    let p = app.product("M-4", 1_000_000).await;
    app.stocked(&p, &w, 30).await;
    let task = app.create_task(&w, &[&p], false).await;
    app.submit(&task.task_id, "alice", &[(&p, 30)])
        .await
        .expect("count");
    // 5 arrive in the same instant: did the counter see them or not?
    app.stocked(&p, &w, 5).await;

    let done = app.complete(&task.task_id).await.expect("complete");

    assert_eq!(done.recount_required, 1);
    assert_eq!(
        done.task.expect("task").status,
        pb::CountTaskStatus::Open as i32
    );
    // Adding to the old count is refused; a recount replaces it.
    let refused = app
        .submit(&task.task_id, "alice", &[(&p, 35)])
        .await
        .expect_err("no recount");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    app.client()
        .submit_counts(pb::SubmitCountsRequest {
            request_id: new_id(),
            task_id: task.task_id.clone(),
            entries: vec![pb::CountEntry {
                product_id: p.clone(),
                quantity: 35,
                recount: true,
                count_time: Some(inventory_core::time::timestamp(Utc::now())),
            }],
            counted_by: "bob".into(),
        })
        .await
        .expect("recount");
    let done = app.complete(&task.task_id).await.expect("complete again");
    assert_eq!((done.matched, done.recount_required), (1, 0), "{done:?}");
    assert!(app.adjustments_in_stock(&p, &w).await.is_empty());
}

#[tokio::test]
async fn a_task_of_every_stocked_product_and_a_blind_count() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let a = app.product("M-5", 1_000_000).await;
    let b = app.product("M-6", 1_000_000).await;
    let never = app.product("M-7", 1_000_000).await;
    app.stocked(&a, &w, 10).await;
    app.stocked(&b, &w, 20).await;
    let _ = never;

    let task = app.create_task(&w, &[], true).await;

    assert_eq!(task.lines, 2, "every product on hand there, and only those");
    assert!(task.blind);
    let lines = app.lines(&task.task_id).await;
    assert!(
        lines
            .iter()
            .all(|l| l.expected_quantity.is_none() && l.system_quantity.is_none())
    );
    let counted = app
        .submit(&task.task_id, "alice", &[(&a, 10)])
        .await
        .expect("count");
    assert_eq!(
        counted[0].expected_quantity, None,
        "a blind count never shows the system"
    );
    app.submit(&task.task_id, "alice", &[(&b, 20)])
        .await
        .expect("count");
    app.complete(&task.task_id).await.expect("complete");
    let lines = app.lines(&task.task_id).await;
    assert!(
        lines.iter().all(|l| l.system_quantity.is_some()),
        "shown once completed"
    );
}

/// A line of 100 on hand counted at `counted` and applied in stock: (warehouse, product,
/// task, the line as applied).
async fn applied_line(
    app: &TestApp,
    sku: &str,
    counted: i64,
) -> (String, String, String, pb::CountLine) {
    let w = app.warehouse("Munich").await;
    let p = app.product(sku, 1_000_000).await;
    app.stocked(&p, &w, 100).await;
    let task = app.create_task(&w, &[&p], false).await;
    app.submit(&task.task_id, "alice", &[(&p, counted)])
        .await
        .expect("count");
    app.complete(&task.task_id).await.expect("complete");
    let applied = app.line(&task.task_id, &p).await;
    assert_eq!(status(&applied), pb::LineStatus::Applied);
    (w, p, task.task_id, applied)
}

/// As if this service died between stock's answer and its own commit: the line is approved
/// again, for the background retry to send again.
async fn forget_the_apply(app: &TestApp, line_id: &str) {
    let mut db = app.database.connect("reconciliation").await;
    sqlx::query(
        "UPDATE count_lines SET status = 'APPROVED', stock_txn_id = NULL, stock_sequence = NULL,
                apply_time = NULL WHERE line_id = $1::uuid",
    )
    .bind(line_id)
    .execute(&mut db)
    .await
    .expect("forget the apply");
}

#[tokio::test]
async fn an_adjustment_lost_between_stock_and_this_service_is_applied_exactly_once() {
    let app = TestApp::spawn().await;
    let (w, p, task, applied) = applied_line(&app, "M-8", 97).await;
    forget_the_apply(&app, &applied.line_id).await;

    let line = app
        .wait_for_line(&task, &p, |l| status(l) == pb::LineStatus::Applied)
        .await;
    assert_eq!(
        line.stock_txn_id, applied.stock_txn_id,
        "stock answered the same ADJUST"
    );
    assert_eq!(app.adjustments_in_stock(&p, &w).await.len(), 1);
    assert_eq!(app.on_hand(&p, &w).await, 97);
    app.stock.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_adjustment_whose_record_and_stocks_replay_are_both_gone_is_found_in_the_log() {
    let app = TestApp::spawn().await;
    let (w, p, task, applied) = applied_line(&app, "M-9", 96).await;
    // Stock has purged the request id (as after its retention), then the record here is lost:
    // sending again meets a changed on hand, and the log shows the line's own ADJUST.
    let mut stock_db = app.database.connect("stock").await;
    let purged = sqlx::query("DELETE FROM idempotency_keys WHERE request_id = $1")
        .bind(format!("count-line:{}", applied.line_id))
        .execute(&mut stock_db)
        .await
        .expect("purge")
        .rows_affected();
    assert_eq!(purged, 1);
    forget_the_apply(&app, &applied.line_id).await;

    let line = app
        .wait_for_line(&task, &p, |l| status(l) == pb::LineStatus::Applied)
        .await;
    assert_eq!(line.stock_txn_id, applied.stock_txn_id);
    assert_eq!(app.adjustments_in_stock(&p, &w).await.len(), 1);
    assert_eq!(app.on_hand(&p, &w).await, 96);
}

/// Found by fuzzing: a line that took submissions of the stated maximum (10,000 entries)
/// still takes more, each counted once, within the request deadline (the cost of a
/// submission is linear in what it adds and what the line holds since its last recount).
#[tokio::test]
async fn a_line_that_took_the_largest_submissions_still_takes_counts() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let p = app.product("BULK", 1_000).await;
    app.stocked(&p, &w, 100).await;
    let task = app.create_task(&w, &[p.as_str()], true).await;
    let entries: Vec<(&str, i64)> = vec![(p.as_str(), 1); 10_000];
    for round in 1..=2_i64 {
        let lines = app
            .submit(&task.task_id, "counter-1", &entries)
            .await
            .expect("the largest submission");
        assert_eq!(lines[0].counted_quantity, Some(10_000 * round));
    }
    let lines = app
        .submit(&task.task_id, "counter-1", &[(p.as_str(), 7)])
        .await
        .expect("one more entry");
    assert_eq!(lines[0].counted_quantity, Some(20_007));
}

//! `kill -9` between a manager's approval and the ADJUST it sends to stock, on either side
//! of the call: after a restart the line is applied exactly once (stock's log holds one
//! ADJUST, on hand moved once) and stock's ledger replays clean. The process stops at a
//! failpoint, so the kill lands exactly there.

use inventory_proto::reconciliation::v1 as pb;
use inventory_testkit::ServiceProcess;
use pb::reconciliation_service_client::ReconciliationServiceClient;

use crate::decisions::pending;
use crate::helpers::{TestApp, new_id, status};

const BINARY: &str = env!("CARGO_BIN_EXE_reconciliation-service");

async fn reconciliation(app: &TestApp, failpoints: &str) -> ServiceProcess {
    let url = app.stock.url();
    ServiceProcess::start(
        BINARY,
        pb::SERVICE_NAME,
        &app.database,
        &[
            ("STOCK_URL", url.as_str()),
            ("APPLY_RETRY_MS", "100"),
            ("COUNT_UNCERTAINTY_MS", "50"),
            ("FAILPOINTS", failpoints),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_approval_before_the_adjust_the_line_is_applied_once_after_restart() {
    crash_and_recover("reconciliation.before_adjust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_adjust_before_it_is_recorded_the_line_is_applied_once_after_restart() {
    crash_and_recover("reconciliation.after_adjust").await;
}

async fn crash_and_recover(failpoint: &str) {
    // The in-process service sets the count up; its own retry is too slow to get there
    // first, so what happens after the crash is the restarted process's doing.
    let app = TestApp::spawn_with(&[("APPLY_RETRY_MS", "3600000")]).await;
    let (w, p, task, line) = pending(&app).await;

    let crashing = reconciliation(&app, failpoint).await;
    let mut client = ReconciliationServiceClient::new(crashing.channel().await);
    let call = tokio::spawn(async move {
        client
            .approve_adjustment(pb::ApproveAdjustmentRequest {
                request_id: new_id(),
                adjustment_id: line.line_id,
                manager: "manager-max".into(),
                comment: "checked the shelf".into(),
            })
            .await
    });
    crashing.reached(failpoint).await;
    drop(crashing);
    assert!(
        call.await.expect("join").is_err(),
        "a process killed mid-request answers nothing"
    );

    let _restarted = reconciliation(&app, "").await;
    let applied = app
        .wait_for_line(&task, &p, |l| status(l) == pb::LineStatus::Applied)
        .await;
    assert_eq!(applied.decided_by, "manager-max");
    assert_eq!(app.on_hand(&p, &w).await, 90);
    assert_eq!(
        app.adjustments_in_stock(&p, &w).await.len(),
        1,
        "one ADJUST in stock's log"
    );
    app.stock.assert_ledger_clean().await;
}

//! `kill -9` at the steps that cross into other systems: between a PO's approval and its
//! sending, and between stock's RECEIVE and the PO's update. After a restart each flow
//! completes exactly once: one 850 in the drop directory, one RECEIVE in stock, the PO's
//! quantities counted once. The process stops at a failpoint, so the kill lands exactly
//! there.

use inventory_proto::replenishment::v1 as pb;
use inventory_testkit::ServiceProcess;
use pb::replenishment_service_client::ReplenishmentServiceClient;

use crate::helpers::{THRESHOLD, TestApp, new_id};

const BINARY: &str = env!("CARGO_BIN_EXE_replenishment-service");

async fn replenishment(app: &TestApp, failpoints: &str) -> ServiceProcess {
    let (url, dir) = (app.stock.url(), app.drop_dir.display().to_string());
    let threshold = THRESHOLD.to_string();
    ServiceProcess::start(
        BINARY,
        pb::SERVICE_NAME,
        &app.database,
        &[
            ("STOCK_URL", url.as_str()),
            ("EDI_DROP_DIR", dir.as_str()),
            ("OUTBOX_POLL_MS", "100"),
            ("AUTO_APPROVE_BELOW_MICROS", threshold.as_str()),
            ("FAILPOINTS", failpoints),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_approval_and_sending_the_po_is_sent_once_after_restart() {
    // The in-process service sets the PO up and never sends on its own here.
    let app = TestApp::spawn_with(&[("OUTBOX_POLL_MS", "3600000")]).await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 1000).await.expect("create");
    assert_eq!(po.status(), pb::PurchaseOrderStatus::PendingApproval);

    let crashing = replenishment(&app, "replenishment.before_send").await;
    let approved = ReplenishmentServiceClient::new(crashing.channel().await)
        .approve_purchase_order(pb::ApprovePurchaseOrderRequest {
            request_id: new_id(),
            po_id: po.po_id.clone(),
            approver: "manager@example.com".to_owned(),
            note: "needed for the season".to_owned(),
        })
        .await
        .expect("approve")
        .into_inner()
        .purchase_order
        .expect("po");
    assert_eq!(approved.status(), pb::PurchaseOrderStatus::Approved);
    crashing.reached("replenishment.before_send").await;
    drop(crashing);
    assert!(
        app.documents().is_empty(),
        "nothing went out before the kill"
    );

    let _restarted = replenishment(&app, "").await;
    let sent = app.sent(&po.po_id).await;
    assert_eq!(sent.status(), pb::PurchaseOrderStatus::Sent);
    assert_eq!(app.documents().len(), 1, "one 850 for the PO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_stock_receive_and_the_po_update_the_retry_receives_once() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 100).await.expect("create");
    app.sent(&po.po_id).await;
    let receipt = pb::ReceivePurchaseOrderRequest {
        receipt_id: "R-1".to_owned(),
        po_id: po.po_id.clone(),
        quantity: 25,
        lot: "LOT-7".to_owned(),
        actor: "dock-3".to_owned(),
    };

    let crashing = replenishment(&app, "replenishment.after_stock_receive").await;
    let mut client = ReplenishmentServiceClient::new(crashing.channel().await);
    let call = tokio::spawn({
        let receipt = receipt.clone();
        async move { client.receive_purchase_order(receipt).await }
    });
    crashing.reached("replenishment.after_stock_receive").await;
    drop(crashing);
    assert!(
        call.await.expect("join").is_err(),
        "a process killed mid-request answers nothing"
    );
    let stored = app.get_po(&po.po_id).await;
    assert_eq!(stored.purchase_order.expect("po").received_qty, 0);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        25,
        "stock's RECEIVE committed before the kill"
    );

    let restarted = replenishment(&app, "").await;
    let retried = ReplenishmentServiceClient::new(restarted.channel().await)
        .receive_purchase_order(receipt)
        .await
        .expect("the retry completes")
        .into_inner();
    assert_eq!(retried.purchase_order.expect("po").received_qty, 25);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        25,
        "received once"
    );
    assert_eq!(app.get_po(&po.po_id).await.receipts.len(), 1);
    app.assert_ledger_clean().await;
}

//! Receiving goods against a PO: RECEIVE in stock referencing the PO, PARTIAL then COMPLETE,
//! once per receipt id (also across a crash between stock and the PO update), never beyond
//! the ordered quantity plus the tolerance.

use inventory_proto::replenishment::v1 as pb;
use inventory_proto::stock::v1 as stock;
use tonic::Code;

use crate::helpers::{TestApp, error_info};

const DOMAIN: &str = "replenishment";

#[tokio::test]
async fn receipts_restore_stock_and_complete_the_po() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 100).await.expect("create");
    app.sent(&po.po_id).await;

    let first = app
        .receive(&po.po_id, "R-1", 60)
        .await
        .expect("first receipt");
    let after_first = first.purchase_order.expect("po");
    assert_eq!(after_first.status(), pb::PurchaseOrderStatus::Partial);
    assert_eq!(after_first.received_qty, 60);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        60
    );

    let second = app
        .receive(&po.po_id, "R-2", 40)
        .await
        .expect("second receipt");
    let done = second.purchase_order.expect("po");
    assert_eq!(done.status(), pb::PurchaseOrderStatus::Complete);
    assert_eq!(done.received_qty, 100);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        100
    );

    let stored = app.get_po(&po.po_id).await;
    let receipts: Vec<(String, i64, String)> = stored
        .receipts
        .iter()
        .map(|r| (r.receipt_id.clone(), r.quantity, r.lot.clone()))
        .collect();
    assert_eq!(
        receipts,
        [
            ("R-1".to_owned(), 60, "LOT-7".to_owned()),
            ("R-2".to_owned(), 40, "LOT-7".to_owned())
        ]
    );
    // Each receipt names the RECEIVE it made, and that transaction names the PO.
    let log = app
        .stock
        .client
        .clone()
        .list_transactions(stock::ListTransactionsRequest {
            product_id: setup.product_id.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            ..Default::default()
        })
        .await
        .expect("log")
        .into_inner()
        .transactions;
    assert_eq!(log.len(), 2);
    for (receipt, txn) in stored.receipts.iter().zip(&log) {
        assert_eq!(receipt.stock_transaction_id, txn.txn_id);
        assert_eq!(txn.txn_type(), stock::TransactionType::Receive);
        assert_eq!(txn.reference_id, po.po_id);
    }
    app.assert_ledger_clean().await;

    // A complete PO closes: the product may be ordered again.
    app.create_po(&setup, 10)
        .await
        .expect("a new PO after completion");
}

#[tokio::test]
async fn a_duplicate_receipt_changes_nothing() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 100).await.expect("create");
    app.sent(&po.po_id).await;
    let first = app.receive(&po.po_id, "R-1", 30).await.expect("receipt");
    let again = app
        .receive(&po.po_id, "R-1", 30)
        .await
        .expect("the same receipt");
    assert_eq!(first, again);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        30
    );
    let other = app
        .receive(&po.po_id, "R-1", 31)
        .await
        .expect_err("the same receipt id with another quantity");
    assert_eq!(other.code(), Code::InvalidArgument);
    assert_eq!(crate::helpers::bad_fields(&other), ["receipt_id"]);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        30
    );
}

#[tokio::test]
async fn a_receipt_whose_stock_receive_landed_before_a_crash_is_not_received_twice() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 100).await.expect("create");
    app.sent(&po.po_id).await;
    // What a first attempt did before the service died: stock's RECEIVE, under the request id
    // the service derives from the receipt id, and nothing on the PO.
    app.stock
        .client
        .clone()
        .receive_stock(stock::ReceiveStockRequest {
            request_id: "po-receipt:R-1".to_owned(),
            product_id: setup.product_id.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            quantity: 25,
            reference_id: po.po_id.clone(),
            actor: "dock-3".to_owned(),
        })
        .await
        .expect("the first attempt's receive");
    let retried = app.receive(&po.po_id, "R-1", 25).await.expect("retry");
    assert_eq!(retried.purchase_order.expect("po").received_qty, 25);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        25
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_over_receipt_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 100).await.expect("create");
    app.sent(&po.po_id).await;
    // 2% tolerance by default: at most 102 in all.
    let status = app
        .receive(&po.po_id, "R-1", 103)
        .await
        .expect_err("over the tolerance");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let (reason, metadata) = error_info(&status, DOMAIN);
    assert_eq!(reason, "OVER_RECEIPT");
    assert_eq!(metadata["acceptable"], "102");
    assert_eq!(app.on_hand(&setup.product_id, &setup.warehouse_id).await, 0);
    let unchanged = app.get_po(&po.po_id).await;
    assert!(unchanged.receipts.is_empty());
    assert_eq!(
        unchanged.purchase_order.expect("po").status(),
        pb::PurchaseOrderStatus::Sent
    );
    // Within the tolerance is fine, and completes the PO.
    let within = app.receive(&po.po_id, "R-2", 102).await.expect("within");
    assert_eq!(
        within.purchase_order.expect("po").status(),
        pb::PurchaseOrderStatus::Complete
    );
}

#[tokio::test]
async fn goods_are_not_received_against_an_unsent_po() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 400).await.expect("create pending");
    let status = app
        .receive(&po.po_id, "R-1", 10)
        .await
        .expect_err("not sent");
    assert_eq!(error_info(&status, DOMAIN).0, "PO_NOT_SENT");
    let missing = app
        .receive(&uuid::Uuid::now_v7().to_string(), "R-2", 10)
        .await
        .expect_err("unknown PO");
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(app.on_hand(&setup.product_id, &setup.warehouse_id).await, 0);
}

#[tokio::test]
async fn bad_receipts_decisions_and_reads_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 400).await.expect("create pending");
    let mut client = app.client.clone();

    let receipt = client
        .receive_purchase_order(pb::ReceivePurchaseOrderRequest {
            receipt_id: "R".repeat(101),
            po_id: "nope".to_owned(),
            quantity: 0,
            lot: " lot".to_owned(),
            actor: String::new(),
        })
        .await
        .expect_err("bad receipt");
    assert_eq!(
        crate::helpers::bad_fields(&receipt),
        ["receipt_id", "po_id", "quantity", "lot"]
    );
    let reject = client
        .reject_purchase_order(pb::RejectPurchaseOrderRequest {
            request_id: String::new(),
            po_id: po.po_id.clone(),
            approver: String::new(),
            reason: "x".repeat(513),
        })
        .await
        .expect_err("bad rejection");
    assert_eq!(
        crate::helpers::bad_fields(&reject),
        ["request_id", "approver", "reason"]
    );
    let cancel = client
        .cancel_purchase_order(pb::CancelPurchaseOrderRequest {
            request_id: crate::helpers::new_id(),
            po_id: String::new(),
            actor: "buyer".to_owned(),
            reason: String::new(),
        })
        .await
        .expect_err("no PO");
    assert_eq!(crate::helpers::bad_fields(&cancel), ["po_id"]);
    let get = client
        .get_purchase_order(pb::GetPurchaseOrderRequest {
            po_id: "PO-1".to_owned(),
        })
        .await
        .expect_err("not an id");
    assert_eq!(crate::helpers::bad_fields(&get), ["po_id"]);
    let list = client
        .list_purchase_orders(pb::ListPurchaseOrdersRequest {
            status: 99,
            supplier_id: "x".to_owned(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("bad filters");
    assert_eq!(crate::helpers::bad_fields(&list), ["status", "supplier_id"]);
    let scan_page = client
        .list_purchase_orders(pb::ListPurchaseOrdersRequest {
            page_token: "forged".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("forged token");
    assert_eq!(crate::helpers::bad_fields(&scan_page), ["page_token"]);
    // Nothing changed.
    let unchanged = app.get_po(&po.po_id).await.purchase_order.expect("po");
    assert_eq!(unchanged.status(), pb::PurchaseOrderStatus::PendingApproval);
    assert_eq!(app.on_hand(&setup.product_id, &setup.warehouse_id).await, 0);
}

#[tokio::test]
async fn a_receipt_replayed_after_its_request_record_is_purged_changes_nothing() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 100).await.expect("create");
    app.sent(&po.po_id).await;
    let first = app.receive(&po.po_id, "R-1", 30).await.expect("receipt");
    // What the hourly purge does once the retention has passed, here and in stock.
    for schema in ["replenishment", "stock"] {
        let mut conn = app.database.connect(schema).await;
        sqlx::query("DELETE FROM idempotency_keys")
            .execute(&mut conn)
            .await
            .expect("purge");
    }
    let late = app
        .receive(&po.po_id, "R-1", 30)
        .await
        .expect("late duplicate");
    assert_eq!(late.receipt, first.receipt);
    assert_eq!(late.purchase_order.expect("po").received_qty, 30);
    assert_eq!(
        app.on_hand(&setup.product_id, &setup.warehouse_id).await,
        30
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_completing_receipt_moves_the_position_the_scan_reads_at_once() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.set_fixed_policy(&setup, 50, 100).await;
    app.stock_up(&setup, 10).await;
    app.feed_shows(&setup, 10).await;
    let scan = app.scan(false).await;
    let po_id = scan.decisions[0].po_id.clone();
    app.sent(&po_id).await;
    app.receive(&po_id, "R-1", 100).await.expect("complete");
    // Whatever the feed has applied yet, the scan sees 110 now and orders nothing.
    assert_eq!(app.policy(&setup).await.quantity_available, 110);
    assert_eq!(app.scan(false).await.drafted, 0);
}

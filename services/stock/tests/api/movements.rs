//! Each movement RPC's success path and each of its errors, against a real service.

use crate::helpers::{TestApp, bad_fields, error_info, new_id, reserve_request};
use inventory_proto::stock::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn receiving_adds_to_on_hand_and_logs_a_receive() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    let first = app.receive(&p, &w, 10).await;
    let second = app.receive(&p, &w, 5).await;
    let inv = second.inventory.expect("inventory");
    assert_eq!(
        (
            inv.quantity_on_hand,
            inv.quantity_reserved,
            inv.quantity_available
        ),
        (15, 0, 15)
    );
    let txn = second.transaction.expect("transaction");
    assert_eq!(txn.txn_type(), pb::TransactionType::Receive);
    assert_eq!(
        (txn.quantity, txn.on_hand_after, txn.reference_id.as_str()),
        (5, 15, "PO-1")
    );
    assert!(txn.sequence > first.transaction.expect("first").sequence);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn receiving_into_an_unknown_product_or_warehouse_is_not_found_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    let unknown = new_id();
    for (product, warehouse) in [(&unknown, &w), (&p, &unknown)] {
        let status = app
            .receive_stock(pb::ReceiveStockRequest {
                request_id: new_id(),
                product_id: product.clone(),
                warehouse_id: warehouse.clone(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .expect_err("unknown id");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains(&unknown), "{}", status.message());
    }
    assert_eq!(app.transaction_count().await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE method = 'ReceiveStock'")
            .await,
        0
    );
}

#[tokio::test]
async fn receiving_with_bad_input_names_every_bad_field() {
    let app = TestApp::spawn().await;
    let status = app
        .receive_stock(pb::ReceiveStockRequest {
            request_id: String::new(),
            product_id: "not-a-uuid".into(),
            warehouse_id: String::new(),
            quantity: -3,
            reference_id: "x".repeat(500),
            actor: String::new(),
        })
        .await
        .expect_err("invalid");
    let fields = bad_fields(&status);
    for field in [
        "request_id",
        "product_id",
        "warehouse_id",
        "quantity",
        "reference_id",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} missing from {fields:?}"
        );
    }
    assert_eq!(app.transaction_count().await, 0);
}

#[tokio::test]
async fn reserving_with_bad_input_names_every_bad_field() {
    let app = TestApp::spawn().await;
    let status = app
        .reserve_stock(pb::ReserveStockRequest {
            line: None,
            ..reserve_request("", &new_id(), &new_id(), 1)
        })
        .await
        .expect_err("invalid");
    let fields = bad_fields(&status);
    assert!(
        fields.contains(&"order_id".to_owned()) && fields.contains(&"line".to_owned()),
        "{fields:?}"
    );
    assert_eq!(app.transaction_count().await, 0);
}

#[tokio::test]
async fn listing_transactions_with_a_bad_page_size_or_type_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 5000,
            txn_type: 99,
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(bad_fields(&status), ["page_size"]);
    let status = app
        .list_transactions(pb::ListTransactionsRequest {
            txn_type: 99,
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(bad_fields(&status), ["txn_type"]);
}

#[tokio::test]
async fn reserving_more_than_available_fails_with_the_numbers_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    app.receive(&p, &w, 3).await;
    let ok = app
        .reserve("order-1", &p, &w, 2)
        .await
        .expect("reserve 2 of 3");
    let reservation = ok.reservation.expect("reservation");
    assert_eq!(reservation.status(), pb::ReservationStatus::Active);
    assert_eq!(ok.inventory.expect("inventory").quantity_available, 1);

    let status = app
        .reserve("order-2", &p, &w, 2)
        .await
        .expect_err("only 1 left");
    let (reason, metadata) = error_info(&status);
    assert_eq!(reason, "INSUFFICIENT_STOCK");
    assert_eq!(metadata["requested"], "2");
    assert_eq!(metadata["available"], "1");
    let inv = app.inventory(&p, &w).await;
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (3, 2));
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 1);
    assert_eq!(app.transaction_count().await, 2);
}

#[tokio::test]
async fn reserving_a_never_stocked_pair_is_insufficient_stock() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    let status = app
        .reserve("order-1", &p, &w, 1)
        .await
        .expect_err("never stocked");
    let (reason, metadata) = error_info(&status);
    assert_eq!(
        (reason.as_str(), metadata["available"].as_str()),
        ("INSUFFICIENT_STOCK", "0")
    );
}

#[tokio::test]
async fn reserving_an_unknown_product_is_not_found() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Berlin").await;
    let status = app
        .reserve("order-1", &new_id(), &w, 1)
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_second_reservation_for_the_same_order_line_and_warehouse_already_exists() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    app.receive(&p, &w, 10).await;
    app.reserve("order-1", &p, &w, 1).await.expect("first");
    let status = app
        .reserve("order-1", &p, &w, 1)
        .await
        .expect_err("duplicate line");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 1);
}

/// Ships `quantity` of order-1's line 1 from `warehouse_id`.
fn shipment(warehouse_id: &str, quantity: i64) -> pb::ShipReservationRequest {
    pb::ShipReservationRequest {
        request_id: new_id(),
        order_id: "order-1".into(),
        order_line_id: "1".into(),
        warehouse_id: warehouse_id.to_owned(),
        quantity,
        actor: "packer".into(),
    }
}

/// Releases what order-1 still holds, as a cancelled customer order.
fn cancellation() -> pb::ReleaseReservationRequest {
    pb::ReleaseReservationRequest {
        request_id: new_id(),
        order_id: "order-1".into(),
        reason: "customer cancelled".into(),
        ..Default::default()
    }
}

/// SKU-1 in Berlin: 10 received and 5 reserved for order-1, 2 of those shipped. Returns the
/// product, the warehouse and the shipment's answer.
async fn ship_two_of_five(app: &TestApp) -> (String, String, pb::ShipReservationResponse) {
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    app.receive(&p, &w, 10).await;
    app.reserve("order-1", &p, &w, 5).await.expect("reserve");
    let shipped = app.ship(shipment(&w, 2)).await.expect("partial shipment");
    (p, w, shipped)
}

#[tokio::test]
async fn shipping_in_parts_then_releasing_the_rest() {
    let app = TestApp::spawn().await;
    let (p, w, shipped) = ship_two_of_five(&app).await;
    let r = shipped.reservation.expect("reservation");
    assert_eq!(
        (r.quantity_held, r.quantity_shipped, r.status()),
        (3, 2, pb::ReservationStatus::Active)
    );
    let inv = shipped.inventory.expect("inventory");
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (8, 3));

    let released = app.release(cancellation()).await.expect("release the rest");
    let r = &released.reservations[0];
    assert_eq!(
        (r.quantity_held, r.quantity_released, r.status()),
        (0, 3, pb::ReservationStatus::Shipped)
    );
    let inv = app.inventory(&p, &w).await;
    assert_eq!(
        (
            inv.quantity_on_hand,
            inv.quantity_reserved,
            inv.quantity_available
        ),
        (8, 0, 8)
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn shipping_more_than_is_held_fails_with_the_held_quantity() {
    let app = TestApp::spawn().await;
    let (p, w, _) = ship_two_of_five(&app).await;
    let status = app.ship(shipment(&w, 4)).await.expect_err("more than held");
    let (reason, metadata) = error_info(&status);
    assert_eq!(
        (reason.as_str(), metadata["held"].as_str()),
        ("EXCEEDS_RESERVED_QUANTITY", "3")
    );
    let inv = app.inventory(&p, &w).await;
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (8, 3));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn shipping_once_the_rest_is_released_fails_as_not_active() {
    let app = TestApp::spawn().await;
    let (_, w, _) = ship_two_of_five(&app).await;
    app.release(cancellation()).await.expect("release the rest");
    let status = app.ship(shipment(&w, 1)).await.expect_err("nothing held");
    assert_eq!(error_info(&status).0, "RESERVATION_NOT_ACTIVE");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn releasing_an_unknown_order_is_not_found() {
    let app = TestApp::spawn().await;
    let status = app
        .release(pb::ReleaseReservationRequest {
            request_id: new_id(),
            order_id: "no-such-order".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown order");
    assert_eq!(status.code(), Code::NotFound);
}

/// SKU-1 with 4 units in each of two warehouses, and order-9 reserving line 1 in both (3 and
/// 2) and line 2 in the second (1). Returns the product and both warehouses.
async fn reserve_order_nine(app: &TestApp) -> (String, String, String) {
    let p = app.product("SKU-1").await;
    let (w1, w2) = (app.warehouse("A").await, app.warehouse("B").await);
    app.receive(&p, &w1, 4).await;
    app.receive(&p, &w2, 4).await;
    let line = |id: &str, w: &str, q| pb::ReservationLine {
        order_line_id: id.into(),
        product_id: p.clone(),
        warehouse_id: w.into(),
        quantity: q,
    };
    app.reserve_order(pb::ReserveOrderRequest {
        request_id: new_id(),
        order_id: "order-9".into(),
        lines: vec![line("1", &w1, 3), line("1", &w2, 2), line("2", &w2, 1)],
        ..Default::default()
    })
    .await
    .expect("reserve order");
    (p, w1, w2)
}

#[tokio::test]
async fn cancelling_an_order_releases_every_line_across_warehouses() {
    let app = TestApp::spawn().await;
    let (p, w1, w2) = reserve_order_nine(&app).await;
    let released = app
        .release(pb::ReleaseReservationRequest {
            request_id: new_id(),
            order_id: "order-9".into(),
            ..Default::default()
        })
        .await
        .expect("release all");
    assert_eq!(released.reservations.len(), 3);
    assert!(
        released
            .reservations
            .iter()
            .all(|r| r.status() == pb::ReservationStatus::Released)
    );
    assert_eq!(app.inventory(&p, &w1).await.quantity_reserved, 0);
    assert_eq!(app.inventory(&p, &w2).await.quantity_reserved, 0);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_partial_release_of_an_order_with_several_lines_is_invalid() {
    let app = TestApp::spawn().await;
    let (p, w1, w2) = reserve_order_nine(&app).await;
    let status = app
        .release(pb::ReleaseReservationRequest {
            request_id: new_id(),
            order_id: "order-9".into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .expect_err("partial release of many");
    assert_eq!(bad_fields(&status), ["quantity"]);
    assert_eq!(app.inventory(&p, &w1).await.quantity_reserved, 3);
    assert_eq!(app.inventory(&p, &w2).await.quantity_reserved, 3);
}

#[tokio::test]
async fn a_multi_line_order_that_cannot_be_fully_reserved_reserves_nothing() {
    let app = TestApp::spawn().await;
    let (p1, p2) = (app.product("SKU-1").await, app.product("SKU-2").await);
    let w = app.warehouse("A").await;
    app.receive(&p1, &w, 5).await;
    app.receive(&p2, &w, 1).await;
    let status = app
        .reserve_order(pb::ReserveOrderRequest {
            request_id: new_id(),
            order_id: "order-1".into(),
            lines: vec![
                pb::ReservationLine {
                    order_line_id: "1".into(),
                    product_id: p1.clone(),
                    warehouse_id: w.clone(),
                    quantity: 5,
                },
                pb::ReservationLine {
                    order_line_id: "2".into(),
                    product_id: p2.clone(),
                    warehouse_id: w.clone(),
                    quantity: 2,
                },
            ],
            ..Default::default()
        })
        .await
        .expect_err("second line short");
    let (reason, metadata) = error_info(&status);
    assert_eq!(
        (reason.as_str(), metadata["product_id"].as_str()),
        ("INSUFFICIENT_STOCK", p2.as_str())
    );
    assert_eq!(
        app.inventory(&p1, &w).await.quantity_reserved,
        0,
        "first line rolled back"
    );
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 0);
}

/// An audited adjustment of the pair by `delta`, optionally checked against the on-hand
/// quantity the auditor counted from.
fn adjustment(p: &str, w: &str, delta: i64, expected: Option<i64>) -> pb::AdjustStockRequest {
    pb::AdjustStockRequest {
        request_id: new_id(),
        product_id: p.to_owned(),
        warehouse_id: w.to_owned(),
        quantity_delta: delta,
        reason: "damaged".into(),
        reference_id: "count-7".into(),
        expected_on_hand: expected,
        actor: "auditor".into(),
    }
}

/// SKU-1 in A: 10 received, 4 of them reserved. Returns the product and the warehouse.
async fn ten_on_hand_four_reserved(app: &TestApp) -> (String, String) {
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 10).await;
    app.reserve("order-1", &p, &w, 4).await.expect("reserve");
    (p, w)
}

/// As [`ten_on_hand_four_reserved`], then 2 written off against a count of 10.
async fn eight_on_hand_four_reserved(app: &TestApp) -> (String, String) {
    let (p, w) = ten_on_hand_four_reserved(app).await;
    app.adjust(adjustment(&p, &w, -2, Some(10)))
        .await
        .expect("adjust down");
    (p, w)
}

#[tokio::test]
async fn adjusting_changes_on_hand_and_logs_an_adjust_with_its_reason() {
    let app = TestApp::spawn().await;
    let (p, w) = ten_on_hand_four_reserved(&app).await;
    let done = app
        .adjust(adjustment(&p, &w, -2, Some(10)))
        .await
        .expect("adjust down");
    let txn = done.transaction.expect("txn");
    assert_eq!(
        (txn.txn_type(), txn.on_hand_delta, txn.reason.as_str()),
        (pb::TransactionType::Adjust, -2, "damaged")
    );
    app.adjust(adjustment(&p, &w, 3, Some(8)))
        .await
        .expect("adjust up");
    let inv = app.inventory(&p, &w).await;
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (11, 4));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn adjusting_against_a_stale_count_fails_as_on_hand_changed() {
    let app = TestApp::spawn().await;
    let (p, w) = eight_on_hand_four_reserved(&app).await;
    let status = app
        .adjust(adjustment(&p, &w, -1, Some(10)))
        .await
        .expect_err("stale count");
    assert_eq!(error_info(&status).0, "ON_HAND_CHANGED");
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, 8);
}

#[tokio::test]
async fn adjusting_below_the_reserved_quantity_fails() {
    let app = TestApp::spawn().await;
    let (p, w) = eight_on_hand_four_reserved(&app).await;
    let status = app
        .adjust(adjustment(&p, &w, -5, None))
        .await
        .expect_err("below reserved");
    assert_eq!(error_info(&status).0, "ADJUSTMENT_BELOW_RESERVED");
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, 8);
}

#[tokio::test]
async fn adjusting_below_zero_fails() {
    let app = TestApp::spawn().await;
    let (p, w) = eight_on_hand_four_reserved(&app).await;
    let status = app
        .adjust(adjustment(&p, &w, -9, None))
        .await
        .expect_err("below zero");
    assert_eq!(error_info(&status).0, "ADJUSTMENT_BELOW_ZERO");
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, 8);
}

#[tokio::test]
async fn adjusting_by_zero_is_invalid() {
    let app = TestApp::spawn().await;
    let (p, w) = eight_on_hand_four_reserved(&app).await;
    let status = app
        .adjust(adjustment(&p, &w, 0, None))
        .await
        .expect_err("zero");
    assert_eq!(bad_fields(&status), ["quantity_delta"]);
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, 8);
}

/// A transfer of `quantity` units of `p` under reference TR-1.
fn transfer_of(p: &str, from: &str, to: &str, quantity: i64) -> pb::TransferStockRequest {
    pb::TransferStockRequest {
        request_id: new_id(),
        product_id: p.to_owned(),
        from_warehouse_id: from.to_owned(),
        to_warehouse_id: to.to_owned(),
        quantity,
        reference_id: "TR-1".into(),
        actor: String::new(),
    }
}

/// SKU-1 in warehouses A and B: 10 received in A, 6 of them reserved, so 4 can move.
/// Returns the product, A and B.
async fn four_available_in_a(app: &TestApp) -> (String, String, String) {
    let p = app.product("SKU-1").await;
    let (a, b) = (app.warehouse("A").await, app.warehouse("B").await);
    app.receive(&p, &a, 10).await;
    app.reserve("order-1", &p, &a, 6).await.expect("reserve");
    (p, a, b)
}

#[tokio::test]
async fn transferring_moves_on_hand_atomically_under_one_reference() {
    let app = TestApp::spawn().await;
    let (p, a, b) = four_available_in_a(&app).await;
    let moved = app
        .transfer(transfer_of(&p, &a, &b, 4))
        .await
        .expect("transfer");
    assert_eq!(moved.from_inventory.expect("from").quantity_on_hand, 6);
    assert_eq!(moved.to_inventory.expect("to").quantity_on_hand, 4);
    assert_eq!(moved.transactions.len(), 2);
    assert!(
        moved
            .transactions
            .iter()
            .all(|t| t.reference_id == "TR-1" && t.txn_type() == pb::TransactionType::Transfer)
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn transferring_more_than_is_available_fails_as_insufficient_stock() {
    let app = TestApp::spawn().await;
    let (p, a, b) = four_available_in_a(&app).await;
    let status = app
        .transfer(transfer_of(&p, &a, &b, 5))
        .await
        .expect_err("only 4 available");
    assert_eq!(error_info(&status).0, "INSUFFICIENT_STOCK");
    assert_eq!(app.inventory(&p, &a).await.quantity_on_hand, 10);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn transferring_to_an_unknown_warehouse_is_not_found() {
    let app = TestApp::spawn().await;
    let (p, a, _) = four_available_in_a(&app).await;
    let status = app
        .transfer(transfer_of(&p, &a, &new_id(), 1))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(app.inventory(&p, &a).await.quantity_on_hand, 10);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn transferring_to_the_same_warehouse_is_invalid() {
    let app = TestApp::spawn().await;
    let (p, a, _) = four_available_in_a(&app).await;
    let status = app
        .transfer(transfer_of(&p, &a, &a, 1))
        .await
        .expect_err("same warehouse");
    assert_eq!(bad_fields(&status), ["to_warehouse_id"]);
}

#[tokio::test]
async fn a_retried_request_returns_the_first_result_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 5).await;
    let request = reserve_request("order-1", &p, &w, 2);
    let first = app.reserve_stock(request.clone()).await.expect("first");
    let retry = app.reserve_stock(request.clone()).await.expect("retry");
    assert_eq!(first, retry);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 2);
    assert_eq!(app.transaction_count().await, 2);

    let mut changed = request;
    changed.line.as_mut().expect("line").quantity = 3;
    let status = app
        .reserve_stock(changed)
        .await
        .expect_err("same id, new params");
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 2);
}

#[tokio::test]
async fn concurrent_retries_of_one_request_apply_it_once() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    let request = pb::ReceiveStockRequest {
        request_id: new_id(),
        product_id: p.clone(),
        warehouse_id: w.clone(),
        quantity: 7,
        ..Default::default()
    };
    let calls = (0..16).map(|_| {
        let (mut client, request) = (app.client.clone(), request.clone());
        tokio::spawn(async move {
            client
                .receive_stock(request)
                .await
                .map(tonic::Response::into_inner)
        })
    });
    let mut responses = Vec::new();
    for call in calls {
        responses.push(call.await.expect("join").expect("every retry succeeds"));
    }
    assert!(
        responses.windows(2).all(|w| w[0] == w[1]),
        "all retries see the first result"
    );
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, 7);
    assert_eq!(app.transaction_count().await, 1);
}

/// A reservation of 3 of 5 units for order-1, expiring 300 ms after it is made, waited on
/// until the expiry task has released it. Returns the product, the warehouse, the request
/// and its first answer.
async fn reserve_until_expired(
    app: &TestApp,
) -> (
    String,
    String,
    pb::ReserveStockRequest,
    pb::ReserveStockResponse,
) {
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 5).await;
    let mut request = reserve_request("order-1", &p, &w, 3);
    let soon = std::time::SystemTime::now() + std::time::Duration::from_millis(300);
    request.expire_time = Some(prost_types::Timestamp::from(soon));
    let first = app
        .reserve_stock(request.clone())
        .await
        .expect("reserve with expiry");
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 3);

    let mut released = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if app.inventory(&p, &w).await.quantity_reserved == 0 {
            released = true;
            break;
        }
    }
    assert!(released, "expiry task released the hold");
    (p, w, request, first)
}

#[tokio::test]
async fn expired_reservations_are_released_with_reason_expired() {
    let app = TestApp::spawn().await;
    reserve_until_expired(&app).await;
    let reservations = app
        .list_reservations("order-1")
        .await
        .expect("list")
        .reservations;
    assert_eq!(reservations[0].status(), pb::ReservationStatus::Expired);
    let log = app
        .list_transactions(pb::ListTransactionsRequest {
            txn_type: pb::TransactionType::Release.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .transactions;
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].reason.as_str(), log[0].quantity), ("expired", 3));
    app.assert_ledger_clean().await;
}

/// A retry after the expiry has passed still gets the first answer, and changes nothing.
#[tokio::test]
async fn a_retry_after_the_expiry_replays_the_first_answer_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (p, w, request, first) = reserve_until_expired(&app).await;
    let retried = app.reserve_stock(request).await.expect("retry replays");
    assert_eq!(retried, first);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 0);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_expiry_in_the_past_is_invalid() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 5).await;
    let mut past = reserve_request("order-2", &p, &w, 1);
    past.expire_time = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    let status = app.reserve_stock(past).await.expect_err("past expiry");
    assert_eq!(bad_fields(&status), ["expire_time"]);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 0);
}

/// Further ahead than request ids are kept (a week by default): a retry could not be
/// recognised for the whole life of the hold.
#[tokio::test]
async fn an_expiry_further_ahead_than_request_ids_are_kept_is_invalid() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 5).await;
    let mut far = reserve_request("order-3", &p, &w, 1);
    let next_year = std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 86_400);
    far.expire_time = Some(prost_types::Timestamp::from(next_year));
    let status = app.reserve_stock(far).await.expect_err("too far ahead");
    assert_eq!(bad_fields(&status), ["expire_time"]);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 0);
    app.assert_ledger_clean().await;
}

/// Statements that must each be refused by the database, run against SKU-1 with 2 on hand.
async fn assert_refused_by_the_database(sqls: &[&str]) {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 2).await;
    let mut db = app.db().await;
    for sql in sqls {
        assert!(
            sqlx::raw_sql(sql).execute(&mut db).await.is_err(),
            "{sql} must be refused"
        );
    }
}

#[tokio::test]
async fn the_log_cannot_be_rewritten() {
    assert_refused_by_the_database(&[
        "UPDATE inventory_transactions SET quantity = 99",
        "DELETE FROM inventory_transactions",
    ])
    .await;
}

#[tokio::test]
async fn the_rows_cannot_go_negative() {
    assert_refused_by_the_database(&[
        "UPDATE inventory SET quantity_reserved = quantity_on_hand + 1",
        "UPDATE inventory SET quantity_on_hand = -1, quantity_reserved = 0",
    ])
    .await;
}

#[tokio::test]
async fn a_reservation_is_decided_on_the_row_as_it_is_now_not_as_last_seen() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 1).await;
    app.reserve("order-1", &p, &w, 1)
        .await
        .expect("the only unit");
    // Stock arrives through another RPC: the last batch saw nothing available.
    app.receive(&p, &w, 5).await;
    let granted = app
        .reserve("order-2", &p, &w, 5)
        .await
        .expect("the new units");
    let inv = granted.inventory.expect("inventory");
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (6, 6));

    // Stock leaves through another RPC: the last batch saw more than there is.
    app.adjust(pb::AdjustStockRequest {
        request_id: new_id(),
        product_id: p.clone(),
        warehouse_id: w.clone(),
        quantity_delta: 4,
        reason: "found".into(),
        ..Default::default()
    })
    .await
    .expect("adjust");
    let granted = app
        .reserve("order-3", &p, &w, 3)
        .await
        .expect("after the adjustment");
    let inv = granted.inventory.expect("inventory");
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (10, 9));
    let status = app
        .reserve("order-4", &p, &w, 2)
        .await
        .expect_err("one left");
    assert_eq!(error_info(&status).1["available"], "1");

    // The row moves again behind the last batch's back, while it still looks sufficient:
    // the write's check of the row catches it and the reservation is decided again.
    app.receive(&p, &w, 5).await;
    let granted = app.reserve("order-5", &p, &w, 1).await.expect("one of six");
    let inv = granted.inventory.expect("inventory");
    assert_eq!((inv.quantity_on_hand, inv.quantity_reserved), (15, 10));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn getting_inventory_by_a_malformed_id_is_invalid() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let status = app.get_inventory("x", &w).await.expect_err("malformed");
    assert_eq!(bad_fields(&status), ["product_id"]);
}

#[tokio::test]
async fn getting_inventory_of_a_never_stocked_pair_is_not_found() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    let never_stocked = app.get_inventory(&p, &w).await.expect_err("never stocked");
    assert_eq!(never_stocked.code(), Code::NotFound);
    assert!(
        never_stocked.message().contains("never stocked"),
        "{never_stocked:?}"
    );
}

#[tokio::test]
async fn getting_inventory_in_an_unknown_warehouse_is_not_found() {
    let app = TestApp::spawn().await;
    let p = app.product("SKU-1").await;
    let unknown = new_id();
    let status = app
        .get_inventory(&p, &unknown)
        .await
        .expect_err("unknown warehouse");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&unknown));
}

#[tokio::test]
async fn listing_reservations_without_an_order_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app.list_reservations("").await.expect_err("no order");
    assert_eq!(bad_fields(&status), ["order_id"]);
}

/// One call lists the holds of several orders (a caller checking a batch of orders at once),
/// each reservation naming its order; an order without holds adds nothing.
#[tokio::test]
async fn one_listing_names_the_reservations_of_several_orders() {
    let app = TestApp::spawn().await;
    let (p, w) = (
        app.product("LIST-MANY").await,
        app.warehouse("List many").await,
    );
    app.receive(&p, &w, 10).await;
    for (order, quantity) in [("order-a", 2), ("order-b", 3), ("order-c", 1)] {
        app.reserve(order, &p, &w, quantity).await.expect("reserve");
    }
    let listed = app
        .client
        .clone()
        .list_reservations(pb::ListReservationsRequest {
            order_id: "order-a".to_owned(),
            order_ids: vec![
                "order-b".to_owned(),
                "order-without-holds".to_owned(),
                "order-b".to_owned(),
            ],
        })
        .await
        .expect("list")
        .into_inner()
        .reservations;
    let mut held: Vec<(String, i64)> = listed
        .iter()
        .map(|r| (r.order_id.clone(), r.quantity_held))
        .collect();
    held.sort();
    assert_eq!(
        held,
        [("order-a".to_owned(), 2), ("order-b".to_owned(), 3)],
        "order-c was not asked for, order-b is listed once"
    );
}

#[tokio::test]
async fn a_listing_of_several_orders_names_each_bad_one_and_its_limit() {
    let app = TestApp::spawn().await;
    let request = |order_ids: Vec<String>| pb::ListReservationsRequest {
        order_id: String::new(),
        order_ids,
    };
    let status = app
        .client
        .clone()
        .list_reservations(request(vec![
            "ok".to_owned(),
            " padded".to_owned(),
            String::new(),
        ]))
        .await
        .expect_err("bad order ids");
    assert_eq!(bad_fields(&status), ["order_ids[1]", "order_ids[2]"]);
    let status = app
        .client
        .clone()
        .list_reservations(request((0..1001).map(|i| format!("order-{i}")).collect()))
        .await
        .expect_err("too many");
    assert_eq!(bad_fields(&status), ["order_ids"]);
    assert!(
        status.message().contains("at most 1000"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn streaming_from_a_negative_cursor_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app
        .stream_transactions(-1)
        .await
        .expect_err("negative cursor");
    assert_eq!(bad_fields(&status), ["after_sequence"]);
}

/// An inventory row, once written, stays: the log and the reservations name it (no foreign
/// key holds them to it), so removing it is refused whether row by row or whole.
#[tokio::test]
async fn an_inventory_row_named_by_the_log_and_reservations_cannot_be_removed() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let p = app.product("STAYS").await;
    app.receive(&p, &w, 5).await;
    app.reserve("o-stays", &p, &w, 2).await.expect("reserve");

    let mut db = app.db().await;
    for sql in ["DELETE FROM inventory", "TRUNCATE inventory"] {
        let error = sqlx::query(sql).execute(&mut db).await.expect_err(sql);
        assert!(
            error
                .to_string()
                .contains("inventory rows are never removed"),
            "{sql}: {error}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM inventory").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 1);
    assert_eq!(app.transaction_count().await, 2);
    app.assert_ledger_clean().await;
}

/// A log row or an active reservation that names no inventory row (nothing in the schema
/// forbids one) is drift, log rows even when they add up to nothing.
#[tokio::test]
async fn the_ledger_check_names_log_rows_and_reservations_without_an_inventory_row() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let fine = app.product("FINE").await;
    app.receive(&fine, &w, 5).await;
    let (logged, reserved) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());

    let mut db = app.db().await;
    sqlx::query(
        "INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type,
             quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after, request_id)
         VALUES (gen_random_uuid(), $1, $2::uuid, 'RECEIVE', 1, 1, 0, 1, 0, 'forged'),
                (gen_random_uuid(), $1, $2::uuid, 'ADJUST', 1, -1, 0, 0, 0, 'forged')",
    )
    .bind(logged)
    .bind(&w)
    .execute(&mut db)
    .await
    .expect("log rows without an inventory row");
    sqlx::query(
        "INSERT INTO reservations (reservation_id, order_id, order_line_id, product_id,
             warehouse_id, status, quantity_requested, quantity_held, quantity_released)
         VALUES (gen_random_uuid(), 'o-orphan', 'l-1', $1, $2::uuid, 'ACTIVE', 1, 1, 0)",
    )
    .bind(reserved)
    .bind(&w)
    .execute(&mut db)
    .await
    .expect("a reservation without an inventory row");

    let report = app.check_ledger().await.expect("check ledger");
    let mut named: Vec<String> = report.drifts.iter().map(|d| d.product_id.clone()).collect();
    named.sort_unstable();
    let mut expected = vec![logged.to_string(), reserved.to_string()];
    expected.sort_unstable();
    assert_eq!(named, expected, "{:?}", report.drifts);
    for (product, held) in [(&logged, 0), (&reserved, 1)] {
        let drift = report
            .drifts
            .iter()
            .find(|d| d.product_id == product.to_string())
            .expect("named");
        assert_eq!(
            (
                drift.warehouse_id.as_str(),
                drift.recorded_reserved,
                drift.ledger_on_hand,
                drift.reservations_held
            ),
            (w.as_str(), 0, 0, held)
        );
        assert!(drift.inventory_row_missing, "{drift:?}");
        assert_eq!(drift.problems.len(), 1, "{drift:?}");
        assert!(
            drift.problems[0].starts_with("no inventory row for this product and warehouse")
                && drift.problems[0].ends_with(&format!("active reservations hold {held}")),
            "{drift:?}"
        );
    }
}

/// The ledger check finds each kind of drift: a row whose quantity the log does not add up
/// to, a log row whose after-values are not the running sums (though the totals agree), and
/// a reserved quantity its active reservations do not hold; rows that agree are not named.
#[tokio::test]
async fn the_ledger_check_names_every_row_that_drifted_and_no_other() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let (counted, rewritten, unheld, fine) = (
        app.product("COUNTED").await,
        app.product("REWRITTEN").await,
        app.product("UNHELD").await,
        app.product("FINE").await,
    );
    for p in [&counted, &rewritten, &unheld, &fine] {
        app.receive(p, &w, 5).await;
        app.receive(p, &w, 5).await;
    }
    app.assert_ledger_clean().await;

    let mut db = app.db().await;
    for (sql, product) in [
        (
            "UPDATE inventory SET quantity_on_hand = quantity_on_hand + 1
              WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
            &counted,
        ),
        // The log is append-only: two rows whose deltas cancel out, the first claiming an
        // after-value that is not the running sum. The totals still add up.
        (
            "INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type,
                 quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
                 request_id)
             VALUES (gen_random_uuid(), $1::uuid, $2::uuid, 'RECEIVE', 1, 1, 0, 99, 0, 'forged'),
                    (gen_random_uuid(), $1::uuid, $2::uuid, 'ADJUST', 1, -1, 0, 10, 0, 'forged')",
            &rewritten,
        ),
        (
            "UPDATE inventory SET quantity_reserved = 2
              WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
            &unheld,
        ),
    ] {
        sqlx::query(sql)
            .bind(product)
            .bind(&w)
            .execute(&mut db)
            .await
            .expect("corrupt a row");
    }

    let report = app.check_ledger().await.expect("check ledger");
    let mut named: Vec<&str> = report
        .drifts
        .iter()
        .map(|d| d.product_id.as_str())
        .collect();
    named.sort_unstable();
    let mut expected = vec![counted.as_str(), rewritten.as_str(), unheld.as_str()];
    expected.sort_unstable();
    assert_eq!(named, expected, "{:?}", report.drifts);
    let counted_drift = report
        .drifts
        .iter()
        .find(|d| d.product_id == counted)
        .expect("counted");
    assert_eq!(
        (counted_drift.recorded_on_hand, counted_drift.ledger_on_hand),
        (11, 10)
    );
    assert!(!counted_drift.inventory_row_missing);
    assert_eq!(
        counted_drift.problems,
        ["on hand is 11 but the log nets 10"]
    );
    let unheld_drift = report
        .drifts
        .iter()
        .find(|d| d.product_id == unheld)
        .expect("unheld");
    assert_eq!(
        (
            unheld_drift.recorded_reserved,
            unheld_drift.reservations_held
        ),
        (2, 0)
    );
    assert_eq!(
        unheld_drift.problems,
        [
            "reserved is 2 but the log nets 0",
            "reserved is 2 but active reservations hold 0"
        ]
    );
}

/// Found by fuzzing every RPC: values the database cannot hold are refused naming the field,
/// never INTERNAL.
#[tokio::test]
async fn a_nul_in_a_filter_and_a_time_outside_timestamps_range_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let status = app
        .client
        .clone()
        .list_products(pb::ListProductsRequest {
            category: "\u{0}".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("a NUL category");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_fields(&status), ["category"]);
    for (start, end, field) in [
        (Some(-1_099_511_627_776), None, "start_time"),
        (None, Some(-1_099_511_627_776), "end_time"),
        (None, Some(253_402_300_800), "end_time"),
    ] {
        let at = |seconds: Option<i64>| {
            seconds.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })
        };
        let status = app
            .list_transactions(pb::ListTransactionsRequest {
                start_time: at(start),
                end_time: at(end),
                ..Default::default()
            })
            .await
            .expect_err("a time no timestamp holds");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(bad_fields(&status), [field]);
    }
}
